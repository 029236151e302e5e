//! `[server]`, `[server.limits]`, `[client_ip]`, `[paths]` and `[log]` with
//! their defaults applied (SPEC 2). Every default is written once, here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::client_ip::ClientHeader;
use crate::config::{
    AccessLog, ClientIpSpec, DefaultAction, Diagnostics, LimitsSpec, LogSpec, PathsSpec, Rulebook,
    ServerSpec, SpannedList, TlsSpec,
};
use crate::ipset::IpSet;
use crate::path::PathOptions;

use super::rules::{each, ip_sets};
use super::values::{parse_duration, parse_socket_addr};

/// `[server]` and `[log]`, defaults applied.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Public listeners. Defaults to `0.0.0.0:8080`.
    pub listen: Vec<SocketAddr>,
    /// The admin listener; `None` when "off". Defaults to `127.0.0.1:9901`.
    pub admin: Option<SocketAddr>,
    /// The admin bearer token (read from `admin_token_env`), required when
    /// the admin address is not loopback.
    pub admin_token: Option<String>,
    /// Defaults to allow.
    pub default_action: DefaultAction,
    /// Defaults to `true`.
    pub expose_rule_names: bool,
    /// TLS termination, when `[server.tls]` is set.
    pub tls: Option<TlsSettings>,
    /// `[server.limits]`.
    pub limits: Limits,
    /// `[log] access`. Defaults to all.
    pub access_log: AccessLog,
}

/// `[server.tls]`.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Listeners. Defaults to `0.0.0.0:8443`.
    pub listen: Vec<SocketAddr>,
    /// Certificate chain file.
    pub cert: PathBuf,
    /// Private key file.
    pub key: PathBuf,
    /// The loaded certificate and key.
    pub acceptor: crate::tls::Acceptor,
}

/// `[server.limits]`, defaults as SPEC 2 gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Defaults to 10 s.
    pub header_timeout: Duration,
    /// Defaults to 65536; at least 8192.
    pub max_header_bytes: usize,
    /// `None` (the default, written 0): unlimited.
    pub max_body_bytes: Option<u64>,
    /// Defaults to 60 s.
    pub body_timeout: Duration,
    /// Defaults to 60 s.
    pub idle_timeout: Duration,
    /// Defaults to 10 s.
    pub shutdown_grace: Duration,
    /// Defaults to 10000.
    pub max_connections: usize,
    /// Defaults to 3 s.
    pub upstream_connect_timeout: Duration,
    /// Defaults to 60 s.
    pub upstream_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 65536,
            max_body_bytes: None,
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 10000,
            upstream_connect_timeout: Duration::from_secs(3),
            upstream_timeout: Duration::from_secs(60),
        }
    }
}

/// `[client_ip]`.
#[derive(Debug, Clone)]
pub struct ClientIpSettings {
    /// Peers whose forwarding headers are believed. Defaults to none.
    pub trusted: Vec<Arc<IpSet>>,
    /// Defaults to X-Forwarded-For.
    pub header: ClientHeader,
    /// Defaults to `false`.
    pub proxy_protocol: bool,
}

impl ClientIpSettings {
    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted.iter().any(|set| set.contains(ip))
    }
}

pub(super) fn paths(spec: &PathsSpec) -> PathOptions {
    let PathsSpec {
        merge_slashes,
        encoded_slash,
        backslash,
        semicolon,
    } = spec;
    let default = PathOptions::default();
    PathOptions {
        merge_slashes: merge_slashes.unwrap_or(default.merge_slashes),
        encoded_slash: encoded_slash.unwrap_or(default.encoded_slash),
        backslash: backslash.unwrap_or(default.backslash),
        semicolon: semicolon.unwrap_or(default.semicolon),
    }
}

fn addresses(
    list: &Option<SpannedList>,
    default: &str,
    book: &Rulebook,
    diags: &mut Diagnostics,
) -> Vec<SocketAddr> {
    match list {
        None => vec![default.parse().expect("default addresses parse")],
        Some(l) if l.get_ref().is_empty() => {
            diags.error(book.locate(&l.span()), "listen: empty list");
            Vec::new()
        }
        Some(l) => each(l, diags, book, parse_socket_addr),
    }
}

