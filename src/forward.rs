//! Forwarding to `upstream` routes: the upstream request built from the
//! canonical path and the query as received, hop-by-hop headers stripped both
//! ways before the gateway adds its own, `X-Forwarded-*` and `X-Request-Id`
//! per SPEC 4, and a keep-alive connection pool per worker thread.
//!
//! Requests with a body, and upgrades, go through hyper's client here;
//! requests without a body (nearly all GET and HEAD requests) go through
//! [`crate::fetch`], which shares this module's header rules and pool.
//!
//! Each worker thread runs its own single-threaded runtime, so the pool is a
//! thread-local: taking and returning a connection costs no lock, and a
//! connection's task runs on the thread that uses it.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::body::RequestBody;
use crate::connect::UpstreamTls;
use crate::headers::{self, Headers, Name};

/// Idle connections kept per upstream and worker.
const MAX_IDLE_PER_UPSTREAM: usize = 64;
/// An idle pooled connection older than this is closed rather than reused.
const MAX_IDLE_TIME: Duration = Duration::from_secs(30);

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`.
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Why a request did not get an upstream response.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection could be made in `upstream_connect_timeout`.
    #[error("cannot connect to upstream {authority}: {reason}")]
    Unreachable {
        /// The upstream.
        authority: Authority,
        /// Why.
        reason: String,
    },
    /// No response head in `upstream_timeout`.
    #[error("upstream {0} sent no response head in time")]
    Timeout(Authority),
    /// The connection failed while the request or response head was in flight.
    #[error("upstream {authority} failed: {source}")]
    Failed {
        /// The upstream.
        authority: Authority,
        /// Hyper's error.
        source: hyper::Error,
    },
    /// The upstream's answer could not be read, or its framing is ambiguous.
    #[error("upstream {authority} failed: {reason}")]
    Broken {
        /// The upstream.
        authority: Authority,
        /// What went wrong.
        reason: String,
    },
}

/// Whether a header is hop-by-hop (RFC 9110 §7.6.1, plus `Proxy-Connection`
/// and `Keep-Alive`).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop_raw(name.as_str().as_bytes())
}

/// [`is_hop_by_hop`] for a name as sent, in any case: the one list of
/// hop-by-hop names, by length.
pub(crate) fn is_hop_by_hop_raw(name: &[u8]) -> bool {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 => is(b"te"),
        7 => is(b"trailer") || is(b"upgrade"),
        10 => is(b"connection") || is(b"keep-alive"),
        16 => is(b"proxy-connection"),
        17 => is(b"transfer-encoding"),
        18 => is(b"proxy-authenticate"),
        19 => is(b"proxy-authorization"),
        _ => false,
    }
}

/// What the upstream request does with a client header, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Never passed on: hop-by-hop, or set by the gateway (`Host`,
    /// `X-Request-Id`, `X-Forwarded-For`).
    Dropped,
    /// `X-Forwarded-Proto`: passed on from a trusted peer.
    Proto,
    /// `X-Forwarded-Host`: passed on from a trusted peer.
    ForwardedHost,
    /// Another forwarding header (`X-Forwarded-*`, `Forwarded`,
    /// `X-Real-IP`): passed on from a trusted peer.
    Forwarding,
    /// Anything else.
    Other,
}

/// The kind of a header name, in any case: a switch on its length and a
/// comparison or two, instead of a comparison with every name listed.
fn kind_of(name: Name<'_>) -> Kind {
    let n = name.as_bytes();
    if is_hop_by_hop_raw(n) {
        return Kind::Dropped;
    }
    let is = |s: &[u8]| n.eq_ignore_ascii_case(s);
    match n.len() {
        4 if is(b"host") => Kind::Dropped,
        9 if is(b"forwarded") || is(b"x-real-ip") => Kind::Forwarding,
        12 if is(b"x-request-id") => Kind::Dropped,
        15 if is(b"x-forwarded-for") => Kind::Dropped,
        16 if is(b"x-forwarded-host") => Kind::ForwardedHost,
        17 if is(b"x-forwarded-proto") => Kind::Proto,
        len if len >= 12 && n[..12].eq_ignore_ascii_case(b"x-forwarded-") => Kind::Forwarding,
        _ => Kind::Other,
    }
}

/// The header names that `Connection` headers list, as sent; requests
/// carry few, so they are kept inline.
pub(crate) struct Listed<'h> {
    inline: [&'h [u8]; 8],
    len: usize,
    more: Vec<&'h [u8]>,
}

impl<'h> Listed<'h> {
    /// No names.
    pub(crate) fn new() -> Listed<'h> {
        Listed {
            inline: [&[]; 8],
            len: 0,
            more: Vec::new(),
        }
    }

    /// The names `headers`' `Connection` values list.
    fn of(headers: impl Into<Headers<'h>>) -> Listed<'h> {
        let mut listed = Listed::new();
        for value in headers.into().get_all(&header::CONNECTION) {
            listed.add(value);
        }
        listed
    }

    /// Adds the comma-separated names of one `Connection` value.
    pub(crate) fn add(&mut self, value: &'h [u8]) {
        for token in value.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() {
                continue;
            }
            match self.inline.get_mut(self.len) {
                Some(slot) => {
                    *slot = token;
                    self.len += 1;
                }
                None => self.more.push(token),
            }
        }
    }

    /// Whether `name` (lowercase) is listed, in any case.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.contains_bytes(name.as_bytes())
    }

    /// Whether `name`, as sent, is listed, in any case.
    pub(crate) fn contains_bytes(&self, name: &[u8]) -> bool {
        // Nearly always: no `Connection` header, or one naming no header.
        if self.len == 0 {
            return false;
        }
        self.inline[..self.len]
            .iter()
            .chain(&self.more)
            .any(|t| t.eq_ignore_ascii_case(name))
    }
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1, plus `Proxy-Connection` and
/// `Keep-Alive`) and every header that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed = Listed::of(&*headers);
    let mut removals: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if is_hop_by_hop(name) || listed.contains(name.as_str()) {
            removals.push(name.clone());
        }
    }
    drop(listed);
    for name in removals {
        headers.remove(name);
    }
}

/// What the gateway knows about where a request came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The TCP peer (or the PROXY-protocol address standing for it).
    pub peer: IpAddr,
    /// `peer` as a header value (made once per connection).
    pub peer_value: &'a HeaderValue,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
    /// The header that names the client, dropped from untrusted peers.
    pub client_header: &'a HeaderName,
    /// "https" on TLS listeners.
    pub proto: &'static str,
    /// The Host the client asked for, as sent (port included).
    pub host: Option<&'a [u8]>,
    /// The request id (`[A-Za-z0-9._-]`).
    pub request_id: &'a [u8],
}

/// A value of the upstream request's headers.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// One of the client's values, or one the gateway keeps ready.
    Kept(&'a HeaderValue),
    /// Bytes: the request id, or a value of a head read by [`crate::h1`]
    /// (checked by httparse).
    Made(&'a [u8]),
    /// `X-Forwarded-For` from a trusted peer: the values it sent (those that
    /// are visible ASCII), then the peer, joined by ", ".
    Appended {
        /// The client's headers.
        headers: Headers<'a>,
        /// The peer's address as a value.
        peer: &'a HeaderValue,
    },
}

impl Value<'_> {
    /// Writes the value's bytes behind `out`: no header value is made, and
    /// nothing is allocated beyond `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Kept(v) => out.extend_from_slice(v.as_bytes()),
            Value::Made(b) => out.extend_from_slice(b),
            Value::Appended { headers, peer } => {
                for v in forwarded_for(headers) {
                    out.extend_from_slice(v);
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(peer.as_bytes());
            }
        }
    }

    /// The value as a header value (for hyper's client); `None` for bytes
    /// a header value cannot hold.
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        match *self {
            Value::Kept(v) => Some(v.clone()),
            Value::Appended { headers, peer } if forwarded_for(headers).next().is_none() => {
                Some(peer.clone())
            }
            _ => {
                let mut bytes = Vec::with_capacity(64);
                self.write_to(&mut bytes);
                HeaderValue::from_maybe_shared(Bytes::from(bytes)).ok()
            }
        }
    }
}

