//! The client address: who sent a request, given the TCP peer and the header that
//! trusted proxies fill in (SPEC section 4).
//!
//! This module owns the trusted-proxy walk over `X-Forwarded-For`, `Forwarded`
//! (RFC 7239) and single-address headers such as `X-Real-IP`, and the parsing of the
//! hostile values found there. It does not own the `trusted_proxies` set (the caller
//! passes a predicate), the PROXY protocol (the caller passes the address a PROXY
//! header stated as the peer), nor the `X-Forwarded-*` headers sent upstream.
//!
//! It is pure and allocation-free: header instances are walked from the last to the
//! first and their entries from right to left, so joining them is never needed, and
//! the walk stops at the first entry that decides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::ControlFlow;
use std::str::FromStr;

use http::HeaderName;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Errors of the `[client_ip]` settings this module validates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIpError {
    /// `[client_ip] header` is not a valid HTTP header name.
    #[error("invalid client_ip header name \"{name}\": not a valid HTTP header name")]
    InvalidHeaderName {
        /// The name as written.
        name: String,
    },
}

/// Which header names the client when the peer is trusted (`[client_ip] header`).
///
/// Defaults to [`ClientHeader::XForwardedFor`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientHeader {
    /// `X-Forwarded-For`: comma-separated addresses, each proxy appending its peer.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239): the `for=` parameter of each comma-separated element.
    Forwarded,
    /// Any single-address header such as `x-real-ip` or `cf-connecting-ip`: believed
    /// only when exactly one instance holds exactly one address.
    Single(HeaderName),
}

impl ClientHeader {
    /// Reads `[client_ip] header`: `x-forwarded-for` and `forwarded` (any case) select
    /// the list walks; any other valid header name (stored lowercased) is a
    /// single-address header.
    ///
    /// Refuses an empty name or one with characters a header name cannot hold.
    pub fn from_name(name: &str) -> Result<Self, ClientIpError> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ClientIpError::InvalidHeaderName {
                name: name.to_owned(),
            }
        })?;
        Ok(if header == X_FORWARDED_FOR {
            Self::XForwardedFor
        } else if header == http::header::FORWARDED {
            Self::Forwarded
        } else {
            Self::Single(header)
        })
    }

    /// The header to read from the request (lowercase).
    pub fn header_name(&self) -> &HeaderName {
        match self {
            Self::XForwardedFor => &X_FORWARDED_FOR,
            Self::Forwarded => &http::header::FORWARDED,
            Self::Single(name) => name,
        }
    }
}

/// The client address of a request, in canonical form (an IPv4-mapped IPv6 address is
/// folded to IPv4, as [`IpAddr::to_canonical`] does).
///
/// `values` are every instance of `header`'s header, in the order received (e.g.
/// `headers.get_all(header.header_name())`); `is_trusted` says whether a (canonical)
/// address is in `trusted_proxies`.
///
/// - An untrusted peer is the client; the header is not read.
/// - `X-Forwarded-For` and `Forwarded` from a trusted peer: the instances, joined,
///   are walked from the rightmost entry to the leftmost. Trusted entries are
///   skipped; the first untrusted one is the client; when every entry is trusted,
///   the leftmost is (the peer when there is none). A malformed entry ends the walk
///   and the last good address found (else the peer) is the client. Malformed: empty,
///   `unknown`, garbage, non-UTF-8, a scoped IPv6 address (`fe80::1%eth0`), and in
///   `Forwarded` an element without exactly one `for=`, an obfuscated identifier
///   (`for=_hidden`) or a syntax error anywhere in the element.
/// - A single-address header from a trusted peer: exactly one instance holding one
///   address is the client, trusted or not; anything else (several instances, a
///   list, a malformed value) leaves the peer.
///
/// Entries may carry a port and IPv6 brackets (`1.2.3.4:80`, `[2001:db8::1]:443`,
/// `[2001:db8::1]`, bare `2001:db8::1`); spaces and tabs around them are ignored.
pub fn client_ip<I, F>(peer: IpAddr, values: I, header: &ClientHeader, is_trusted: F) -> IpAddr
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
    I::IntoIter: DoubleEndedIterator,
    F: Fn(IpAddr) -> bool,
{
    let peer = peer.to_canonical();
    if !is_trusted(peer) {
        return peer;
    }
    let list = match header {
        ClientHeader::XForwardedFor => List::XForwardedFor,
        ClientHeader::Forwarded => List::Forwarded,
        ClientHeader::Single(_) => {
            let mut values = values.into_iter();
            return match (values.next(), values.next()) {
                (Some(value), None) => {
                    parse_address(trim(value.as_ref()), Ports::Numeric).unwrap_or(peer)
                }
                _ => peer,
            };
        }
    };
    let mut walk = Walk {
        is_trusted,
        last_good: peer,
    };
    let flow = match list {
        // No quoting: the instances walked one by one are the instances joined.
        List::XForwardedFor => values.into_iter().rev().try_for_each(|value| {
            value
                .as_ref()
                .rsplit(|&b| b == b',')
                .try_for_each(|entry| walk.step(parse_address(trim(entry), Ports::Numeric)))
        }),
        // A quoted string may open in one instance and close in the next:
        // several instances are joined (RFC 9110 5.3) before they are walked.
        List::Forwarded => {
            let mut values = values.into_iter();
            match (values.next(), values.next()) {
                (None, _) => ControlFlow::Continue(()),
                (Some(one), None) => walk_forwarded(one.as_ref(), &mut walk),
                (Some(first), Some(second)) => {
                    let mut joined = first.as_ref().to_vec();
                    for value in std::iter::once(second).chain(values) {
                        joined.extend_from_slice(b", ");
                        joined.extend_from_slice(value.as_ref());
                    }
                    walk_forwarded(&joined, &mut walk)
                }
            }
        }
    };
    match flow {
        ControlFlow::Break(client) => client,
        ControlFlow::Continue(()) => walk.last_good,
    }
}

