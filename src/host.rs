//! Host names as rules compare them (SPEC section 3): the normal form of a request's
//! Host, host patterns (`host`/`not_host` conditions, route `host`, hotlink `allow`),
//! the host of a Referer, and the hotlink condition.
//!
//! It does not own where the Host comes from (Host header, `:authority`, an
//! absolute-form target: the caller's job) nor the rulebook's spans (the config
//! loader wraps [`HostPatternError`] with a location).
//!
//! Pure and allocation-free on the common path: a host that is already lowercase is
//! borrowed, and a set of patterns answers with hash lookups, one per label of the
//! host, whatever its size.
//!
//! The normal form of a host: ASCII lowercase, port removed, one trailing dot removed.
//! An IPv6 literal keeps its brackets and is written in its RFC 5952 form
//! (`[2001:DB8:0::1]:8080` → `[2001:db8::1]`), so a Host, a Referer and a pattern that
//! name the same address compare equal. Other names are compared as written: no IDN
//! mapping (patterns must use punycode), no numeric-IPv4 reinterpretation
//! (`0x7f.1` is a name, not `127.0.0.1`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::net::Ipv6Addr;

/// Longest host name, in bytes, without its trailing dot (RFC 1035).
const MAX_NAME_LEN: usize = 253;
/// Longest label, in bytes (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A host pattern that was refused: the pattern as written and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern \"{pattern}\": {problem}")]
pub struct HostPatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub problem: HostPatternProblem,
}

/// What is wrong with a refused host pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternProblem {
    /// The pattern is empty (or is only `*.` or `.`).
    #[error("empty pattern")]
    Empty,
    /// The pattern holds a non-ASCII character.
    #[error(
        "not ASCII: write internationalized names in punycode, e.g. \"xn--bcher-kva.example\" for \"bücher.example\""
    )]
    NonAscii,
    /// A `*` elsewhere than alone or as a leading `*.`.
    #[error("\"*\" is allowed only alone or as a leading \"*.\"")]
    Wildcard,
    /// The pattern carries a port.
    #[error("remove the port: ports are ignored when hosts are compared")]
    Port,
    /// The pattern carries a scheme (`https://…`).
    #[error("remove the scheme: write the host name only")]
    Scheme,
    /// The pattern carries a path.
    #[error("remove the path: write the host name only")]
    Path,
    /// A character a host name cannot hold (letters, digits, `-`, `_` and `.` can).
    #[error("invalid character {0:?}")]
    InvalidCharacter(char),
    /// Two dots in a row, or a leading dot.
    #[error("empty label")]
    EmptyLabel,
    /// A label over 63 characters.
    #[error("a label is longer than 63 characters")]
    LabelTooLong,
    /// A name over 253 characters.
    #[error("longer than 253 characters")]
    TooLong,
    /// An IPv6 address written without brackets.
    #[error("write an IPv6 address in brackets")]
    UnbracketedIpv6,
    /// Brackets around something that is not an IPv6 address.
    #[error("not a valid IPv6 address in brackets")]
    InvalidIpv6,
}

