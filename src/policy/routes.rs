//! Compiled routes and route choice (SPEC 6): among the routes whose `host`
//! matches — an exact name before `*.suffix` (longer suffixes first) before
//! `*` — the longest segment-aware `path_prefix` wins, ties going to the first
//! route in the file. When no route of a host class has a matching prefix, the
//! next class is tried.

use std::collections::HashMap;
use std::path::PathBuf;

use toml::Spanned;

use crate::config::{Diagnostics, Location, RouteSpec, Rulebook};
use crate::host::{HostPattern, parse_host_pattern};
use crate::path::PathOptions;

use super::rules::{Boundaries, each};
use super::values::{UpstreamUrl, parse_upstream};
use crate::connect::{TlsField, UpstreamTls};

/// Where a route sends requests.
#[derive(Debug, Clone)]
pub enum Target {
    /// Forward to an HTTP upstream.
    Upstream(UpstreamUrl),
    /// Serve files from this folder (its canonical path).
    Root(PathBuf),
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Segment-aware path prefix.
    pub path_prefix: String,
    /// Where requests go.
    pub target: Target,
    /// Directory-index names, tried in order.
    pub index: Vec<String>,
    /// List directories without an index.
    pub autoindex: bool,
    /// Forward the client's Host (else the upstream's authority).
    pub preserve_host: bool,
    /// Where the route is written.
    pub location: Location,
}

/// Every route, indexed by host class.
#[derive(Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
    exact: HashMap<String, Vec<usize>>,
    /// `(suffix with its leading dot, routes)`, longest suffix first.
    suffixes: Vec<(String, Vec<usize>)>,
    any: Vec<usize>,
    boundaries: Boundaries,
}

