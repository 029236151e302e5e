//! The corpus file, `tests/fixtures/corpus/targets.txt`, parsed into [`Case`]s: its
//! notation is described in the file's own header.

use std::collections::BTreeSet;

use super::SETTINGS;
use super::readings::Lenient;

const CORPUS: &str = include_str!("../fixtures/corpus/targets.txt");

/// What one target must get under one setting.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expect {
    /// Refused with this status; a 403 or 404 by this rule.
    Refused { status: u16, rule: Option<String> },
    /// Answered 200, the upstream having received exactly this target.
    Forwarded(String),
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Refused { status, rule: None } => write!(f, "{status}"),
            Expect::Refused {
                status,
                rule: Some(r),
            } => write!(f, "{status} by {r}"),
            Expect::Forwarded(t) => write!(f, "200 with {} forwarded", short(t)),
        }
    }
}

/// One line of the corpus.
pub(super) struct Case {
    pub(super) line: usize,
    /// The target as written in the file.
    pub(super) written: String,
    /// The target's bytes.
    pub(super) target: Vec<u8>,
    pub(super) policy: String,
    /// One per setting, in `SETTINGS` order.
    pub(super) expect: Vec<Expect>,
    /// The lenient readings that reach a denied area when the target is forwarded.
    pub(super) lenient: BTreeSet<Lenient>,
}

/// Expands the corpus notation: `\x{NN}` is the byte 0xNN and `{{N*text}}` is `text`
/// N times.
fn expand(written: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = written;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{{") {
            let (spec, after) = r.split_once("}}").expect("{{ without }}");
            let (n, text) = spec.split_once('*').expect("{{N*text}}");
            let n: usize = n.parse().expect("repeat count");
            out.extend(text.repeat(n).into_bytes());
            rest = after;
        } else if let Some(r) = rest.strip_prefix("\\x{") {
            let (hex, after) = r.split_once('}').expect("\\x{ without }");
            out.push(u8::from_str_radix(hex, 16).expect("hex byte"));
            rest = after;
        } else {
            let c = rest.chars().next().expect("not empty");
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn parse_cell(cell: &str, target: &[u8], policy: &str, line: usize) -> Expect {
    if let Some(forwarded) = cell.strip_prefix('=') {
        let bytes = if forwarded.is_empty() {
            target.to_vec()
        } else {
            expand(forwarded)
        };
        let text = String::from_utf8(bytes).expect("forwarded targets are text");
        return Expect::Forwarded(text);
    }
    let (status, rule) = match cell.split_once(':') {
        Some((s, r)) => (s, Some(r.to_owned())),
        None => (cell, None),
    };
    let status: u16 = status
        .parse()
        .unwrap_or_else(|_| panic!("line {line}: bad cell {cell:?}"));
    let rule = match status {
        403 | 404 => {
            let rule = rule.unwrap_or_else(|| policy.to_owned());
            assert_ne!(rule, "control", "line {line}: a control names the rule");
            Some(rule)
        }
        _ => rule,
    };
    Expect::Refused { status, rule }
}

pub(super) fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, text) in CORPUS.lines().enumerate() {
        let line = i + 1;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert!(
            fields.len() >= 2 + SETTINGS.len(),
            "line {line}: too few fields"
        );
        let written = fields[0].to_owned();
        let target = expand(&written);
        let policy = fields[1].to_owned();
        let mut expect: Vec<Expect> = Vec::new();
        for cell in &fields[2..2 + SETTINGS.len()] {
            let e = match (*cell, expect.first()) {
                (".", Some(first)) => first.clone(),
                _ => parse_cell(cell, &target, &policy, line),
            };
            expect.push(e);
        }
        let lenient = fields[2 + SETTINGS.len()..]
            .iter()
            .map(|m| Lenient::from_mark(m).unwrap_or_else(|| panic!("line {line}: mark {m}")))
            .collect();
        cases.push(Case {
            line,
            written,
            target,
            policy,
            expect,
            lenient,
        });
    }
    cases
}

/// A target quoted for a failure message, cut when long.
pub(super) fn short(target: &str) -> String {
    match target.char_indices().nth(100) {
        Some((at, _)) => format!("{:?}… ({} bytes)", &target[..at], target.len()),
        None => format!("{target:?}"),
    }
}

#[test]
fn the_corpus_covers_what_issue_5_asks() {
    let cases = corpus();
    assert!(cases.len() >= 150, "{} targets", cases.len());
    let written: Vec<String> = cases
        .iter()
        .map(|c| c.written.to_ascii_lowercase())
        .collect();
    let needles = [
        "%2e",
        "%2f",
        "%5c",
        "%252e",
        "%25%32%65",
        "..;/",
        ";jsessionid=",
        "%3b",
        "\\",
        "//",
        "/admin.",
        "/admin%20",
        "/admin./",
        "%00",
        "%c0%ae",
        "%e0%80%ae",
        "%u002e",
        "%ef%bc%8f",
        "%ef%bc%8e",
        "?/x",
        "?/../admin",
        "#/x",
        "http://test/admin",
        "http://user@test/admin",
        "http://test:80/admin",
        "http://[::1]/admin",
        "ftp://test/admin",
        "/db.sql.",
        "/db.sql%00.txt",
        "/db%2esql",
        "/db.sql/",
        "/db.sql;x",
        "/db.sql?x",
    ];
    for needle in needles {
        assert!(written.iter().any(|w| w.contains(needle)), "no {needle}");
    }
    let exact = [
        "/%2E/admin",
        "/%2F",
        "/%2f",
        "/%5C",
        "/%5c",
        "/ADMIN",
        "/Admin",
        "HTTP://TEST/ADMIN",
        "//admin",
        "/db.SQL",
    ];
    for needle in exact {
        assert!(
            cases.iter().any(|c| c.written.contains(needle)),
            "no {needle}"
        );
    }
    assert!(
        cases.iter().any(|c| c.target.len() >= 4096),
        "no long target"
    );
    for policy in ["admin", "dotfiles", "backups", "private-dirs", "control"] {
        let of = || cases.iter().filter(|c| c.policy == policy);
        assert!(of().count() >= 10, "few {policy} targets");
        assert!(
            of().any(|c| matches!(c.expect[0], Expect::Forwarded(_))),
            "{policy}: nothing forwarded"
        );
    }
    // Every setting answers some target differently from the default.
    for (column, setting) in SETTINGS.iter().enumerate().skip(1) {
        assert!(
            cases.iter().any(|c| c.expect[column] != c.expect[0]),
            "{} changes nothing",
            setting.column
        );
    }
}
