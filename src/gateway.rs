//! Per request, five steps: one policy snapshot → facts (client address,
//! target, canonical path) → the decision → forward, or a refusal → the
//! access line. Everything shared that a request reads is behind one
//! arc-swap load; nothing else shared is locked.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use http::header::{ACCEPT, AUTHORIZATION, REFERER, USER_AGENT};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;

use crate::admin::{Control, Inline, RefusalEvent};
use crate::body::{RequestBody, ResponseBody};
use crate::conn::{ConnState, InFlight};
use crate::decision::{DryRunHit, Outcome, Reason, Refusal};
use crate::evaluate::{evaluate_with_country, token_roles_of};
use crate::facts::{RequestFacts, Target, TargetError, Token, framing, target};
use crate::fetch::{self, Fetched};
use crate::files::{self, Served};
use crate::forward::{self, ForwardError, Origin};
use crate::geo::Country;
use crate::headers::{Headers, RawHeaders};
use crate::limits::{BodyLimit, LimitedBody};
use crate::log::{AccessLog, LineBuilder, LineOutcome, Logged};
use crate::metrics::Counters;
use crate::policy::values::UpstreamUrl;
use crate::policy::{self, Policy, Route};
use crate::reload::Live;
use crate::request_id::Id;
use crate::respond::{self, Refused, X_REQUEST_ID};

static DEFAULT_RULE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("(default)"));

/// What every worker shares: the live policy with its counters, the
/// metrics, reloads and refusal feed, and the logs.
#[derive(Debug)]
pub struct Shared {
    /// The policy in force and its counters; a reload stores a new one.
    pub live: ArcSwap<Live>,
    /// Metrics, the reload thread and the dashboard's refusal feed.
    pub control: Control,
    /// The access log.
    pub access_log: Arc<AccessLog>,
    /// Set once a policy is loaded and the listeners are bound; cleared when a
    /// shutdown starts.
    pub ready: AtomicBool,
    /// Set when a shutdown starts, before the workers are told: a connection
    /// looks at it after each answer (one load, where a look at the
    /// workers' stop channel costs a poll of its future).
    pub stopping: AtomicBool,
    /// `max_connections`, set again by each reload.
    pub connections: crate::connections::ConnectionLimit,
}

impl Shared {
    /// Shared state around a first policy (its reload thread not started:
    /// see `control.reloader`).
    pub fn new(policy: Policy, access_log: Arc<AccessLog>) -> Arc<Shared> {
        let control = Control::new(&policy.source.path.clone(), &policy);
        control.metrics.set_loaded_at(policy.source.loaded_at);
        let connections =
            crate::connections::ConnectionLimit::new(policy.settings.limits.max_connections);
        let live = Live::new(policy, &control.metrics);
        Arc::new(Shared {
            live: ArcSwap::from_pointee(live),
            control,
            access_log,
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            connections,
        })
    }

    /// The policy in force now (for code off the request path).
    pub fn policy(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }
}

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The client's address (the PROXY-protocol address when there is one).
    pub peer: SocketAddr,
    /// Whether the listener terminates TLS.
    pub tls: bool,
}

/// A request's answer, as [`handle`] gives it. The request id goes on it
/// when it is written.
#[derive(Debug)]
pub struct Answer {
    /// The request id, sent as `X-Request-Id`.
    pub id: Id,
    /// The answer itself.
    pub kind: Answered,
}

/// What a request is answered with.
#[derive(Debug)]
pub enum Answered {
    /// A response: an upstream's, a file, `OPTIONS *`. Any `X-Request-Id`
    /// of its own gives way to the request's.
    Response(Response<Logged>),
    /// An upstream's answer read by [`fetch`]: its header lines are written
    /// where they lie in its head (no header map).
    Fetched {
        /// The status.
        status: http::StatusCode,
        /// The header lines the client gets.
        lines: RawHeaders,
        /// The body, with the access line.
        body: Logged,
    },
    /// A refusal, with its access line and in-flight mark in a [`Logged`]
    /// without a body, to be dropped once the refusal is written.
    Refused(Refused, Logged),
}

