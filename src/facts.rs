//! [`RequestFacts`]: everything a decision reads about a request, already
//! made canonical — the client address after the trusted-proxy walk, the
//! normalized host, the canonical path — so that `evaluate` never parses.
//!
//! The gateway gathers facts from a live request ([`target`] reads its host,
//! path and query); `explain` and `[[test]]` cases build them from their own
//! flags and tables.

use std::net::IpAddr;

use http::header::HOST;
use http::{Method, Version, request};

use crate::headers::Headers;

use crate::geo::Country;

/// The facts of one request that rules are decided on.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The client address (SPEC 4), IPv4-mapped addresses folded to IPv4.
    pub client_ip: IpAddr,
    /// Stands for the GeoIP answer when set (`--country`, tests); otherwise the
    /// country is looked up, once, when a country condition is reached.
    pub country: Option<Country>,
    /// The request method.
    pub method: &'a Method,
    /// The host, normalized (lowercase, no port, no trailing dot); empty when
    /// the request has none.
    pub host: &'a str,
    /// The canonical path (SPEC 5).
    pub path: &'a str,
    /// How a mainstream upstream reads `path`, when the `[paths]` settings
    /// make that differ (`path::upstream_view`); rules hold when they hold
    /// for either.
    pub upstream_path: Option<&'a str>,
    /// The query as received, without the `?`.
    pub query: Option<&'a str>,
    /// The request headers (for `header_regex` and the Referer).
    pub headers: Headers<'a>,
    /// The bearer token, when there is one.
    pub token: Token<'a>,
}

/// The request's credentials as far as `require` rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A bearer token not yet verified; verified when a `require` rule is reached.
    Bearer(&'a str),
    /// An already verified token with these roles (`--roles`, `token_roles`).
    Roles(&'a [String]),
}

impl<'a> Token<'a> {
    /// The bearer token of an `Authorization` header value, if it holds one.
    pub fn from_authorization(value: Option<&'a [u8]>) -> Token<'a> {
        let Some(value) = value
            .filter(|v| v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
            .and_then(|v| std::str::from_utf8(v).ok())
        else {
            return Token::Missing;
        };
        let mut parts = value.trim().splitn(2, ' ');
        match (parts.next(), parts.next()) {
            (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") => {
                let token = token.trim();
                if token.is_empty() {
                    Token::Missing
                } else {
                    Token::Bearer(token)
                }
            }
            _ => Token::Missing,
        }
    }
}

/// Where a request is aimed: its host as sent and its path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The host (with any port) from the absolute-form target, `:authority`,
    /// or the Host header; `None` for an HTTP/1.0 request without one.
    pub host: Option<&'a str>,
    /// The path as received (not yet canonical).
    pub path: &'a str,
    /// The query as received, without the `?`.
    pub query: Option<&'a str>,
}

/// Why a request target cannot be decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `CONNECT`: answered 405.
    #[error("CONNECT is not supported")]
    Connect,
    /// `OPTIONS *`: answered by the gateway.
    #[error("OPTIONS * is answered by the gateway")]
    OptionsStar,
    /// Anything else that cannot be read unambiguously: answered 400.
    #[error("bad request: {0}")]
    Bad(&'static str),
}

/// Reads the target of a request (SPEC 5): an absolute-form target is
/// reduced to its path, its authority standing for Host; in HTTP/2,
/// `:authority` is the host and a differing Host header is refused; an
/// HTTP/1.1 request needs exactly one Host header; `*` is only for `OPTIONS`.
pub fn target<'a>(
    parts: &'a request::Parts,
    headers: Headers<'a>,
) -> Result<Target<'a>, TargetError> {
    if parts.method == Method::CONNECT {
        return Err(TargetError::Connect);
    }
    let uri = &parts.uri;
    if uri.path() == "*" {
        return if parts.method == Method::OPTIONS && uri.authority().is_none() {
            Err(TargetError::OptionsStar)
        } else {
            Err(TargetError::Bad("\"*\" is only a target for OPTIONS"))
        };
    }
    let mut hosts = headers.get_all(&HOST);
    let host_header = match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(TargetError::Bad("several Host headers")),
        (Some(h), None) => Some(
            std::str::from_utf8(h)
                .ok()
                .filter(|h| is_host(h))
                .ok_or(TargetError::Bad("invalid Host header"))?,
        ),
        (None, None) => None,
    };
    let host = match uri.authority() {
        Some(authority) => {
            match uri.scheme_str() {
                Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
                _ => return Err(TargetError::Bad("unsupported scheme in the target")),
            }
            if authority.as_str().contains('@') || !is_host(authority.as_str()) {
                return Err(TargetError::Bad("invalid authority in the target"));
            }
            if parts.version == Version::HTTP_2
                && let Some(h) = host_header
                && !h.eq_ignore_ascii_case(authority.as_str())
            {
                return Err(TargetError::Bad("Host differs from :authority"));
            }
            Some(authority.as_str())
        }
        None if parts.version == Version::HTTP_11 && host_header.is_none() => {
            return Err(TargetError::Bad("HTTP/1.1 request without Host"));
        }
        None => host_header,
    };
    Ok(Target {
        host,
        path: uri.path(),
        query: uri.query(),
    })
}