/// One parsed host pattern, lowercased, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `*`: any host, including none.
    Any,
    /// An exact name, IPv4 address or bracketed IPv6 address (`[2001:db8::1]`).
    Exact(String),
    /// `*.suffix`, holding `suffix`: any host that ends with `.suffix` by whole labels;
    /// never `suffix` itself.
    Subdomains(String),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(name) => f.write_str(name),
            Self::Subdomains(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// Parses and validates one host pattern: `*`, `*.suffix`, an exact name, an IPv4
/// address, or an IPv6 address in brackets. Letters are lowercased and one trailing
/// dot is dropped (`Example.COM.` is `example.com`).
///
/// Refuses: an empty pattern; non-ASCII (internationalized names must be written in
/// punycode); `*` anywhere but alone or as a leading `*.`; a port; a scheme; a path;
/// characters other than letters, digits, `-`, `_` and `.`; empty labels; a label over
/// 63 or a name over 253 characters; an IPv6 address without brackets.
pub fn parse_host_pattern(pattern: &str) -> Result<HostPattern, HostPatternError> {
    parse_pattern(pattern).map_err(|problem| HostPatternError {
        pattern: pattern.to_owned(),
        problem,
    })
}

fn parse_pattern(pattern: &str) -> Result<HostPattern, HostPatternProblem> {
    use HostPatternProblem as Problem;
    if pattern.is_empty() {
        return Err(Problem::Empty);
    }
    if !pattern.is_ascii() {
        return Err(Problem::NonAscii);
    }
    if pattern == "*" {
        return Ok(HostPattern::Any);
    }
    if pattern.contains("://") {
        return Err(Problem::Scheme);
    }
    let (body, subdomains) = match pattern.strip_prefix("*.") {
        Some(suffix) => (suffix, true),
        None => (pattern, false),
    };
    if body.contains('*') {
        return Err(Problem::Wildcard);
    }
    if body.contains('/') {
        return Err(Problem::Path);
    }
    if let Some(rest) = body.strip_prefix('[') {
        if subdomains {
            // `*.` takes names only: an address has no subdomains.
            return Err(Problem::InvalidCharacter('['));
        }
        return match rest.split_once(']') {
            Some((address, "")) => address
                .parse::<Ipv6Addr>()
                .map(|ip| HostPattern::Exact(format!("[{ip}]")))
                .map_err(|_| Problem::InvalidIpv6),
            Some(_) => Err(Problem::Port),
            None => Err(Problem::InvalidIpv6),
        };
    }
    if body.contains(':') {
        return Err(if body.parse::<Ipv6Addr>().is_ok() {
            Problem::UnbracketedIpv6
        } else {
            Problem::Port
        });
    }
    let name = body.strip_suffix('.').unwrap_or(body);
    if name.is_empty() {
        return Err(Problem::Empty);
    }
    check_name(name)?;
    let name = name.to_ascii_lowercase();
    Ok(if subdomains {
        HostPattern::Subdomains(name)
    } else {
        HostPattern::Exact(name)
    })
}

/// The bytes of a DNS label as host names use them: letters, digits, `-`, `_`.
const LABEL_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// Checks a name (no trailing dot) by its labels: each 1 to 63 letters, digits, `-`
/// or `_`; 253 characters at most.
fn check_name(name: &str) -> Result<(), HostPatternProblem> {
    let mut label_len = 0;
    // Bytes: every valid one is ASCII; the first other is reported as its char.
    for (i, b) in name.bytes().enumerate() {
        match b {
            b'.' if label_len == 0 => return Err(HostPatternProblem::EmptyLabel),
            b'.' => label_len = 0,
            b if LABEL_BYTE[usize::from(b)] => {
                label_len += 1;
                if label_len > MAX_LABEL_LEN {
                    return Err(HostPatternProblem::LabelTooLong);
                }
            }
            _ => {
                let c = name.get(i..).and_then(|rest| rest.chars().next());
                let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(HostPatternProblem::InvalidCharacter(c));
            }
        }
    }
    if label_len == 0 {
        return Err(HostPatternProblem::EmptyLabel);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HostPatternProblem::TooLong);
    }
    Ok(())
}

/// How specifically a [`HostSet`] matched a host; orders `Any < Subdomains < Exact`
/// (route choice prefers an exact name, then `*.suffix`, then `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostMatch {
    /// Through `*`.
    Any,
    /// Through a `*.suffix`.
    Subdomains,
    /// Through an exact name.
    Exact,
}

/// A compiled set of host patterns. The default set is empty and matches nothing.
#[derive(Debug, Clone, Default)]
pub struct HostSet {
    any: bool,
    exact: HashSet<Box<str>>,
    /// Each `*.suffix` stored as `.suffix`, so a hit is on a label boundary.
    suffixes: HashSet<Box<str>>,
    /// The distinct lengths of `suffixes`, ascending.
    suffix_lens: Vec<usize>,
}

impl HostSet {
    /// Parses every pattern with [`parse_host_pattern`] into one set.
    ///
    /// Refuses with the first pattern's error; the config loader, which reports every
    /// error with its location, parses patterns one by one and collects them instead.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, HostPatternError> {
        patterns.into_iter().map(parse_host_pattern).collect()
    }

    /// Whether a normalized host (see [`normalize_host`]) matches any pattern. A host
    /// that is not normalized (upper case, a port) matches only `*`.
    pub fn matches(&self, normalized_host: &str) -> bool {
        self.best_match(normalized_host).is_some()
    }

    /// The most specific way a normalized host matches the set, if any.
    pub fn best_match(&self, normalized_host: &str) -> Option<HostMatch> {
        let host = normalized_host;
        // A few patterns are compared directly: cheaper than hashing the host.
        if self.exact.len() + self.suffixes.len() <= 8 {
            if self.exact.iter().any(|e| **e == *host) {
                return Some(HostMatch::Exact);
            }
            let bytes = host.as_bytes();
            let subdomain = self.suffixes.iter().any(|suffix| {
                suffix.len() < bytes.len()
                    && bytes.ends_with(suffix.as_bytes())
                    && bytes[bytes.len() - suffix.len() - 1] != b'.'
            });
            if subdomain {
                return Some(HostMatch::Subdomains);
            }
            return self.any.then_some(HostMatch::Any);
        }
        if self.exact.contains(host) {
            return Some(HostMatch::Exact);
        }
        let bytes = host.as_bytes();
        // Only the lengths some suffix has are looked up: at most one probe per
        // distinct suffix length, whatever the number of patterns.
        for &len in &self.suffix_lens {
            if len >= bytes.len() {
                break;
            }
            let dot = bytes.len() - len;
            // A non-empty label must stand before the suffix's leading dot.
            if bytes[dot] == b'.' && bytes[dot - 1] != b'.' && self.suffixes.contains(&host[dot..])
            {
                return Some(HostMatch::Subdomains);
            }
        }
        self.any.then_some(HostMatch::Any)
    }

    /// Whether the set holds no pattern (and so matches nothing).
    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty() && self.suffixes.is_empty()
    }
}