impl Answer {
    /// The answer as a response with every header in place (for hyper's
    /// server).
    pub fn into_response(self) -> Response<Logged> {
        match self.kind {
            Answered::Response(mut response) => {
                response
                    .headers_mut()
                    .insert(X_REQUEST_ID.clone(), self.id.header_value());
                response
            }
            Answered::Fetched {
                status,
                lines,
                body,
            } => {
                // hyper's server answers in the request's version itself.
                let mut response = Response::new(body);
                *response.status_mut() = status;
                let headers = response.headers_mut();
                *headers = Headers::Raw(&lines).to_map().into_owned();
                headers.insert(X_REQUEST_ID.clone(), self.id.header_value());
                response
            }
            Answered::Refused(refused, logged) => refused
                .into_response(&self.id)
                .map(|body| logged.with_body(body)),
        }
    }
}

/// One request's context once its client is known.
struct Exchange<'a> {
    shared: &'a Shared,
    policy: &'a Policy,
    counters: &'a Counters,
    conn: Conn,
    state: &'a Arc<ConnState>,
    /// Until the answer takes it.
    in_flight: Option<InFlight>,
    client_ip: IpAddr,
    id: Id,
    start: Instant,
    /// Known once the request is decided.
    decided: Decided,
}

/// What the metrics and the dashboard need of a decided request.
struct Decided {
    /// The `allow` rule that decided, if one did.
    allow_rule: Option<crate::decision::RuleId>,
    dry_run_hits: Vec<DryRunHit>,
    country: Option<Country>,
    /// The method and path as logged, for the dashboard.
    method: Inline<16>,
    path: Inline<160>,
}

impl Decided {
    /// The request's facts so far; the method and path only for a feed
    /// that is on.
    fn new(parts: &Parts, feed: bool) -> Decided {
        let (method, path) = if feed {
            (parts.method.as_str(), parts.uri.path())
        } else {
            ("", "")
        };
        Decided {
            allow_rule: None,
            dry_run_hits: Vec::new(),
            country: None,
            method: Inline::new(method),
            path: Inline::new(path),
        }
    }
}