/// A trusted peer's `X-Forwarded-For` values that are visible ASCII.
fn forwarded_for(headers: Headers<'_>) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .filter(|v| v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
}

/// Calls `emit` with every header of the upstream request, in order. First
/// the client's, less the hop-by-hop ones, those `Connection` names, those
/// the gateway sets itself, and — from an untrusted peer — every forwarding
/// header. Then the gateway's own: `X-Forwarded-For` (the peer appended to a
/// trusted peer's list, else the peer alone), `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (a trusted peer's kept), `X-Request-Id`, and `Host`.
/// `Connection` can never remove what the gateway adds.
pub fn each_upstream_header(
    headers: Headers<'_>,
    origin: &Origin<'_>,
    host: &[u8],
    mut emit: impl FnMut(Name<'_>, Value<'_>),
) {
    let listed = Listed::of(headers);
    let (mut kept_proto, mut kept_host) = (false, false);
    for (name, value) in headers.iter() {
        let kind = kind_of(name);
        let forwarding = matches!(kind, Kind::Proto | Kind::ForwardedHost | Kind::Forwarding);
        if kind == Kind::Dropped
            || (!origin.trusted && (forwarding || name.is(origin.client_header)))
            || listed.contains_bytes(name.as_bytes())
        {
            continue;
        }
        kept_proto |= kind == Kind::Proto;
        kept_host |= kind == Kind::ForwardedHost;
        emit(
            name,
            match value {
                headers::Value::Map(v) => Value::Kept(v),
                headers::Value::Raw(v) => Value::Made(v),
            },
        );
    }
    let own = Name::Map;
    if origin.trusted && !listed.contains(X_FORWARDED_FOR.as_str()) {
        emit(
            own(&X_FORWARDED_FOR),
            Value::Appended {
                headers,
                peer: origin.peer_value,
            },
        );
    } else {
        emit(own(&X_FORWARDED_FOR), Value::Kept(origin.peer_value));
    }
    if !kept_proto {
        emit(
            own(&X_FORWARDED_PROTO),
            Value::Kept(&HeaderValue::from_static(origin.proto)),
        );
    }
    if let (false, Some(h)) = (kept_host, origin.host) {
        emit(own(&X_FORWARDED_HOST), Value::Made(h));
    }
    emit(
        own(&crate::respond::X_REQUEST_ID),
        Value::Made(origin.request_id),
    );
    emit(own(&header::HOST), Value::Made(host));
}

