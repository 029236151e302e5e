//! [`RequestFacts`]: everything a decision reads about a request, already
//! made canonical — the client address after the trusted-proxy walk, the
//! normalized host, the canonical path — so that `evaluate` never parses.
//!
//! The gateway gathers facts from a live request; `explain` and `[[test]]`
//! cases build them from their own flags and tables.

use std::net::IpAddr;

use http::{HeaderMap, Method};

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
    /// The query as received, without the `?`.
    pub query: Option<&'a str>,
    /// The request headers (for `header_regex` and the Referer).
    pub headers: &'a HeaderMap,
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
    pub fn from_authorization(value: Option<&'a http::HeaderValue>) -> Token<'a> {
        let Some(value) = value.and_then(|v| v.to_str().ok()) else {
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

#[cfg(test)]
mod tests {
    use super::*;

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
                Token::from_authorization(Some(&value)),
                expected,
                "{header:?}"
            );
        }
        assert_eq!(Token::from_authorization(None), Token::Missing);
    }
}