/// Refuses framing that is not unambiguous (SPEC 5), beyond what the HTTP
/// parser already refuses: more than one Content-Length (even equal ones),
/// and a Transfer-Encoding other than a single `chunked`.
pub fn framing(parts: &request::Parts) -> Result<(), TargetError> {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    if parts.headers.get_all(CONTENT_LENGTH).iter().count() > 1 {
        return Err(TargetError::Bad("several Content-Length headers"));
    }
    let mut codings = parts.headers.get_all(TRANSFER_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => Ok(()),
        (Some(te), None) if te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(TargetError::Bad("unsupported Transfer-Encoding")),
    }
}

/// Whether `s` is a plausible `host[:port]`: a name of letters, digits,
/// `-`, `.`, `_` and `~`, or a bracketed IPv6 literal, then an optional
/// numeric port. Userinfo, paths, escapes and anything else are refused.
fn is_host(s: &str) -> bool {
    // One pass over the bytes: this runs for every request.
    let b = s.as_bytes();
    let port = if let Some(rest) = b.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&c| c == b']') else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return false;
        }
        match &rest[close + 1..] {
            [] => return true,
            [b':', port @ ..] => port,
            _ => return false,
        }
    } else {
        let name = b
            .iter()
            .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
            .count();
        match (name, b.get(name)) {
            (0, _) => return false,
            (_, None) => return true,
            (_, Some(b':')) => &b[name + 1..],
            (_, Some(_)) => return false,
        }
    };
    port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= u32::from(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, target: &str, version: Version, hosts: &[&str]) -> request::Parts {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(target)
            .version(version);
        for h in hosts {
            builder = builder.header(HOST, *h);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn host_values_are_a_name_or_bracketed_literal_and_an_optional_port() {
        let good = [
            "example.com",
            "Example.COM:8080",
            "a-b_c~d.e",
            "h:",
            "h:65535",
            "10.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "[::1]:",
            "[2001:db8::1.2.3.4]",
        ];
        for h in good {
            assert!(is_host(h), "{h}");
        }
        let bad = [
            "", ":80", "h:65536", "h:123456", "h:+1", "h:8a", "h:80:80", "user@h", "h/x", "h%41",
            "h h", "[]", "[::1", "[::1]x", "[::1]:x", "[::g]", "::1", "é.com",
        ];
        for h in bad {
            assert!(!is_host(h), "{h}");
        }
    }

    #[test]
    fn targets_are_read_per_spec_section_5() {
        use Version as V;
        let ok = [
            (
                "GET",
                "/a?b",
                V::HTTP_11,
                &["example.com"][..],
                Some("example.com"),
                "/a",
                Some("b"),
            ),
            (
                "GET",
                "http://Example.com:8080/p",
                V::HTTP_11,
                &["other"][..],
                Some("Example.com:8080"),
                "/p",
                None,
            ),
            ("GET", "http://h", V::HTTP_11, &[][..], Some("h"), "/", None),
            ("GET", "/x", V::HTTP_10, &[][..], None, "/x", None),
            (
                "GET",
                "https://h/p",
                V::HTTP_2,
                &["h"][..],
                Some("h"),
                "/p",
                None,
            ),
            (
                "GET",
                "https://h/p",
                V::HTTP_2,
                &[][..],
                Some("h"),
                "/p",
                None,
            ),
        ];
        for (m, t, v, hosts, host, path, query) in ok {
            let p = parts(m, t, v, hosts);
            assert_eq!(
                target(&p, (&p.headers).into()),
                Ok(Target { host, path, query }),
                "{m} {t}"
            );
        }
        let bad = [
            (
                "CONNECT",
                "example.com:443",
                V::HTTP_11,
                &["example.com"][..],
                TargetError::Connect,
            ),
            (
                "OPTIONS",
                "*",
                V::HTTP_11,
                &["h"][..],
                TargetError::OptionsStar,
            ),
            (
                "GET",
                "*",
                V::HTTP_11,
                &["h"][..],
                TargetError::Bad("\"*\" is only a target for OPTIONS"),
            ),
            (
                "GET",
                "/",
                V::HTTP_11,
                &[][..],
                TargetError::Bad("HTTP/1.1 request without Host"),
            ),
            (
                "GET",
                "/",
                V::HTTP_11,
                &["a", "b"][..],
                TargetError::Bad("several Host headers"),
            ),
            (
                "GET",
                "/",
                V::HTTP_11,
                &["a b"][..],
                TargetError::Bad("invalid Host header"),
            ),
            (
                "GET",
                "/",
                V::HTTP_11,
                &["u@h"][..],
                TargetError::Bad("invalid Host header"),
            ),
            (
                "GET",
                "/",
                V::HTTP_11,
                &["h:abc"][..],
                TargetError::Bad("invalid Host header"),
            ),
            (
                "GET",
                "/",
                V::HTTP_11,
                &["h:99999"][..],
                TargetError::Bad("invalid Host header"),
            ),
            (
                "GET",
                "http://h:abc/p",
                V::HTTP_11,
                &["h"][..],
                TargetError::Bad("invalid authority in the target"),
            ),
            (
                "GET",
                "ftp://h/p",
                V::HTTP_11,
                &["h"][..],
                TargetError::Bad("unsupported scheme in the target"),
            ),
            (
                "GET",
                "http://u@h/p",
                V::HTTP_11,
                &["h"][..],
                TargetError::Bad("invalid authority in the target"),
            ),
            (
                "GET",
                "https://h/p",
                V::HTTP_2,
                &["other"][..],
                TargetError::Bad("Host differs from :authority"),
            ),
        ];
        for (m, t, v, hosts, err) in bad {
            let p = parts(m, t, v, hosts);
            assert_eq!(target(&p, (&p.headers).into()), Err(err), "{m} {t}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_from_authorization() {
        let table: [(&str, Token<'_>); 6] = [
            ("Bearer abc.def.ghi", Token::Bearer("abc.def.ghi")),
            ("bearer   abc", Token::Bearer("abc")),
            ("Basic dXNlcjpwYXNz", Token::Missing),
            ("Bearer", Token::Missing),
            ("Bearer ", Token::Missing),
            ("", Token::Missing),
        ];
        for (header, expected) in table {
            let value = http::HeaderValue::from_str(header).expect("valid header");
            assert_eq!(
                Token::from_authorization(Some(value.as_bytes())),
                expected,
                "{header:?}"
            );
        }
        assert_eq!(Token::from_authorization(None), Token::Missing);
    }
}
