//! Compiled rules: [`Rule`] and its [`Condition`]s, built from `RuleSpec` by
//! [`compile_rule`], which reports every bad value of a rule at its span.
//!
//! A condition is compiled into the cheapest structure that answers it: CIDR
//! sets for addresses, a country bitmap, one `RegexSet` per regex key, host
//! sets with pre-lowercased patterns. Deciding is `evaluate`'s job.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use toml::Spanned;

use crate::config::{Action, Diagnostics, HotlinkSpec, Location, RuleSpec, Rulebook, SpannedList};
use crate::decision::Reason;
use crate::geo::Country;
use crate::host::{HostSet, Hotlink, parse_host_pattern};
use crate::ipset::{IpSet, parse_net};
use crate::path::{EncodedSlash, PathOptions, Semicolon};

use super::values::parse_method;

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Unique name.
    pub name: Arc<str>,
    /// What a match does.
    pub action: Action,
    /// Reported, not enforced.
    pub dry_run: bool,
    /// The reason a refusal by this rule carries (its first condition in SPEC 7 order).
    pub reason: Reason,
    /// The status a `deny` answers with.
    pub status: StatusCode,
    /// Replaces the reason's default message.
    pub message: Option<Arc<str>>,
    /// A `require` rule's roles.
    pub roles: Vec<String>,
    /// Conditions, all of which must hold, cheapest first.
    pub conditions: Vec<Condition>,
    /// Where the rule is written.
    pub location: Location,
}

/// One condition of a rule. `negate` is the `not_*` form: it holds when no entry does.
#[derive(Debug)]
pub enum Condition {
    /// `method` / `not_method`.
    Method {
        /// Upper-cased method names.
        methods: Vec<http::Method>,
        /// `not_method`.
        negate: bool,
    },
    /// `host` / `not_host`.
    Host {
        /// The patterns.
        hosts: HostSet,
        /// `not_host`.
        negate: bool,
    },
    /// `path_prefix` / `not_path_prefix`.
    PathPrefix {
        /// Segment-aware prefixes.
        prefixes: Vec<String>,
        /// Which characters besides `/` end a segment (`%2F`, `;` when kept).
        boundaries: Boundaries,
        /// `not_path_prefix`.
        negate: bool,
    },
    /// `path_regex` / `not_path_regex`.
    PathRegex {
        /// The regexes (for explanations; requests use the policy's path set).
        set: regex::RegexSet,
        /// This condition's patterns in the policy's path set.
        range: std::ops::Range<usize>,
        /// `not_path_regex`.
        negate: bool,
    },
    /// `query_regex`.
    QueryRegex {
        /// The regexes.
        set: crate::matcher::Dual,
    },
    /// `header_regex`: every named header must have an instance that matches.
    HeaderRegex {
        /// Header name → regex over the raw value bytes.
        headers: Vec<(http::HeaderName, crate::matcher::DualBytes)>,
    },
    /// `ip` / `not_ip`.
    Ip {
        /// Inline entries as one set, plus each `@list` (shared).
        sets: Vec<Arc<IpSet>>,
        /// `not_ip`.
        negate: bool,
    },
    /// `hotlink`.
    Hotlink(Hotlink),
    /// `country` / `not_country`.
    Country {
        /// The countries.
        countries: CountrySet,
        /// `not_country`.
        negate: bool,
    },
}

impl Condition {
    /// The rulebook key of this condition, as the trace names it.
    pub fn key(&self) -> &'static str {
        match self {
            Condition::Method { negate: false, .. } => "method",
            Condition::Method { negate: true, .. } => "not_method",
            Condition::Host { negate: false, .. } => "host",
            Condition::Host { negate: true, .. } => "not_host",
            Condition::PathPrefix { negate: false, .. } => "path_prefix",
            Condition::PathPrefix { negate: true, .. } => "not_path_prefix",
            Condition::PathRegex { negate: false, .. } => "path_regex",
            Condition::PathRegex { negate: true, .. } => "not_path_regex",
            Condition::QueryRegex { .. } => "query_regex",
            Condition::HeaderRegex { .. } => "header_regex",
            Condition::Ip { negate: false, .. } => "ip",
            Condition::Ip { negate: true, .. } => "not_ip",
            Condition::Hotlink(_) => "hotlink",
            Condition::Country { negate: false, .. } => "country",
            Condition::Country { negate: true, .. } => "not_country",
        }
    }
}