/// Rewrites client headers into upstream headers, as
/// [`each_upstream_header`] lists them.
pub fn upstream_headers(headers: &mut HeaderMap, origin: &Origin<'_>, host: &[u8]) {
    let mut upstream = HeaderMap::with_capacity(headers.len() + ADDED_HEADERS);
    each_upstream_header(Headers::Map(headers), origin, host, |name, value| {
        if let (Some(name), Some(value)) = (name.to_header_name(), value.to_header_value()) {
            upstream.append(name, value);
        }
    });
    *headers = upstream;
}

/// How many headers the gateway may add.
const ADDED_HEADERS: usize = 5;

/// The upstream request target: the canonical path and the query as
/// received. `received` is the client's path and query: when its path is the
/// canonical one, it is reused as it is (no copy); a path canonicalization
/// changed is encoded once here. `None` when the result is not a valid
/// target.
pub fn upstream_target(
    path: &str,
    query: Option<&str>,
    received: Option<&PathAndQuery>,
) -> Option<PathAndQuery> {
    match (received, query) {
        // `path()` says "/" for an empty path ("http://h?q"): the target
        // must begin with the path itself.
        (Some(pq), _) if pq.path() == path && pq.as_str().starts_with(path) => Some(pq.clone()),
        (_, Some(q)) => PathAndQuery::try_from(format!("{path}?{q}")).ok(),
        (_, None) => PathAndQuery::try_from(path).ok(),
    }
}

/// Cleans an upstream response for the client: hop-by-hop headers stripped.
pub fn client_response<B>(response: &mut Response<B>) {
    strip_hop_by_hop(response.headers_mut());
}

/// An idle connection and since when it has been idle.
pub(crate) struct Idle<C> {
    /// The connection.
    pub(crate) conn: C,
    /// When it went idle.
    pub(crate) since: Instant,
}

/// Idle connections by upstream, kept per worker thread. A worker talks to
/// few upstreams, so a short list compared by authority beats hashing it on
/// every request.
pub(crate) struct Pool<C> {
    /// By pool key: the authority, or for TLS the authority with what the
    /// connection was verified for.
    upstreams: Vec<(Box<str>, Vec<Idle<C>>)>,
}

impl<C> Pool<C> {
    /// No connections.
    pub(crate) const fn new() -> Pool<C> {
        Pool {
            upstreams: Vec::new(),
        }
    }

    /// The idle connections under `key`, oldest first.
    pub(crate) fn idle(&mut self, key: &str) -> Option<&mut Vec<Idle<C>>> {
        // Exact bytes: the keys come from the compiled routes.
        self.upstreams
            .iter_mut()
            .find(|(k, _)| **k == *key)
            .map(|(_, idle)| idle)
    }

