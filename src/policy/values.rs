//! Parsers for the scalar values of a rulebook: durations, addresses, upstream
//! URLs, HTTP methods. Each returns a message that names the value, for the
//! caller to locate.

use std::net::SocketAddr;
use std::time::Duration;

/// Parses `"250ms"`, `"10s"`, `"5m"` or `"1h"`: a whole number and one unit.
/// Zero is refused: every duration of the rulebook is a timeout or a grace.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let invalid = || {
        format!(
            "invalid duration \"{s}\": write a whole number and a unit, e.g. \"250ms\", \"10s\", \"5m\", \"1h\""
        )
    };
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(invalid()),
    };
    if duration.is_zero() {
        return Err(format!("duration \"{s}\" must be greater than zero"));
    }
    Ok(duration)
}

/// Parses a listen address: `IP:PORT`, IPv6 in brackets.
pub fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("invalid address \"{s}\": write IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::]:8080\"")
    })
}

/// An upstream: scheme, host and port, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host:port`, the port always present.
    pub authority: http::uri::Authority,
    /// The `Host` upstream requests carry unless the route preserves the
    /// client's: the authority, without the port when it is the scheme's
    /// default.
    pub host: http::HeaderValue,
    /// How an `https` upstream is reached; set when its route compiles.
    pub tls: Option<std::sync::Arc<crate::connect::UpstreamTls>>,
}

/// Parses `http://host[:port]` or `https://host[:port]` (a trailing `/` is
/// allowed). A path, a query, userinfo, or another scheme is refused.
pub fn parse_upstream(s: &str) -> Result<UpstreamUrl, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("invalid upstream URL \"{s}\": {e}"))?;
    let (scheme, default_port) = match uri.scheme_str() {
        Some("http") => (http::uri::Scheme::HTTP, 80),
        Some("https") => (http::uri::Scheme::HTTPS, 443),
        Some(other) => {
            return Err(format!(
                "upstream \"{s}\": unsupported scheme \"{other}\"; use http:// or https://"
            ));
        }
        None => {
            return Err(format!(
                "upstream \"{s}\" needs a scheme, host and port, e.g. \"http://127.0.0.1:3000\""
            ));
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("upstream \"{s}\" has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("upstream \"{s}\" must not carry userinfo"));
    }
    if authority.host().is_empty() {
        return Err(format!("upstream \"{s}\" has no host"));
    }
    // `Uri` reports "/" for both "http://h" and "http://h/".
    if uri.path() != "/" {
        return Err(format!(
            "upstream \"{s}\" must not have a path: routes forward the request's path unchanged"
        ));
    }
    if uri.query().is_some() {
        return Err(format!("upstream \"{s}\" must not have a query"));
    }
    let port = authority.port_u16().unwrap_or(default_port);
    let authority: http::uri::Authority = format!("{}:{port}", authority.host())
        .parse()
        .map_err(|e| format!("invalid upstream URL \"{s}\": {e}"))?;
    // As nginx's $proxy_host: the port only when it is not the scheme's.
    let host_text = if port == default_port {
        authority.host()
    } else {
        authority.as_str()
    };
    let host = http::HeaderValue::from_str(host_text)
        .map_err(|e| format!("invalid upstream URL \"{s}\": {e}"))?;
    Ok(UpstreamUrl {
        scheme,
        authority,
        host,
        tls: None,
    })
}

/// Parses an HTTP method name (a token), upper-cased.
pub fn parse_method(s: &str) -> Result<http::Method, String> {
    let valid = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(format!("invalid HTTP method \"{s}\""));
    }
    http::Method::from_bytes(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid HTTP method \"{s}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_ms_s_m_h() {
        let table = [
            ("250ms", Duration::from_millis(250)),
            ("10s", Duration::from_secs(10)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
        ];
        for (input, expected) in table {
            assert_eq!(parse_duration(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn durations_refuse_other_shapes() {
        for input in [
            "", "10", "s", "1.5s", "10 s", "-1s", "1d", "0s", "1m30s", "10S",
        ] {
            assert!(parse_duration(input).is_err(), "{input}");
        }
    }

    #[test]
    fn upstreams_are_scheme_host_port_only() {
        let ok = [
            ("http://127.0.0.1:3000", "127.0.0.1:3000"),
            ("http://app", "app:80"),
            ("http://app/", "app:80"),
            ("http://[::1]:8080", "[::1]:8080"),
            ("https://app", "app:443"),
            ("https://app:8443/", "app:8443"),
        ];
        for (input, authority) in ok {
            let parsed = parse_upstream(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.authority.as_str(), authority);
        }
        // The Host an upstream gets names the port only when it is not the
        // scheme's default.
        for (input, host) in [
            ("http://app", "app"),
            ("http://app:80", "app"),
            ("http://app:8080", "app:8080"),
            ("https://app", "app"),
            ("https://app:443/", "app"),
            ("https://[::1]:8443", "[::1]:8443"),
            ("http://[::1]", "[::1]"),
        ] {
            let parsed = parse_upstream(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.host, host, "{input}");
        }
        let bad = [
            ("http://app/api", "must not have a path"),
            ("http://app//", "must not have a path"),
            ("http://app?x=1", "must not have a query"),
            ("ftp://app", "unsupported scheme \"ftp\""),
            ("127.0.0.1:3000", "needs a scheme"),
            ("http://u:p@app", "userinfo"),
        ];
        for (input, message) in bad {
            let err = parse_upstream(input).expect_err(input);
            assert!(err.contains(message), "{input}: {err}");
        }
    }

    #[test]
    fn methods_are_tokens_upper_cased() {
        assert_eq!(parse_method("get"), Ok(http::Method::GET));
        assert_eq!(
            parse_method("PURGE").map(|m| m.to_string()),
            Ok("PURGE".into())
        );
        assert!(parse_method("GE T").is_err());
        assert!(parse_method("").is_err());
    }
}