impl FromIterator<HostPattern> for HostSet {
    fn from_iter<T: IntoIterator<Item = HostPattern>>(patterns: T) -> Self {
        let mut set = Self::default();
        for pattern in patterns {
            match pattern {
                HostPattern::Any => set.any = true,
                HostPattern::Exact(name) => {
                    set.exact.insert(name.into_boxed_str());
                }
                HostPattern::Subdomains(suffix) => {
                    set.suffixes.insert(format!(".{suffix}").into_boxed_str());
                }
            }
        }
        set.suffix_lens = set.suffixes.iter().map(|suffix| suffix.len()).collect();
        set.suffix_lens.sort_unstable();
        set.suffix_lens.dedup();
        set
    }
}

/// The host as rules compare it: ASCII lowercase, port removed, one trailing dot
/// removed; an IPv6 literal keeps its brackets and is rewritten in RFC 5952 form.
///
/// Borrowed unless letters must be lowercased or an IPv6 literal rewritten. It does
/// not validate: a value that is not a host (`exa mple`, `a:b`) is only lowercased,
/// and then matches no pattern but `*`. A port is removed only when it is all digits.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    if let Some(rest) = raw.strip_prefix('[') {
        if let Some((address, after)) = rest.split_once(']') {
            let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_digits);
            if let (true, Ok(ip)) = (port_ok, address.parse::<Ipv6Addr>()) {
                return ipv6_literal(&raw[..address.len() + 2], ip);
            }
        }
        return lowercase(raw);
    }
    let host = match raw.bytes().position(|b| b == b':') {
        Some(colon) if is_digits(&raw[colon + 1..]) => &raw[..colon],
        _ => raw,
    };
    lowercase(host.strip_suffix('.').unwrap_or(host))
}

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// `[address]` in RFC 5952 form; borrowed when `bracketed` is already that form.
fn ipv6_literal(bracketed: &str, ip: Ipv6Addr) -> Cow<'_, str> {
    let mut canonical = Ipv6Text::default();
    // The longest form, eight groups of four hex digits in brackets, is 41 bytes.
    let written = fmt::Write::write_fmt(&mut canonical, format_args!("[{ip}]"));
    let canonical = canonical.as_str();
    if written.is_ok() && canonical == bracketed {
        Cow::Borrowed(bracketed)
    } else {
        Cow::Owned(format!("[{ip}]"))
    }
}

/// A stack buffer for an IPv6 literal, so that comparing with the canonical form
/// does not allocate.
struct Ipv6Text {
    bytes: [u8; 48],
    len: usize,
}

