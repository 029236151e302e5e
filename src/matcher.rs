//! Regex matching for the hot path, with the same answers as the rulebook's
//! Unicode-aware regexes but less work:
//!
//! - [`PathSet`]: every `path_regex` of a policy in one set, run at most once
//!   per request; canonical paths are ASCII, so it is built without Unicode
//!   (case folding and classes then stay ASCII, which is all an ASCII
//!   haystack can meet).
//! - [`Dual`] and [`DualBytes`]: a regex (or set) with an ASCII-only twin
//!   used when the query or header value is ASCII, and the Unicode one
//!   otherwise.

use std::cell::RefCell;
use std::ops::Range;

use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet, meta};

/// Every path regex of a policy, matched in one pass.
#[derive(Debug, Clone, Default)]
pub struct PathSet {
    regex: Option<meta::Regex>,
}

/// Which path patterns matched one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathHits {
    /// Up to 128 patterns, as bits.
    Small(u128),
    /// More.
    Large(Vec<bool>),
}

impl PathHits {
    /// Whether any pattern in `range` matched.
    pub fn any(&self, range: &Range<usize>) -> bool {
        match self {
            PathHits::Small(bits) => range.clone().any(|i| bits & (1 << i) != 0),
            PathHits::Large(hits) => range.clone().any(|i| hits.get(i).copied().unwrap_or(false)),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<PatternSet> = RefCell::new(PatternSet::new(0));
}

impl PathSet {
    /// A set of these patterns (each already known to compile on its own).
    /// `None` when they do not compile together, which cannot happen for
    /// patterns that compile alone short of size limits.
    pub fn new(patterns: &[String]) -> Option<PathSet> {
        if patterns.is_empty() {
            return Some(PathSet { regex: None });
        }
        let config = meta::Regex::config().match_kind(MatchKind::All);
        let build = |unicode: bool| {
            meta::Regex::builder()
                .configure(config.clone())
                .syntax(syntax::Config::new().unicode(unicode).utf8(unicode))
                .build_many(patterns)
                .ok()
        };
        let regex = build(false).or_else(|| build(true))?;
        Some(PathSet { regex: Some(regex) })
    }

    /// Which patterns match `path` (an ASCII canonical path).
    pub fn matches(&self, path: &str) -> PathHits {
        let Some(regex) = &self.regex else {
            return PathHits::Small(0);
        };
        let len = regex.pattern_len();
        SCRATCH.with(|scratch| {
            let mut set = scratch.borrow_mut();
            if set.capacity() < len {
                *set = PatternSet::new(len);
            } else {
                set.clear();
            }
            regex.which_overlapping_matches(&Input::new(path), &mut set);
            if len <= 128 {
                PathHits::Small(set.iter().fold(0u128, |bits, p| bits | 1 << p.as_usize()))
            } else {
                let mut hits = vec![false; len];
                for p in set.iter() {
                    hits[p.as_usize()] = true;
                }
                PathHits::Large(hits)
            }
        })
    }
}

/// A regex set on `&str` with an ASCII-only twin for ASCII haystacks.
#[derive(Debug, Clone)]
pub struct Dual {
    unicode: regex::RegexSet,
    ascii: Option<regex::RegexSet>,
}

impl Dual {
    /// Both forms of these patterns (each known to compile).
    pub fn new(unicode: regex::RegexSet) -> Dual {
        let ascii = regex::RegexSetBuilder::new(unicode.patterns())
            .unicode(false)
            .build()
            .ok();
        Dual { unicode, ascii }
    }

    /// Whether any pattern matches.
    pub fn is_match(&self, haystack: &str) -> bool {
        match &self.ascii {
            Some(ascii) if haystack.is_ascii() => ascii.is_match(haystack),
            _ => self.unicode.is_match(haystack),
        }
    }

    /// The Unicode set (for explanations).
    pub fn set(&self) -> &regex::RegexSet {
        &self.unicode
    }
}

/// A bytes regex with an ASCII-only twin for ASCII haystacks.
#[derive(Debug, Clone)]
pub struct DualBytes {
    unicode: regex::bytes::Regex,
    ascii: Option<regex::bytes::Regex>,
}

impl DualBytes {
    /// Both forms of this regex (known to compile).
    pub fn new(unicode: regex::bytes::Regex) -> DualBytes {
        let ascii = regex::bytes::RegexBuilder::new(unicode.as_str())
            .unicode(false)
            .build()
            .ok();
        DualBytes { unicode, ascii }
    }

    /// Whether the regex matches.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        match &self.ascii {
            Some(ascii) if haystack.is_ascii() => ascii.is_match(haystack),
            _ => self.unicode.is_match(haystack),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_set_answers_like_each_set_alone() {
        let patterns: Vec<String> = [
            "/\\.",
            "(?i)\\.(bak|sql)$",
            "^/wp-",
            "(?i)KELVIN",
            "\\w+\\.php$",
            ".",
        ]
        .iter()
        .map(|p| p.to_string())
        .collect();
        let set = PathSet::new(&patterns).expect("builds");
        for path in [
            "/.env",
            "/db.SQL",
            "/wp-login.php",
            "/kelvin",
            "/",
            "/a/b",
            "/x.php",
        ] {
            let hits = set.matches(path);
            for (i, p) in patterns.iter().enumerate() {
                let alone = regex::Regex::new(p).expect("regex").is_match(path);
                assert_eq!(hits.any(&(i..i + 1)), alone, "{p} on {path}");
            }
        }
    }

    #[test]
    fn ascii_twins_answer_like_the_unicode_regexes() {
        let dual = Dual::new(regex::RegexSet::new(["(?i)union\\s+select", "é"]).expect("set"));
        for (q, expected) in [
            ("a UNION  SELECT b", true),
            ("café", true),
            ("cafe", false),
            ("ſelect union select", true),
        ] {
            assert_eq!(dual.is_match(q), expected, "{q}");
        }
        let bytes = DualBytes::new(regex::bytes::Regex::new("(?i)sqlmap|ſ").expect("regex"));
        assert!(bytes.is_match(b"SQLMAP/1.7"));
        assert!(bytes.is_match("\u{17f}".as_bytes()));
        assert!(!bytes.is_match(b"curl"));
    }
}