/// Characters that end a path segment besides `/`, per `[paths]`: with
/// `encoded_slash = "keep"`, `%2F` and `%5C` (an upstream that decodes them
/// sees a slash); with `semicolon = "keep"`, `;` (an upstream that drops
/// parameters sees the segment end there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Boundaries {
    /// `%2F`/`%5C` end a segment.
    pub encoded_slash: bool,
    /// `;` ends a segment.
    pub semicolon: bool,
}

impl Boundaries {
    /// The boundaries that `[paths]` implies.
    pub fn of(paths: &PathOptions) -> Boundaries {
        Boundaries {
            encoded_slash: paths.encoded_slash == EncodedSlash::Keep,
            semicolon: paths.semicolon == Semicolon::Keep,
        }
    }

    /// Whether `path` is `prefix` or lies under it, segment-aware: `/admin`
    /// holds for `/admin` and `/admin/x`, not `/administrator`.
    pub fn is_under(&self, path: &str, prefix: &str) -> bool {
        let Some(rest) = path.strip_prefix(prefix) else {
            return false;
        };
        if rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/') {
            return true;
        }
        let escape = rest.get(..3).unwrap_or("");
        (self.semicolon && (rest.starts_with(';') || escape.eq_ignore_ascii_case("%3b")))
            || (self.encoded_slash
                && (escape.eq_ignore_ascii_case("%2f") || escape.eq_ignore_ascii_case("%5c")))
    }
}

/// A set of countries, one bit per two-letter code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountrySet([u64; 11]);

impl CountrySet {
    /// The set of these countries.
    pub fn new(countries: impl IntoIterator<Item = Country>) -> CountrySet {
        let mut bits = [0u64; 11];
        for c in countries {
            let i = Self::index(c);
            bits[i / 64] |= 1 << (i % 64);
        }
        CountrySet(bits)
    }

    fn index(c: Country) -> usize {
        let b = c.as_str().as_bytes();
        usize::from(b[0] - b'A') * 26 + usize::from(b[1] - b'A')
    }

