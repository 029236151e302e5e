//! Prometheus metrics (SPEC 10), encoded by `prometheus-client`.
//!
//! Recording on the request path takes no lock and allocates nothing: the
//! label sets of `edgeguard_requests_total` are resolved when a policy is
//! loaded, into a [`Counters`] table of atomic cells indexed by rule and
//! reason, and the duration histograms are fixed buckets of atomics
//! ([`AtomicHistogram`]; the crate's own `Histogram` takes a mutex). Every
//! label value comes from the rulebook (rule names) or a fixed vocabulary
//! (decisions, [`Reason`](crate::decision::Reason) codes, [`ConnErrorKind`]), never from a request.
//!
//! What this module does not do: serve `/metrics` (`admin`) or decide when a
//! policy is loaded (`reload`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::policy::Policy;

mod histogram;
mod requests;

pub use histogram::AtomicHistogram;
pub use requests::Counters;

use requests::RequestSeries;

/// Upper bounds, in seconds, of the duration histograms' buckets.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One fixed label, for families resolved once at start.
type Label = [(&'static str, &'static str); 1];

/// Why a connection failed (`edgeguard_connection_errors_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnErrorKind {
    /// `accept()` failed (e.g. out of file descriptors).
    Accept,
    /// The TLS handshake failed.
    TlsHandshake,
    /// A trusted peer sent no valid PROXY header.
    ProxyProtocol,
    /// The request head did not arrive within `header_timeout`.
    HeaderTimeout,
    /// The client took none of an answer's bytes for `idle_timeout`.
    SendTimeout,
    /// The request head was over `max_header_bytes` (answered 431 by the parser).
    HeadersTooLarge,
    /// The parser refused a malformed request head (answered 400 by the parser).
    MalformedRequest,
    /// Another HTTP/1 or HTTP/2 protocol error.
    Protocol,
    /// The connection broke (reset, closed mid-message).
    Io,
}

impl ConnErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ConnErrorKind; 9] = [
        ConnErrorKind::Accept,
        ConnErrorKind::TlsHandshake,
        ConnErrorKind::ProxyProtocol,
        ConnErrorKind::HeaderTimeout,
        ConnErrorKind::SendTimeout,
        ConnErrorKind::HeadersTooLarge,
        ConnErrorKind::MalformedRequest,
        ConnErrorKind::Protocol,
        ConnErrorKind::Io,
    ];

    /// The `kind` label value.
    pub const fn code(self) -> &'static str {
        match self {
            ConnErrorKind::Accept => "accept",
            ConnErrorKind::TlsHandshake => "tls_handshake",
            ConnErrorKind::ProxyProtocol => "proxy_protocol",
            ConnErrorKind::HeaderTimeout => "header_timeout",
            ConnErrorKind::SendTimeout => "send_timeout",
            ConnErrorKind::HeadersTooLarge => "headers_too_large",
            ConnErrorKind::MalformedRequest => "malformed_request",
            ConnErrorKind::Protocol => "protocol",
            ConnErrorKind::Io => "io",
        }
    }

    /// The kind of an error that ended a served connection (what
    /// `serve_connection` returned): hyper's parse, size and timeout errors,
    /// I/O errors anywhere in the source chain, else [`ConnErrorKind::Protocol`].
    pub fn of(error: &(dyn std::error::Error + 'static)) -> ConnErrorKind {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(h) = e.downcast_ref::<hyper::Error>() {
                if h.is_parse_too_large() {
                    return ConnErrorKind::HeadersTooLarge;
                }
                if h.is_parse() {
                    return ConnErrorKind::MalformedRequest;
                }
                if h.is_timeout() {
                    return ConnErrorKind::HeaderTimeout;
                }
                if h.is_incomplete_message() {
                    return ConnErrorKind::Io;
                }
            }
            if e.is::<std::io::Error>() {
                return ConnErrorKind::Io;
            }
            next = e.source();
        }
        ConnErrorKind::Protocol
    }
}

/// How `/metrics` is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4, what every other scraper and `curl` read.
    Prometheus,
}

impl Format {
    /// OpenMetrics when `Accept` names it, else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of the encoding.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Every metric of the process. Lives as long as the process; policies come
/// and go, their [`Counters`] draw from it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Arc<RequestSeries>,
    request_duration: AtomicHistogram,
    upstream_duration: AtomicHistogram,
    reloads_ok: Counter,
    reloads_error: Counter,
    loaded_at: Gauge<f64, AtomicU64>,
    open_connections: Gauge<i64, AtomicI64>,
    connection_errors: [Counter; ConnErrorKind::ALL.len()],
}

impl Metrics {
    /// A registry holding every metric of SPEC 10, each at zero.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let requests = Arc::new(RequestSeries::default());
        registry.register_collector(Box::new(Arc::clone(&requests)));
        let request_duration = AtomicHistogram::new(&DURATION_BUCKETS);
        registry.register_with_unit(
            "edgeguard_request_duration",
            "Time from a request's arrival to its response head",
            Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_duration = AtomicHistogram::new(&DURATION_BUCKETS);
        registry.register_with_unit(
            "edgeguard_upstream_duration",
            "Time from forwarding a request to the upstream's response head",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let reloads = Family::<Label, Counter>::default();
        registry.register(
            "edgeguard_config_reloads",
            "Rulebook reloads by result",
            reloads.clone(),
        );
        let reloads_ok = reloads.get_or_create_owned(&[("result", "ok")]);
        let reloads_error = reloads.get_or_create_owned(&[("result", "error")]);
        let loaded_at = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "edgeguard_config_loaded_timestamp_seconds",
            "When the rulebook in force was loaded, in seconds since the Unix epoch",
            loaded_at.clone(),
        );
        let open_connections = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "edgeguard_open_connections",
            "Client connections open on the public listeners",
            open_connections.clone(),
        );
        let errors = Family::<Label, Counter>::default();
        registry.register(
            "edgeguard_connection_errors",
            "Client connections that ended in an error, by kind",
            errors.clone(),
        );
        let connection_errors =
            ConnErrorKind::ALL.map(|kind| errors.get_or_create_owned(&[("kind", kind.code())]));
        Arc::new(Metrics {
            registry,
            requests,
            request_duration,
            upstream_duration,
            reloads_ok,
            reloads_error,
            loaded_at,
            open_connections,
            connection_errors,
        })
    }

    /// The request counters of `policy`: resolves every label set its rules
    /// can produce (taking a lock; call it when loading, never per request).
    /// Series whose labels a previous policy had keep their counts.
    pub fn counters_for(&self, policy: &Policy) -> Counters {
        self.requests
            .counters_for(policy, self.request_duration.clone())
    }

    /// Counts a reload.
    pub fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads_ok.inc();
        } else {
            self.reloads_error.inc();
        }
    }

    /// Sets `edgeguard_config_loaded_timestamp_seconds`.
    pub fn set_loaded_at(&self, at: SystemTime) {
        let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.loaded_at.set(secs.as_secs_f64());
    }

    /// Counts an open connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        self.open_connections.inc();
        OpenConnection(self.open_connections.clone())
    }

    /// Counts a connection error.
    pub fn connection_error(&self, kind: ConnErrorKind) {
        self.connection_errors[kind as usize].inc();
    }

    /// Records how long an upstream took to send its response head.
    pub fn upstream_duration(&self, elapsed: Duration) {
        self.upstream_duration.observe(elapsed);
    }

    /// Every metric in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::with_capacity(4096);
        let encoded = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
        if let Err(e) = encoded {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// An open connection, counted in `edgeguard_open_connections` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Gauge<i64, AtomicI64>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests;
