//! The rulebook's shape: serde mirrors of SPEC section 2, one struct per table.
//!
//! Every struct rejects unknown keys, and values compiled later keep their
//! spans so that `compile` can point at them. Nothing here validates a value or
//! applies a default: `policy::compile` does both, and documents the defaults.
//! Keys that take two shapes (`lists.NAME`, `test.expect`) have hand-written
//! `Deserialize` impls so their spans survive (`#[serde(untagged)]` loses them).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer};
use toml::Spanned;

use crate::path::{Backslash, EncodedSlash, Semicolon};

/// A list of strings that keeps the span of the list and of every entry.
pub type SpannedList = Spanned<Vec<Spanned<String>>>;

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Public listen addresses.
    pub listen: Option<SpannedList>,
    /// Admin listen address, or "off".
    pub admin: Option<Spanned<String>>,
    /// Environment variable holding the admin bearer token.
    pub admin_token_env: Option<Spanned<String>>,
    /// What happens when no rule decides.
    pub default_action: Option<Spanned<DefaultAction>>,
    /// Whether refusal bodies name the rule.
    pub expose_rule_names: Option<bool>,
    /// `[server.tls]`.
    pub tls: Option<Spanned<TlsSpec>>,
    /// `[server.limits]`.
    pub limits: Option<LimitsSpec>,
}

/// `server.default_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    /// Forward requests no rule decided.
    Allow,
    /// Refuse them with `default_deny`.
    Deny,
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// TLS listen addresses.
    pub listen: Option<SpannedList>,
    /// Certificate chain, PEM.
    pub cert: Spanned<String>,
    /// Private key, PEM.
    pub key: Spanned<String>,
}

/// `[server.limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Time allowed to receive a request head.
    pub header_timeout: Option<Spanned<String>>,
    /// Largest request head.
    pub max_header_bytes: Option<Spanned<i64>>,
    /// Largest request body; 0 for no limit.
    pub max_body_bytes: Option<Spanned<i64>>,
    /// Longest wait for request-body bytes.
    pub body_timeout: Option<Spanned<String>>,
    /// Longest idle time of a keep-alive connection.
    pub idle_timeout: Option<Spanned<String>>,
    /// Longest wait for in-flight requests at shutdown.
    pub shutdown_grace: Option<Spanned<String>>,
    /// Most simultaneous client connections.
    pub max_connections: Option<Spanned<i64>>,
    /// Longest wait for an upstream connection.
    pub upstream_connect_timeout: Option<Spanned<String>>,
    /// Longest wait for an upstream response head.
    pub upstream_timeout: Option<Spanned<String>>,
}

/// `[client_ip]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpSpec {
    /// Peers whose forwarding headers are believed: IPs, CIDRs, `@list`s.
    pub trusted_proxies: Option<SpannedList>,
    /// The header that names the client.
    pub header: Option<Spanned<String>>,
    /// Expect a PROXY protocol header from trusted peers.
    pub proxy_protocol: Option<bool>,
}

/// `[paths]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsSpec {
    /// Merge repeated slashes.
    pub merge_slashes: Option<bool>,
    /// What `%2F` and `%5C` do.
    pub encoded_slash: Option<EncodedSlash>,
    /// What a raw `\` does.
    pub backslash: Option<Backslash>,
    /// What `;` does.
    pub semicolon: Option<Semicolon>,
}

/// `[geoip]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipSpec {
    /// The MaxMind DB file.
    pub database: Spanned<String>,
}

/// `[auth]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// A JWKS file with the verification keys.
    pub jwks_file: Option<Spanned<String>>,
    /// Environment variable holding an HS256 secret.
    pub hs256_secret_env: Option<Spanned<String>>,
    /// Required `iss`.
    pub issuer: Option<Spanned<String>>,
    /// Required `aud`.
    pub audience: Option<Spanned<String>>,
    /// The claim holding the roles.
    pub roles_claim: Option<Spanned<String>>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// Which requests get an access-log line.
    pub access: Option<AccessLog>,
}

/// `log.access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// Every request.
    All,
    /// Refused requests only.
    Refusals,
    /// None.
    Off,
}

/// One entry of `[lists]`: inline addresses or a file of them.
#[derive(Debug)]
pub enum ListSpec {
    /// `name = ["198.51.100.0/24", …]`.
    Inline(Vec<Spanned<String>>),
    /// `name = { file = "lists/x.txt" }`.
    File(ListFileSpec),
}

/// `{ file = "…" }` in `[lists]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFileSpec {
    /// The file: one IP or CIDR a line, `#` comments.
    pub file: Spanned<String>,
}