    /// Whether `c` is in the set.
    pub fn contains(&self, c: Country) -> bool {
        let i = Self::index(c);
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// What compiling a rule needs besides the rule.
pub(super) struct RuleContext<'a> {
    pub(super) book: &'a Rulebook,
    pub(super) lists: &'a HashMap<String, Arc<IpSet>>,
    pub(super) paths: &'a PathOptions,
    pub(super) has_geoip: bool,
    pub(super) has_auth: bool,
}

/// Compiles one rule, reporting every bad value; `None` when any was bad.
pub(super) fn compile_rule(
    spec: &Spanned<RuleSpec>,
    cx: &RuleContext<'_>,
    diags: &mut Diagnostics,
) -> Option<Rule> {
    let errors_before = diags.errors.len();
    let RuleSpec {
        name,
        action,
        ip,
        not_ip,
        country,
        not_country,
        method,
        not_method,
        host,
        not_host,
        path_prefix,
        not_path_prefix,
        path_regex,
        not_path_regex,
        query_regex,
        header_regex,
        hotlink,
        roles,
        message,
        status,
        dry_run,
    } = spec.get_ref();
    let book = cx.book;
    let label = format!("rule \"{}\"", name.get_ref());
    let mut conditions = Vec::new();

    for (list, negate) in [(method, false), (not_method, true)] {
        if let Some(list) = non_empty(list, &label, book, diags) {
            let methods = each(list, diags, book, parse_method);
            conditions.push(Condition::Method { methods, negate });
        }
    }
    for (list, negate) in [(host, false), (not_host, true)] {
        if let Some(list) = non_empty(list, &label, book, diags) {
            let patterns = each(list, diags, book, |s| {
                parse_host_pattern(s)
                    .map(|_| s.to_owned())
                    .map_err(|e| e.to_string())
            });
            if let Ok(hosts) = HostSet::new(patterns.iter().map(String::as_str)) {
                conditions.push(Condition::Host { hosts, negate });
            }
        }
    }
    let boundaries = Boundaries::of(cx.paths);
    for (list, negate) in [(path_prefix, false), (not_path_prefix, true)] {
        if let Some(list) = non_empty(list, &label, book, diags) {
            let prefixes = each(list, diags, book, |s| check_prefix(s, cx.paths));
            conditions.push(Condition::PathPrefix {
                prefixes,
                boundaries,
                negate,
            });
        }
    }
    for (list, negate) in [(path_regex, false), (not_path_regex, true)] {
        if let Some(set) = regex_set(list, &label, book, diags) {
            conditions.push(Condition::PathRegex {
                set,
                range: 0..0,
                negate,
            });
        }
    }
    if let Some(set) = regex_set(query_regex, &label, book, diags) {
        conditions.push(Condition::QueryRegex {
            set: crate::matcher::Dual::new(set),
        });
    }
    if let Some(table) = header_regex {
        let mut headers = Vec::new();
        if table.get_ref().is_empty() {
            diags.error(
                book.locate(&table.span()),
                format!("{label}: header_regex is empty"),
            );
        }
        for (name, pattern) in table.get_ref() {
            let header = http::HeaderName::from_bytes(name.get_ref().as_bytes());
            let regex = compile_regex(pattern, regex::bytes::Regex::new, book, diags);
            match header {
                Ok(header) => {
                    headers.extend(regex.map(|r| (header, crate::matcher::DualBytes::new(r))))
                }
                Err(_) => diags.error(
                    book.locate(&name.span()),
                    format!("invalid header name \"{}\"", name.get_ref()),
                ),
            }
        }
        conditions.push(Condition::HeaderRegex { headers });
    }
    for (list, negate) in [(ip, false), (not_ip, true)] {
        if let Some(list) = non_empty(list, &label, book, diags)
            && let Some(sets) = ip_sets(list, cx.lists, book, diags)
        {
            conditions.push(Condition::Ip { sets, negate });
        }
    }
    if let Some(hotlink) = hotlink
        && let Some(h) = compile_hotlink(hotlink.get_ref(), book, diags)
    {
        conditions.push(Condition::Hotlink(h));
    }
    for (list, key, negate) in [
        (country, "country", false),
        (not_country, "not_country", true),
    ] {
        if let Some(list) = non_empty(list, &label, book, diags) {
            if !cx.has_geoip {
                diags.error(
                    book.locate(&list.span()),
                    format!("{label}: {key} needs a [geoip] database"),
                );
            }
            let countries = each(list, diags, book, |s| {
                Country::parse(s).ok_or_else(|| {
                    format!("invalid country code \"{s}\": use ISO 3166-1 alpha-2, e.g. \"FR\"")
                })
            });
            conditions.push(Condition::Country {
                countries: CountrySet::new(countries),
                negate,
            });
        }
    }

    let action_value = *action.get_ref();
    let roles = match (action_value, roles) {
        (Action::Require, Some(list)) => non_empty(&Some(list.clone()), &label, book, diags)
            .map(|l| l.get_ref().iter().map(|r| r.get_ref().clone()).collect())
            .unwrap_or_default(),
        (Action::Require, None) => {
            diags.error(
                book.locate(&spec.span()),
                format!("{label}: a require rule needs roles"),
            );
            Vec::new()
        }
        (_, Some(list)) => {
            diags.error(
                book.locate(&list.span()),
                format!("{label}: roles only apply to require rules"),
            );
            Vec::new()
        }
        (_, None) => Vec::new(),
    };
    if action_value == Action::Require && !cx.has_auth {
        diags.error(
            book.locate(&action.span()),
            format!("{label}: a require rule needs an [auth] table to verify tokens"),
        );
    }
    let status = match (action_value, status) {
        (_, None) => None,
        (Action::Deny, Some(s)) => match s.get_ref() {
            403 | 404 | 410 | 451 => StatusCode::from_u16(*s.get_ref() as u16).ok(),
            other => {
                diags.error(
                    book.locate(&s.span()),
                    format!("{label}: status {other} is not one of 403, 404, 410, 451"),
                );
                None
            }
        },
        (_, Some(s)) => {
            diags.error(
                book.locate(&s.span()),
                format!("{label}: status only applies to deny rules"),
            );
            None
        }
    };
    if let (Action::Allow, Some(m)) = (action_value, message) {
        diags.error(
            book.locate(&m.span()),
            format!("{label}: message only applies to deny and require rules"),
        );
    }

    let reason = match action_value {
        Action::Require => Reason::TokenMissing,
        Action::Allow | Action::Deny => reason_of(&conditions),
    };
    conditions.sort_by_key(cost);
    (diags.errors.len() == errors_before).then(|| Rule {
        name: Arc::from(name.get_ref().as_str()),
        action: action_value,
        dry_run: dry_run.unwrap_or(false),
        reason,
        status: status.unwrap_or(reason.status()),
        message: message.as_ref().map(|m| Arc::from(m.get_ref().as_str())),
        roles,
        conditions,
        location: book.locate(&spec.span()),
    })
}

/// SPEC 7: a rule's reason is that of its first condition in this order.
fn reason_of(conditions: &[Condition]) -> Reason {
    let rank = |c: &Condition| match c {
        Condition::Hotlink(_) => (0, Reason::HotlinkDenied),
        Condition::Country { .. } => (1, Reason::CountryDenied),
        Condition::Ip { .. } => (2, Reason::IpDenied),
        Condition::QueryRegex { .. } | Condition::HeaderRegex { .. } => (3, Reason::PatternDenied),
        Condition::Method { .. } => (4, Reason::MethodDenied),
        Condition::PathPrefix { .. } | Condition::PathRegex { .. } => (5, Reason::PathDenied),
        Condition::Host { .. } => (6, Reason::HostDenied),
    };
    conditions
        .iter()
        .map(rank)
        .min_by_key(|(r, _)| *r)
        .map_or(Reason::RuleDenied, |(_, reason)| reason)
}

/// Evaluation order: cheap comparisons first, the GeoIP lookup last.
fn cost(c: &Condition) -> u8 {
    match c {
        Condition::Method { .. } => 0,
        Condition::Host { .. } => 1,
        Condition::PathPrefix { .. } => 2,
        Condition::Ip { .. } => 3,
        Condition::PathRegex { .. } => 4,
        Condition::QueryRegex { .. } => 5,
        Condition::HeaderRegex { .. } => 6,
        Condition::Hotlink(_) => 7,
        Condition::Country { .. } => 8,
    }
}

/// The list when it is given and not empty; an empty list is an error (it
/// would make `x` never hold and `not_x` always hold, which is never meant).
fn non_empty<'s>(
    list: &'s Option<SpannedList>,
    label: &str,
    book: &Rulebook,
    diags: &mut Diagnostics,
) -> Option<&'s SpannedList> {
    let list = list.as_ref()?;
    if list.get_ref().is_empty() {
        diags.error(book.locate(&list.span()), format!("{label}: empty list"));
        return None;
    }
    Some(list)
}

