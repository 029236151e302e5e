//! Regex matching for the hot path, with the same answers as the rulebook's
//! Unicode-aware regexes but less work:
//!
//! - [`PathSet`]: every `path_regex` of a policy in one set, run at most once
//!   per request; canonical paths are ASCII, so it is built without Unicode
//!   (case folding and classes then stay ASCII, which is all an ASCII
//!   haystack can meet).
//! - [`Dual`] and [`DualBytes`]: a regex (or set) with an ASCII-only twin
//!   used when the query or header value is ASCII, and the Unicode one
//!   otherwise. A case-insensitive pattern whose case does not matter past
//!   its `(?i)` (see [`case_free`]) also gets a case-sensitive twin run on
//!   the lowercased value: `(?i)` over a literal alternation makes the regex
//!   engine search for every case variant, three times slower.

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
    lowered: Option<regex::bytes::RegexSet>,
}

impl Dual {
    /// Both forms of these patterns (each known to compile).
    pub fn new(unicode: regex::RegexSet) -> Dual {
        let ascii = regex::RegexSetBuilder::new(unicode.patterns())
            .unicode(false)
            .build()
            .ok();
        let lowered = unicode
            .patterns()
            .iter()
            .map(|p| case_free(p))
            .collect::<Option<Vec<&str>>>()
            .and_then(|rests| {
                regex::bytes::RegexSetBuilder::new(rests)
                    .unicode(false)
                    .build()
                    .ok()
            });
        Dual {
            unicode,
            ascii,
            lowered,
        }
    }

    /// Whether any pattern matches.
    pub fn is_match(&self, haystack: &str) -> bool {
        if let Some(lowered) = &self.lowered
            && let Some(matched) = with_lowercase(haystack.as_bytes(), |h| lowered.is_match(h))
        {
            return matched;
        }
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
    lowered: Option<regex::bytes::Regex>,
}

impl DualBytes {
    /// Both forms of this regex (known to compile).
    pub fn new(unicode: regex::bytes::Regex) -> DualBytes {
        let ascii = regex::bytes::RegexBuilder::new(unicode.as_str())
            .unicode(false)
            .build()
            .ok();
        let lowered = case_free(unicode.as_str()).and_then(|rest| {
            regex::bytes::RegexBuilder::new(rest)
                .unicode(false)
                .build()
                .ok()
        });
        DualBytes {
            unicode,
            ascii,
            lowered,
        }
    }

    /// Whether the regex matches.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        if let Some(lowered) = &self.lowered
            && let Some(matched) = with_lowercase(haystack, |h| lowered.is_match(h))
        {
            return matched;
        }
        match &self.ascii {
            Some(ascii) if haystack.is_ascii() => ascii.is_match(haystack),
            _ => self.unicode.is_match(haystack),
        }
    }
}

/// The longest value lowercased on the stack; a longer one is matched as is.
const LOWERED_MAX: usize = 512;

/// `f` of the ASCII lowercase of `haystack`, or `None` when it is not ASCII
/// or longer than [`LOWERED_MAX`].
fn with_lowercase(haystack: &[u8], f: impl FnOnce(&[u8]) -> bool) -> Option<bool> {
    let mut buf = [0u8; LOWERED_MAX];
    let lowered = buf.get_mut(..haystack.len())?;
    // Without an early exit, so that both loops run over whole vectors.
    let non_ascii = haystack.iter().fold(0u8, |acc, b| acc | b) & 0x80 != 0;
    if non_ascii {
        return None;
    }
    for (to, from) in lowered.iter_mut().zip(haystack) {
        *to = from.to_ascii_lowercase();
    }
    Some(f(lowered))
}

/// The pattern after its leading `(?i)`, when matching that part
/// case-sensitively against an ASCII value's lowercase gives the same answer
/// as the whole pattern against the value: no uppercase letter, no class
/// (`[!-Z]` holds `A` but not `a`), no other flag group, and no escape but
/// `\s \S \d \D \w \W \b \B` and escaped punctuation. `None` otherwise.
pub fn case_free(pattern: &str) -> Option<&str> {
    let rest = pattern.strip_prefix("(?i)")?;
    let bytes = rest.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                if next.is_ascii_alphanumeric() && !b"sSdDwWbB".contains(&next) {
                    return None;
                }
                i += 2;
                continue;
            }
            b'[' => return None,
            b'(' if bytes.get(i + 1) == Some(&b'?') => return None,
            b if b.is_ascii_uppercase() || !b.is_ascii() => return None,
            _ => {}
        }
        i += 1;
    }
    Some(rest)
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

    #[test]
    fn case_free_takes_only_patterns_whose_case_is_settled_by_the_flag() {
        for (pattern, rest) in [
            ("(?i)sqlmap|nikto", Some("sqlmap|nikto")),
            (
                "(?i)union(\\s|%20|\\+)+select",
                Some("union(\\s|%20|\\+)+select"),
            ),
            ("(?i)\\bx\\W+\\d\\.$", Some("\\bx\\W+\\d\\.$")),
            ("sqlmap", None),
            ("(?i)SQLmap", None),
            ("(?i)[a-z]+", None),
            ("(?i)[!-Z]", None),
            ("(?i)a(?-i)b", None),
            ("(?i)(?:a|b)", None),
            ("(?i)\\x41", None),
            ("(?i)\\pL", None),
            ("(?i)\\n", None),
            ("(?i)é", None),
            ("a(?i)b", None),
        ] {
            assert_eq!(case_free(pattern), rest, "{pattern}");
        }
    }

    /// Patterns `case_free` takes, with the ways they meet case.
    const CASE_FREE: [&str; 5] = [
        "(?i)sqlmap|nikto|masscan|zgrab|nuclei|dirbuster|gobuster|wpscan",
        "(?i)union(\\s|%20|\\+)+select",
        "(?i)^bot\\b",
        "(?i)(%27|')(\\s|%20|\\+)*or(\\s|%20|\\+)+1=1",
        "(?i)k\\w{2}$",
    ];

    /// The `CASE_FREE` patterns, each alone (plain and with its twins), and
    /// as a set (plain and with its twins); built once.
    #[allow(clippy::type_complexity)]
    static TWINS: std::sync::LazyLock<(
        Vec<(regex::bytes::Regex, DualBytes)>,
        regex::RegexSet,
        Dual,
    )> = std::sync::LazyLock::new(|| {
        let alone = CASE_FREE
            .iter()
            .map(|p| {
                let plain = regex::bytes::Regex::new(p).expect("regex");
                (plain.clone(), DualBytes::new(plain))
            })
            .collect();
        let set = regex::RegexSet::new(CASE_FREE).expect("set");
        (alone, set.clone(), Dual::new(set))
    });

    proptest::proptest! {
        #[test]
        fn lowered_twins_answer_like_the_case_insensitive_regex(
            value in "[ -~]{0,40}(SqlMap|NIKTO|UnIoN SELECT|' Or 1=1|BOT|kAy)?[ -~]{0,40}",
            long in proptest::bool::ANY,
        ) {
            // Over the stack buffer, the value is matched as is.
            let value = if long { value.repeat(LOWERED_MAX / 8 + 1) } else { value };
            let (alone, plain_set, set) = &*TWINS;
            for (plain, dual) in alone {
                proptest::prop_assert!(dual.lowered.is_some());
                let expected = plain.is_match(value.as_bytes());
                proptest::prop_assert_eq!(dual.is_match(value.as_bytes()), expected, "{}", plain);
            }
            proptest::prop_assert!(set.lowered.is_some());
            proptest::prop_assert_eq!(set.is_match(&value), plain_set.is_match(&value));
        }
    }
}
