//! Path canonicalization (SPEC 5): the one function every request path goes through
//! before any rule sees it and before the upstream request is built from it.
//!
//! It owns the path component only. It does not split off the query (the caller cuts
//! at the first `?`), does not see the Host, and does no I/O. Its output is what the
//! rules match and what the upstream receives, so it refuses or normalizes everything a
//! mainstream upstream (one that percent-decodes once, resolves dot segments, reads `\`
//! as `/`, strips `;params` like Tomcat) could read differently from us: the output has
//! no dot segment under any of those readings, and it is a valid RFC 3986 path.

use std::borrow::Cow;

/// The `[paths]` settings (SPEC 2). The default is the SPEC default: slashes merged,
/// and `%2F`/`%5C`, raw `\` and `;` all refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    /// Merge runs of `/` into one. Defaults to `true`. When `true`, slashes are merged
    /// *before* dot segments are resolved (an empty segment is no segment, as in nginx,
    /// Apache and Go's `path.Clean`): `/a//../b` is `/b`. When `false`, dot segments are
    /// resolved as RFC 3986 `remove_dot_segments` does, where `..` removes an empty
    /// segment too: `/a//../b` is `/a/b`.
    pub merge_slashes: bool,
    /// What `%2F` and `%5C` mean. Defaults to [`EncodedSlash::Reject`].
    pub encoded_slash: EncodedSlash,
    /// What a raw `\` means. Defaults to [`Backslash::Reject`].
    pub backslash: Backslash,
    /// Whether `;` is allowed. Defaults to [`Semicolon::Reject`].
    pub semicolon: Semicolon,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            encoded_slash: EncodedSlash::Reject,
            backslash: Backslash::Reject,
            semicolon: Semicolon::Reject,
        }
    }
}

/// `encoded_slash`: what an encoded separator, `%2F` (`/`) or `%5C` (`\`), means.
/// An encoded backslash counts as an encoded slash, since upstreams that read `\` as
/// `/` do so after decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodedSlash {
    /// Refuse the path (400). The default.
    #[default]
    Reject,
    /// Decode both `%2F` and `%5C` to `/`, a segment separator like any other.
    Decode,
    /// Keep them encoded (upper case) as data inside a segment. A segment that holds one
    /// is refused when one of its `%2F`/`%5C`-separated pieces is `.` or `..`, because
    /// an upstream that decodes them would resolve that piece.
    Keep,
}

/// `backslash`: what a raw `\` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backslash {
    /// Refuse the path (400). The default.
    #[default]
    Reject,
    /// Read it as `/`, a segment separator.
    Slash,
}

/// `semicolon`: whether a raw `;` (path parameters such as `;jsessionid=…`) is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Semicolon {
    /// Refuse the path (400). The default.
    #[default]
    Reject,
    /// Keep it as an ordinary character, except after a `.` or `..` segment
    /// (`/..;/`, `/.;x/`), which is refused: Tomcat and Spring resolve those as dot
    /// segments.
    Keep,
}

/// Why a path was refused (each is a 400 `bad_request`). `at` is the byte offset in the
/// input path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty or its first byte is not `/` (`*`, `a/b`, `\a`).
    #[error("path does not start with '/'")]
    NotAbsolute,
    /// A raw control byte, 0x00–0x1F or 0x7F.
    #[error("control byte 0x{byte:02x} at offset {at} in path")]
    ControlByte {
        /// The byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// An escape of a control byte, `%00`–`%1F` or `%7F`.
    #[error("encoded control byte %{byte:02X} at offset {at} in path")]
    EncodedControlByte {
        /// The decoded byte.
        byte: u8,
        /// Offset of the `%`.
        at: usize,
    },
    /// A raw byte above 0x7F.
    #[error("non-ascii byte 0x{byte:02x} at offset {at} in path")]
    NonAscii {
        /// The first byte of the character.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// A `#`: a fragment is never part of a request target.
    #[error("fragment '#' at offset {at} in path")]
    Fragment {
        /// Offset of the `#`.
        at: usize,
    },
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-escape at offset {at} in path")]
    InvalidEscape {
        /// Offset of the `%`.
        at: usize,
    },
    /// A `%25` whose decoding is an escape of `.`, `/` or `\` (`%252e`, `%25%32%66`).
    #[error("double-encoded dot or separator at offset {at} in path")]
    DoubleEncoded {
        /// Offset of the `%25`.
        at: usize,
    },
    /// `%2F` or `%5C` with `encoded_slash = "reject"`.
    #[error("encoded slash %{byte:02X} at offset {at} in path")]
    EncodedSlash {
        /// The decoded byte, `/` or `\`.
        byte: u8,
        /// Offset of the `%`.
        at: usize,
    },
    /// A raw `\` with `backslash = "reject"`.
    #[error("backslash at offset {at} in path")]
    Backslash {
        /// Offset of the `\`.
        at: usize,
    },
    /// A raw `;` with `semicolon = "reject"`.
    #[error("semicolon at offset {at} in path")]
    Semicolon {
        /// Offset of the `;`.
        at: usize,
    },
    /// A `.` or `..` segment followed by `;` or `%3B` (`/..;/admin`), which Tomcat and
    /// Spring resolve as a dot segment.
    #[error("dot segment with parameters at offset {at} in path")]
    DotSegmentParameters {
        /// Offset of the `;` or `%3B`.
        at: usize,
    },
    /// With `encoded_slash = "keep"`, a `.` or `..` beside a kept `%2F`/`%5C`
    /// (`/..%2Fadmin`, `/a%2F..`), which a decoding upstream resolves.
    #[error("dot segment beside an encoded slash at offset {at} in path")]
    DotSegmentEncodedSlash {
        /// Offset of the `%2F`/`%5C`, or of the end of the segment.
        at: usize,
    },
    /// With `merge_slashes = false`, a `..` right after an empty segment
    /// (`/a//../b`), which upstreams that merge slashes and upstreams that do
    /// not resolve to different paths.
    #[error("'..' after an empty segment at offset {at} in path")]
    EmptySegmentDotDot {
        /// Offset of the end of the `..` segment.
        at: usize,
    },
}

/// How a mainstream upstream — one that decodes once, reads `\` as `/`,
/// drops `;` parameters and merges slashes — reads a canonical path, when the
/// `[paths]` settings keep something it reads differently: `%2F`/`%5C` kept
/// (it reads `/`), `;` kept (it drops the parameters, `%3B` included),
/// repeated slashes kept (it merges them). `None` when it reads the path as
/// it is, which is always the case with the default settings.
///
/// Rules hold for a request when they hold for either reading, so that a
/// path the upstream resolves into a denied area is denied.
pub fn upstream_view(canonical: &str, opts: &PathOptions) -> Option<String> {
    let keeps_slash = opts.encoded_slash == EncodedSlash::Keep;
    let keeps_params = opts.semicolon == Semicolon::Keep;
    if opts.merge_slashes && !keeps_slash && !keeps_params {
        return None;
    }
    let mut decoded = String::with_capacity(canonical.len());
    let bytes = canonical.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let escape = canonical.get(i..i + 3).unwrap_or("");
        if keeps_slash && (escape.eq_ignore_ascii_case("%2F") || escape.eq_ignore_ascii_case("%5C"))
        {
            decoded.push('/');
            i += 3;
        } else {
            decoded.push(char::from(bytes[i]));
            i += 1;
        }
    }
    // A last segment that is empty once its parameters are dropped leaves a
    // trailing slash (`/docs/;x` reads as `/docs/`).
    let mut trailing = false;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        let segment = if keeps_params {
            let cut = segment
                .find(';')
                .into_iter()
                .chain(segment.to_ascii_lowercase().find("%3b"))
                .min()
                .unwrap_or(segment.len());
            &segment[..cut]
        } else {
            segment
        };
        trailing = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut view = String::with_capacity(decoded.len());
    for s in &segments {
        view.push('/');
        view.push_str(s);
    }
    if trailing || view.is_empty() {
        view.push('/');
    }
    (view != canonical).then_some(view)
}