impl Exchange<'_> {
    /// The request fields of the access line, when this request gets one.
    /// `target` carries the path to log: the canonical one once known.
    #[allow(clippy::too_many_arguments)]
    fn line(
        &self,
        parts: &Parts,
        headers: Headers<'_>,
        target: &Target<'_>,
        country: Option<Country>,
        dry_run: Option<&DryRunHit>,
        allowed: bool,
    ) -> Option<LineBuilder> {
        use crate::config::AccessLog as Mode;
        match self.policy.settings.access_log {
            Mode::Off => return None,
            Mode::Refusals if allowed => return None,
            Mode::All | Mode::Refusals => {}
        }
        let mut line = LineBuilder::new(SystemTime::now());
        line.str("request_id", self.id.as_str())
            .display("client_ip", self.client_ip)
            .display("peer", self.conn.peer.ip().to_canonical())
            .str("method", parts.method.as_str())
            .opt("host", target.host)
            .str("path", target.path)
            .opt("query", target.query)
            .str("protocol", protocol(parts.version))
            .opt("country", country.as_ref().map(Country::as_str))
            .bytes("user_agent", headers.get(&USER_AGENT))
            .bytes("referer", headers.get(&REFERER));
        if let Some(hit) = dry_run {
            line.str("dry_run_rule", &self.policy.rule(hit.rule).name)
                .str("dry_run_reason", hit.reason.code());
        }
        Some(line)
    }

    /// Where the request came from, for the upstream's forwarding headers.
    fn origin<'h>(&'h self, trusted: bool, host: Option<&'h str>) -> Origin<'h> {
        Origin {
            peer: self.conn.peer.ip().to_canonical(),
            peer_value: &self.state.peer_header,
            trusted,
            client_header: self.policy.client_ip.header.header_name(),
            proto: if self.conn.tls { "https" } else { "http" },
            host: host.map(str::as_bytes),
            request_id: self.id.as_bytes(),
        }
    }

    /// Forwards a request without a body to `upstream` as `target` through
    /// [`fetch`], timed; the response goes back in the client's protocol,
    /// whatever the upstream spoke, with the request id.
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        parts: &Parts,
        headers: Headers<'_>,
        trusted: bool,
        route: &Route,
        upstream: &UpstreamUrl,
        target: &str,
        client_host: Option<&str>,
    ) -> Result<Fetched, ForwardError> {
        let origin = self.origin(trusted, client_host);
        let outgoing = fetch::Outgoing {
            method: &parts.method,
            target,
            headers,
            origin: &origin,
            host: upstream_host(client_host, route, upstream),
        };
        timed(self, |now, connect, head| {
            fetch::fetch(
                &upstream.authority,
                upstream.tls.as_ref(),
                &outgoing,
                now,
                connect,
                head,
            )
        })
        .await
    }

    /// An allowed request's response: counted, with its access line.
    fn allow(
        &mut self,
        response: Response<ResponseBody>,
        line: Option<LineBuilder>,
        outcome: LineOutcome,
    ) -> Answer {
        let (id, logged) = self.allowed(response.status(), line, outcome);
        Answer {
            id,
            kind: Answered::Response(response.map(|body| logged.with_body(body))),
        }
    }

    /// An allowed request's upstream answer: counted, with its access line.
    fn allow_fetched(
        &mut self,
        fetched: Fetched,
        line: Option<LineBuilder>,
        outcome: LineOutcome,
    ) -> Answer {
        let (id, logged) = self.allowed(fetched.status, line, outcome);
        Answer {
            id,
            kind: Answered::Fetched {
                status: fetched.status,
                lines: fetched.lines,
                body: logged.with_body(fetched.body),
            },
        }
    }

    /// Counts an allowed request; its id and its [`Logged`] (see [`Self::logged`]).
    fn allowed(
        &mut self,
        status: http::StatusCode,
        line: Option<LineBuilder>,
        outcome: LineOutcome,
    ) -> (Id, Logged) {
        let elapsed = self.start.elapsed();
        self.counters
            .record_allowed(self.decided.allow_rule, &self.decided.dry_run_hits, elapsed);
        // access = "refusals": a line made in case of a late refusal is not
        // written for an allowed answer.
        let line =
            line.filter(|_| self.policy.settings.access_log != crate::config::AccessLog::Refusals);
        self.logged(status, line, outcome)
    }

    /// The request's id, and a body-less [`Logged`] holding its access
    /// line and in-flight mark.
    fn logged(
        &mut self,
        status: http::StatusCode,
        line: Option<LineBuilder>,
        outcome: LineOutcome,
    ) -> (Id, Logged) {
        let pending = line.map(|l| {
            l.pending(
                outcome,
                status.as_u16(),
                self.start,
                Arc::clone(&self.shared.access_log),
            )
        });
        debug_assert!(self.in_flight.is_some(), "one answer per request");
        let logged = Logged::new(ResponseBody::Empty, pending, self.in_flight.take());
        (self.id, logged)
    }

    /// The refusal response, and how it is logged.
    fn refuse(
        &mut self,
        refusal: &Refusal,
        roles: Option<&[String]>,
        accept: Option<&[u8]>,
        line: Option<LineBuilder>,
    ) -> Answer {
        let refused = respond::refusal(self.policy, refusal, roles, &self.id, accept);
        let rule = match refusal.rule {
            Some(r) => Some(Arc::clone(&self.policy.rule(r).name)),
            None if refusal.reason == Reason::DefaultDeny => Some(Arc::clone(&DEFAULT_RULE)),
            None => None,
        };
        let decision = match refusal.reason {
            Reason::UpstreamUnreachable | Reason::UpstreamTimeout => "error",
            _ => "deny",
        };
        self.counters
            .record_refused(refusal, &self.decided.dry_run_hits, self.start.elapsed());
        if decision == "deny" && self.shared.control.feed.is_on() {
            // The method and path are already inline: copied as they are.
            let d = &self.decided;
            self.shared.control.feed.refused(RefusalEvent {
                at: SystemTime::now(),
                client_ip: self.client_ip,
                method: d.method,
                path: d.path,
                reason: refusal.reason,
                status: refusal.status.as_u16(),
                rule: rule.clone(),
                country: d.country,
            });
        }
        let outcome = LineOutcome {
            decision,
            reason: Some(refusal.reason),
            rule,
            upstream: None,
        };
        let (id, logged) = self.logged(refused.status(), line, outcome);
        Answer {
            id,
            kind: Answered::Refused(refused, logged),
        }
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP",
    }
}

/// How a request was read.
#[derive(Debug)]
pub enum Via<'a> {
    /// By hyper, with its body.
    Hyper(Incoming),
    /// By [`crate::h1`]: no body, and the header lines where they lie
    /// (`parts` has no headers).
    H1(&'a RawHeaders),
}