    /// Keeps `conn`, idle since `now`, for reuse; the oldest goes when
    /// `MAX_IDLE_PER_UPSTREAM` are kept. Gives the idle connections under
    /// `key`, oldest first.
    pub(crate) fn put(&mut self, key: &str, conn: C, now: Instant) -> &mut Vec<Idle<C>> {
        let index = match self.upstreams.iter().position(|(k, _)| **k == *key) {
            Some(i) => i,
            None => {
                self.upstreams.push((key.into(), Vec::new()));
                self.upstreams.len() - 1
            }
        };
        let idle = &mut self.upstreams[index].1;
        if idle.len() >= MAX_IDLE_PER_UPSTREAM {
            idle.remove(0);
        }
        idle.push(Idle { conn, since: now });
        idle
    }
}

/// Whether a connection idle since `since` may still be used at `now`.
pub(crate) fn is_fresh(since: Instant, now: Instant) -> bool {
    now.saturating_duration_since(since) < MAX_IDLE_TIME
}

thread_local! {
    static POOL: RefCell<Pool<SendRequest<RequestBody>>> = const { RefCell::new(Pool::new()) };
}

fn take_idle(key: &str, now: Instant) -> Option<SendRequest<RequestBody>> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.idle(key)?;
        idle.retain(|i| !i.conn.is_closed() && is_fresh(i.since, now));
        let ready = idle.iter().rposition(|i| i.conn.is_ready())?;
        Some(idle.swap_remove(ready).conn)
    })
}

fn put_idle(key: &str, sender: SendRequest<RequestBody>) {
    POOL.with(|pool| {
        pool.borrow_mut().put(key, sender, Instant::now());
    });
}

