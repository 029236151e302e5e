//! The admin listener (SPEC 10), on its own thread, runtime and address,
//! never on the public listeners:
//!
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 once a rulebook is loaded and the listeners are
//!   bound; 503 from the start of a shutdown.
//! - `GET /metrics`: every metric, as OpenMetrics 1.0 text when `Accept`
//!   names `application/openmetrics-text` (what Prometheus sends), else the
//!   Prometheus text format 0.0.4 (what every other scraper and `curl` read).
//! - `GET /status`: the rulebook in force and how the last load went.
//! - `POST /reload`: reloads now; 200 with the `last_reload` object, 422
//!   with it when the new rulebook was refused.
//! - `GET /explain?ip=…`: the JSON of `edgeguard explain --json`, decided by
//!   the policy in force; 400 with a JSON error for a bad query.
//! - `GET /`: the dashboard page.
//!
//! When the admin address is not loopback, `POST /reload`, `/explain` and
//! `/` answer 401 without `Authorization: Bearer <admin_token_env's value>`;
//! the health endpoints and `/metrics` stay open.

mod feed;
mod page;
pub mod query;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use http::header::{ACCEPT, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::sync::watch;

pub use feed::{Feed, Inline, MINUTES, RECENT, RefusalEvent, Series, Snapshot};

use crate::body::ResponseBody;
use crate::gateway::Shared;
use crate::metrics::{Format, Metrics};
use crate::policy::Policy;
use crate::reload::{Reloader, Trigger, rfc3339};
use crate::{explain, probe, request_id, respond};

/// What the admin endpoints report and control besides the policy: the
/// metrics, the reload thread and the refusal feed. The gateway records
/// into `metrics` and `feed`.
#[derive(Debug, Clone)]
pub struct Control {
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// The reload thread's handle (not started by `new`).
    pub reloader: Reloader,
    /// The refusal feed of the dashboard.
    pub feed: Feed,
}

impl Control {
    /// Metrics, a reloader of the rulebook at `path` whose first load gave
    /// `policy`, and a feed: off when `policy` has no admin listener.
    pub fn new(path: &Path, policy: &Policy) -> Control {
        let metrics = Metrics::new();
        let reloader = Reloader::new(path, policy, Arc::clone(&metrics));
        let feed = match policy.settings.admin {
            Some(_) => Feed::new(),
            None => Feed::off(),
        };
        Control {
            metrics,
            reloader,
            feed,
        }
    }
}

/// Serves the admin endpoints until `stop` turns true.
pub fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the admin runtime");
            return;
        }
    };
    let control = Arc::new(shared.control.clone());
    let local = listener.local_addr().ok();
    // Loopback means only this host can connect; anything else needs the token.
    let protected = local.is_none_or(|a: SocketAddr| !a.ip().is_loopback());
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot register the admin listener");
                return;
            }
        };
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let shared = Arc::clone(&shared);
            let control = Arc::clone(&control);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    let control = Arc::clone(&control);
                    async move {
                        Ok::<_, Infallible>(answer(&shared, &control, protected, &request).await)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(
    shared: &Shared,
    control: &Control,
    protected: bool,
    request: &Request<Incoming>,
) -> Response<ResponseBody> {
    let method = request.method();
    let get = method == Method::GET || method == Method::HEAD;
    let path = request.uri().path();
    let allowed = match path {
        "/healthz" | "/readyz" | "/metrics" | "/status" | "/explain" | "/" => "GET, HEAD",
        "/reload" => "POST",
        _ => return error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    };
    let post = method == Method::POST;
    if !(get && allowed == "GET, HEAD" || post && allowed == "POST") {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allowed));
        return response;
    }
    let live = shared.live.load_full();
    let policy = &live.policy;
    if protected && matches!(path, "/reload" | "/explain" | "/") {
        let token = policy.settings.admin_token.as_deref();
        if !authorized(request.headers().get(AUTHORIZATION), token) {
            let mut response = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    match path {
        "/healthz" => respond::text(StatusCode::OK, "ok\n"),
        "/readyz" if shared.ready.load(Ordering::SeqCst) => {
            respond::text(StatusCode::OK, "ready\n")
        }
        "/readyz" => respond::text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" => {
            let accept = request.headers().get(ACCEPT).and_then(|a| a.to_str().ok());
            let format = Format::negotiate(accept);
            body(
                StatusCode::OK,
                format.content_type(),
                control.metrics.encode(format),
            )
        }
        "/status" => json_response(StatusCode::OK, &status(policy, control)),
        "/reload" => match control.reloader.reload(Trigger::Api).await {
            Some(done) if done.ok => json_response(StatusCode::OK, &done.to_json()),
            Some(done) => json_response(StatusCode::UNPROCESSABLE_ENTITY, &done.to_json()),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the reload thread is not running",
            ),
        },
        "/explain" => match query::probe(request.uri().query()) {
            Ok(probe) => {
                let result = probe::run(policy, &probe);
                let id = request_id::new();
                let value = explain::to_json(policy, &probe, &result, id.as_str());
                json_response(StatusCode::OK, &value)
            }
            Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        },
        _ => {
            let now = SystemTime::now();
            let page = page::render(policy, control, &control.feed.snapshot(now), now);
            let mut response = body(StatusCode::OK, "text/html; charset=utf-8", page);
            // Nothing loads from elsewhere, and no script runs.
            response.headers_mut().insert(
                http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
            response
        }
    }
}

/// The `/status` object: exactly the fields of SPEC 10.
pub fn status(policy: &Policy, control: &Control) -> Value {
    json!({
        "config_path": policy.source.path.display().to_string(),
        "sha256": policy.source.sha256,
        "loaded_at": rfc3339(policy.source.loaded_at),
        "rules": policy.rules.len(),
        "routes": policy.routes.all().len(),
        "cidrs": policy.cidr_count(),
        "last_reload": control.reloader.last().to_json(),
    })
}

/// Whether `Authorization` is `Bearer <token>`, compared in constant time
/// (of SHA-256 digests, so the length does not show either). No token: never.
fn authorized(header: Option<&HeaderValue>, token: Option<&str>) -> bool {
    let (Some(header), Some(token)) = (header, token) else {
        return false;
    };
    let Some(given) = header
        .as_bytes()
        .strip_prefix(b"Bearer ")
        .or_else(|| header.as_bytes().strip_prefix(b"bearer "))
    else {
        return false;
    };
    let given = sha2::Sha256::digest(given);
    let wanted = sha2::Sha256::digest(token.as_bytes());
    given
        .iter()
        .zip(wanted.iter())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

fn body(status: StatusCode, content_type: &'static str, text: String) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    body(status, "application/json", text)
}

/// A JSON error in the shape of refusals: `error` (the reason phrase),
/// `message`, `statusCode`.
fn error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let value = json!({
        "error": status.canonical_reason().unwrap_or(""),
        "message": message,
        "statusCode": status.as_u16(),
    });
    json_response(status, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let h = |s: &str| HeaderValue::from_str(s).expect("header");
        let token = Some("s3cret-token");
        assert!(authorized(Some(&h("Bearer s3cret-token")), token));
        assert!(authorized(Some(&h("bearer s3cret-token")), token));
        for wrong in [
            "Bearer s3cret-toke",
            "Bearer s3cret-token2",
            "s3cret-token",
            "Basic s3cret-token",
            "Bearer ",
        ] {
            assert!(!authorized(Some(&h(wrong)), token), "{wrong}");
        }
        assert!(!authorized(None, token));
        assert!(!authorized(Some(&h("Bearer ")), None));
    }
}
