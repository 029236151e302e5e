//! The compiled policy: everything a decision needs, validated and immutable.
//!
//! [`Policy::compile`] turns a [`Rulebook`] into a [`Policy`], reporting every
//! bad value at its `PATH:LINE:COLUMN`; [`load`] reads, compiles, lints and
//! runs the rulebook's own tests. A policy is swapped whole on reload, so all
//! that can change with the rulebook — lists, regexes, the GeoIP reader, keys —
//! lives inside it.

mod routes;
mod rules;
mod settings;
pub mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::Digest;

pub use routes::{Route, Routes, Target};
pub use rules::{Boundaries, Condition, CountrySet, Rule};
pub use settings::{ClientIpSettings, Limits, Settings};

use crate::auth::{Auth, KeySource};
use crate::config::{
    self, AuthSpec, ConfigError, ConfigErrors, DefaultAction, Diagnostics, GeoipSpec, ListEntries,
    Rulebook,
};
use crate::decision::RuleId;
use crate::geo::Geo;
use crate::ipset::{IpSet, parse_net};
use crate::path::PathOptions;
use crate::ruletest::{self, RuleTest};

/// A compiled rulebook.
#[derive(Debug)]
pub struct Policy {
    /// `[server]` and `[log]`, defaults applied.
    pub settings: Settings,
    /// `[client_ip]`.
    pub client_ip: ClientIpSettings,
    /// `[paths]`.
    pub paths: PathOptions,
    /// The GeoIP database, when `[geoip]` is set.
    pub geo: Option<Geo>,
    /// Token verification, when `[auth]` is set.
    pub auth: Option<Auth>,
    /// Rules in file order; `RuleId` indexes this.
    pub rules: Vec<Rule>,
    /// Routes.
    pub routes: Routes,
    /// The rulebook's own tests.
    pub tests: Vec<RuleTest>,
    /// Named lists, in file order.
    pub lists: Vec<NamedList>,
    /// CIDR entries written in rules and `trusted_proxies` rather than lists.
    pub inline_cidrs: usize,
    /// The refusal bodies, made ahead.
    pub refusal_bodies: crate::respond::RefusalBodies,
    /// Every `path_regex` of every rule, matched once per request.
    pub path_set: crate::matcher::PathSet,
    /// Where it came from.
    pub source: PolicySource,
}

/// One `[lists]` entry, compiled.
#[derive(Debug)]
pub struct NamedList {
    /// The name, used as `@name`.
    pub name: String,
    /// The addresses.
    pub set: Arc<IpSet>,
    /// How many entries it was written with.
    pub entries: usize,
}

/// Facts about the rulebook a policy was compiled from.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// The rulebook's path.
    pub path: PathBuf,
    /// SHA-256 of the rulebook's bytes, hex.
    pub sha256: String,
    /// When it was compiled.
    pub loaded_at: SystemTime,
    /// Files a reload watches: the rulebook and every file it names.
    pub files: Vec<PathBuf>,
}