impl<'de> Deserialize<'de> for ListSpec {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = ListSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of IPs and CIDRs or a table { file = \"…\" }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListSpec, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element()? {
                    entries.push(entry);
                }
                Ok(ListSpec::Inline(entries))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ListSpec, A::Error> {
                ListFileSpec::deserialize(MapAccessDeserializer::new(map)).map(ListSpec::File)
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Host patterns; default any.
    pub host: Option<SpannedList>,
    /// Segment-aware path prefix; default "/".
    pub path_prefix: Option<Spanned<String>>,
    /// `http://host:port` to forward to.
    pub upstream: Option<Spanned<String>>,
    /// A folder to serve files from.
    pub root: Option<Spanned<String>>,
    /// Directory-index names.
    pub index: Option<SpannedList>,
    /// List directories without an index.
    pub autoindex: Option<bool>,
    /// Forward the client's Host.
    pub preserve_host: Option<bool>,
    /// Extra CA for https upstreams.
    pub ca_file: Option<Spanned<String>>,
    /// Server name for https upstreams.
    pub sni: Option<Spanned<String>>,
}

/// `rule.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Forward when it matches.
    Allow,
    /// Refuse when it matches.
    Deny,
    /// When it matches, require a token with one of `roles`.
    Require,
}

/// `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name.
    pub name: Spanned<String>,
    /// What a match does.
    pub action: Spanned<Action>,
    /// Client address in any of these.
    pub ip: Option<SpannedList>,
    /// Client address in none of these.
    pub not_ip: Option<SpannedList>,
    /// Client country in any of these.
    pub country: Option<SpannedList>,
    /// Client country in none of these.
    pub not_country: Option<SpannedList>,
    /// Method is one of these.
    pub method: Option<SpannedList>,
    /// Method is none of these.
    pub not_method: Option<SpannedList>,
    /// Host matches one of these.
    pub host: Option<SpannedList>,
    /// Host matches none of these.
    pub not_host: Option<SpannedList>,
    /// Canonical path under one of these prefixes.
    pub path_prefix: Option<SpannedList>,
    /// Canonical path under none of these prefixes.
    pub not_path_prefix: Option<SpannedList>,
    /// Canonical path matches one of these regexes.
    pub path_regex: Option<SpannedList>,
    /// Canonical path matches none of these regexes.
    pub not_path_regex: Option<SpannedList>,
    /// Raw query matches one of these regexes.
    pub query_regex: Option<SpannedList>,
    /// Header name → regex; any instance matching holds.
    pub header_regex: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// The request is a hotlink.
    pub hotlink: Option<Spanned<HotlinkSpec>>,
    /// Roles of a `require` rule.
    pub roles: Option<SpannedList>,
    /// Replaces the default refusal message.
    pub message: Option<Spanned<String>>,
    /// Status of a `deny`: 403, 404, 410 or 451.
    pub status: Option<Spanned<i64>>,
    /// Report, do not enforce.
    pub dry_run: Option<bool>,
}

/// `rule.hotlink`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotlinkSpec {
    /// Referer hosts that are not hotlinks.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// A missing or empty Referer is not a hotlink.
    pub allow_missing: Option<bool>,
    /// A malformed Referer is not a hotlink.
    pub allow_malformed: Option<bool>,
    /// A Referer naming the request's own Host is not a hotlink.
    pub allow_own_host: Option<bool>,
}

/// `[[test]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// What the case checks.
    pub name: Spanned<String>,
    /// The request.
    pub request: Spanned<TestRequestSpec>,
    /// What the rulebook must decide.
    pub expect: Spanned<ExpectSpec>,
}

/// `test.request`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequestSpec {
    /// Client address.
    pub ip: Spanned<String>,
    /// Default GET.
    pub method: Option<Spanned<String>>,
    /// Default none.
    pub host: Option<Spanned<String>>,
    /// Default "/"; may carry `?query`.
    pub path: Option<Spanned<String>>,
    /// Referer header.
    pub referer: Option<Spanned<String>>,
    /// Other headers.
    pub headers: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    /// Stands for the GeoIP answer.
    pub country: Option<Spanned<String>>,
    /// A verified token with these roles.
    pub token_roles: Option<SpannedList>,
}

/// `test.expect`: `"allow"`, `"deny"`, or a table.
#[derive(Debug, Default)]
pub struct ExpectSpec {
    /// Allow or deny.
    pub decision: Option<Spanned<ExpectDecision>>,
    /// Status code.
    pub status: Option<Spanned<i64>>,
    /// Reason code.
    pub reason: Option<Spanned<String>>,
    /// Rule name, or "(default)".
    pub rule: Option<Spanned<String>>,
}

/// `expect.decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectDecision {
    /// Forwarded.
    Allow,
    /// Refused.
    Deny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectTable {
    decision: Option<Spanned<ExpectDecision>>,
    status: Option<Spanned<i64>>,
    reason: Option<Spanned<String>>,
    rule: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for ExpectSpec {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExpectVisitor;
        impl<'de> Visitor<'de> for ExpectVisitor {
            type Value = ExpectSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"allow\", \"deny\", or a table of decision, status, reason, rule")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExpectSpec, E> {
                let decision = ExpectDecision::deserialize(de::value::StrDeserializer::new(v))?;
                // The span of the whole value is the string's; the caller keeps it.
                Ok(ExpectSpec {
                    decision: Some(Spanned::new(0..0, decision)),
                    ..ExpectSpec::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ExpectSpec, A::Error> {
                let ExpectTable {
                    decision,
                    status,
                    reason,
                    rule,
                } = ExpectTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(ExpectSpec {
                    decision,
                    status,
                    reason,
                    rule,
                })
            }
        }
        deserializer.deserialize_any(ExpectVisitor)
    }
}
