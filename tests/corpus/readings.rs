//! How upstreams read a forwarded path: the two mainstream readings the invariant
//! enforces, the lenient ones the corpus marks, and the denied area of each rule.

/// An upstream's reading of a path: its segments once resolved, and whether it names a
/// directory (ends in `/`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Resolved {
    segments: Vec<Vec<u8>>,
    pub(super) dir: bool,
}

impl std::fmt::Display for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.segments {
            write!(f, "/{}", String::from_utf8_lossy(s))?;
        }
        if self.dir || self.segments.is_empty() {
            write!(f, "/")?;
        }
        Ok(())
    }
}

/// Decodes every valid `%XX` once, leaving anything else as it is.
fn decode_once(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if let (b'%', Some(&h), Some(&l)) = (s[i], s.get(i + 1), s.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn split(s: &[u8]) -> Vec<Vec<u8>> {
    s.split(|&b| b == b'/' || b == b'\\')
        .map(<[u8]>::to_vec)
        .collect()
}

fn strip_params(seg: Vec<u8>) -> Vec<u8> {
    match seg.iter().position(|&b| b == b';') {
        Some(p) => seg[..p].to_vec(),
        None => seg,
    }
}

/// Resolves the segments after the root `/`: empty segments merged, `.` and `..`
/// resolved (never above the root); a last segment that is empty, `.` or `..` leaves a
/// directory.
fn resolve(segments: Vec<Vec<u8>>) -> Resolved {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut dir = true;
    for seg in segments {
        match seg.as_slice() {
            b"" | b"." => dir = true,
            b".." => {
                out.pop();
                dir = true;
            }
            _ => {
                out.push(seg);
                dir = false;
            }
        }
    }
    Resolved { segments: out, dir }
}

/// A mainstream upstream that decodes once, then splits at `/` and `\` and drops each
/// segment's `;params` (nginx, Apache, Express, Spring after its own decoding).
pub(super) fn decode_first(path: &[u8]) -> Resolved {
    let decoded = decode_once(path);
    resolve(
        split(decoded.get(1..).unwrap_or_default())
            .into_iter()
            .map(strip_params)
            .collect(),
    )
}

/// A mainstream upstream that drops `;params` from the raw segments, then decodes each
/// (Tomcat); a decoded `/` or `\` splits again.
pub(super) fn strip_first(path: &[u8]) -> Resolved {
    let segments = split(path.get(1..).unwrap_or_default())
        .into_iter()
        .flat_map(|seg| split(&decode_once(&strip_params(seg))))
        .collect();
    resolve(segments)
}

/// Readings of upstreams laxer than the mainstream one. Not enforced: the corpus lists
/// for each target the ones that reach a denied area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Lenient {
    /// Case-insensitive paths (IIS, a Windows or macOS file system, `(?i)` routers).
    Case,
    /// Windows names: trailing dots and spaces and a `::$DATA` stream suffix dropped.
    Win,
    /// Unicode folding: overlong UTF-8 and fullwidth forms read as ASCII (NFKC, old IIS).
    Unicode,
    /// A decoding relay in front of the app: decodes once and forwards the result, which
    /// the app parses again (`%3F` cuts a query, `%2561` becomes `a`).
    Relay,
    /// A trailing slash ignored (Express and Flask non-strict routing).
    Slash,
}

impl Lenient {
    pub(super) const ALL: [Lenient; 5] = [
        Lenient::Case,
        Lenient::Win,
        Lenient::Unicode,
        Lenient::Relay,
        Lenient::Slash,
    ];

    pub(super) fn from_mark(mark: &str) -> Option<Lenient> {
        Some(match mark {
            "!case" => Lenient::Case,
            "!win" => Lenient::Win,
            "!unicode" => Lenient::Unicode,
            "!relay" => Lenient::Relay,
            "!slash" => Lenient::Slash,
            _ => return None,
        })
    }

    pub(super) fn read(self, path: &[u8]) -> Resolved {
        let decoded = decode_once(path);
        let segments = |d: &[u8]| -> Vec<Vec<u8>> {
            split(d.get(1..).unwrap_or_default())
                .into_iter()
                .map(strip_params)
                .collect()
        };
        match self {
            Lenient::Case => resolve(segments(&decoded.to_ascii_lowercase())),
            Lenient::Win => resolve(segments(&decoded).into_iter().map(win_name).collect()),
            Lenient::Unicode => resolve(segments(&fold_unicode(&decoded))),
            Lenient::Relay => {
                let end = decoded
                    .iter()
                    .position(|&b| b == b'?' || b == b'#')
                    .unwrap_or(decoded.len());
                decode_first(&decoded[..end])
            }
            Lenient::Slash => Resolved {
                dir: false,
                ..decode_first(path)
            },
        }
    }
}

/// A segment as Windows names it: `::$DATA` dropped, then trailing spaces; a segment that
/// is then `.` or `..` stays one; otherwise trailing dots and spaces are dropped too.
fn win_name(seg: Vec<u8>) -> Vec<u8> {
    let mut s = seg.as_slice();
    if s.len() >= 7 && s[s.len() - 7..].eq_ignore_ascii_case(b"::$data") {
        s = &s[..s.len() - 7];
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    if s == b"." || s == b".." {
        return s.to_vec();
    }
    while let [rest @ .., b' ' | b'.'] = s {
        s = rest;
    }
    s.to_vec()
}

/// Folds overlong UTF-8 encodings of ASCII and the fullwidth forms U+FF01–U+FF5E to
/// ASCII.
fn fold_unicode(s: &[u8]) -> Vec<u8> {
    let cont = |b: Option<&u8>| {
        b.filter(|&&b| b & 0xC0 == 0x80)
            .map(|&b| u32::from(b & 0x3F))
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = u32::from(s[i]);
        let two = cont(s.get(i + 1));
        let three = two.and(cont(s.get(i + 2)));
        let folded = match (s[i], two, three) {
            (0xC0 | 0xC1, Some(c1), _) => Some(((b & 0x1F) << 6 | c1, 2)),
            (0xE0..=0xEF, Some(c1), Some(c2)) => Some(((b & 0x0F) << 12 | c1 << 6 | c2, 3)),
            _ => None,
        };
        match folded {
            Some((cp @ 0..=0x7F, n)) => {
                out.push(cp as u8);
                i += n;
            }
            Some((cp @ 0xFF01..=0xFF5E, n)) => {
                out.push((cp - 0xFEE0) as u8);
                i += n;
            }
            _ => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

/// The rules whose denied area a reading falls in.
pub(super) fn denied_areas(r: &Resolved) -> Vec<&'static str> {
    let first = r.segments.first().map(Vec::as_slice);
    let last = r.segments.last().map(|s| s.to_ascii_lowercase());
    let mut areas = Vec::new();
    if first == Some(b"admin") {
        areas.push("admin");
    }
    if r.segments.iter().any(|s| s.starts_with(b".")) {
        areas.push("dotfiles");
    }
    if !r.dir && last.is_some_and(|l| l.ends_with(b".bak") || l.ends_with(b".sql")) {
        areas.push("backups");
    }
    if first == Some(b"private") && r.dir {
        areas.push("private-dirs");
    }
    areas
}

#[test]
fn readings_model_mainstream_and_lenient_upstreams() {
    let hard = |p: &str| {
        let (a, b) = (decode_first(p.as_bytes()), strip_first(p.as_bytes()));
        let mut areas = denied_areas(&a);
        areas.extend(denied_areas(&b));
        areas.dedup();
        (a.to_string(), areas)
    };
    let cases: [(&str, &str, &[&str]); 16] = [
        ("/admin", "/admin", &["admin"]),
        ("/public/admin", "/public/admin", &[]),
        ("/administrator", "/administrator", &[]),
        ("/x/..;/admin", "/admin", &["admin"]),
        ("/;/admin", "/admin", &["admin"]),
        ("/%2Fadmin", "/admin", &["admin"]),
        ("/x%5C..%5Cadmin", "/admin", &["admin"]),
        ("//admin", "/admin", &["admin"]),
        ("/x%2F.env", "/x/.env", &["dotfiles"]),
        ("/db.sql;x", "/db.sql", &["backups"]),
        ("/db.sql%3Bx", "/db.sql", &["backups"]),
        ("/db.sql/", "/db.sql/", &[]),
        ("/private/docs", "/private/docs", &[]),
        ("/private/docs/;x", "/private/docs/", &["private-dirs"]),
        ("/private/docs/.", "/private/docs/", &["private-dirs"]),
        ("/", "/", &[]),
    ];
    for (path, view, areas) in cases {
        assert_eq!(hard(path), (view.to_owned(), areas.to_vec()), "{path}");
    }
    let lenient = [
        (Lenient::Case, "/ADMIN", "/admin"),
        (Lenient::Win, "/admin.%20", "/admin"),
        (Lenient::Win, "/db.sql::$DATA", "/db.sql"),
        (Lenient::Win, "/x/..%20/admin", "/admin"),
        (Lenient::Unicode, "/%EF%BC%8Fadmin", "/admin"),
        (Lenient::Unicode, "/%C0%AE%C0%AE/admin", "/admin"),
        (Lenient::Unicode, "/x/%E0%80%AE%E0%80%AE/admin", "/admin"),
        (Lenient::Relay, "/%2561dmin", "/admin"),
        (Lenient::Relay, "/admin%3F/x", "/admin"),
    ];
    for (l, path, view) in lenient {
        assert_eq!(l.read(path.as_bytes()).to_string(), view, "{l:?} {path}");
    }
    assert!(!Lenient::Slash.read(b"/db.sql/").dir);
}