/// Canonicalizes the path component of a request target (without the query: the caller
/// splits at the first `?`), following SPEC 5 and `opts`.
///
/// Refuses (see [`PathError`]): a path not starting with `/`; control bytes raw or
/// escaped; raw non-ASCII; `#`; invalid escapes; `%25` followed by an escape of `.`,
/// `/` or `\`; and per `opts`, `%2F`/`%5C`, `\`, `;`, plus dot segments carrying
/// parameters or encoded slashes. Otherwise, in one pass: decodes escapes of
/// unreserved characters once, reads separators per `opts`, resolves `.` and `..`
/// (never above the root; a final `.` or `..` leaves a trailing `/`), merges slashes
/// per `opts.merge_slashes`, upper-cases the remaining escapes, and percent-encodes the
/// ASCII characters RFC 3986 does not allow in a path (space `"` `<` `>` `?` `[` `]`
/// `^` `` ` `` `{` `|` `}`), so the output is always a valid path. Idempotent.
///
/// Borrows the input (or a prefix of it, for `/a/.`) when nothing changes, so the
/// common, already-canonical path does not allocate.
pub fn canonicalize<'a>(path: &'a str, opts: &PathOptions) -> Result<Cow<'a, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plainly_canonical(path.as_bytes(), opts.merge_slashes) {
        return Ok(Cow::Borrowed(path));
    }
    canonicalize_in_one_pass(path, opts)
}

/// The common case, checked in a tight loop: only `/` and bytes copied as they are, no
/// segment starting with `.`, and no `//` when slashes are merged.
fn is_plainly_canonical(path: &[u8], merge_slashes: bool) -> bool {
    path.windows(2).all(|w| match w[1] {
        b'/' => !(merge_slashes && w[0] == b'/'),
        b'.' => w[0] != b'/',
        b => is_plain(b),
    })
}

/// [`canonicalize`] for a path that starts with `/`, whatever it holds.
fn canonicalize_in_one_pass<'a>(
    path: &'a str,
    opts: &PathOptions,
) -> Result<Cow<'a, str>, PathError> {
    let mut c = Canon {
        src: path.as_bytes(),
        opts,
        out: Out::new(path),
        seg: 1,
        sub: 1,
        split: false,
    };
    c.run()?;
    Ok(c.out.finish())
}

/// The state of one canonicalization.
struct Canon<'a, 'o> {
    src: &'a [u8],
    opts: &'o PathOptions,
    out: Out<'a>,
    /// Output offset where the current segment starts (just after its `/`).
    seg: usize,
    /// Output offset where the current piece starts: the segment start, or just after a
    /// kept `%2F`/`%5C`.
    sub: usize,
    /// Whether the current segment holds a kept `%2F`/`%5C`.
    split: bool,
}

/// How [`Canon::close_segment`] left the segment it closed.
enum Closed {
    Kept,
    Empty,
    Dropped,
}