/// Walks one `Forwarded` value right to left.
fn walk_forwarded<F: Fn(IpAddr) -> bool>(value: &[u8], walk: &mut Walk<F>) -> ControlFlow<IpAddr> {
    ElementsRev { rest: Some(value) }.try_for_each(|element| walk.step(forwarded_for(element)))
}

/// The list headers, walked right to left.
#[derive(Clone, Copy)]
enum List {
    XForwardedFor,
    Forwarded,
}

/// The right-to-left walk over a list of entries.
struct Walk<F> {
    is_trusted: F,
    /// The leftmost trusted entry seen so far, else the peer.
    last_good: IpAddr,
}

impl<F: Fn(IpAddr) -> bool> Walk<F> {
    /// One entry, `None` when malformed; `Break` carries the client.
    fn step(&mut self, entry: Option<IpAddr>) -> ControlFlow<IpAddr> {
        match entry {
            None => ControlFlow::Break(self.last_good),
            Some(ip) if (self.is_trusted)(ip) => {
                self.last_good = ip;
                ControlFlow::Continue(())
            }
            Some(ip) => ControlFlow::Break(ip),
        }
    }
}

/// Which ports an entry may carry.
#[derive(Clone, Copy)]
enum Ports {
    /// Decimal ports only.
    Numeric,
    /// Decimal ports and RFC 7239 obfuscated ports (`_abc`).
    NumericOrObfuscated,
}

/// Spaces and tabs (HTTP's OWS) removed from both ends.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_ows(b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One address with an optional port: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:443`. `None` for anything else.
fn parse_address(entry: &[u8], ports: Ports) -> Option<IpAddr> {
    let ip = if let Some(rest) = entry.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']')?;
        let after = &rest[close + 1..];
        if !after.is_empty() && !is_port(after.strip_prefix(b":")?, ports) {
            return None;
        }
        IpAddr::V6(parse_ascii::<Ipv6Addr>(&rest[..close])?)
    } else if let Some(ip) = parse_ascii::<IpAddr>(entry) {
        ip
    } else {
        let colon = entry.iter().position(|&b| b == b':')?;
        if !is_port(&entry[colon + 1..], ports) {
            return None;
        }
        IpAddr::V4(parse_ascii::<Ipv4Addr>(&entry[..colon])?)
    };
    Some(ip.to_canonical())
}