/// Decides and answers one request that came on the connection of `state`.
pub async fn handle(
    shared: &Shared,
    conn: Conn,
    state: &Arc<ConnState>,
    parts: Parts,
    via: Via<'_>,
) -> Answer {
    let (headers, body) = match via {
        Via::H1(raw) => (Headers::Raw(raw), None),
        Via::Hyper(body) => (Headers::Map(&parts.headers), Some(body)),
    };
    let in_flight = InFlight::start(state);
    let start = Instant::now();
    let live = shared.live.load_full();
    let policy = &live.policy;

    // 1. The client address (SPEC 4): forwarding headers only from trusted peers.
    let peer = conn.peer.ip().to_canonical();
    let trusted = policy.client_ip.is_trusted(peer);
    let client_header = &policy.client_ip.header;
    let client_ip = if trusted {
        let values = headers.get_all(client_header.header_name());
        crate::client_ip::client_ip(peer, values, client_header, |ip| {
            policy.client_ip.is_trusted(ip)
        })
    } else {
        peer
    };
    let id = headers
        .get(&X_REQUEST_ID)
        .filter(|_| trusted)
        .and_then(Id::given)
        .unwrap_or_else(Id::fresh);
    let mut ex = Exchange {
        shared,
        policy,
        counters: &live.counters,
        conn,
        state,
        in_flight: Some(in_flight),
        client_ip,
        id,
        start,
        decided: Decided::new(&parts, shared.control.feed.is_on()),
    };
    let accept = headers.get(&ACCEPT);

    // 2. Framing, the target and the canonical path (SPEC 5).
    // A request read by `h1` has neither header (it would have gone to hyper).
    let framed = match &body {
        None => Ok(()),
        Some(_) if state.take_duplicate_length() => {
            Err(TargetError::Bad("several Content-Length headers"))
        }
        Some(_) => framing(&parts),
    };
    let target = match framed.and_then(|()| target(&parts, headers)) {
        Ok(t) => t,
        Err(e) => {
            let as_sent = Target {
                host: None,
                path: parts.uri.path(),
                query: parts.uri.query(),
            };
            let line = ex.line(&parts, headers, &as_sent, None, None, false);
            return match e {
                TargetError::OptionsStar => {
                    let outcome = LineOutcome {
                        decision: "allow",
                        ..LineOutcome::default()
                    };
                    let response = respond::options_star();
                    ex.allow(response, line, outcome)
                }
                TargetError::Connect => {
                    ex.refuse(&Refusal::of(Reason::MethodNotAllowed), None, accept, line)
                }
                TargetError::Bad(_) => {
                    ex.refuse(&Refusal::of(Reason::BadRequest), None, accept, line)
                }
            };
        }
    };
    let canonical = match crate::path::canonicalize(target.path, &policy.paths) {
        Ok(c) => c,
        Err(_) => {
            let line = ex.line(&parts, headers, &target, None, None, false);
            return ex.refuse(&Refusal::of(Reason::BadRequest), None, accept, line);
        }
    };
    let host = crate::host::normalize_host(target.host.unwrap_or(""));
    let upstream_path = crate::path::upstream_view(&canonical, &policy.paths);

    // 3. The decision (SPEC 3).
    let token = Token::from_authorization(headers.get(&AUTHORIZATION));
    let facts = RequestFacts {
        client_ip,
        country: None,
        method: &parts.method,
        host: &host,
        path: &canonical,
        upstream_path: upstream_path.as_deref(),
        query: target.query,
        headers,
        token,
    };
    let (mut decision, country) = evaluate_with_country(policy, &facts);
    let allowed = decision.is_allowed();
    if ex.shared.control.feed.is_on() {
        ex.decided.path = Inline::new(&canonical);
    }
    ex.decided.country = country;
    let decided = Target {
        path: &canonical,
        ..target
    };
    let line = ex.line(
        &parts,
        headers,
        &decided,
        country,
        decision.dry_run_hits.first(),
        allowed,
    );
    ex.decided.dry_run_hits = std::mem::take(&mut decision.dry_run_hits);
    // With access = "refusals" an allowed request has no line yet; refused
    // after the rules (no route, a file, the upstream), it gets one here.
    let late = |ex: &Exchange<'_>, line: Option<LineBuilder>| {
        line.or_else(|| {
            let dry_run = ex.decided.dry_run_hits.first();
            ex.line(&parts, headers, &decided, country, dry_run, false)
        })
    };
    let allow_rule = match &decision.outcome {
        Outcome::Refuse(refusal) => {
            let roles = (refusal.reason == Reason::RoleInsufficient)
                .then(|| token_roles_of(policy, token))
                .flatten();
            return ex.refuse(refusal, roles.as_deref(), accept, line);
        }
        Outcome::Allow { rule } => {
            ex.decided.allow_rule = *rule;
            rule.map_or_else(
                || Arc::clone(&DEFAULT_RULE),
                |id| Arc::clone(&policy.rule(id).name),
            )
        }
    };

    // 4. The route (SPEC 6).
    let Some(route) = policy.routes.choose(&host, &canonical) else {
        return ex.refuse(
            &Refusal::of(Reason::NotFound),
            None,
            accept,
            late(&ex, line),
        );
    };
    // SPEC 6: index candidates are decided like requests of their own.
    let decide = |candidate: &str| decide_rewritten(policy, &facts, candidate);
    match &route.target {
        policy::Target::Root(root) => {
            let map = headers.to_map();
            let served = files::serve(
                root,
                &route.index,
                route.autoindex,
                &parts.method,
                &canonical,
                target.query,
                &map,
                &decide,
            )
            .await;
            match served {
                Served::Response(response) => {
                    let outcome = LineOutcome {
                        decision: "allow",
                        reason: None,
                        rule: Some(allow_rule),
                        upstream: None,
                    };
                    ex.allow(response, line, outcome)
                }
                Served::Refused(refusal) => {
                    let mut answer = ex.refuse(&refusal, None, accept, late(&ex, line));
                    if let Answered::Refused(refused, _) = &mut answer.kind {
                        refused.allow("GET, HEAD");
                    }
                    answer
                }
            }
        }
        policy::Target::Upstream(upstream) => {
            // The host as the client sent it (Host, or the target's
            // authority): checked by `facts::target`, passed on as bytes.
            let client_host = target.host;
            let outcome = LineOutcome {
                decision: "allow",
                reason: None,
                rule: Some(allow_rule),
                upstream: Some(upstream.authority.clone()),
            };
            // `parts` has no headers for a request read by `h1`, which
            // never carries `Upgrade`.
            let upgrade = upgrade_token(&parts);
            let wants_index = !route.index.is_empty()
                && canonical.ends_with('/')
                && (parts.method == http::Method::GET || parts.method == http::Method::HEAD)
                && upgrade.is_none();
            if wants_index {
                let found = index_fallback(
                    &ex,
                    &parts,
                    headers,
                    trusted,
                    route,
                    upstream,
                    &canonical,
                    target.query,
                    client_host,
                    &decide,
                )
                .await;
                match found {
                    IndexFound::Response(fetched) => {
                        return ex.allow_fetched(*fetched, line, outcome);
                    }
                    IndexFound::Refused(refusal) => {
                        return ex.refuse(&refusal, None, accept, late(&ex, line));
                    }
                    // autoindex: the bare directory path is forwarded as is.
                    IndexFound::None => {}
                }
            }
            let Some(upstream_target) =
                forward::upstream_target(&canonical, target.query, parts.uri.path_and_query())
            else {
                let line = late(&ex, line);
                return ex.refuse(&Refusal::of(Reason::BadRequest), None, accept, line);
            };
            // Without a body: `fetch`. With one, or an upgrade: hyper's client.
            let body = match body {
                Some(body) if upgrade.is_some() || !hyper::body::Body::is_end_stream(&body) => body,
                _ => {
                    let fetched = ex
                        .fetch(
                            &parts,
                            headers,
                            trusted,
                            route,
                            upstream,
                            upstream_target.as_str(),
                            client_host,
                        )
                        .await;
                    return match fetched {
                        Ok(fetched) => ex.allow_fetched(fetched, line, outcome),
                        Err(e) => {
                            let refusal = upstream_refusal(&ex, &e);
                            ex.refuse(&refusal, None, accept, late(&ex, line))
                        }
                    };
                }
            };
            // `parts` moves on: the host is kept apart (hyper's path only),
            // and a line that may be needed is made now.
            let client_host = client_host.map(str::to_owned);
            let line = late(&ex, line);
            proxy(
                &mut ex,
                parts,
                body,
                upgrade,
                trusted,
                route,
                upstream,
                upstream_target,
                client_host,
                line,
                outcome,
            )
            .await
        }
    }
}