impl Routes {
    /// Every route, in file order.
    pub fn all(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a normalized host and a canonical path, if any.
    pub fn choose(&self, host: &str, path: &str) -> Option<&Route> {
        if let Some(r) = self.exact.get(host).and_then(|ids| self.longest(ids, path)) {
            return Some(r);
        }
        for (suffix, ids) in &self.suffixes {
            if host.len() > suffix.len()
                && host.ends_with(suffix.as_str())
                && let Some(r) = self.longest(ids, path)
            {
                return Some(r);
            }
        }
        self.longest(&self.any, path)
    }

    fn longest(&self, ids: &[usize], path: &str) -> Option<&Route> {
        let mut best: Option<&Route> = None;
        for &id in ids {
            let route = &self.routes[id];
            if self.boundaries.is_under(path, &route.path_prefix)
                && best.is_none_or(|b| route.path_prefix.len() > b.path_prefix.len())
            {
                best = Some(route);
            }
        }
        best
    }
}

/// Compiles every route, reporting each bad value.
pub(super) fn compile_routes(
    book: &Rulebook,
    paths: &PathOptions,
    diags: &mut Diagnostics,
) -> Routes {
    let mut routes = Routes {
        boundaries: Boundaries::of(paths),
        ..Routes::default()
    };
    for spec in &book.routes {
        let Some((route, hosts)) = compile_route(spec, book, paths, diags) else {
            continue;
        };
        let id = routes.routes.len();
        routes.routes.push(route);
        for host in hosts {
            let ids = match host {
                HostPattern::Any => &mut routes.any,
                HostPattern::Exact(name) => routes.exact.entry(name).or_default(),
                HostPattern::Subdomains(name) => {
                    let suffix = format!(".{name}");
                    match routes.suffixes.iter().position(|(s, _)| *s == suffix) {
                        Some(i) => &mut routes.suffixes[i].1,
                        None => {
                            routes.suffixes.push((suffix, Vec::new()));
                            &mut routes.suffixes.last_mut().expect("just pushed").1
                        }
                    }
                }
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    routes
        .suffixes
        .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
    routes
}

fn compile_route(
    spec: &Spanned<RouteSpec>,
    book: &Rulebook,
    paths: &PathOptions,
    diags: &mut Diagnostics,
) -> Option<(Route, Vec<HostPattern>)> {
    let errors_before = diags.errors.len();
    let RouteSpec {
        host,
        path_prefix,
        upstream,
        root,
        index,
        autoindex,
        preserve_host,
        ca_file,
        sni,
    } = spec.get_ref();
    let hosts = match host {
        None => vec![HostPattern::Any],
        Some(list) if list.get_ref().is_empty() => {
            diags.error(book.locate(&list.span()), "route host: empty list");
            Vec::new()
        }
        Some(list) => each(list, diags, book, |s| {
            parse_host_pattern(s).map_err(|e| e.to_string())
        }),
    };
    let prefix = match path_prefix {
        None => "/".to_owned(),
        Some(p) => match crate::path::canonicalize(p.get_ref(), paths) {
            Ok(c) if c == p.get_ref().as_str() => c.into_owned(),
            Ok(c) => {
                diags.error(
                    book.locate(&p.span()),
                    format!(
                        "route path_prefix \"{}\" is not canonical and would never match; write \"{c}\"",
                        p.get_ref()
                    ),
                );
                String::new()
            }
            Err(e) => {
                diags.error(
                    book.locate(&p.span()),
                    format!("invalid route path_prefix \"{}\": {e}", p.get_ref()),
                );
                String::new()
            }
        },
    };
    let parsed = upstream.as_ref().map(|u| (u, parse_upstream(u.get_ref())));
    let https = matches!(&parsed, Some((_, Ok(url))) if url.scheme == http::uri::Scheme::HTTPS);
    let target = match (parsed, root) {
        (Some((u, parsed)), None) => match parsed {
            Ok(mut url) if url.scheme == http::uri::Scheme::HTTPS => {
                let ca = ca_file.as_ref().map(|f| book.resolve(f.get_ref()));
                let name = sni.as_ref().map(|s| s.get_ref().as_str());
                match UpstreamTls::new(&url.authority, name, ca.as_deref()) {
                    Ok(tls) => {
                        url.tls = Some(std::sync::Arc::new(tls));
                        Some(Target::Upstream(url))
                    }
                    Err(e) => {
                        let span = match e.field {
                            TlsField::CaFile => ca_file.as_ref().map(Spanned::span),
                            TlsField::Sni => sni.as_ref().map(Spanned::span),
                            TlsField::Upstream => None,
                        };
                        diags.error(book.locate(&span.unwrap_or_else(|| u.span())), e.message);
                        None
                    }
                }
            }
            Ok(url) => Some(Target::Upstream(url)),
            Err(message) => {
                diags.error(book.locate(&u.span()), message);
                None
            }
        },
        (None, Some(r)) => {
            let dir = book.resolve(r.get_ref());
            match std::fs::canonicalize(&dir) {
                Ok(canonical) if canonical.is_dir() => Some(Target::Root(canonical)),
                Ok(_) => {
                    diags.error(
                        book.locate(&r.span()),
                        format!("root \"{}\" is not a folder", dir.display()),
                    );
                    None
                }
                Err(e) => {
                    diags.error_with(
                        book.locate(&r.span()),
                        format!("cannot open root \"{}\": {e}", dir.display()),
                        e,
                    );
                    None
                }
            }
        }
        (Some(_), Some(r)) => {
            diags.error(
                book.locate(&r.span()),
                "a route has either upstream or root, not both",
            );
            None
        }
        (None, None) => {
            diags.error(
                book.locate(&spec.span()),
                "route needs an upstream (\"http://host:port\") or a root folder",
            );
            None
        }
    };
    for (key, value) in [("ca_file", ca_file), ("sni", sni)] {
        if let (Some(v), false) = (value, https) {
            diags.error(
                book.locate(&v.span()),
                format!("route {key} only applies to https:// upstreams"),
            );
        }
    }
    let index = match index {
        Some(list) => each(list, diags, book, |s| {
            if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
                Err(format!(
                    "invalid index name \"{s}\": write a file name, e.g. \"index.html\""
                ))
            } else {
                Ok(s.to_owned())
            }
        }),
        None if root.is_some() => vec!["index.html".to_owned()],
        None => Vec::new(),
    };
    let target = target?;
    (diags.errors.len() == errors_before).then(|| {
        let route = Route {
            path_prefix: prefix,
            target,
            index,
            autoindex: autoindex.unwrap_or(false),
            preserve_host: preserve_host.unwrap_or(true),
            location: book.locate(&spec.span()),
        };
        (route, hosts)
    })
}