impl Canon<'_, '_> {
    fn run(&mut self) -> Result<(), PathError> {
        let src = self.src;
        let mut i = 1;
        while let Some(&b) = src.get(i) {
            match b {
                b'/' => self.separator(i, i + 1)?,
                b'%' => {
                    self.escape(i)?;
                    i += 3;
                    continue;
                }
                b'\\' => match self.opts.backslash {
                    Backslash::Reject => return Err(PathError::Backslash { at: i }),
                    Backslash::Slash => self.separator(i, i + 1)?,
                },
                b';' => match self.opts.semicolon {
                    Semicolon::Reject => return Err(PathError::Semicolon { at: i }),
                    Semicolon::Keep => {
                        self.check_parameters(i)?;
                        self.out.copy(i, i + 1);
                    }
                },
                b'#' => return Err(PathError::Fragment { at: i }),
                0x00..=0x1F | 0x7F => return Err(PathError::ControlByte { byte: b, at: i }),
                0x80.. => return Err(PathError::NonAscii { byte: b, at: i }),
                b' ' | b'"' | b'<' | b'>' | b'?' | b'[' | b']' | b'^' | b'`' | b'{' | b'|'
                | b'}' => self.out.push_escape(b),
                _ => {
                    // Unreserved, sub-delims but `;`, `:` and `@`: copied as a run.
                    let end = src[i..]
                        .iter()
                        .position(|&b| !is_plain(b))
                        .map_or(src.len(), |n| i + n);
                    self.out.copy(i, end);
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        self.close_segment(src.len())?;
        Ok(())
    }

    /// Handles the escape at `i`, which [`Canon::run`] then skips as three bytes.
    fn escape(&mut self, i: usize) -> Result<(), PathError> {
        let byte = decode_escape(self.src, i).ok_or(PathError::InvalidEscape { at: i })?;
        match byte {
            0x00..=0x1F | 0x7F => return Err(PathError::EncodedControlByte { byte, at: i }),
            _ if is_unreserved(byte) => self.out.push(byte),
            b'/' | b'\\' => match self.opts.encoded_slash {
                EncodedSlash::Reject => return Err(PathError::EncodedSlash { byte, at: i }),
                EncodedSlash::Decode => self.separator(i, i + 3)?,
                EncodedSlash::Keep => {
                    if is_dot(&self.out.bytes()[self.sub..]) {
                        return Err(PathError::DotSegmentEncodedSlash { at: i });
                    }
                    self.keep_escape(i, byte);
                    self.sub = self.out.len();
                    self.split = true;
                }
            },
            b'%' if is_double_encoded(self.src, i + 3) => {
                return Err(PathError::DoubleEncoded { at: i });
            }
            // An upstream that decodes once sees `;`: the same setting applies.
            b';' => match self.opts.semicolon {
                Semicolon::Reject => return Err(PathError::Semicolon { at: i }),
                Semicolon::Keep => {
                    self.check_parameters(i)?;
                    self.keep_escape(i, byte);
                }
            },
            _ => self.keep_escape(i, byte),
        }
        Ok(())
    }

    /// Copies the escape at `i` (of `byte`), upper-casing its hex digits.
    fn keep_escape(&mut self, i: usize, byte: u8) {
        if self.src[i + 1..i + 3].iter().any(u8::is_ascii_lowercase) {
            self.out.push_escape(byte);
        } else {
            self.out.copy(i, i + 3);
        }
    }

    /// Refuses a `;` or `%3B` (at `i`) that follows a `.` or `..` piece.
    fn check_parameters(&self, i: usize) -> Result<(), PathError> {
        if is_dot(&self.out.bytes()[self.sub..]) {
            return Err(PathError::DotSegmentParameters { at: i });
        }
        Ok(())
    }

    /// Handles the separator `src[from..to]` (`/`, or `\`, `%2F`, `%5C` read as `/`).
    fn separator(&mut self, from: usize, to: usize) -> Result<(), PathError> {
        match self.close_segment(from)? {
            Closed::Dropped => {}
            Closed::Empty if self.opts.merge_slashes => {}
            Closed::Kept | Closed::Empty => {
                if self.src[from..to] == *b"/" {
                    self.out.copy(from, to);
                } else {
                    self.out.push(b'/');
                }
            }
        }
        self.seg = self.out.len();
        self.sub = self.seg;
        self.split = false;
        Ok(())
    }

    /// Closes the current segment at input offset `at`, resolving it when it is `.` or
    /// `..`.
    fn close_segment(&mut self, at: usize) -> Result<Closed, PathError> {
        if self.split && is_dot(&self.out.bytes()[self.sub..]) {
            return Err(PathError::DotSegmentEncodedSlash { at });
        }
        Ok(match &self.out.bytes()[self.seg..] {
            b"" => Closed::Empty,
            b"." => {
                self.out.truncate(self.seg);
                Closed::Dropped
            }
            b".." => {
                // Drop `..` and the segment before it, if any (the root stays).
                let before = &self.out.bytes()[..self.seg - 1];
                // `/a//..` is `/a/` to an upstream that keeps empty segments
                // and `/` to one that merges slashes first: refused.
                let above_empty = before.ends_with(b"/") && before.iter().any(|&b| b != b'/');
                if !self.opts.merge_slashes && above_empty {
                    return Err(PathError::EmptySegmentDotDot { at });
                }
                let keep = before.iter().rposition(|&b| b == b'/').map_or(1, |p| p + 1);
                self.out.truncate(keep);
                Closed::Dropped
            }
            _ => Closed::Kept,
        })
    }
}

/// The output, borrowed from the input as long as it is a prefix of it.
struct Out<'a> {
    src: &'a str,
    /// `None` while the output is `src[..len]`.
    buf: Option<String>,
    len: usize,
}

impl<'a> Out<'a> {
    /// The output `/`, borrowed from `src`, which starts with `/`.
    fn new(src: &'a str) -> Self {
        Self {
            src,
            buf: None,
            len: 1,
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.buf {
            Some(buf) => buf.as_bytes(),
            None => &self.src.as_bytes()[..self.len],
        }
    }

    fn len(&self) -> usize {
        self.buf.as_ref().map_or(self.len, String::len)
    }

    fn owned(&mut self) -> &mut String {
        let (src, len) = (self.src, self.len);
        self.buf.get_or_insert_with(|| {
            let mut buf = String::with_capacity(src.len() + 8);
            buf.push_str(&src[..len]);
            buf
        })
    }

    /// Appends `src[from..to]`, still borrowing when the output ends at `from`.
    fn copy(&mut self, from: usize, to: usize) {
        if self.buf.is_none() && self.len == from {
            self.len = to;
        } else {
            let src = self.src;
            self.owned().push_str(&src[from..to]);
        }
    }

    /// Appends an ASCII byte that is not the next input byte.
    fn push(&mut self, byte: u8) {
        self.owned().push(char::from(byte));
    }

    /// Appends `byte` as an escape with upper-case hex digits.
    fn push_escape(&mut self, byte: u8) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.push(b'%');
        self.push(HEX[usize::from(byte >> 4)]);
        self.push(HEX[usize::from(byte & 0xF)]);
    }

    fn truncate(&mut self, len: usize) {
        match &mut self.buf {
            Some(buf) => buf.truncate(len),
            None => self.len = len,
        }
    }

    fn finish(self) -> Cow<'a, str> {
        match self.buf {
            Some(buf) => Cow::Owned(buf),
            None => Cow::Borrowed(&self.src[..self.len]),
        }
    }
}

/// RFC 3986 unreserved: `A–Z a–z 0–9 - . _ ~`.
fn is_unreserved(b: u8) -> bool {
    CLASS[usize::from(b)] == UNRESERVED
}

/// Bytes copied as they are: unreserved, the sub-delims but `;`, `:` and `@`.
fn is_plain(b: u8) -> bool {
    CLASS[usize::from(b)] != 0
}

const UNRESERVED: u8 = 1;
const PLAIN: u8 = 2;

/// [`UNRESERVED`], [`PLAIN`] (other bytes copied as they are) or 0, by byte.
const CLASS: [u8; 256] = {
    let mut class = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            class[b] = UNRESERVED;
        } else if matches!(
            c,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b','
        ) || matches!(c, b'=' | b':' | b'@')
        {
            class[b] = PLAIN;
        }
        b += 1;
    }
    class
};

