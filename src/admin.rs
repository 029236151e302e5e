//! The admin listener (SPEC 10), on its own thread and address, never on the
//! public listeners: `/healthz` (the process serves) and `/readyz` (a
//! rulebook is loaded and the listeners are bound; 503 once a shutdown
//! starts).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::watch;

use crate::body::ResponseBody;
use crate::gateway::Shared;
use crate::respond;

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
    runtime.block_on(async move {
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
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(answer(&shared, &request)) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn answer(shared: &Shared, request: &Request<Incoming>) -> Response<ResponseBody> {
    let get = request.method() == Method::GET || request.method() == Method::HEAD;
    match (request.uri().path(), get) {
        ("/healthz", true) => respond::text(StatusCode::OK, "ok\n"),
        ("/readyz", true) if shared.ready.load(Ordering::SeqCst) => {
            respond::text(StatusCode::OK, "ready\n")
        }
        ("/readyz", true) => respond::text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        ("/healthz" | "/readyz", false) => {
            respond::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => respond::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