impl Default for Ipv6Text {
    fn default() -> Self {
        Self {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl Ipv6Text {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for Ipv6Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// What a request's Referer says, for the hotlink condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Referer<'a> {
    /// No Referer header, or one that is empty (or only spaces).
    Missing,
    /// Several Referer headers, or one that is not an absolute http(s) URL with a
    /// valid host.
    Malformed,
    /// The URL's host in normal form (lowercase, no userinfo, no port, no trailing
    /// dot; an IPv6 literal in brackets, RFC 5952 form).
    Host(Cow<'a, str>),
}

/// Reads every Referer header instance (e.g. `headers.get_all(REFERER)`).
///
/// - none, or one that is empty or only spaces and tabs: [`Referer::Missing`];
/// - several instances, whatever they hold: [`Referer::Malformed`];
/// - one: [`Referer::Host`] when it is an absolute `http`/`https` URL (scheme in any
///   case) with a host, else [`Referer::Malformed`].
///
/// Malformed also covers: a relative or scheme-relative reference (`//host/x`), any
/// other scheme (`javascript:`, `data:`), `https:host` without `//`, an empty host
/// (`http:///x`), a byte that is not visible ASCII anywhere in the value (spaces,
/// controls, non-ASCII), a backslash in the authority (`http://a.com\@b.com`, which
/// browsers and servers split differently), a host character other than letters,
/// digits, `-`, `_`, `.` (so `%2e` and other escapes), an empty label, an IPv6
/// address without brackets, and a port that is not 0 to 65535 (an empty port is
/// allowed). With userinfo, the host is what follows the last `@`, as browsers read
/// it (`http://example.com@evil.com/` is `evil.com`).
pub fn referer<'a, I, V>(values: I) -> Referer<'a>
where
    I: IntoIterator<Item = &'a V>,
    V: AsRef<[u8]> + ?Sized + 'a,
{
    let mut values = values.into_iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Referer::Missing,
        (Some(value), None) => value.as_ref(),
        (Some(_), Some(_)) => return Referer::Malformed,
    };
    let value = trim(value);
    if value.is_empty() {
        return Referer::Missing;
    }
    referer_host(value).map_or(Referer::Malformed, Referer::Host)
}

/// Spaces and tabs removed from both ends.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The normalized host of an absolute http(s) URL; `None` when it is anything else.
///
/// Read as bytes, in one pass for each question: only the host is made a `str`.
fn referer_host(url: &[u8]) -> Option<Cow<'_, str>> {
    // Without an early exit, so that the check runs over whole vectors.
    let invisible = url
        .iter()
        .fold(false, |bad, b| bad | !(b'!'..=b'~').contains(b));
    if invisible {
        return None;
    }
    let rest = strip_prefix_ignore_case(url, b"http://")
        .or_else(|| strip_prefix_ignore_case(url, b"https://"))?;
    let end = memchr::memchr3(b'/', b'?', b'#', rest).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Authorities are short: plain scans beat memchr's setup.
    if authority.contains(&b'\\') {
        return None;
    }
    let host_port = authority
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(authority, |at| &authority[at + 1..]);
    // Visible ASCII throughout: always UTF-8.
    let host_port = std::str::from_utf8(host_port).ok()?;
    if let Some(rest) = host_port.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        if !after.is_empty() && !is_port(after.strip_prefix(':')?) {
            return None;
        }
        let ip = address.parse::<Ipv6Addr>().ok()?;
        return Some(ipv6_literal(&host_port[..address.len() + 2], ip));
    }
    let host = match host_port.split_once(':') {
        Some((host, port)) if is_port(port) => host,
        Some(_) => return None,
        None => host_port,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || check_name(host).is_err() {
        return None;
    }
    Some(lowercase(host))
}

/// `bytes` after `prefix` (lowercase), compared ignoring ASCII case.
fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, rest) = bytes.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

/// A URL port: empty, or digits up to 65535.
fn is_port(port: &str) -> bool {
    is_digits(port) && (port.is_empty() || port.parse::<u16>().is_ok())
}

/// The `hotlink` condition of a rule (SPEC section 3).
#[derive(Debug, Clone)]
pub struct Hotlink {
    /// Hosts whose pages may embed: exact names and `*.suffix`. Defaults to none.
    pub allow: HostSet,
    /// A missing or empty Referer is not a hotlink. Defaults to `true`.
    pub allow_missing: bool,
    /// A malformed Referer (see [`referer`]) is not a hotlink. Defaults to `false`.
    pub allow_malformed: bool,
    /// A Referer naming the request's own host is not a hotlink. Defaults to `true`.
    pub allow_own_host: bool,
}

impl Default for Hotlink {
    fn default() -> Self {
        Self {
            allow: HostSet::default(),
            allow_missing: true,
            allow_malformed: false,
            allow_own_host: true,
        }
    }
}

impl Hotlink {
    /// Whether the request is a hotlink, i.e. whether the condition holds.
    ///
    /// `own_host` is the request's host in normal form ([`normalize_host`]), so the
    /// ports of Host and Referer never matter. A missing Referer is a hotlink unless
    /// `allow_missing`; a malformed one unless `allow_malformed`; a host is one unless
    /// it matches `allow`, or equals `own_host` with `allow_own_host`.
    pub fn is_hotlink(&self, referer: &Referer<'_>, own_host: &str) -> bool {
        match referer {
            Referer::Missing => !self.allow_missing,
            Referer::Malformed => !self.allow_malformed,
            Referer::Host(host) => {
                !((self.allow_own_host && !own_host.is_empty() && host == own_host)
                    || self.allow.matches(host))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_host_table() {
        // (raw, normal form, borrowed)
        #[rustfmt::skip]
        let cases: &[(&str, &str, bool)] = &[
            ("example.com", "example.com", true),
            ("Example.COM", "example.com", false),
            ("example.com:8080", "example.com", true),
            ("example.com.", "example.com", true),
            ("example.com.:443", "example.com", true),
            ("EXAMPLE.com.:443", "example.com", false),
            ("example.com..", "example.com.", true),
            ("example.com:", "example.com", true),
            ("example.com:abc", "example.com:abc", true),
            ("127.0.0.1:80", "127.0.0.1", true),
            ("[::1]", "[::1]", true),
            ("[::1]:8080", "[::1]", true),
            ("[2001:DB8:0::1]:8080", "[2001:db8::1]", false),
            ("[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]", true),
            ("[zz]:80", "[zz]:80", true),
            ("::1", "::1", true),
            ("", "", true),
        ];
        for &(raw, expected, borrowed) in cases {
            let got = normalize_host(raw);
            assert_eq!(got, expected, "{raw:?}");
            assert_eq!(
                matches!(got, Cow::Borrowed(_)),
                borrowed,
                "{raw:?} borrowed"
            );
        }
    }

    #[test]
    fn host_pattern_table() {
        // (pattern, Ok(display) or Err(error kind))
        let long_label = format!("{}.example.com", "a".repeat(64));
        let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        let max_name = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "a".repeat(61));
        let max_label = format!("{}.example.com", "a".repeat(63));
        #[rustfmt::skip]
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("example.com", Ok("example.com")),
            ("Example.COM.", Ok("example.com")),
            ("*.example.com", Ok("*.example.com")),
            ("*.EXAMPLE.com.", Ok("*.example.com")),
            ("*", Ok("*")),
            ("*.com", Ok("*.com")),
            ("localhost", Ok("localhost")),
            ("xn--bcher-kva.example", Ok("xn--bcher-kva.example")),
            ("_dmarc.example.com", Ok("_dmarc.example.com")),
            ("127.0.0.1", Ok("127.0.0.1")),
            ("[2001:DB8:0::1]", Ok("[2001:db8::1]")),
            ("[::1]", Ok("[::1]")),
            (&max_label, Ok(&max_label)),
            (&max_name, Ok(&max_name)),
            ("", Err("Empty")),
            (".", Err("Empty")),
            ("*.", Err("Empty")),
            ("bücher.example", Err("NonAscii")),
            ("*.bücher.example", Err("NonAscii")),
            ("a*.example.com", Err("Wildcard")),
            ("*example.com", Err("Wildcard")),
            ("*.*.example.com", Err("Wildcard")),
            ("example.*", Err("Wildcard")),
            ("www.*.example.com", Err("Wildcard")),
            ("**", Err("Wildcard")),
            ("example.com:8080", Err("Port")),
            ("*.example.com:443", Err("Port")),
            ("example.com:", Err("Port")),
            ("[::1]:80", Err("Port")),
            ("https://example.com", Err("Scheme")),
            ("*://example.com", Err("Scheme")),
            ("example.com/path", Err("Path")),
            ("example.com/", Err("Path")),
            ("exa mple.com", Err("InvalidCharacter")),
            (" example.com", Err("InvalidCharacter")),
            ("example.com?x", Err("InvalidCharacter")),
            ("ex%41mple.com", Err("InvalidCharacter")),
            ("user@example.com", Err("InvalidCharacter")),
            ("example.com\\", Err("InvalidCharacter")),
            ("*.[::1]", Err("InvalidCharacter")),
            ("a..b", Err("EmptyLabel")),
            (".example.com", Err("EmptyLabel")),
            ("*..example.com", Err("EmptyLabel")),
            ("example.com..", Err("EmptyLabel")),
            (&long_label, Err("LabelTooLong")),
            (&long_name, Err("TooLong")),
            ("::1", Err("UnbracketedIpv6")),
            ("2001:db8::1", Err("UnbracketedIpv6")),
            ("[example.com]", Err("InvalidIpv6")),
            ("[::1", Err("InvalidIpv6")),
            ("[1.2.3.4]", Err("InvalidIpv6")),
        ];
        for (pattern, expected) in cases {
            let got = parse_host_pattern(pattern);
            match (&got, expected) {
                (Ok(parsed), Ok(display)) => {
                    assert_eq!(parsed.to_string(), *display, "{pattern:?}")
                }
                (Err(error), Err(kind)) => {
                    let debug = format!("{:?}", error.problem);
                    assert!(
                        debug.starts_with(kind),
                        "{pattern:?}: expected {kind}, got {debug}"
                    );
                    assert!(
                        error.to_string().contains(&format!("\"{pattern}\"")),
                        "{pattern:?}: {error}"
                    );
                }
                _ => panic!("{pattern:?}: expected {expected:?}, got {got:?}"),
            }
        }
        assert!(cases.len() >= 50);
    }

    #[test]
    fn host_pattern_errors_explain_the_fix() {
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("bücher.example", "punycode"),
            ("a*.example.com", "only alone or as a leading \"*.\""),
            ("example.com:8080", "ports are ignored"),
            ("::1", "in brackets"),
            ("exa mple.com", "invalid character ' '"),
        ];
        for (pattern, fragment) in cases {
            let message = parse_host_pattern(pattern).expect_err(pattern).to_string();
            assert!(message.contains(fragment), "{pattern:?}: {message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn host_set_table() {
        let set = HostSet::new([
            "example.com",
            "*.example.com",
            "Static.CDN.net",
            "*.b.c.example.org",
            "[::1]",
        ])
        .expect("valid patterns");
        let mut with_any = set.clone();
        with_any.any = true;
        // (host, match in `set`)
        #[rustfmt::skip]
        let cases: &[(&str, Option<HostMatch>)] = &[
            ("example.com", Some(HostMatch::Exact)),
            ("www.example.com", Some(HostMatch::Subdomains)),
            ("a.b.example.com", Some(HostMatch::Subdomains)),
            ("evil-example.com", None),
            ("notexample.com", None),
            ("xexample.com", None),
            ("example.com.evil.com", None),
            ("www.example.com.evil.com", None),
            ("example.co", None),
            ("com", None),
            (".example.com", None),
            ("..example.com", None),
            ("a..example.com", None),
            ("static.cdn.net", Some(HostMatch::Exact)),
            ("x.static.cdn.net", None),
            ("b.c.example.org", None),
            ("a.b.c.example.org", Some(HostMatch::Subdomains)),
            ("[::1]", Some(HostMatch::Exact)),
            ("EXAMPLE.COM", None),
            ("example.com:80", None),
            ("", None),
        ];
        for &(host, expected) in cases {
            assert_eq!(set.best_match(host), expected, "{host:?}");
            assert_eq!(set.matches(host), expected.is_some(), "{host:?}");
            let with_any_expected = expected.or(Some(HostMatch::Any));
            assert_eq!(
                with_any.best_match(host),
                with_any_expected,
                "{host:?} with *"
            );
        }
    }

    #[test]
    fn host_set_emptiness_and_errors() {
        let empty = HostSet::default();
        assert!(empty.is_empty());
        assert!(!empty.matches("example.com"));
        assert!(!empty.matches(""));
        let any = HostSet::new(["*"]).expect("valid");
        assert!(!any.is_empty());
        assert_eq!(any.best_match(""), Some(HostMatch::Any));
        assert!(!HostSet::new(["*.example.com"]).expect("valid").is_empty());
        assert_eq!(
            HostSet::new(["example.com", "bad host", "also:bad"]).expect_err("invalid"),
            HostPatternError {
                pattern: "bad host".to_owned(),
                problem: HostPatternProblem::InvalidCharacter(' ')
            }
        );
        assert!(HostMatch::Exact > HostMatch::Subdomains && HostMatch::Subdomains > HostMatch::Any);
    }

    const M: Result<&str, bool> = Err(true); // Malformed
    const NONE: Result<&str, bool> = Err(false); // Missing

    #[test]
    fn referer_table() {
        // (single Referer value, Ok(host) or Err(true) malformed / Err(false) missing)
        #[rustfmt::skip]
        let cases: &[(&str, Result<&str, bool>)] = &[
            ("https://example.com/a.png", Ok("example.com")),
            ("http://example.com", Ok("example.com")),
            ("http://example.com?x=1", Ok("example.com")),
            ("http://example.com#top", Ok("example.com")),
            ("HTTPS://Example.COM/x", Ok("example.com")),
            ("hTtP://example.com/", Ok("example.com")),
            ("http://example.com:8080/x", Ok("example.com")),
            ("http://example.com:/x", Ok("example.com")),
            ("http://example.com./", Ok("example.com")),
            ("http://example.com.:443/", Ok("example.com")),
            ("http://example.com@evil.com/", Ok("evil.com")),
            ("http://evil.com@example.com/", Ok("example.com")),
            ("http://user:pass@example.com:80/", Ok("example.com")),
            ("http://a@b@evil.com/", Ok("evil.com")),
            ("http://evil.com#@example.com/", Ok("evil.com")),
            ("http://evil.com?@example.com/", Ok("evil.com")),
            ("http://evil.com/@example.com/", Ok("evil.com")),
            ("http://xn--bcher-kva.example/", Ok("xn--bcher-kva.example")),
            ("http://192.0.2.1/x", Ok("192.0.2.1")),
            ("http://192.0.2.1:8080/x", Ok("192.0.2.1")),
            ("http://[::1]/x", Ok("[::1]")),
            ("http://[::1]:8080/x", Ok("[::1]")),
            ("http://[2001:DB8:0::1]/", Ok("[2001:db8::1]")),
            ("http://exa_mple.com/", Ok("exa_mple.com")),
            ("  https://example.com/  ", Ok("example.com")),
            ("", NONE),
            ("   ", NONE),
            ("\t", NONE),
            ("http://bücher.example/", M),
            ("http://::1/", M),
            ("http://[::1/", M),
            ("http://[::1]x/", M),
            ("http://[fe80::1%25eth0]/", M),
            ("http://[1.2.3.4]/", M),
            ("//example.com/x", M),
            ("/relative/path", M),
            ("example.com/x", M),
            ("example.com", M),
            ("javascript:alert(1)", M),
            ("data:image/png;base64,AAAA", M),
            ("https:example.com", M),
            ("http:/example.com", M),
            ("http:///x", M),
            ("http://", M),
            ("http://:80/", M),
            ("http://@/", M),
            ("http://user@/", M),
            ("ftp://example.com/", M),
            ("httpx://example.com/", M),
            ("file:///etc/passwd", M),
            ("http://example.com\\@evil.com", M),
            ("http://example.com\\.evil.com/", M),
            ("http:\\\\example.com\\", M),
            ("http:/\\example.com/", M),
            ("http://ex%2eample.com/", M),
            ("http://example%2Ecom/", M),
            ("http://exa mple.com/", M),
            ("http://example.com/a b", M),
            ("http://example.com\t/x", M),
            ("http://example.com:65536/", M),
            ("http://example.com:8o/", M),
            ("http://example.com:-1/", M),
            ("http://example.com:80:80/", M),
            ("http://example..com/", M),
            ("http://.example.com/", M),
            ("http://./", M),
            ("http://example.com../", M),
            ("http://exa!mple.com/", M),
            ("http://example.com,evil.com/", M),
        ];
        for &(value, expected) in cases {
            let got = referer([value.as_bytes()]);
            let expected = match expected {
                Ok(host) => Referer::Host(Cow::Borrowed(host)),
                Err(true) => Referer::Malformed,
                Err(false) => Referer::Missing,
            };
            assert_eq!(got, expected, "{value:?}");
        }
        assert!(cases.len() >= 50);
    }

    #[test]
    fn referer_instances() {
        let none: [&[u8]; 0] = [];
        assert_eq!(referer(none), Referer::Missing);
        let two: [&[u8]; 2] = [b"http://example.com/", b"http://example.com/"];
        assert_eq!(referer(two), Referer::Malformed);
        let two_empty: [&[u8]; 2] = [b"", b""];
        assert_eq!(referer(two_empty), Referer::Malformed);
        let non_utf8: [&[u8]; 1] = [b"http://ex\xffample.com/"];
        assert_eq!(referer(non_utf8), Referer::Malformed);
        let owned = vec![b"http://example.com/".to_vec()];
        assert_eq!(referer(&owned), Referer::Host(Cow::Borrowed("example.com")));
    }

    #[test]
    fn referer_from_a_header_map() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            http::header::REFERER,
            http::HeaderValue::from_static("https://Example.com/x"),
        );
        assert_eq!(
            referer(headers.get_all(http::header::REFERER)),
            Referer::Host(Cow::Borrowed("example.com"))
        );
        headers.append(
            http::header::REFERER,
            http::HeaderValue::from_static("https://example.com/y"),
        );
        assert_eq!(
            referer(headers.get_all(http::header::REFERER)),
            Referer::Malformed
        );
    }

