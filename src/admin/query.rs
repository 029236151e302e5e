//! The query of `GET /explain` (SPEC 10) read into a [`Probe`], with the
//! same meaning and defaults as the options of `edgeguard explain` (SPEC 1):
//! `ip` (required), `path` (default `/`, may carry `?query`), `method`
//! (default GET), `host`, `referer`, `header` (repeatable, `Name: value`),
//! `roles` (comma-separated; empty: a token without roles), `country`.

use http::{HeaderName, HeaderValue};

use crate::geo::Country;
use crate::policy::values::parse_method;
use crate::probe::Probe;

/// Why a query was refused (answered 400 with this message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// A percent-escape that is not two hex digits, or bytes that are not UTF-8.
    #[error("invalid percent-encoding in the query")]
    Encoding,
    /// `ip` is missing.
    #[error("missing parameter ip")]
    MissingIp,
    /// A parameter that `/explain` does not take.
    #[error("unknown parameter {0:?}")]
    Unknown(String),
    /// A parameter other than `header` given twice.
    #[error("parameter {0} given twice")]
    Repeated(&'static str),
    /// A value that does not parse.
    #[error("invalid {name} {value:?}: {why}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },
}

/// Splits a query into decoded `(name, value)` pairs (`+` is a space).
pub fn pairs(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn decode(s: &str) -> Result<String, QueryError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(QueryError::Encoding)?;
                let hex = std::str::from_utf8(hex).map_err(|_| QueryError::Encoding)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| QueryError::Encoding)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError::Encoding)
}

fn invalid(name: &'static str, value: &str, why: impl ToString) -> QueryError {
    QueryError::Invalid {
        name,
        value: value.to_owned(),
        why: why.to_string(),
    }
}

/// The probe a query describes.
pub fn probe(query: Option<&str>) -> Result<Probe, QueryError> {
    let pairs = pairs(query.unwrap_or(""))?;
    let mut seen: Vec<&'static str> = Vec::new();
    let mut once = |name: &'static str| {
        if seen.contains(&name) {
            return Err(QueryError::Repeated(name));
        }
        seen.push(name);
        Ok(())
    };
    let ip = pairs
        .iter()
        .find(|(n, _)| n == "ip")
        .ok_or(QueryError::MissingIp)?;
    let ip = ip.1.trim().parse().map_err(|e| invalid("ip", &ip.1, e))?;
    let mut probe = Probe::new(ip);
    for (name, value) in &pairs {
        match name.as_str() {
            "ip" => once("ip")?,
            "path" => {
                once("path")?;
                probe.target = value.clone();
            }
            "method" => {
                once("method")?;
                probe.method = parse_method(value).map_err(|e| invalid("method", value, e))?;
            }
            "host" => {
                once("host")?;
                probe.host = value.clone();
            }
            "referer" => {
                once("referer")?;
                probe
                    .referer(value)
                    .map_err(|e| invalid("referer", value, e))?;
            }
            "header" => {
                let (n, v) = value
                    .split_once(':')
                    .ok_or_else(|| invalid("header", value, "write 'Name: value'"))?;
                let n = HeaderName::from_bytes(n.trim().as_bytes())
                    .map_err(|e| invalid("header", value, e))?;
                let v = HeaderValue::from_str(v.trim()).map_err(|e| invalid("header", value, e))?;
                probe.headers.append(n, v);
            }
            "roles" => {
                once("roles")?;
                probe.roles = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
            "country" => {
                once("country")?;
                probe.country = Some(
                    Country::parse(value)
                        .ok_or_else(|| invalid("country", value, "write two letters"))?,
                );
            }
            other => return Err(QueryError::Unknown(other.to_owned())),
        }
    }
    Ok(probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_is_read_with_the_cli_defaults() {
        let p = probe(Some(
            "ip=203.0.113.7&path=%2Fadmin%2Fx%3Fa%3D1&method=post&host=Example.com\
             &referer=https%3A%2F%2Fother.test%2F&header=User-Agent%3A+sqlmap%2F1.0\
             &header=X-A%3A1&roles=admin,+viewer&country=cn",
        ))
        .expect("parses");
        assert_eq!(p.ip.to_string(), "203.0.113.7");
        assert_eq!(p.target, "/admin/x?a=1");
        assert_eq!(p.method, http::Method::POST);
        assert_eq!(p.host, "Example.com");
        assert_eq!(p.headers["referer"], "https://other.test/");
        assert_eq!(p.headers["user-agent"], "sqlmap/1.0");
        assert_eq!(p.headers["x-a"], "1");
        assert_eq!(p.roles, Some(vec!["admin".to_owned(), "viewer".to_owned()]));
        assert_eq!(p.country, Country::parse("CN"));
        let d = probe(Some("ip=::ffff:192.0.2.1")).expect("parses");
        assert_eq!(
            (d.ip.to_string(), d.target.as_str()),
            ("192.0.2.1".to_owned(), "/")
        );
        assert_eq!((d.method, d.roles), (http::Method::GET, None));
        assert_eq!(
            probe(Some("ip=192.0.2.1&roles=")).expect("parses").roles,
            Some(vec![])
        );
    }

    #[test]
    fn bad_queries_are_refused_with_what_is_wrong() {
        let cases = [
            ("", "missing parameter ip"),
            ("path=/", "missing parameter ip"),
            ("ip=nope", "invalid ip \"nope\": invalid IP address syntax"),
            ("ip=192.0.2.1&ip=192.0.2.2", "parameter ip given twice"),
            ("ip=192.0.2.1&bogus=1", "unknown parameter \"bogus\""),
            (
                "ip=192.0.2.1&country=CHN",
                "invalid country \"CHN\": write two letters",
            ),
            (
                "ip=192.0.2.1&header=NoColon",
                "invalid header \"NoColon\": write 'Name: value'",
            ),
            (
                "ip=192.0.2.1&path=%zz",
                "invalid percent-encoding in the query",
            ),
            (
                "ip=192.0.2.1&path=%ff",
                "invalid percent-encoding in the query",
            ),
        ];
        for (query, message) in cases {
            let e = probe(Some(query)).expect_err(query);
            assert_eq!(e.to_string(), message, "{query}");
        }
    }
}