async fn connect(
    authority: &Authority,
    tls: Option<&UpstreamTls>,
    timeout: Duration,
) -> Result<SendRequest<RequestBody>, ForwardError> {
    let stream = crate::connect::connect(authority, tls, timeout).await?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ForwardError::Unreachable {
            authority: authority.clone(),
            reason: e.to_string(),
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Sends a request (its URI the target, in origin form) to `authority`
/// (over TLS when `tls` is set) and waits for the response head. `now` is
/// when sending starts: the clock for the head deadline and for expiring
/// idle pooled connections.
pub async fn send(
    authority: &Authority,
    tls: Option<&Arc<UpstreamTls>>,
    mut request: Request<RequestBody>,
    now: Instant,
    connect_timeout: Duration,
    head_timeout: Duration,
) -> Result<Response<Incoming>, ForwardError> {
    *request.version_mut() = Version::HTTP_11;

    let deadline = tokio::time::Instant::from_std(now) + head_timeout;
    let key = crate::connect::pool_key(authority, tls);
    let mut request = Some(request);
    // A pooled connection the upstream closed while idle gives the request
    // back unsent; it is then sent on a fresh connection.
    for fresh in [false, true] {
        let pooled = if fresh { None } else { take_idle(key, now) };
        let reused = pooled.is_some();
        let mut sender = match pooled {
            Some(s) => s,
            None => connect(authority, tls.map(Arc::as_ref), connect_timeout).await?,
        };
        let req = request.take().expect("request present until sent");
        let sent = tokio::time::timeout_at(deadline, sender.try_send_request(req)).await;
        match sent {
            Err(_) => return Err(ForwardError::Timeout(authority.clone())),
            Ok(Ok(response)) => {
                put_idle(key, sender);
                return Ok(response);
            }
            Ok(Err(mut e)) => match e.take_message() {
                Some(req) if reused => request = Some(req),
                _ => {
                    return Err(ForwardError::Failed {
                        authority: authority.clone(),
                        source: e.into_error(),
                    });
                }
            },
        }
    }
    Err(ForwardError::Unreachable {
        authority: authority.clone(),
        reason: "connection closed before the request was sent".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut n: Vec<String> = h.keys().map(|k| k.to_string()).collect();
        n.sort();
        n
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_stripped() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret, x-forwarded-for"),
            ("connection", "upgrade"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("x-secret", "1"),
            ("x-forwarded-for", "1.2.3.4"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["accept"]);
    }

    fn origin<'a>(
        trusted: bool,
        host: Option<&'a HeaderValue>,
        name: &'a HeaderName,
    ) -> Origin<'a> {
        static PEER: HeaderValue = HeaderValue::from_static("192.0.2.9");
        Origin {
            peer: "192.0.2.9".parse().expect("ip"),
            peer_value: &PEER,
            trusted,
            client_header: name,
            proto: "http",
            host: host.map(HeaderValue::as_bytes),
            request_id: b"abc",
        }
    }

    #[test]
    fn untrusted_peers_forwarding_headers_are_dropped_and_replaced() {
        let mut h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-port", "1"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("cf-connecting-ip", "6.6.6.6"),
            ("x-request-id", "client-chosen"),
        ]);
        let host = HeaderValue::from_static("www.example.com:8080");
        let name = HeaderName::from_static("cf-connecting-ip");
        upstream_headers(&mut h, &origin(false, Some(&host), &name), host.as_bytes());
        assert_eq!(
            names(&h),
            [
                "host",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-request-id"
            ]
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "www.example.com:8080");
        assert_eq!(h["x-request-id"], "abc");
    }

    #[test]
    fn trusted_peers_list_gets_the_peer_appended() {
        let mut h = headers(&[
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "10.0.0.1, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]);
        let host = HeaderValue::from_static("h");
        let name = HeaderName::from_static("x-forwarded-for");
        upstream_headers(&mut h, &origin(true, Some(&host), &name), host.as_bytes());
        assert_eq!(
            h["x-forwarded-for"],
            "203.0.113.1, 10.0.0.1, 10.0.0.2, 192.0.2.9"
        );
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn values_that_are_not_visible_ascii_are_not_passed_on() {
        let mut h = headers(&[("x-forwarded-for", "203.0.113.1")]);
        h.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_bytes(b"10.0.0.\xff").expect("obs-text value"),
        );
        let host = HeaderValue::from_static("h");
        let name = HeaderName::from_static("x-forwarded-for");
        upstream_headers(&mut h, &origin(true, Some(&host), &name), host.as_bytes());
        assert_eq!(h["x-forwarded-for"], "203.0.113.1, 192.0.2.9");
    }

    #[test]
    fn header_kinds_are_the_same_in_any_case_and_either_way_read() {
        use Kind::*;
        let long_forwarding = "x-forwarded-for-some-very-long-custom-name";
        let cases = [
            ("connection", Dropped),
            ("te", Dropped),
            ("trailer", Dropped),
            ("transfer-encoding", Dropped),
            ("upgrade", Dropped),
            ("proxy-authenticate", Dropped),
            ("proxy-authorization", Dropped),
            ("keep-alive", Dropped),
            ("proxy-connection", Dropped),
            ("host", Dropped),
            ("x-request-id", Dropped),
            ("x-forwarded-for", Dropped),
            ("x-forwarded-proto", Proto),
            ("x-forwarded-host", ForwardedHost),
            ("x-forwarded-port", Forwarding),
            ("x-forwarded-", Forwarding),
            (long_forwarding, Forwarding),
            ("forwarded", Forwarding),
            ("x-real-ip", Forwarding),
            ("accept", Other),
            ("forwarded-for", Other),
            ("x-forwarded", Other),
            ("tee", Other),
            ("x-some-custom-header-longer-than-24", Other),
        ];
        for (name, kind) in cases {
            let header = HeaderName::from_bytes(name.as_bytes()).expect("name");
            assert_eq!(kind_of(Name::Map(&header)), kind, "{name}");
            assert_eq!(kind_of(Name::Raw(name.as_bytes())), kind, "{name}");
            let upper = name.to_ascii_uppercase();
            assert_eq!(kind_of(Name::Raw(upper.as_bytes())), kind, "{upper}");
            assert_eq!(
                is_hop_by_hop(&header),
                kind == Dropped && is_hop(name),
                "{name}"
            );
        }
    }

    /// The hop-by-hop names, as RFC 9110 and common practice list them.
    fn is_hop(name: &str) -> bool {
        !matches!(name, "host" | "x-request-id" | "x-forwarded-for")
    }

    #[test]
    fn connection_cannot_remove_what_the_gateway_adds() {
        let mut h = headers(&[("connection", "X-Forwarded-For, Host, X-Request-Id")]);
        let host = HeaderValue::from_static("site");
        let name = HeaderName::from_static("x-forwarded-for");
        upstream_headers(&mut h, &origin(false, Some(&host), &name), host.as_bytes());
        assert_eq!(h["x-forwarded-for"], "192.0.2.9");
        assert_eq!(h["host"], "site");
        assert_eq!(h["x-request-id"], "abc");
    }
}