    #[test]
    fn referer_host_is_borrowed_when_already_lowercase() {
        let one: [&[u8]; 1] = [b"http://user@example.com.:80/x"];
        assert!(matches!(
            referer(one),
            Referer::Host(Cow::Borrowed("example.com"))
        ));
    }

    /// (allow_missing, allow_malformed, allow_own_host)
    type Flags = (bool, bool, bool);
    /// (behaviour, allow, flags, Referer instances, own Host as received, is hotlink)
    type HotlinkCase = (
        &'static str,
        &'static [&'static str],
        Flags,
        &'static [&'static str],
        &'static str,
        bool,
    );
    const DEFAULTS: Flags = (true, false, true);

    #[test]
    fn hotlink_table() {
        const SITE: &[&str] = &["example.com", "*.example.com"];
        #[rustfmt::skip]
        let cases: &[HotlinkCase] = &[
            ("missing referer is allowed by default", SITE, DEFAULTS, &[], "shop.test", false),
            ("missing referer is a hotlink without allow_missing", SITE, (false, false, true), &[], "shop.test", true),
            ("empty referer counts as missing", SITE, DEFAULTS, &[""], "shop.test", false),
            ("empty referer is a hotlink without allow_missing", SITE, (false, false, true), &[""], "shop.test", true),
            ("scheme-relative referer is malformed hotlink", SITE, DEFAULTS, &["//example.com/x"], "shop.test", true),
            ("malformed referer allowed with allow_malformed", SITE, (true, true, true), &["//example.com/x"], "shop.test", false),
            ("javascript referer is a hotlink", SITE, DEFAULTS, &["javascript:alert(1)"], "shop.test", true),
            ("several referers are malformed", SITE, DEFAULTS, &["https://example.com/", "https://example.com/"], "shop.test", true),
            ("several referers allowed with allow_malformed", SITE, (true, true, true), &["https://example.com/", "https://evil.com/"], "shop.test", false),
            ("allowed exact host is not a hotlink", SITE, DEFAULTS, &["https://example.com/page"], "shop.test", false),
            ("allowed subdomain is not a hotlink", SITE, DEFAULTS, &["https://www.example.com/page"], "shop.test", false),
            ("upper case and port are ignored", SITE, DEFAULTS, &["https://WWW.EXAMPLE.COM:8443/"], "shop.test", false),
            ("trailing dot is ignored", SITE, DEFAULTS, &["https://example.com./"], "shop.test", false),
            ("hyphenated lookalike is a hotlink", SITE, DEFAULTS, &["https://evil-example.com/"], "shop.test", true),
            ("allowed name as a prefix is a hotlink", SITE, DEFAULTS, &["https://example.com.evil.com/"], "shop.test", true),
            ("substring lookalike is a hotlink", SITE, DEFAULTS, &["https://notexample.com/"], "shop.test", true),
            ("hotlink with userinfo referer is foreign", SITE, DEFAULTS, &["http://example.com@evil.com/"], "shop.test", true),
            ("userinfo naming a foreign host is ignored", SITE, DEFAULTS, &["http://evil.com@example.com/"], "shop.test", false),
            ("backslash in authority is a malformed hotlink", SITE, DEFAULTS, &["http://example.com\\@evil.com"], "shop.test", true),
            ("encoded dot in host is a malformed hotlink", SITE, DEFAULTS, &["http://example%2ecom/"], "shop.test", true),
            ("bare suffix is not a subdomain", &["*.example.com"], DEFAULTS, &["https://example.com/"], "shop.test", true),
            ("own host with port in host header", SITE, DEFAULTS, &["https://shop.test/"], "shop.test:8080", false),
            ("own host with port in both", SITE, DEFAULTS, &["https://shop.test:8443/"], "Shop.Test.:8080", false),
            ("own host is a hotlink without allow_own_host", SITE, (true, false, false), &["https://shop.test/"], "shop.test", true),
            ("subdomain of own host is a hotlink", SITE, DEFAULTS, &["https://cdn.shop.test/"], "shop.test", true),
            ("own ipv6 host", SITE, DEFAULTS, &["http://[::1]:3000/"], "[0::1]:8080", false),
            ("foreign host is a hotlink", SITE, DEFAULTS, &["https://other.test/"], "shop.test", true),
            ("empty allow still allows own host", &[], DEFAULTS, &["https://shop.test/"], "shop.test", false),
            ("empty allow without own host denies all", &[], (true, false, false), &["https://shop.test/"], "shop.test", true),
            ("any host allows every valid referer", &["*"], DEFAULTS, &["https://anything.test/"], "shop.test", false),
            ("any host does not excuse malformed", &["*"], DEFAULTS, &["data:,x"], "shop.test", true),
            ("punycode allow entry", &["xn--bcher-kva.example"], DEFAULTS, &["http://XN--BCHER-KVA.example/"], "shop.test", false),
            ("ipv4 referer in allow", &["192.0.2.1"], DEFAULTS, &["http://192.0.2.1:8080/"], "shop.test", false),
            ("ipv4 referer not in allow", SITE, DEFAULTS, &["http://192.0.2.1/"], "shop.test", true),
            ("ipv6 referer in allow", &["[::1]"], DEFAULTS, &["http://[0:0::1]/"], "shop.test", false),
            ("missing own host never matches", &[], DEFAULTS, &["https://shop.test/"], "", true),
        ];
        for &(
            behaviour,
            allow,
            (allow_missing, allow_malformed, allow_own_host),
            values,
            own,
            expected,
        ) in cases
        {
            let hotlink = Hotlink {
                allow: HostSet::new(allow.iter().copied()).expect("valid patterns"),
                allow_missing,
                allow_malformed,
                allow_own_host,
            };
            let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            let got = hotlink.is_hotlink(&referer(&values), &normalize_host(own));
            assert_eq!(got, expected, "{behaviour}");
        }
    }

    #[test]
    fn hotlink_defaults_follow_the_spec() {
        let Hotlink {
            allow,
            allow_missing,
            allow_malformed,
            allow_own_host,
        } = Hotlink::default();
        assert!(allow.is_empty());
        assert_eq!(
            (allow_missing, allow_malformed, allow_own_host),
            (true, false, true)
        );
    }

    proptest::proptest! {
        #[test]
        fn referer_hosts_are_already_normal(value in "(?i)(https?:)?//[a-f0-9.:@\\[\\]%_/\\\\-]{0,24}") {
            if let Referer::Host(host) = referer([value.as_bytes()]) {
                proptest::prop_assert_eq!(normalize_host(&host), host.as_ref());
            }
        }

        #[test]
        fn referer_host_urls_round_trip(
            user in proptest::option::of("[a-z]{1,5}@"),
            host in "[a-zA-Z0-9-]{1,8}(\\.[a-zA-Z0-9_-]{1,8}){0,3}\\.?",
            port in proptest::option::of(0u16..),
            tail in "(/[ -~&&[^ ]]{0,10})?",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = format!("https://{}{host}{port}{tail}", user.unwrap_or_default());
            let expected = normalize_host(&host).into_owned();
            proptest::prop_assert_eq!(referer([url.as_bytes()]), Referer::Host(Cow::Owned(expected)));
        }

        #[test]
        fn exact_patterns_match_their_normal_form(pattern in "[a-zA-Z0-9_-]{1,10}(\\.[a-zA-Z0-9-]{1,10}){0,3}\\.?") {
            let set = HostSet::new([pattern.as_str()]).expect("valid pattern");
            let host = normalize_host(&pattern);
            proptest::prop_assert_eq!(set.best_match(&host), Some(HostMatch::Exact));
            let subdomain = format!("www.{host}");
            proptest::prop_assert!(!set.matches(&subdomain));
            let wildcard = HostSet::new([format!("*.{pattern}").as_str()]).expect("valid pattern");
            proptest::prop_assert!(!wildcard.matches(&host));
            proptest::prop_assert_eq!(wildcard.best_match(&subdomain), Some(HostMatch::Subdomains));
        }

        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..48)) {
            let _ = referer([&bytes[..]]);
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_host_pattern(&text);
            let set = HostSet::new(["example.com", "*.example.com", "*.b.c"]).expect("valid patterns");
            let _ = set.best_match(&normalize_host(&text));
        }
    }
}