impl Policy {
    /// The rule with this id.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id.0 as usize]
    }

    /// The id of the rule with this name.
    pub fn rule_id(&self, name: &str) -> Option<RuleId> {
        self.rules
            .iter()
            .position(|r| &*r.name == name)
            .map(|i| RuleId(i as u32))
    }

    /// How many CIDR entries the rulebook holds (lists, rules, trusted proxies).
    pub fn cidr_count(&self) -> usize {
        self.lists.iter().map(|l| l.entries).sum::<usize>() + self.inline_cidrs
    }

    /// Compiles a rulebook, reporting every bad value; `None` when any was bad.
    pub fn compile(book: &Rulebook, diags: &mut Diagnostics) -> Option<Policy> {
        let errors_before = diags.errors.len();
        let paths = settings::paths(&book.paths);
        let (lists, list_files) = compile_lists(book, diags);
        let list_map: HashMap<String, Arc<IpSet>> = lists
            .iter()
            .map(|l| (l.name.clone(), Arc::clone(&l.set)))
            .collect();
        let settings = settings::server(book, diags);
        let client_ip = settings::client_ip(book, &list_map, diags);
        let geo = book
            .geoip
            .as_ref()
            .and_then(|g| open_geo(book, g.get_ref(), diags));
        let auth = book
            .auth
            .as_ref()
            .and_then(|a| load_auth(book, a.get_ref(), diags));

        let cx = rules::RuleContext {
            book,
            lists: &list_map,
            paths: &paths,
            has_geoip: book.geoip.is_some(),
            has_auth: book.auth.is_some(),
        };
        let mut rules = Vec::new();
        let mut seen: HashMap<&str, u32> = HashMap::new();
        for spec in &book.rules {
            let name = &spec.get_ref().name;
            if let Some(line) = seen.get(name.get_ref().as_str()) {
                diags.error(
                    book.locate(&name.span()),
                    format!(
                        "duplicate rule name \"{}\" (first at line {line})",
                        name.get_ref()
                    ),
                );
                continue;
            }
            seen.insert(name.get_ref(), book.locate(&name.span()).line);
            rules.extend(rules::compile_rule(spec, &cx, diags));
        }
        let routes = routes::compile_routes(book, &paths, diags);
        let mut files = vec![book.source.path().to_path_buf()];
        files.extend(list_files);
        if let Some(g) = &book.geoip {
            files.push(book.resolve(g.get_ref().database.get_ref()));
        }
        if let Some(t) = &settings.tls {
            files.push(t.cert.clone());
            files.push(t.key.clone());
        }
        if let Some(AuthSpec {
            jwks_file: Some(f), ..
        }) = book.auth.as_ref().map(|a| a.get_ref())
        {
            files.push(book.resolve(f.get_ref()));
        }
        files.extend(routes.all().iter().filter_map(|r| match &r.target {
            routes::Target::Upstream(u) => u.tls.as_ref()?.ca_file.clone(),
            routes::Target::Root(_) => None,
        }));
        let path_set = gather_path_regexes(&mut rules);
        let mut policy = Policy {
            settings,
            client_ip,
            paths,
            geo,
            auth,
            rules,
            routes,
            tests: Vec::new(),
            lists,
            inline_cidrs: inline_cidrs(book),
            refusal_bodies: Default::default(),
            path_set,
            source: PolicySource {
                path: book.source.path().to_path_buf(),
                sha256: hex(&sha2::Sha256::digest(book.source.text().as_bytes())),
                loaded_at: SystemTime::now(),
                files,
            },
        };
        policy.tests = ruletest::compile(book, diags);
        policy.refusal_bodies = crate::respond::RefusalBodies::build(&policy);
        (diags.errors.len() == errors_before).then_some(policy)
    }
}

fn inline_cidrs(book: &Rulebook) -> usize {
    let rules = book
        .rules
        .iter()
        .flat_map(|r| [&r.get_ref().ip, &r.get_ref().not_ip]);
    rules
        .chain([&book.client_ip.trusted_proxies])
        .flatten()
        .flat_map(|l| l.get_ref())
        .filter(|e| !e.get_ref().trim().starts_with('@'))
        .count()
}

/// Puts every rule's path regexes in one set and tells each condition where
/// its patterns are in it.
fn gather_path_regexes(rules: &mut [Rule]) -> crate::matcher::PathSet {
    let mut patterns = Vec::new();
    for rule in rules.iter_mut() {
        for condition in &mut rule.conditions {
            if let Condition::PathRegex { set, range, .. } = condition {
                let start = patterns.len();
                patterns.extend(set.patterns().iter().cloned());
                *range = start..patterns.len();
            }
        }
    }
    crate::matcher::PathSet::new(&patterns).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A policy loaded from a file, with the warnings its load produced.
#[derive(Debug)]
pub struct Loaded {
    /// The policy.
    pub policy: Policy,
    /// Lints and notices (`check --strict` fails on them).
    pub warnings: Vec<ConfigError>,
}

/// Reads, compiles, lints and tests the rulebook at `path` (SPEC 8: a
/// rulebook whose tests fail is not loaded).
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let mut diags = Diagnostics::default();
    let policy = config::read(path, &mut diags).and_then(|book| {
        let policy = Policy::compile(&book, &mut diags)?;
        crate::lints::lint(&book, &policy, &mut diags);
        Some(policy)
    });
    if let Some(policy) = &policy {
        ruletest::check_all(policy, &mut diags);
    }
    diags.sort();
    match policy {
        Some(policy) if !diags.has_errors() => Ok(Loaded {
            policy,
            warnings: diags.warnings,
        }),
        _ => Err(ConfigErrors(diags.errors)),
    }
}