/// Decides a path the gateway rewrote (an index candidate, a listing entry)
/// like a request of its own, with the request's other facts.
fn decide_rewritten(policy: &Policy, facts: &RequestFacts<'_>, path: &str) -> Result<(), Refusal> {
    let upstream_path = crate::path::upstream_view(path, &policy.paths);
    let rewritten = RequestFacts {
        path,
        upstream_path: upstream_path.as_deref(),
        ..*facts
    };
    match crate::evaluate::evaluate(policy, &rewritten).outcome {
        Outcome::Allow { .. } => Ok(()),
        Outcome::Refuse(refusal) => Err(refusal),
    }
}

/// What the index names of an upstream route gave.
enum IndexFound {
    /// The first index the upstream did not answer 404 for.
    Response(Box<Fetched>),
    /// A candidate was refused by the rules, or all were 404 without autoindex.
    Refused(Refusal),
    /// All were 404 and the route has autoindex.
    None,
}

/// SPEC 6 for upstream routes: a GET or HEAD for a directory path is
/// forwarded with each index name appended in turn until the upstream
/// answers something other than 404.
#[allow(clippy::too_many_arguments)]
async fn index_fallback(
    ex: &Exchange<'_>,
    parts: &Parts,
    headers: Headers<'_>,
    trusted: bool,
    route: &Route,
    upstream: &UpstreamUrl,
    directory: &str,
    query: Option<&str>,
    client_host: Option<&str>,
    decide: &(dyn Fn(&str) -> Result<(), Refusal> + Sync),
) -> IndexFound {
    for name in &route.index {
        let candidate =
            match crate::path::canonicalize(&format!("{directory}{name}"), &ex.policy.paths) {
                Ok(c) => c.into_owned(),
                Err(_) => continue,
            };
        if let Err(refusal) = decide(&candidate) {
            return IndexFound::Refused(refusal);
        }
        let Some(target) = forward::upstream_target(&candidate, query, None) else {
            continue;
        };
        let fetched = ex
            .fetch(
                parts,
                headers,
                trusted,
                route,
                upstream,
                target.as_str(),
                client_host,
            )
            .await;
        match fetched {
            Ok(fetched) if fetched.status == http::StatusCode::NOT_FOUND => continue,
            Ok(fetched) => return IndexFound::Response(Box::new(fetched)),
            Err(e) => {
                let refusal = upstream_refusal(ex, &e);
                return IndexFound::Refused(refusal);
            }
        }
    }
    if route.autoindex {
        IndexFound::None
    } else {
        IndexFound::Refused(Refusal::of(Reason::DirectoryListingDisabled))
    }
}