/// Parses every entry, reporting each bad one at its span.
pub(super) fn each<T>(
    list: &SpannedList,
    diags: &mut Diagnostics,
    book: &Rulebook,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(list.get_ref().len());
    for entry in list.get_ref() {
        match parse(entry.get_ref()) {
            Ok(v) => out.push(v),
            Err(message) => diags.error(book.locate(&entry.span()), message),
        }
    }
    out
}

/// A path prefix must be a canonical absolute path, or it could never match.
fn check_prefix(s: &str, paths: &PathOptions) -> Result<String, String> {
    match crate::path::canonicalize(s, paths) {
        Ok(canonical) if canonical == s => Ok(s.to_owned()),
        Ok(canonical) => Err(format!(
            "path prefix \"{s}\" is not canonical and would never match; write \"{canonical}\""
        )),
        Err(e) => Err(format!("invalid path prefix \"{s}\": {e}")),
    }
}

fn regex_set(
    list: &Option<SpannedList>,
    label: &str,
    book: &Rulebook,
    diags: &mut Diagnostics,
) -> Option<regex::RegexSet> {
    let list = non_empty(list, label, book, diags)?;
    let mut ok = true;
    for entry in list.get_ref() {
        ok &= compile_regex(entry, regex::Regex::new, book, diags).is_some();
    }
    if !ok {
        return None;
    }
    let patterns = list.get_ref().iter().map(|p| p.get_ref().as_str());
    match regex::RegexSet::new(patterns) {
        Ok(set) => Some(set),
        Err(e) => {
            diags.error_with(book.locate(&list.span()), format!("{label}: {e}"), e);
            None
        }
    }
}