/// Builds each list's set; returns them and the list files read.
fn compile_lists(book: &Rulebook, diags: &mut Diagnostics) -> (Vec<NamedList>, Vec<PathBuf>) {
    let mut lists = Vec::new();
    let mut files = Vec::new();
    for list in &book.lists {
        let (set, entries) = match &list.entries {
            ListEntries::Inline(entries) => {
                let mut nets = Vec::with_capacity(entries.len());
                for entry in entries {
                    match parse_net(entry.get_ref().trim()) {
                        Ok(net) => nets.push(net),
                        Err(e) => diags.error(book.locate(&entry.span()), e.to_string()),
                    }
                }
                let count = nets.len();
                (IpSet::new(nets), count)
            }
            ListEntries::File { path, nets, .. } => {
                files.push(path.to_path_buf());
                (IpSet::new(nets.iter().map(|(n, _)| *n)), nets.len())
            }
        };
        lists.push(NamedList {
            name: list.name.get_ref().clone(),
            set: Arc::new(set),
            entries,
        });
    }
    (lists, files)
}

fn open_geo(book: &Rulebook, spec: &GeoipSpec, diags: &mut Diagnostics) -> Option<Geo> {
    let path = book.resolve(spec.database.get_ref());
    match Geo::open(&path) {
        Ok(geo) => {
            if geo.is_test_database() {
                diags.warning(
                    book.locate(&spec.database.span()),
                    format!(
                        "GeoIP database \"{}\" is a test database ({}): its countries are fake",
                        path.display(),
                        geo.database_type()
                    ),
                );
            }
            Some(geo)
        }
        Err(e) => {
            diags.error_with(book.locate(&spec.database.span()), e.to_string(), e);
            None
        }
    }
}

fn load_auth(book: &Rulebook, spec: &AuthSpec, diags: &mut Diagnostics) -> Option<Auth> {
    let AuthSpec {
        jwks_file,
        hs256_secret_env,
        issuer,
        audience,
        roles_claim,
    } = spec;
    let text;
    let secret;
    let (source, span) = match (jwks_file, hs256_secret_env) {
        (Some(file), None) => {
            let path = book.resolve(file.get_ref());
            text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    diags.error_with(
                        book.locate(&file.span()),
                        format!("cannot read JWKS file \"{}\": {e}", path.display()),
                        e,
                    );
                    return None;
                }
            };
            (KeySource::Jwks(&text), file.span())
        }
        (None, Some(env)) => {
            secret = match std::env::var(env.get_ref()) {
                Ok(s) if !s.is_empty() => s,
                _ => {
                    diags.error(
                        book.locate(&env.span()),
                        format!("environment variable {} is not set or empty", env.get_ref()),
                    );
                    return None;
                }
            };
            (KeySource::Hs256(secret.as_bytes()), env.span())
        }
        (Some(_), Some(env)) => {
            diags.error(
                book.locate(&env.span()),
                "[auth] takes jwks_file or hs256_secret_env, not both",
            );
            return None;
        }
        (None, None) => {
            let span = roles_claim
                .as_ref()
                .map(|r| r.span())
                .or(issuer.as_ref().map(|i| i.span()))
                .or(audience.as_ref().map(|a| a.span()))
                .unwrap_or(0..0);
            diags.error(
                book.locate(&span),
                "[auth] needs jwks_file or hs256_secret_env",
            );
            return None;
        }
    };
    let roles_claim = roles_claim
        .as_ref()
        .map_or_else(|| "roles".to_owned(), |r| r.get_ref().clone());
    match Auth::new(
        source,
        issuer.as_ref().map(|i| i.get_ref().clone()),
        audience.as_ref().map(|a| a.get_ref().clone()),
        roles_claim,
    ) {
        Ok(auth) => Some(auth),
        Err(e) => {
            diags.error_with(
                book.locate(&span),
                format!("cannot load [auth] keys: {e}"),
                e,
            );
            None
        }
    }
}

impl DefaultAction {
    /// Whether requests no rule decided are refused.
    pub fn is_deny(self) -> bool {
        self == DefaultAction::Deny
    }
}