fn parse_ascii<T: FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A decimal port up to 65535, or with `NumericOrObfuscated` an RFC 7239 `obfport`.
fn is_port(port: &[u8], ports: Ports) -> bool {
    match (port, ports) {
        ([b'_', rest @ ..], Ports::NumericOrObfuscated) => {
            !rest.is_empty()
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        _ => {
            (1..=5).contains(&port.len())
                && port.iter().all(u8::is_ascii_digit)
                && parse_ascii::<u16>(port).is_some()
        }
    }
}

/// The comma-separated elements of one `Forwarded` value, from the last to the first.
/// A comma inside a quoted-string does not separate. For a well-formed value the
/// boundaries are exact; for a malformed one, the element parser refuses what it is
/// handed, so an unbalanced quote can only make an element malformed.
struct ElementsRev<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for ElementsRev<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let value = self.rest?;
        let mut quoted = false;
        for i in (0..value.len()).rev() {
            match value[i] {
                b'"' if !quoted => quoted = true,
                b'"' => {
                    // Inside a quoted-string, a quote preceded by an odd run of
                    // backslashes is escaped; an even run is escaped backslashes.
                    let run = value[..i].iter().rev().take_while(|&&b| b == b'\\').count();
                    if run % 2 == 0 {
                        quoted = false;
                    }
                }
                b',' if !quoted => {
                    self.rest = Some(&value[..i]);
                    return Some(&value[i + 1..]);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(value)
    }
}

/// The `for=` address of one `Forwarded` element (RFC 7239 §4): `;`-separated
/// `token=value` pairs, keys case-insensitive, values a token or a quoted-string.
/// `None` when the element is malformed, has no `for=` or several, or its `for=` is
/// not an address (`unknown`, `_hidden`).
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    let mut rest = element;
    let mut found = None;
    loop {
        rest = trim_start(rest);
        let Some(&first) = rest.first() else { break };
        if first == b';' {
            rest = &rest[1..];
            continue;
        }
        let key_len = rest
            .iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(rest.len());
        if key_len == 0 {
            return None;
        }
        let (key, after_key) = rest.split_at(key_len);
        let after_eq = after_key.strip_prefix(b"=")?;
        let (value, after_value) = if let Some(inner) = after_eq.strip_prefix(b"\"") {
            let close = quoted_string_len(inner)?;
            (&inner[..close], &inner[close + 1..])
        } else {
            let len = after_eq
                .iter()
                .position(|&b| !is_token_value_byte(b))
                .unwrap_or(after_eq.len());
            if len == 0 {
                return None;
            }
            after_eq.split_at(len)
        };
        rest = trim_start(after_value);
        match rest.first() {
            None => {}
            Some(b';') => rest = &rest[1..],
            Some(_) => return None,
        }
        if key.eq_ignore_ascii_case(b"for") && found.replace(value).is_some() {
            return None;
        }
    }
    // An escape has no business in an address; refusing it spares unescaping.
    let value = found?;
    if value.contains(&b'\\') {
        return None;
    }
    parse_address(value, Ports::NumericOrObfuscated)
}

/// The length of a quoted-string's content, `inner` starting after the opening quote
/// (the closing quote is at the returned index). `None` when unterminated or holding a
/// control or non-ASCII byte.
fn quoted_string_len(inner: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'"' => return Some(i),
            b'\\' => {
                let escaped = *inner.get(i + 1)?;
                if !(escaped == b'\t' || (b' '..=b'~').contains(&escaped)) {
                    return None;
                }
                i += 2;
            }
            b'\t' | b' '..=b'~' => i += 1,
            _ => return None,
        }
    }
    None
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte of an unquoted `Forwarded` value: a token, plus `:` `[` `]` so that
/// `for=1.2.3.4:80` and `for=[2001:db8::1]` written without quotes are accepted.
fn is_token_value_byte(b: u8) -> bool {
    is_tchar(b) || matches!(b, b':' | b'[' | b']')
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// 10/8, 127/8, 192.168/16 and 2001:db8:ffff::/48 are the trusted proxies.
    fn is_trusted(ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                a == 10 || a == 127 || (a, b) == (192, 168)
            }
            IpAddr::V6(v6) => v6.segments()[..3] == [0x2001, 0xdb8, 0xffff],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn header(name: &str) -> ClientHeader {
        ClientHeader::from_name(name).expect("test header name")
    }

    const XFF: &str = "x-forwarded-for";
    const FWD: &str = "forwarded";
    const REAL: &str = "x-real-ip";
    const CF: &str = "cf-connecting-ip";

    /// (behaviour, peer, header, instances, expected client)
    #[rustfmt::skip]
    const CASES: &[(&str, &str, &str, &[&str], &str)] = &[
        // Untrusted peers: the header is never believed.
        ("untrusted peer without header is client", "203.0.113.9", XFF, &[], "203.0.113.9"),
        ("untrusted peer spoofing xff is client", "203.0.113.9", XFF, &["1.2.3.4"], "203.0.113.9"),
        ("untrusted peer spoofing forwarded is client", "203.0.113.9", FWD, &["for=1.2.3.4"], "203.0.113.9"),
        ("untrusted peer spoofing x-real-ip is client", "203.0.113.9", REAL, &["1.2.3.4"], "203.0.113.9"),
        ("untrusted peer spoofing trusted entry is client", "203.0.113.9", XFF, &["10.0.0.1"], "203.0.113.9"),
        ("untrusted mapped peer is folded to ipv4", "::ffff:203.0.113.9", XFF, &["1.2.3.4"], "203.0.113.9"),
        ("untrusted ipv6 peer is client", "2001:db8::9", XFF, &["1.2.3.4"], "2001:db8::9"),
        // Trusted peers, X-Forwarded-For.
        ("trusted mapped peer is trusted as ipv4", "::ffff:10.0.0.1", XFF, &["1.2.3.4"], "1.2.3.4"),
        ("trusted ipv6 peer reads header", "2001:db8:ffff::1", XFF, &["1.2.3.4"], "1.2.3.4"),
        ("trusted peer without header is client", "10.0.0.1", XFF, &[], "10.0.0.1"),
        ("xff single entry is client", "10.0.0.1", XFF, &["1.2.3.4"], "1.2.3.4"),
        ("xff trusted entries are skipped", "10.0.0.1", XFF, &["1.2.3.4, 10.0.0.2"], "1.2.3.4"),
        ("xff spoofed left part is ignored", "10.0.0.1", XFF, &["6.6.6.6, 1.2.3.4, 10.0.0.2"], "1.2.3.4"),
        ("xff instances are joined", "10.0.0.1", XFF, &["6.6.6.6", "1.2.3.4, 10.0.0.2"], "1.2.3.4"),
        ("xff instances walked last to first", "10.0.0.1", XFF, &["1.2.3.4", "10.0.0.3", "10.0.0.2"], "1.2.3.4"),
        ("xff last instance untrusted is client", "10.0.0.1", XFF, &["1.2.3.4", "5.6.7.8"], "5.6.7.8"),
        ("xff all trusted gives leftmost", "10.0.0.1", XFF, &["10.0.0.5, 10.0.0.4, 10.0.0.3"], "10.0.0.5"),
        ("xff all trusted across instances gives leftmost", "10.0.0.1", XFF, &["10.0.0.5", "192.168.1.1"], "10.0.0.5"),
        ("xff ports are accepted", "10.0.0.1", XFF, &["1.2.3.4:8080, 10.0.0.2:443"], "1.2.3.4"),
        ("xff bracketed ipv6 with port", "10.0.0.1", XFF, &["[2001:db8::1]:443"], "2001:db8::1"),
        ("xff bracketed ipv6 without port", "10.0.0.1", XFF, &["[2001:db8::1]"], "2001:db8::1"),
        ("xff bare ipv6", "10.0.0.1", XFF, &["2001:db8::1"], "2001:db8::1"),
        ("xff upper-case ipv6", "10.0.0.1", XFF, &["2001:DB8::A"], "2001:db8::a"),
        ("xff trusted ipv6 entries are skipped", "10.0.0.1", XFF, &["2001:db8::1, 2001:db8:ffff::2"], "2001:db8::1"),
        ("xff mapped entry is folded", "10.0.0.1", XFF, &["::ffff:1.2.3.4"], "1.2.3.4"),
        ("xff mapped trusted entry is skipped", "10.0.0.1", XFF, &["1.2.3.4, ::ffff:10.0.0.2"], "1.2.3.4"),
        ("xff bracketed mapped entry with port", "10.0.0.1", XFF, &["[::ffff:1.2.3.4]:80"], "1.2.3.4"),
        ("xff whitespace around entries is trimmed", "10.0.0.1", XFF, &[" 1.2.3.4 ,\t10.0.0.2 "], "1.2.3.4"),
        ("xff ipv6 with trailing group is an address", "10.0.0.1", XFF, &["2001:db8::1:80"], "2001:db8::1:80"),
        ("xff malformed left of client is never reached", "10.0.0.1", XFF, &["garbage, 1.2.3.4"], "1.2.3.4"),
        ("xff malformed rightmost gives peer", "10.0.0.1", XFF, &["1.2.3.4, garbage"], "10.0.0.1"),
        ("xff malformed in middle gives last good", "10.0.0.1", XFF, &["1.2.3.4, garbage, 10.0.0.2"], "10.0.0.2"),
        ("xff unknown ends walk", "10.0.0.1", XFF, &["1.2.3.4, unknown, 10.0.0.2"], "10.0.0.2"),
        ("xff empty entry ends walk", "10.0.0.1", XFF, &["1.2.3.4,,10.0.0.2"], "10.0.0.2"),
        ("xff trailing comma gives peer", "10.0.0.1", XFF, &["1.2.3.4,"], "10.0.0.1"),
        ("xff empty instance gives peer", "10.0.0.1", XFF, &["1.2.3.4", ""], "10.0.0.1"),
        ("xff scoped ipv6 is malformed", "10.0.0.1", XFF, &["fe80::1%eth0"], "10.0.0.1"),
        ("xff bracketed scoped ipv6 is malformed", "10.0.0.1", XFF, &["[fe80::1%eth0]:80"], "10.0.0.1"),
        ("xff port over 65535 is malformed", "10.0.0.1", XFF, &["1.2.3.4:65536"], "10.0.0.1"),
        ("xff named port is malformed", "10.0.0.1", XFF, &["1.2.3.4:http"], "10.0.0.1"),
        ("xff empty port is malformed", "10.0.0.1", XFF, &["1.2.3.4:"], "10.0.0.1"),
        ("xff obfuscated port is malformed", "10.0.0.1", XFF, &["1.2.3.4:_p1"], "10.0.0.1"),
        ("xff ipv4 leading zero is malformed", "10.0.0.1", XFF, &["01.2.3.4"], "10.0.0.1"),
        ("xff bracketed ipv4 is malformed", "10.0.0.1", XFF, &["[1.2.3.4]"], "10.0.0.1"),
        ("xff junk after bracket is malformed", "10.0.0.1", XFF, &["[2001:db8::1]x"], "10.0.0.1"),
        ("xff quoted entry is malformed", "10.0.0.1", XFF, &["\"1.2.3.4\""], "10.0.0.1"),
        ("xff inner space is malformed", "10.0.0.1", XFF, &["1.2.3. 4"], "10.0.0.1"),
        ("xff hostname is malformed", "10.0.0.1", XFF, &["client.example.com, 10.0.0.2"], "10.0.0.2"),
        // Trusted peers, Forwarded.
        ("forwarded single for", "10.0.0.1", FWD, &["for=1.2.3.4"], "1.2.3.4"),
        ("forwarded quoted ipv6 with port", "10.0.0.1", FWD, &["for=\"[2001:db8:cafe::17]:4711\""], "2001:db8:cafe::17"),
        ("forwarded quoted ipv4 with port", "10.0.0.1", FWD, &["for=\"1.2.3.4:8080\""], "1.2.3.4"),
        ("forwarded obfuscated port is accepted", "10.0.0.1", FWD, &["for=\"1.2.3.4:_p1\""], "1.2.3.4"),
        ("forwarded key is case-insensitive", "10.0.0.1", FWD, &["FoR=1.2.3.4"], "1.2.3.4"),
        ("forwarded other pairs are ignored", "10.0.0.1", FWD, &["for=1.2.3.4;proto=https;by=10.0.0.1;host=example.com"], "1.2.3.4"),
        ("forwarded for need not come first", "10.0.0.1", FWD, &["proto=https; for=1.2.3.4"], "1.2.3.4"),
        ("forwarded trusted elements are skipped", "10.0.0.1", FWD, &["for=1.2.3.4, for=10.0.0.2"], "1.2.3.4"),
        ("forwarded instances are joined", "10.0.0.1", FWD, &["for=6.6.6.6", "for=1.2.3.4;proto=http, for=10.0.0.2"], "1.2.3.4"),
        ("forwarded all trusted gives leftmost", "10.0.0.1", FWD, &["for=10.0.0.9, for=10.0.0.2"], "10.0.0.9"),
        ("forwarded obfuscated identifier ends walk", "10.0.0.1", FWD, &["for=1.2.3.4, for=_hidden, for=10.0.0.2"], "10.0.0.2"),
        ("forwarded unknown gives peer", "10.0.0.1", FWD, &["for=unknown"], "10.0.0.1"),
        ("forwarded quoted unknown gives peer", "10.0.0.1", FWD, &["for=\"unknown\""], "10.0.0.1"),
        ("forwarded element without for ends walk", "10.0.0.1", FWD, &["for=1.2.3.4, proto=https"], "10.0.0.1"),
        ("forwarded by alone is malformed", "10.0.0.1", FWD, &["by=10.0.0.1"], "10.0.0.1"),
        ("forwarded comma in quoted host does not split", "10.0.0.1", FWD, &["for=1.2.3.4;host=\"a,b\", for=10.0.0.2"], "1.2.3.4"),
        ("forwarded escaped quote stays quoted", "10.0.0.1", FWD, &["for=1.2.3.4;host=\"a\\\",b\", for=10.0.0.2"], "1.2.3.4"),
        ("forwarded escaped quote before comma stays quoted", "10.0.0.1", FWD, &["for=1.2.3.4;host=\"x,\\\"\", for=10.0.0.2"], "1.2.3.4"),
        ("forwarded escaped backslash closes quote", "10.0.0.1", FWD, &["for=1.2.3.4;host=\"a\\\\\", for=10.0.0.2"], "1.2.3.4"),
        ("forwarded unterminated quote ends walk", "10.0.0.1", FWD, &["for=\"1.2.3.4, for=10.0.0.2"], "10.0.0.2"),
        ("forwarded quote across instances is one element", "10.0.0.1", FWD, &["for=1.1.1.1;x=\"", "\", for=10.0.0.2"], "1.1.1.1"),
        ("forwarded instances are joined", "10.0.0.1", FWD, &["for=6.6.6.6", "for=1.2.3.4, for=10.0.0.2"], "1.2.3.4"),
        ("forwarded duplicate for is malformed", "10.0.0.1", FWD, &["for=1.2.3.4;for=5.6.7.8"], "10.0.0.1"),
        ("forwarded empty element ends walk", "10.0.0.1", FWD, &["for=1.2.3.4,,for=10.0.0.2"], "10.0.0.2"),
        ("forwarded space around equals is malformed", "10.0.0.1", FWD, &["for = 1.2.3.4"], "10.0.0.1"),
        ("forwarded junk after value is malformed", "10.0.0.1", FWD, &["for=1.2.3.4 x"], "10.0.0.1"),
        ("forwarded empty value is malformed", "10.0.0.1", FWD, &["for="], "10.0.0.1"),
        ("forwarded empty quoted value is malformed", "10.0.0.1", FWD, &["for=\"\""], "10.0.0.1"),
        ("forwarded escape in for value is malformed", "10.0.0.1", FWD, &["for=\"1.2.3.\\4\""], "10.0.0.1"),
        ("forwarded unquoted brackets are accepted", "10.0.0.1", FWD, &["for=[2001:db8::1]"], "2001:db8::1"),
        ("forwarded quoted bare ipv6 is accepted", "10.0.0.1", FWD, &["for=\"2001:db8::1\""], "2001:db8::1"),
        ("forwarded mapped address is folded", "10.0.0.1", FWD, &["for=\"[::ffff:1.2.3.4]\""], "1.2.3.4"),
        ("forwarded scoped ipv6 is malformed", "10.0.0.1", FWD, &["for=\"[fe80::1%eth0]\""], "10.0.0.1"),
        ("forwarded whitespace around elements", "10.0.0.1", FWD, &["  for=1.2.3.4 ;proto=http ,\tfor=10.0.0.2  "], "1.2.3.4"),
        ("forwarded from untrusted-looking xff value is malformed", "10.0.0.1", FWD, &["1.2.3.4"], "10.0.0.1"),
        // Trusted peers, single-address headers.
        ("x-real-ip single address is client", "10.0.0.1", REAL, &["1.2.3.4"], "1.2.3.4"),
        ("x-real-ip trusted address is still client", "10.0.0.1", REAL, &["10.0.0.7"], "10.0.0.7"),
        ("x-real-ip port is accepted", "10.0.0.1", REAL, &["1.2.3.4:80"], "1.2.3.4"),
        ("x-real-ip bracketed ipv6 with port", "10.0.0.1", REAL, &["[2001:db8::1]:80"], "2001:db8::1"),
        ("x-real-ip surrounding space is trimmed", "10.0.0.1", REAL, &[" 1.2.3.4 "], "1.2.3.4"),
        ("x-real-ip two instances give peer", "10.0.0.1", REAL, &["1.2.3.4", "5.6.7.8"], "10.0.0.1"),
        ("x-real-ip comma list gives peer", "10.0.0.1", REAL, &["1.2.3.4, 5.6.7.8"], "10.0.0.1"),
        ("x-real-ip unknown gives peer", "10.0.0.1", REAL, &["unknown"], "10.0.0.1"),
        ("x-real-ip empty gives peer", "10.0.0.1", REAL, &[""], "10.0.0.1"),
        ("x-real-ip missing gives peer", "10.0.0.1", REAL, &[], "10.0.0.1"),
        ("custom header single address is client", "10.0.0.1", CF, &["1.2.3.4"], "1.2.3.4"),
        ("custom header mapped address is folded", "10.0.0.1", CF, &["::ffff:1.2.3.4"], "1.2.3.4"),
        ("custom header garbage gives peer", "10.0.0.1", CF, &["1.2.3.4 garbage"], "10.0.0.1"),
    ];

    #[test]
    fn client_ip_table() {
        for &(behaviour, peer, name, values, expected) in CASES {
            let got = client_ip(ip(peer), values, &header(name), is_trusted);
            assert_eq!(
                got,
                ip(expected),
                "{behaviour}: peer {peer}, {name}: {values:?}"
            );
        }
        assert!(CASES.len() >= 50);
    }

    #[test]
    fn header_map_instances_are_read_in_order() {
        let mut headers = http::HeaderMap::new();
        for value in ["6.6.6.6", "1.2.3.4, 10.0.0.3", "10.0.0.2"] {
            headers.append("x-forwarded-for", http::HeaderValue::from_static(value));
        }
        let xff = header(XFF);
        let got = client_ip(
            ip("10.0.0.1"),
            headers.get_all(xff.header_name()),
            &xff,
            is_trusted,
        );
        assert_eq!(got, ip("1.2.3.4"));
    }

    #[test]
    fn non_utf8_entry_is_malformed() {
        let values: [&[u8]; 1] = [b"1.2.3.4, \xff1.2.3.5, 10.0.0.2"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), values, &header(XFF), is_trusted),
            ip("10.0.0.2")
        );
        let values: [&[u8]; 1] = [b"for=1.2.3.4, for=\"\xff\", for=10.0.0.2"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), values, &header(FWD), is_trusted),
            ip("10.0.0.2")
        );
        let values: [&[u8]; 1] = [b"1.2.3.4\xc3\xa9"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), values, &header(REAL), is_trusted),
            ip("10.0.0.1")
        );
    }

    /// An iterator that fails the test when read.
    struct Unreadable;

    impl Iterator for Unreadable {
        type Item = &'static [u8];
        fn next(&mut self) -> Option<Self::Item> {
            panic!("the header of an untrusted peer was read")
        }
    }

    impl DoubleEndedIterator for Unreadable {
        fn next_back(&mut self) -> Option<Self::Item> {
            panic!("the header of an untrusted peer was read")
        }
    }

    #[test]
    fn untrusted_peer_never_reads_the_header() {
        for name in [XFF, FWD, REAL] {
            assert_eq!(
                client_ip(ip("203.0.113.9"), Unreadable, &header(name), is_trusted),
                ip("203.0.113.9")
            );
        }
    }

    #[test]
    fn walk_stops_at_first_untrusted_entry() {
        let calls = Cell::new(0);
        let counting = |addr| {
            calls.set(calls.get() + 1);
            is_trusted(addr)
        };
        let spoofed = "9.9.9.9, ".repeat(1000);
        let values = [spoofed.as_str(), "1.2.3.4, 10.0.0.2"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), values, &header(XFF), counting),
            ip("1.2.3.4")
        );
        assert_eq!(calls.get(), 3, "peer, 10.0.0.2, 1.2.3.4");
    }

    #[test]
    fn header_names_select_the_walk() {
        let cases: &[(&str, ClientHeader, &str)] = &[
            (
                "x-forwarded-for",
                ClientHeader::XForwardedFor,
                "x-forwarded-for",
            ),
            (
                "X-Forwarded-For",
                ClientHeader::XForwardedFor,
                "x-forwarded-for",
            ),
            ("Forwarded", ClientHeader::Forwarded, "forwarded"),
            (
                "X-Real-IP",
                ClientHeader::Single(HeaderName::from_static("x-real-ip")),
                "x-real-ip",
            ),
            (
                "CF-Connecting-IP",
                ClientHeader::Single(HeaderName::from_static("cf-connecting-ip")),
                "cf-connecting-ip",
            ),
        ];
        for (name, expected, lower) in cases {
            let got = header(name);
            assert_eq!(&got, expected, "{name}");
            assert_eq!(got.header_name().as_str(), *lower, "{name}");
        }
        assert_eq!(ClientHeader::default(), ClientHeader::XForwardedFor);
    }

    #[test]
    fn invalid_header_names_are_refused() {
        for name in ["", "x real ip", "x-real-ip:", "x-réal-ip", "x-real-ip\n"] {
            let error = ClientHeader::from_name(name).expect_err(name);
            assert_eq!(
                error.to_string(),
                format!("invalid client_ip header name \"{name}\": not a valid HTTP header name")
            );
        }
    }

    /// The walk written the obvious way: join, split left to right, walk right to left.
    fn reference(peer: IpAddr, values: &[String], list: List) -> IpAddr {
        let peer = peer.to_canonical();
        if !is_trusted(peer) {
            return peer;
        }
        let joined = values.join(",");
        let entries: Vec<Option<IpAddr>> = match list {
            List::XForwardedFor => joined
                .split(',')
                .map(|entry| parse_address(trim(entry.as_bytes()), Ports::Numeric))
                .collect(),
            List::Forwarded => split_forward(joined.as_bytes())
                .into_iter()
                .map(forwarded_for)
                .collect(),
        };
        let mut last_good = peer;
        for entry in entries.into_iter().rev() {
            match entry {
                None => return last_good,
                Some(addr) if is_trusted(addr) => last_good = addr,
                Some(addr) => return addr,
            }
        }
        last_good
    }

    /// Splits at commas outside quoted-strings, reading left to right.
    fn split_forward(value: &[u8]) -> Vec<&[u8]> {
        let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
        for (i, &b) in value.iter().enumerate() {
            match (quoted, escaped, b) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (_, _, b'"') => quoted = !quoted,
                (false, _, b',') => {
                    parts.push(&value[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&value[start..]);
        parts
    }

    const XFF_ENTRIES: &[&str] = &[
        "1.2.3.4",
        "10.0.0.2",
        " 192.168.5.5 ",
        "[2001:db8::1]:80",
        "2001:db8:ffff::3",
        "unknown",
        "",
        "::ffff:10.9.9.9",
        "5.6.7.8:99",
    ];
    const FORWARDED_ELEMENTS: &[&str] = &[
        "for=1.2.3.4",
        "for=10.0.0.2",
        "for=\"[2001:db8::1]:80\"",
        "for=unknown",
        "for=_x",
        "proto=https",
        "for=10.0.0.3;host=\"a,b\"",
        "for=5.6.7.8;host=\"q\\\",x\"",
        "host=\"\\\\\";for=10.1.1.1",
        " for=192.168.0.1 ",
        "",
        "for=\"::ffff:10.0.0.9\"",
    ];

    fn instances(
        pool: &'static [&'static str],
    ) -> impl proptest::strategy::Strategy<Value = Vec<String>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(pool), 1..4)
                .prop_map(|entries| entries.join(",")),
            0..4,
        )
    }

    proptest::proptest! {
        #[test]
        fn xff_walk_agrees_with_joined_reference(
            values in instances(XFF_ENTRIES),
            peer in proptest::sample::select(&["10.0.0.1", "203.0.113.1", "::ffff:192.168.0.1"][..]),
        ) {
            let peer = ip(peer);
            let expected = reference(peer, &values, List::XForwardedFor);
            proptest::prop_assert_eq!(client_ip(peer, &values, &ClientHeader::XForwardedFor, is_trusted), expected);
        }

        #[test]
        fn forwarded_walk_agrees_with_joined_reference(
            values in instances(FORWARDED_ELEMENTS),
            peer in proptest::sample::select(&["10.0.0.1", "203.0.113.1"][..]),
        ) {
            let peer = ip(peer);
            let expected = reference(peer, &values, List::Forwarded);
            proptest::prop_assert_eq!(client_ip(peer, &values, &ClientHeader::Forwarded, is_trusted), expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(value in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..64)) {
            for name in [XFF, FWD, REAL] {
                let _ = client_ip(ip("10.0.0.1"), [&value[..]], &header(name), is_trusted);
            }
        }
    }
}