/// Compiles one regex, explaining what Rust's regex syntax does not have.
fn compile_regex<R>(
    pattern: &Spanned<String>,
    build: impl Fn(&str) -> Result<R, regex::Error>,
    book: &Rulebook,
    diags: &mut Diagnostics,
) -> Option<R> {
    let p = pattern.get_ref();
    match build(p) {
        Ok(r) => Some(r),
        Err(e) => {
            let hint = if ["(?=", "(?!", "(?<=", "(?<!"].iter().any(|l| p.contains(l)) {
                " (Rust regex syntax has no lookaround)"
            } else if p.contains("\\1") || p.contains("\\k<") {
                " (Rust regex syntax has no backreferences)"
            } else {
                ""
            };
            let detail = match &e {
                regex::Error::Syntax(s) => {
                    let last = s.lines().last().unwrap_or(s).trim();
                    last.strip_prefix("error: ").unwrap_or(last).to_owned()
                }
                other => other.to_string(),
            };
            diags.error_with(
                book.locate(&pattern.span()),
                format!("invalid regex \"{p}\": {detail}{hint}"),
                e,
            );
            None
        }
    }
}

/// The sets an `ip`/`not_ip` list names: inline entries as one set, each `@list` shared.
pub(super) fn ip_sets(
    list: &SpannedList,
    lists: &HashMap<String, Arc<IpSet>>,
    book: &Rulebook,
    diags: &mut Diagnostics,
) -> Option<Vec<Arc<IpSet>>> {
    let mut sets = Vec::new();
    let mut nets = Vec::new();
    let mut ok = true;
    for entry in list.get_ref() {
        let s = entry.get_ref().trim();
        if let Some(name) = s.strip_prefix('@') {
            match lists.get(name) {
                Some(set) => sets.push(Arc::clone(set)),
                None => {
                    ok = false;
                    let mut known: Vec<&str> = lists.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let hint = if known.is_empty() {
                        "; [lists] defines none".to_owned()
                    } else {
                        format!("; known lists: {}", known.join(", "))
                    };
                    diags.error(
                        book.locate(&entry.span()),
                        format!("unknown list \"@{name}\"{hint}"),
                    );
                }
            }
        } else {
            match parse_net(s) {
                Ok(net) => nets.push(net),
                Err(e) => {
                    ok = false;
                    diags.error(book.locate(&entry.span()), e.to_string());
                }
            }
        }
    }
    if !nets.is_empty() {
        sets.insert(0, Arc::new(IpSet::new(nets)));
    }
    ok.then_some(sets)
}

fn compile_hotlink(
    spec: &HotlinkSpec,
    book: &Rulebook,
    diags: &mut Diagnostics,
) -> Option<Hotlink> {
    let HotlinkSpec {
        allow,
        allow_missing,
        allow_malformed,
        allow_own_host,
    } = spec;
    let mut ok = true;
    for entry in allow {
        if let Err(e) = parse_host_pattern(entry.get_ref()) {
            ok = false;
            diags.error(book.locate(&entry.span()), e.to_string());
        }
    }
    let allow = HostSet::new(allow.iter().map(|e| e.get_ref().as_str())).ok()?;
    ok.then_some(Hotlink {
        allow,
        allow_missing: allow_missing.unwrap_or(true),
        allow_malformed: allow_malformed.unwrap_or(false),
        allow_own_host: allow_own_host.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_segment_aware() {
        let plain = Boundaries::default();
        let table = [
            ("/admin", "/admin", true),
            ("/admin/x", "/admin", true),
            ("/administrator", "/admin", false),
            ("/admin", "/admin/", false),
            ("/admin/", "/admin/", true),
            ("/", "/", true),
            ("/anything", "/", true),
            ("/admin;x", "/admin", false),
            ("/admin%2Fx", "/admin", false),
        ];
        for (path, prefix, expected) in table {
            assert_eq!(
                plain.is_under(path, prefix),
                expected,
                "{path} under {prefix}"
            );
        }
        let kept = Boundaries {
            encoded_slash: true,
            semicolon: true,
        };
        assert!(kept.is_under("/admin;x", "/admin"));
        assert!(kept.is_under("/admin%3Bx", "/admin"));
        assert!(kept.is_under("/admin%2Fx", "/admin"));
        assert!(kept.is_under("/admin%5cx", "/admin"));
        assert!(!kept.is_under("/admin%41", "/admin"));
    }

    #[test]
    fn country_sets_hold_their_members_only() {
        let set = CountrySet::new(
            ["KP", "IR", "XX", "AA", "ZZ"].map(|c| Country::parse(c).expect("code")),
        );
        for c in ["KP", "IR", "XX", "AA", "ZZ"] {
            assert!(set.contains(Country::parse(c).expect("code")), "{c}");
        }
        for c in ["KR", "IQ", "US", "AB", "ZY"] {
            assert!(!set.contains(Country::parse(c).expect("code")), "{c}");
        }
    }
}
