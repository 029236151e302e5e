//! A request described rather than received: what `explain`, the admin
//! `/explain` and the rulebook's `[[test]]` cases decide, through the same
//! canonicalization and evaluation as live traffic.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method};

use crate::decision::{Decision, Outcome, Reason, Refusal};
use crate::evaluate::{TraceEntry, evaluate_traced};
use crate::facts::{RequestFacts, Token};
use crate::geo::Country;
use crate::path::PathError;
use crate::policy::Policy;

/// A request to decide.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The client address (after any proxy walk).
    pub ip: IpAddr,
    /// Defaults to GET.
    pub method: Method,
    /// The Host, as a client would send it. Defaults to none.
    pub host: String,
    /// Path and optional `?query`, as a client would send them. Defaults to `/`.
    pub target: String,
    /// Headers, including Referer and Authorization when given.
    pub headers: HeaderMap,
    /// Stands for the GeoIP answer.
    pub country: Option<Country>,
    /// Stands for a verified token with these roles.
    pub roles: Option<Vec<String>>,
}

impl Probe {
    /// A GET of `/` from `ip`.
    pub fn new(ip: IpAddr) -> Probe {
        Probe {
            ip: ip.to_canonical(),
            method: Method::GET,
            host: String::new(),
            target: "/".to_owned(),
            headers: HeaderMap::new(),
            country: None,
            roles: None,
        }
    }

    /// Sets the Referer header.
    pub fn referer(&mut self, value: &str) -> Result<(), http::header::InvalidHeaderValue> {
        let value = HeaderValue::from_str(value)?;
        self.headers.append(http::header::REFERER, value);
        Ok(())
    }
}

/// What the policy decided for a probe.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// The decision.
    pub decision: Decision,
    /// One entry per rule (empty when the path was refused before any rule).
    pub trace: Vec<TraceEntry>,
    /// The client address.
    pub client_ip: IpAddr,
    /// The country (given, or looked up when the policy has a database).
    pub country: Option<Country>,
    /// The canonical path, or why there is none.
    pub canonical_path: Result<String, PathError>,
    /// The query as given.
    pub query: Option<String>,
    /// The token's roles, when it has a valid one.
    pub roles: Option<Vec<String>>,
}

/// Decides a probe.
pub fn run(policy: &Policy, probe: &Probe) -> ProbeResult {
    let (path, query) = match probe.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (probe.target.as_str(), None),
    };
    let country = probe.country.or_else(|| {
        policy
            .geo
            .as_ref()
            .map(|g| g.country(probe.ip.to_canonical()))
    });
    let canonical = crate::path::canonicalize(path, &policy.paths).map(|c| c.into_owned());
    let token = match &probe.roles {
        Some(roles) => Token::Roles(roles),
        None => Token::from_authorization(
            probe
                .headers
                .get(http::header::AUTHORIZATION)
                .map(http::HeaderValue::as_bytes),
        ),
    };
    let roles = crate::evaluate::token_roles_of(policy, token);
    let (decision, trace) = match &canonical {
        Ok(canonical_path) => {
            let host = crate::host::normalize_host(&probe.host);
            let upstream_path = crate::path::upstream_view(canonical_path, &policy.paths);
            let facts = RequestFacts {
                client_ip: probe.ip.to_canonical(),
                country,
                method: &probe.method,
                host: &host,
                path: canonical_path,
                upstream_path: upstream_path.as_deref(),
                query,
                headers: (&probe.headers).into(),
                token,
            };
            evaluate_traced(policy, &facts)
        }
        Err(_) => (
            Decision {
                outcome: Outcome::Refuse(Refusal::of(Reason::BadRequest)),
                dry_run_hits: Vec::new(),
            },
            Vec::new(),
        ),
    };
    ProbeResult {
        decision,
        trace,
        client_ip: probe.ip.to_canonical(),
        country,
        canonical_path: canonical,
        query: query.map(str::to_owned),
        roles,
    }
}