pub(super) fn server(book: &Rulebook, diags: &mut Diagnostics) -> Settings {
    let ServerSpec {
        listen,
        admin,
        admin_token_env,
        default_action,
        expose_rule_names,
        tls,
        limits,
    } = &book.server;
    let listen = addresses(listen, "0.0.0.0:8080", book, diags);
    let admin_addr = match admin {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
        Some(a) if a.get_ref() == "off" => None,
        Some(a) => match parse_socket_addr(a.get_ref()) {
            Ok(addr) => Some(addr),
            Err(message) => {
                diags.error(book.locate(&a.span()), format!("{message}, or \"off\""));
                None
            }
        },
    };
    let admin_token = match admin_token_env {
        None => None,
        Some(env) => match std::env::var(env.get_ref()) {
            Ok(token) if !token.is_empty() => Some(token),
            _ => {
                diags.error(
                    book.locate(&env.span()),
                    format!("environment variable {} is not set or empty", env.get_ref()),
                );
                None
            }
        },
    };
    if let (Some(addr), None, Some(a)) = (admin_addr, admin_token_env, admin)
        && !addr.ip().is_loopback()
    {
        diags.error(
                book.locate(&a.span()),
                format!(
                    "admin address {addr} is not loopback: set admin_token_env to protect it, or use 127.0.0.1"
                ),
            );
    }
    let tls = tls.as_ref().and_then(|t| {
        let TlsSpec { listen, cert, key } = t.get_ref();
        let listen = addresses(listen, "0.0.0.0:8443", book, diags);
        let (cert_path, key_path) = (book.resolve(cert.get_ref()), book.resolve(key.get_ref()));
        match crate::tls::load(&cert_path, &key_path) {
            Ok(acceptor) => Some(TlsSettings {
                listen,
                cert: cert_path,
                key: key_path,
                acceptor,
            }),
            Err(e) => {
                let span = match e {
                    crate::tls::TlsError::Key { .. } => key.span(),
                    _ => cert.span(),
                };
                diags.error_with(book.locate(&span), e.to_string(), e);
                None
            }
        }
    });
    Settings {
        listen,
        admin: admin_addr,
        admin_token,
        default_action: default_action
            .as_ref()
            .map_or(DefaultAction::Allow, |d| *d.get_ref()),
        expose_rule_names: expose_rule_names.unwrap_or(true),
        tls,
        limits: limits_of(limits.as_ref(), book, diags),
        access_log: log(&book.log),
    }
}

fn log(spec: &LogSpec) -> AccessLog {
    let LogSpec { access } = spec;
    access.unwrap_or(AccessLog::All)
}

fn limits_of(spec: Option<&LimitsSpec>, book: &Rulebook, diags: &mut Diagnostics) -> Limits {
    let default = Limits::default();
    let Some(spec) = spec else {
        return default;
    };
    let LimitsSpec {
        header_timeout,
        max_header_bytes,
        max_body_bytes,
        body_timeout,
        idle_timeout,
        shutdown_grace,
        max_connections,
        upstream_connect_timeout,
        upstream_timeout,
    } = spec;
    let mut duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| match value {
        None => default,
        Some(v) => parse_duration(v.get_ref()).unwrap_or_else(|message| {
            diags.error(
                book.locate(&v.span()),
                format!("[server.limits] {key}: {message}"),
            );
            default
        }),
    };
    let header_timeout = duration(header_timeout, "header_timeout", default.header_timeout);
    let body_timeout = duration(body_timeout, "body_timeout", default.body_timeout);
    let idle_timeout = duration(idle_timeout, "idle_timeout", default.idle_timeout);
    let shutdown_grace = duration(shutdown_grace, "shutdown_grace", default.shutdown_grace);
    let upstream_connect_timeout = duration(
        upstream_connect_timeout,
        "upstream_connect_timeout",
        default.upstream_connect_timeout,
    );
    let upstream_timeout = duration(
        upstream_timeout,
        "upstream_timeout",
        default.upstream_timeout,
    );
    let max_header_bytes = match max_header_bytes {
        None => default.max_header_bytes,
        Some(v) if (8192..=16 * 1024 * 1024).contains(v.get_ref()) => *v.get_ref() as usize,
        Some(v) => {
            diags.error(
                book.locate(&v.span()),
                format!(
                    "[server.limits] max_header_bytes {} must be between 8192 and 16777216",
                    v.get_ref()
                ),
            );
            default.max_header_bytes
        }
    };
    let max_body_bytes = match max_body_bytes {
        None => None,
        Some(v) if *v.get_ref() == 0 => None,
        Some(v) if *v.get_ref() > 0 => Some(*v.get_ref() as u64),
        Some(v) => {
            diags.error(
                book.locate(&v.span()),
                format!(
                    "[server.limits] max_body_bytes {} must be 0 (unlimited) or more",
                    v.get_ref()
                ),
            );
            None
        }
    };
    let max_connections = match max_connections {
        None => default.max_connections,
        Some(v) if *v.get_ref() >= 1 => usize::try_from(*v.get_ref()).unwrap_or(usize::MAX),
        Some(v) => {
            diags.error(
                book.locate(&v.span()),
                format!(
                    "[server.limits] max_connections {} must be at least 1",
                    v.get_ref()
                ),
            );
            default.max_connections
        }
    };
    Limits {
        header_timeout,
        max_header_bytes,
        max_body_bytes,
        body_timeout,
        idle_timeout,
        shutdown_grace,
        max_connections,
        upstream_connect_timeout,
        upstream_timeout,
    }
}

pub(super) fn client_ip(
    book: &Rulebook,
    lists: &HashMap<String, Arc<IpSet>>,
    diags: &mut Diagnostics,
) -> ClientIpSettings {
    let ClientIpSpec {
        trusted_proxies,
        header,
        proxy_protocol,
    } = &book.client_ip;
    let trusted = trusted_proxies
        .as_ref()
        .and_then(|l| ip_sets(l, lists, book, diags))
        .unwrap_or_default();
    let header = match header {
        None => ClientHeader::XForwardedFor,
        Some(h) => ClientHeader::from_name(h.get_ref()).unwrap_or_else(|e| {
            diags.error(book.locate(&h.span()), format!("[client_ip] header: {e}"));
            ClientHeader::XForwardedFor
        }),
    };
    ClientIpSettings {
        trusted,
        header,
        proxy_protocol: proxy_protocol.unwrap_or(false),
    }
}
