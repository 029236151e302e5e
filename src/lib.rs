//! edgeguard: an access-control gateway.
//!
//! ```text
//! config/edgeguard.toml ─ config::read    ─▶ config::Rulebook   serde mirror of the file; spans kept
//!                       ─ Policy::compile ─▶ policy::Policy     validated, sets and RegexSets built, immutable
//!                       ─ ArcSwap::store  ─▶ the one live policy pointer
//! bytes   ─ h1 | hyper ─▶ request parts  h1 reads bodiless HTTP/1 requests; hyper the rest
//!                                         headers::Headers: hyper's map, or h1's lines where they lie
//! request ─ facts      ─▶ RequestFacts   client ip, canonical path, host, headers, token
//!         ─ evaluate   ─▶ Decision       Allow | Refuse(Refusal { rule, reason, status }), + dry-run hits
//!         ─ gateway    ─▶ Answer         fetch (no body) | forward (body, upgrade) | files | respond::Refused
//! ```
//!
//! Nothing at request time reads `config::*`; only `Policy::compile` turns it
//! into runtime form. The decision is a pure function of the policy and the
//! request's facts.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod auth;
pub mod body;
pub mod client_ip;
pub mod config;
pub mod conn;
pub mod connect;
pub mod connections;
pub mod decision;
pub mod evaluate;
pub mod explain;
pub mod facts;
pub mod fetch;
pub mod files;
pub mod forward;
pub mod gateway;
pub mod geo;
pub mod h1;
pub mod headers;
pub mod host;
pub mod ipset;
pub mod limits;
pub mod lints;
pub mod log;
pub mod matcher;
pub mod metrics;
pub mod path;
pub mod policy;
pub mod probe;
pub mod queue;
pub mod reload;
pub mod request_id;
pub mod respond;
pub mod ruletest;
pub mod server;
pub mod tls;