/// The Host an upstream request carries: the client's with `preserve_host`,
/// else the upstream's authority.
fn upstream_host<'h>(
    client_host: Option<&'h str>,
    route: &Route,
    upstream: &'h UpstreamUrl,
) -> &'h [u8] {
    match (client_host, route.preserve_host) {
        (Some(h), true) => h.as_bytes(),
        _ => upstream.host.as_bytes(),
    }
}

/// Runs one upstream exchange (hyper's client for a body or an upgrade,
/// [`fetch`] otherwise) within the policy's timeouts, timing it for
/// `edgeguard_upstream_duration_seconds`. `exchange` gets the start instant,
/// the connect timeout and the head timeout.
async fn timed<F: std::future::Future>(
    ex: &Exchange<'_>,
    exchange: impl FnOnce(Instant, std::time::Duration, std::time::Duration) -> F,
) -> F::Output {
    let limits = &ex.policy.settings.limits;
    let started = Instant::now();
    let result = exchange(
        started,
        limits.upstream_connect_timeout,
        limits.upstream_timeout,
    )
    .await;
    ex.shared
        .control
        .metrics
        .upstream_duration(started.elapsed());
    result
}

/// The answer to an upstream that gave none (504 on a timeout, else 502),
/// logged.
fn upstream_refusal(ex: &Exchange<'_>, e: &ForwardError) -> Refusal {
    tracing::warn!(request_id = ex.id.as_str(), error = %e, "upstream request failed");
    match e {
        ForwardError::Timeout(_) => Refusal::of(Reason::UpstreamTimeout),
        _ => Refusal::of(Reason::UpstreamUnreachable),
    }
}