fn is_dot(piece: &[u8]) -> bool {
    piece == b"." || piece == b".."
}

/// The byte encoded by the escape at `i`, if `src[i..i + 3]` is a valid escape.
fn decode_escape(src: &[u8], i: usize) -> Option<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let hi = hex(*src.get(i + 1)?)?;
    let lo = hex(*src.get(i + 2)?)?;
    u8::try_from(hi * 16 + lo).ok()
}

/// Whether the two characters at `i`, once decoded as an upstream would (escapes of
/// unreserved characters count), are the hex digits of `.`, `/` or `\`.
fn is_double_encoded(src: &[u8], i: usize) -> bool {
    let unit = |i: usize| match src.get(i)? {
        b'%' => decode_escape(src, i)
            .filter(|&b| is_unreserved(b))
            .map(|b| (b, i + 3)),
        &b => Some((b, i + 1)),
    };
    let Some((first, i)) = unit(i) else {
        return false;
    };
    let Some((second, _)) = unit(i) else {
        return false;
    };
    matches!(
        (first, second.to_ascii_lowercase()),
        (b'2', b'e' | b'f') | (b'5', b'c')
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEF: PathOptions = PathOptions {
        merge_slashes: true,
        encoded_slash: EncodedSlash::Reject,
        backslash: Backslash::Reject,
        semicolon: Semicolon::Reject,
    };
    const NOMERGE: PathOptions = PathOptions {
        merge_slashes: false,
        ..DEF
    };
    const DEC: PathOptions = PathOptions {
        encoded_slash: EncodedSlash::Decode,
        ..DEF
    };
    const DEC_NOMERGE: PathOptions = PathOptions {
        encoded_slash: EncodedSlash::Decode,
        ..NOMERGE
    };
    const KEEP: PathOptions = PathOptions {
        encoded_slash: EncodedSlash::Keep,
        ..DEF
    };
    const BSL: PathOptions = PathOptions {
        backslash: Backslash::Slash,
        ..DEF
    };
    const SEMI: PathOptions = PathOptions {
        semicolon: Semicolon::Keep,
        ..DEF
    };

    fn all_options() -> Vec<PathOptions> {
        let mut all = Vec::new();
        for merge_slashes in [true, false] {
            for encoded_slash in [
                EncodedSlash::Reject,
                EncodedSlash::Decode,
                EncodedSlash::Keep,
            ] {
                for backslash in [Backslash::Reject, Backslash::Slash] {
                    for semicolon in [Semicolon::Reject, Semicolon::Keep] {
                        all.push(PathOptions {
                            merge_slashes,
                            encoded_slash,
                            backslash,
                            semicolon,
                        });
                    }
                }
            }
        }
        all
    }

    #[test]
    fn upstream_view_reads_what_a_mainstream_upstream_reads() {
        let lax = PathOptions {
            merge_slashes: false,
            encoded_slash: EncodedSlash::Keep,
            backslash: Backslash::Reject,
            semicolon: Semicolon::Keep,
        };
        let table: [(&str, PathOptions, Option<&str>); 15] = [
            ("/admin", DEF, None),
            ("/a/b/", DEF, None),
            ("//admin", NOMERGE, Some("/admin")),
            ("/a//b/", NOMERGE, Some("/a/b/")),
            ("/a/b", NOMERGE, None),
            ("/%2Fadmin", KEEP, Some("/admin")),
            ("/private/docs%2F", KEEP, Some("/private/docs/")),
            ("/x%5C.env", KEEP, Some("/x/.env")),
            ("/a%2Fb", KEEP, Some("/a/b")),
            ("/;x/admin", SEMI, Some("/admin")),
            ("/db.sql;x", SEMI, Some("/db.sql")),
            ("/db.sql%3Bx", SEMI, Some("/db.sql")),
            ("/a;b/c", SEMI, Some("/a/c")),
            ("/private/docs/;x", SEMI, Some("/private/docs/")),
            ("/%2F;x/%2Fadmin;y/", lax, Some("/admin/")),
        ];
        for (canonical, opts, expected) in table {
            assert_eq!(
                upstream_view(canonical, &opts).as_deref(),
                expected,
                "{canonical}"
            );
        }
    }

    #[test]
    fn dot_dot_after_an_empty_segment_is_refused_without_merging() {
        assert_eq!(
            canonicalize("/a//../b", &NOMERGE),
            Err(PathError::EmptySegmentDotDot { at: 6 })
        );
        assert_eq!(canonicalize("/a//../b", &DEF).as_deref(), Ok("/b"));
        assert_eq!(canonicalize("/a/b/../c", &NOMERGE).as_deref(), Ok("/a/c"));
    }

    #[test]
    fn default_options_are_the_spec_defaults() {
        assert_eq!(PathOptions::default(), DEF);
    }

    #[test]
    fn options_deserialize_from_lowercase_names() {
        #[derive(serde::Deserialize)]
        struct Paths {
            e: EncodedSlash,
            b: Backslash,
            s: Semicolon,
        }
        let json = r#"{"e":"keep","b":"slash","s":"keep"}"#;
        let p: Paths = serde_json::from_str(json).expect("valid");
        assert_eq!(
            (p.e, p.b, p.s),
            (EncodedSlash::Keep, Backslash::Slash, Semicolon::Keep)
        );
        assert!(serde_json::from_str::<EncodedSlash>(r#""Decode""#).is_err());
    }

    #[test]
    fn canonicalize_table() {
        use PathError as E;
        let long = "/a".repeat(32 * 1024);
        let climb = format!("/{}", "../".repeat(10_000));
        let climb_back = format!("/x{}", "/..".repeat(10_000));
        #[rustfmt::skip]
        let cases: Vec<(&str, PathOptions, Result<&str, PathError>)> = vec![
            // Plain paths stay as they are.
            ("/", DEF, Ok("/")),
            ("/admin", DEF, Ok("/admin")),
            ("/admin/", DEF, Ok("/admin/")),
            ("/a+b", DEF, Ok("/a+b")),
            ("/a%20b", DEF, Ok("/a%20b")),
            ("/!$&'()*+,=:@-._~", DEF, Ok("/!$&'()*+,=:@-._~")),
            ("/.well-known/acme-challenge/x", DEF, Ok("/.well-known/acme-challenge/x")),
            ("/...", DEF, Ok("/...")),
            ("/.a/a./..a/a..", DEF, Ok("/.a/a./..a/a..")),
            (&long, DEF, Ok(&long)),
            // Dot segments, plain and encoded.
            ("/./admin", DEF, Ok("/admin")),
            ("/admin/.", DEF, Ok("/admin/")),
            ("/admin/./", DEF, Ok("/admin/")),
            ("/x/../admin", DEF, Ok("/admin")),
            ("/a/b/..", DEF, Ok("/a/")),
            ("/a/b/../", DEF, Ok("/a/")),
            ("/a/./b/./", DEF, Ok("/a/b/")),
            ("/a/b/../../../c", DEF, Ok("/c")),
            ("/../x", DEF, Ok("/x")),
            ("/..", DEF, Ok("/")),
            ("/.", DEF, Ok("/")),
            ("/%2e%2e/admin", DEF, Ok("/admin")),
            ("/%2E./admin", DEF, Ok("/admin")),
            ("/.%2e/", DEF, Ok("/")),
            ("/%2e", DEF, Ok("/")),
            ("/a/%2e%2E/b", DEF, Ok("/b")),
            (&climb, DEF, Ok("/")),
            (&climb_back, DEF, Ok("/")),
            // Repeated slashes: merged before dot segments are resolved, or kept.
            ("//admin", DEF, Ok("/admin")),
            ("//admin", NOMERGE, Ok("//admin")),
            ("/admin//x", DEF, Ok("/admin/x")),
            ("/admin//x", NOMERGE, Ok("/admin//x")),
            ("/admin///", DEF, Ok("/admin/")),
            ("/a//../b", DEF, Ok("/b")),
            ("/a//../b", NOMERGE, Err(E::EmptySegmentDotDot { at: 6 })),
            ("//../b", NOMERGE, Ok("/b")),
            ("/a//..", NOMERGE, Err(E::EmptySegmentDotDot { at: 6 })),
            ("/..//x", NOMERGE, Ok("//x")),
            ("/a//.", NOMERGE, Ok("/a//")),
            // Unreserved escapes are decoded, others upper-cased.
            ("/%61dmin", DEF, Ok("/admin")),
            ("/%7e", DEF, Ok("/~")),
            ("/%7E%2d%5F%2E", DEF, Ok("/~-_.")),
            ("/%41%5a%30%39", DEF, Ok("/AZ09")),
            ("/caf%c3%a9", DEF, Ok("/caf%C3%A9")),
            ("/caf%C3%A9", DEF, Ok("/caf%C3%A9")),
            ("/%3a%40", DEF, Ok("/%3A%40")),
            ("/%2b%20%25", DEF, Ok("/%2B%20%25")),
            ("/%23%3F", DEF, Ok("/%23%3F")),
            // ASCII that RFC 3986 forbids in a path is percent-encoded.
            ("/a b", DEF, Ok("/a%20b")),
            ("/a\"b", DEF, Ok("/a%22b")),
            ("/a{b}", DEF, Ok("/a%7Bb%7D")),
            ("/a|b^c`d", DEF, Ok("/a%7Cb%5Ec%60d")),
            ("/a<b>", DEF, Ok("/a%3Cb%3E")),
            ("/a[0]", DEF, Ok("/a%5B0%5D")),
            ("/a?b", DEF, Ok("/a%3Fb")),
            // Encoded slashes under each setting.
            ("/a%2fb", DEF, Err(E::EncodedSlash { byte: b'/', at: 2 })),
            ("/a%2fb", DEC, Ok("/a/b")),
            ("/a%2fb", KEEP, Ok("/a%2Fb")),
            ("/a%5cb", DEF, Err(E::EncodedSlash { byte: b'\\', at: 2 })),
            ("/a%5cb", DEC, Ok("/a/b")),
            ("/a%5cb", KEEP, Ok("/a%5Cb")),
            ("/admin/..%2f", DEF, Err(E::EncodedSlash { byte: b'/', at: 9 })),
            ("/admin/..%2f", DEC, Ok("/")),
            ("/admin/..%2f", KEEP, Err(E::DotSegmentEncodedSlash { at: 9 })),
            ("/..%2Fadmin", KEEP, Err(E::DotSegmentEncodedSlash { at: 3 })),
            ("/.%5Cadmin", KEEP, Err(E::DotSegmentEncodedSlash { at: 2 })),
            ("/a%2F..", KEEP, Err(E::DotSegmentEncodedSlash { at: 7 })),
            ("/a%2F../b", KEEP, Err(E::DotSegmentEncodedSlash { at: 7 })),
            ("/a%2F%2e%2e", KEEP, Err(E::DotSegmentEncodedSlash { at: 11 })),
            ("/..a%2F.b%2F", KEEP, Ok("/..a%2F.b%2F")),
            ("/a%2Fb/..", KEEP, Ok("/")),
            ("/a%2F%2Fb", DEC, Ok("/a/b")),
            ("/a%2F%2Fb", DEC_NOMERGE, Ok("/a//b")),
            ("/%2e%2e%2f%2e%2e%2fadmin", DEC, Ok("/admin")),
            ("%2Fadmin", DEC, Err(E::NotAbsolute)),
            // Backslashes under each setting.
            ("/a\\b", DEF, Err(E::Backslash { at: 2 })),
            ("/a\\b", BSL, Ok("/a/b")),
            ("/a\\..\\..\\admin", BSL, Ok("/admin")),
            ("/\\\\evil.com", BSL, Ok("/evil.com")),
            ("\\admin", BSL, Err(E::NotAbsolute)),
            // Semicolons under each setting.
            ("/a;b", DEF, Err(E::Semicolon { at: 2 })),
            ("/a;b", SEMI, Ok("/a;b")),
            ("/a;jsessionid=1/b", SEMI, Ok("/a;jsessionid=1/b")),
            ("/a;b/../c", SEMI, Ok("/c")),
            ("/..;/admin", DEF, Err(E::Semicolon { at: 3 })),
            ("/..;/admin", SEMI, Err(E::DotSegmentParameters { at: 3 })),
            ("/.;x/admin", SEMI, Err(E::DotSegmentParameters { at: 2 })),
            ("/a/%2e%2e;x", SEMI, Err(E::DotSegmentParameters { at: 9 })),
            ("/..%3B/admin", DEF, Err(E::Semicolon { at: 3 })),
            ("/..%3B/admin", SEMI, Err(E::DotSegmentParameters { at: 3 })),
            ("/.%3bx", SEMI, Err(E::DotSegmentParameters { at: 2 })),
            ("/a%3bb", SEMI, Ok("/a%3Bb")),
            ("/a%3bb", DEF, Err(E::Semicolon { at: 2 })),
            ("/x;..;/", SEMI, Ok("/x;..;/")),
            // Double encoding of dots and separators.
            ("/a/%252e%252e/", DEF, Err(E::DoubleEncoded { at: 3 })),
            ("/%252E", DEF, Err(E::DoubleEncoded { at: 1 })),
            ("/%252f", KEEP, Err(E::DoubleEncoded { at: 1 })),
            ("/%255c", DEF, Err(E::DoubleEncoded { at: 1 })),
            ("/%255C", DEF, Err(E::DoubleEncoded { at: 1 })),
            ("/%25%32%65", DEF, Err(E::DoubleEncoded { at: 1 })),
            ("/%25%32e", DEF, Err(E::DoubleEncoded { at: 1 })),
            ("/%252", DEF, Ok("/%252")),
            ("/%2541", DEF, Ok("/%2541")),
            ("/%2525", DEF, Ok("/%2525")),
            ("/%252g", DEF, Ok("/%252g")),
            ("/%25/2e", DEF, Ok("/%25/2e")),
            // Control bytes, raw or escaped.
            ("/a%00", DEF, Err(E::EncodedControlByte { byte: 0, at: 2 })),
            ("/a%0a", DEF, Err(E::EncodedControlByte { byte: 0x0a, at: 2 })),
            ("/a%1F", DEF, Err(E::EncodedControlByte { byte: 0x1f, at: 2 })),
            ("/a%7f", DEF, Err(E::EncodedControlByte { byte: 0x7f, at: 2 })),
            ("/a\0", DEF, Err(E::ControlByte { byte: 0, at: 2 })),
            ("/a\nb", DEF, Err(E::ControlByte { byte: b'\n', at: 2 })),
            ("/a\tb", DEF, Err(E::ControlByte { byte: b'\t', at: 2 })),
            ("/a\x7f", DEF, Err(E::ControlByte { byte: 0x7f, at: 2 })),
            // Invalid escapes.
            ("/a%", DEF, Err(E::InvalidEscape { at: 2 })),
            ("/a%4", DEF, Err(E::InvalidEscape { at: 2 })),
            ("/a%zz", DEF, Err(E::InvalidEscape { at: 2 })),
            ("/a%g1", DEF, Err(E::InvalidEscape { at: 2 })),
            ("/a%4g", DEF, Err(E::InvalidEscape { at: 2 })),
            ("/%%32%65", DEF, Err(E::InvalidEscape { at: 1 })),
            ("/a%+1", DEF, Err(E::InvalidEscape { at: 2 })),
            // Non-ASCII, fragments, targets that are not absolute paths.
            ("/é", DEF, Err(E::NonAscii { byte: 0xc3, at: 1 })),
            ("/a/\u{202e}", DEF, Err(E::NonAscii { byte: 0xe2, at: 3 })),
            ("/a#b", DEF, Err(E::Fragment { at: 2 })),
            ("/#", DEF, Err(E::Fragment { at: 1 })),
            ("a/b", DEF, Err(E::NotAbsolute)),
            ("*", DEF, Err(E::NotAbsolute)),
            ("", DEF, Err(E::NotAbsolute)),
            (" /a", DEF, Err(E::NotAbsolute)),
            ("http://h/p", DEF, Err(E::NotAbsolute)),
        ];
        assert!(cases.len() >= 80, "{} cases", cases.len());
        for (input, opts, want) in &cases {
            let got = canonicalize(input, opts);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                *want,
                "{input:?} with {opts:?}"
            );
            if let Ok(got) = got
                && *got == **input
            {
                assert!(matches!(got, Cow::Borrowed(_)), "{input:?} allocated");
            }
        }
    }

    #[test]
    fn errors_name_the_value_in_lowercase() {
        let cases = [
            (PathError::NotAbsolute, "path does not start with '/'"),
            (
                PathError::ControlByte { byte: 0x0a, at: 2 },
                "control byte 0x0a at offset 2 in path",
            ),
            (
                PathError::EncodedControlByte { byte: 0x7f, at: 2 },
                "encoded control byte %7F at offset 2 in path",
            ),
            (
                PathError::EncodedSlash { byte: b'/', at: 2 },
                "encoded slash %2F at offset 2 in path",
            ),
            (
                PathError::NonAscii { byte: 0xc3, at: 1 },
                "non-ascii byte 0xc3 at offset 1 in path",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn a_canonical_prefix_is_borrowed() {
        let got = canonicalize("/a/b/.", &DEF).expect("valid");
        assert!(matches!(got, Cow::Borrowed("/a/b/")));
    }

    // ---- properties ----

    /// Decodes every valid escape once, leaving a stray `%` as it is.
    fn decode(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match decode_escape(s, i).filter(|_| s[i] == b'%') {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(s[i]);
                    i += 1;
                }
            }
        }
        out
    }

    fn is_dot_piece(s: &[u8]) -> bool {
        s == b"." || s == b".."
    }

    fn strip_params(s: &[u8]) -> &[u8] {
        s.split(|&b| b == b';').next().unwrap_or(s)
    }

    /// Segments of `path` (without the root `/`) split at `/` and `\`.
    fn segments(path: &[u8]) -> Vec<Vec<u8>> {
        path[1..]
            .split(|&b| b == b'/' || b == b'\\')
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// How an upstream configured like `opts` reads `path`: split at the separators
    /// `opts` names, each segment decoded once, dot segments resolved (merging slashes
    /// first with `merge_slashes`). The last entry is empty for a trailing slash.
    fn upstream_reading(path: &str, opts: &PathOptions) -> Vec<Vec<u8>> {
        let mut raw: Vec<Vec<u8>> = vec![Vec::new()];
        let b = path.as_bytes();
        let mut i = 1;
        while i < b.len() {
            let encoded = decode_escape(b, i).filter(|_| b[i] == b'%');
            let sep = match (b[i], encoded) {
                (b'/', _) => Some(1),
                (b'\\', _) if opts.backslash == Backslash::Slash => Some(1),
                (_, Some(b'/' | b'\\')) if opts.encoded_slash == EncodedSlash::Decode => Some(3),
                _ => None,
            };
            match sep {
                Some(n) => {
                    raw.push(Vec::new());
                    i += n;
                }
                None => {
                    raw.last_mut().expect("never empty").push(b[i]);
                    i += 1;
                }
            }
        }
        let n = raw.len();
        let mut stack: Vec<Vec<u8>> = Vec::new();
        for (k, seg) in raw.into_iter().enumerate() {
            let seg = decode(&seg);
            let last = k + 1 == n;
            match seg.as_slice() {
                b"." | b".." => {
                    if seg == b".." {
                        stack.pop();
                    }
                    if last {
                        stack.push(Vec::new());
                    }
                }
                b"" if opts.merge_slashes && !last => {}
                _ => stack.push(seg),
            }
        }
        stack
    }

    fn check_canonical(input: &str, opts: &PathOptions, out: &str) -> Result<(), TestCaseError> {
        let ctx = format!("{input:?} -> {out:?} with {opts:?}");
        // Idempotent, and canonical input does not allocate.
        let again = canonicalize(out, opts);
        prop_assert!(
            matches!(again, Ok(Cow::Borrowed(s)) if s == out),
            "{ctx}: {again:?}"
        );
        prop_assert!(out.starts_with('/'), "{ctx}");
        let ours: Vec<&str> = out[1..].split('/').collect();
        prop_assert!(!ours.iter().any(|s| is_dot_piece(s.as_bytes())), "{ctx}");
        if opts.merge_slashes {
            prop_assert!(!out.contains("//"), "{ctx}");
        }
        // ASCII, valid RFC 3986 characters, upper-case escapes of reserved or
        // non-ASCII bytes only, nothing the options refuse.
        let b = out.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            prop_assert!(
                is_plain(c) || matches!(c, b'/' | b'%' | b';'),
                "{ctx}: byte {c:#x}"
            );
            prop_assert!(c != b';' || opts.semicolon == Semicolon::Keep, "{ctx}");
            if c == b'%' {
                let hex = &b[i + 1..i + 3];
                prop_assert!(
                    hex.iter()
                        .all(|h| h.is_ascii_digit() || h.is_ascii_uppercase())
                );
                let v = decode_escape(b, i).expect("valid escape");
                prop_assert!(!is_unreserved(v) && !v.is_ascii_control(), "{ctx}: {v:#x}");
                let slash = matches!(v, b'/' | b'\\');
                prop_assert!(!slash || opts.encoded_slash == EncodedSlash::Keep, "{ctx}");
                let next = out[i + 3..].to_ascii_lowercase();
                let double = ["2e", "2f", "5c"].iter().any(|p| next.starts_with(p));
                prop_assert!(!(v == b'%' && double), "{ctx}");
            }
        }
        // The forwarder can build a URI from it without change.
        let uri: http::Uri = out
            .parse()
            .map_err(|e| TestCaseError::fail(format!("{ctx}: {e}")))?;
        prop_assert_eq!(uri.path(), out);

        // How upstreams read the output: never a dot segment, hence nothing for them to
        // resolve and no way above the root; and their segments are exactly ours (split
        // further at %2F/%5C when kept). Decode once, `\` as `/`, strip `;params`:
        let keep = opts.encoded_slash == EncodedSlash::Keep;
        let decoded = segments(&decode(b));
        let mut expected: Vec<Vec<u8>> = Vec::new();
        for seg in &ours {
            let pieces = if keep {
                seg.replace("%5C", "%2F")
                    .split("%2F")
                    .map(|p| decode(p.as_bytes()))
                    .collect()
            } else {
                vec![decode(seg.as_bytes())]
            };
            expected.extend(pieces);
        }
        prop_assert_eq!(&decoded, &expected, "{}", ctx);
        for seg in &decoded {
            prop_assert!(!is_dot_piece(strip_params(seg)), "{ctx}: decode-then-strip");
        }
        // Tomcat: strip `;params` from the raw segments first, then decode.
        for seg in out[1..].split('/') {
            for piece in segments(&[b"/", &decode(strip_params(seg.as_bytes()))[..]].concat()) {
                prop_assert!(!is_dot_piece(&piece), "{ctx}: strip-then-decode");
            }
        }
        // An upstream that wrongly decodes twice sees no dot segment and no separator
        // more than one that decodes once.
        let twice = segments(&decode(&decode(b)));
        prop_assert_eq!(twice.len(), decoded.len(), "{}", ctx);
        prop_assert!(
            !twice.iter().any(|s| is_dot_piece(strip_params(s))),
            "{ctx}: twice"
        );

        // Meaning is kept: an upstream configured like `opts` reads the input and the
        // output as the same path.
        prop_assert_eq!(
            upstream_reading(input, opts),
            upstream_reading(out, opts),
            "{}",
            ctx
        );
        Ok(())
    }

    const PIECES: &[(&str, usize)] = &[
        ("/", 30),
        (".", 24),
        ("%", 2),
        ("2", 8),
        ("e", 8),
        ("E", 4),
        ("f", 4),
        ("F", 4),
        ("5", 8),
        ("c", 4),
        ("C", 4),
        (";", 6),
        ("\\", 6),
        ("a", 16),
        ("..", 8),
        ("%2e", 8),
        ("%2E", 4),
        ("%2f", 6),
        ("%5C", 4),
        ("%25", 8),
        ("%3B", 3),
        ("%3b", 3),
        ("%41", 3),
        ("%c3%a9", 3),
        ("%20", 3),
        ("%32", 3),
        ("%65", 3),
        ("0", 2),
        ("3", 2),
        ("{", 2),
        (" ", 2),
        ("?", 2),
        ("#", 1),
        ("é", 1),
        ("\0", 1),
        ("%0a", 1),
    ];

    fn path_strategy(pieces: &'static [(&'static str, usize)]) -> impl Strategy<Value = String> {
        let weighted: Vec<&str> = pieces
            .iter()
            .flat_map(|&(p, w)| std::iter::repeat_n(p, w))
            .collect();
        (
            prop::bool::weighted(0.95),
            prop::collection::vec(prop::sample::select(weighted), 0..40),
        )
            .prop_map(|(rooted, v)| {
                if rooted {
                    format!("/{}", v.concat())
                } else {
                    v.concat()
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn every_output_is_canonical_and_read_alike_upstream(input in path_strategy(PIECES)) {
            for opts in all_options() {
                let got = canonicalize(&input, &opts);
                if input.starts_with('/') {
                    prop_assert_eq!(&got, &canonicalize_in_one_pass(&input, &opts));
                }
                if let Ok(out) = got {
                    check_canonical(&input, &opts, &out)?;
                }
            }
        }

        #[test]
        fn ordinary_paths_are_never_refused(input in path_strategy(&[
            ("/", 4), (".", 3), ("a", 3), ("%2e", 1), ("%41", 1), ("%c3%a9", 1), ("-", 1),
            ("~", 1), ("%20", 1), ("..", 1), ("%7B", 1), ("@", 1),
        ])) {
            let input = format!("/{input}");
            for opts in all_options() {
                // `/a//..` is ambiguous without merging, and refused on purpose.
                if !opts.merge_slashes && input.contains("//") {
                    continue;
                }
                prop_assert!(canonicalize(&input, &opts).is_ok(), "{input:?} with {opts:?}");
            }
        }
    }
}