/// Whether a request asks to switch protocols to something the gateway
/// passes through (WebSocket and the like; never h2c).
fn upgrade_token(parts: &Parts) -> Option<HeaderValue> {
    if parts.version != Version::HTTP_11 {
        return None;
    }
    let upgrade = parts.headers.get(http::header::UPGRADE)?;
    let connection_says_upgrade = parts
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let h2c = upgrade.to_str().map_or(true, |u| {
        u.split(',').any(|t| t.trim().eq_ignore_ascii_case("h2c"))
    });
    (connection_says_upgrade && !h2c).then(|| upgrade.clone())
}

/// Forwards an allowed request with a body, or an upgrade, to its upstream
/// through hyper's client.
#[allow(clippy::too_many_arguments)]
async fn proxy(
    ex: &mut Exchange<'_>,
    mut parts: Parts,
    body: Incoming,
    upgrade: Option<HeaderValue>,
    trusted: bool,
    route: &Route,
    upstream: &UpstreamUrl,
    target: PathAndQuery,
    client_host: Option<String>,
    line: Option<LineBuilder>,
    outcome: LineOutcome,
) -> Answer {
    let version = parts.version;
    let accept = parts.headers.get(ACCEPT).cloned();
    let limits = &ex.policy.settings.limits;
    // A declared length over the limit is refused before the upstream hears of it.
    if let (Some(max), Some(length)) = (
        limits.max_body_bytes,
        hyper::body::Body::size_hint(&body).exact(),
    ) && length > max
    {
        return ex.refuse(
            &Refusal::of(Reason::BodyTooLarge),
            None,
            accept.as_ref().map(HeaderValue::as_bytes),
            line,
        );
    }
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
    forward::upstream_headers(
        &mut parts.headers,
        &ex.origin(trusted, client_host.as_deref()),
        upstream_host(client_host.as_deref(), route, upstream),
    );
    if let (Some(token), Some(_)) = (&upgrade, &client_upgrade) {
        parts.headers.insert(http::header::UPGRADE, token.clone());
        parts.headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    }
    parts.uri = http::Uri::from(target);
    parts.version = Version::HTTP_11;
    let body = LimitedBody::new(body, limits.max_body_bytes, limits.body_timeout);
    let request = Request::from_parts(parts, RequestBody::Client(body));
    let sent = timed(ex, |now, connect, head| {
        forward::send(
            &upstream.authority,
            upstream.tls.as_ref(),
            request,
            now,
            connect,
            head,
        )
    });
    match sent.await {
        Ok(mut response) => {
            let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            let upstream_upgrade = response.headers().get(http::header::UPGRADE).cloned();
            forward::client_response(&mut response);
            *response.version_mut() = version;
            if let (true, Some(client), Some(token)) = (switching, client_upgrade, upstream_upgrade)
            {
                let headers = response.headers_mut();
                headers.insert(http::header::UPGRADE, token);
                headers.insert(
                    http::header::CONNECTION,
                    HeaderValue::from_static("upgrade"),
                );
                let upstream = hyper::upgrade::on(&mut response);
                let guard = InFlight::start(ex.state);
                tokio::spawn(splice(client, upstream, limits.idle_timeout, guard));
                return ex.allow(response.map(|_| ResponseBody::Empty), line, outcome);
            }
            ex.allow(response.map(ResponseBody::Upstream), line, outcome)
        }
        Err(e) => {
            let limit = match &e {
                ForwardError::Failed { source, .. } => BodyLimit::find(source),
                _ => None,
            };
            let refusal = match limit {
                Some(BodyLimit::TooLarge(_)) => Refusal::of(Reason::BodyTooLarge),
                Some(BodyLimit::Timeout(_)) => Refusal {
                    status: http::StatusCode::REQUEST_TIMEOUT,
                    ..Refusal::of(Reason::BadRequest)
                },
                None => upstream_refusal(ex, &e),
            };
            ex.refuse(
                &refusal,
                None,
                accept.as_ref().map(HeaderValue::as_bytes),
                line,
            )
        }
    }
}

/// Copies bytes both ways between an upgraded client connection and its
/// upstream until either side closes or neither sends for `idle`.
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    idle: std::time::Duration,
    _in_flight: InFlight,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
        return;
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_upstream = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => if upstream.write_all(&from_client[..n]).await.is_err() { break },
            },
            read = upstream.read(&mut from_upstream) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => if client.write_all(&from_upstream[..n]).await.is_err() { break },
            },
            () = tokio::time::sleep(idle) => break,
        }
    }
    let _ = client.shutdown().await;
    let _ = upstream.shutdown().await;
}
