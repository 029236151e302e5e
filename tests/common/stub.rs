//! An upstream stub: a real HTTP/1.1 server on 127.0.0.1, on its own thread,
//! that records every request it receives and answers by path:
//!
//! - `/slow-head/MS`: waits MS milliseconds before answering
//! - `/first-chunk`: reports its first body chunk on `events`, then reads the rest
//! - `/count`: counts the body without keeping it; answers the count
//! - `/hop`: answers with hop-by-hop headers and a `Connection`-named header
//! - `/stream-out/N`: answers with N chunks, 20 ms apart
//! - `/status/CODE`: answers CODE
//! - any path ending in `missing.html`: answers 404
//! - `/ws` with `Upgrade: websocket`: switches protocols, then echoes bytes
//! - anything else: 200 `ok`, the body recorded (up to 1 MiB)

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// What the stub received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The request target as received (path and query).
    pub target: String,
    /// The protocol version.
    pub version: http::Version,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (empty for `/count`).
    pub body: Vec<u8>,
    /// The gateway's address on this connection.
    pub peer: SocketAddr,
}

type Body = http_body_util::Either<http_body_util::Full<Bytes>, Chunks>;

/// A running stub.
pub struct Stub {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Events such as "first-chunk".
    pub events: Mutex<mpsc::Receiver<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stub {
    /// Starts a stub on an ephemeral port.
    pub fn start() -> Stub {
        Stub::serve(None)
    }

    /// Starts a stub that speaks HTTPS, with the test certificate for
    /// `localhost` and 127.0.0.1 (`tests/fixtures/tls/`, signed by `ca.pem`).
    pub fn start_tls() -> Stub {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let dir = super::repo().join("tests/fixtures/tls");
        let chain = CertificateDer::pem_file_iter(dir.join("cert.pem"))
            .expect("cert.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("key.pem");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        Stub::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Stub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind stub");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (events_tx, events_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let recorded = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("stub runtime");
            rt.block_on(serve(listener, tls, recorded, events_tx, stop_rx));
        });
        Stub {
            addr,
            seen,
            events: Mutex::new(events_rx),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The targets received so far.
    pub fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.target).collect()
    }

    /// Waits for an event.
    pub fn event(&self, timeout: Duration) -> Option<String> {
        self.events.lock().expect("lock").recv_timeout(timeout).ok()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    seen: Arc<Mutex<Vec<Seen>>>,
    events: mpsc::Sender<String>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("register stub");
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
            _ = &mut stop => return,
        };
        let seen = Arc::clone(&seen);
        let events = events.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, seen, events).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, peer, seen, events).await;
                    }
                }
            }
        });
    }
}

async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    events: mpsc::Sender<String>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let seen = Arc::clone(&seen);
        let events = events.clone();
        async move { Ok::<_, Infallible>(answer(req, peer, seen, events).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(http_body_util::Either::Left(http_body_util::Full::new(
        body.into(),
    )));
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r
}

async fn answer(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    events: mpsc::Sender<String>,
) -> Response<Body> {
    if req.uri().path().ends_with("/ws") && req.headers().contains_key("upgrade") {
        seen.lock().expect("lock").push(Seen {
            method: req.method().to_string(),
            target: req.uri().to_string(),
            version: req.version(),
            headers: req.headers().clone(),
            body: Vec::new(),
            peer,
        });
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok(upgraded) = upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut r = full(101, "");
        let h = r.headers_mut();
        h.insert("upgrade", "websocket".parse().expect("value"));
        h.insert("connection", "Upgrade".parse().expect("value"));
        h.insert(
            "sec-websocket-accept",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse().expect("value"),
        );
        return r;
    }
    let (parts, mut body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.to_string(), |pq| pq.as_str().to_owned());
    // Behaviours are chosen by a marker anywhere in the path, so that routes
    // with a prefix reach them too.
    let full_path = parts.uri.path().to_owned();
    let path = [
        "/slow-head/",
        "/first-chunk",
        "/count",
        "/hop",
        "/stream-out/",
        "/status/",
    ]
    .iter()
    .find_map(|m| full_path.find(m).map(|i| full_path[i..].to_owned()))
    .unwrap_or(full_path);
    let mut record = Seen {
        method: parts.method.to_string(),
        target,
        version: parts.version,
        headers: parts.headers.clone(),
        body: Vec::new(),
        peer,
    };
    if path == "/first-chunk" {
        let mut total = 0usize;
        let mut first = true;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                total += data.len();
                if first && !data.is_empty() {
                    first = false;
                    let _ = events.send(format!("first-chunk:{}", String::from_utf8_lossy(data)));
                }
            }
        }
        seen.lock().expect("lock").push(record);
        return full(200, format!("{total}"));
    }
    if path == "/count" {
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(data) = frame.data_ref() {
                total += data.len() as u64;
            }
        }
        seen.lock().expect("lock").push(record);
        return full(200, format!("{total}"));
    }
    let mut kept = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref()
            && kept.len() < 1 << 20
        {
            kept.extend_from_slice(data);
        }
    }
    record.body = kept;
    seen.lock().expect("lock").push(record);
    if let Some(ms) = path.strip_prefix("/slow-head/") {
        let ms: u64 = ms.parse().unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return full(200, "slow");
    }
    if path.ends_with("missing.html") {
        return full(404, "not here");
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return full(code.parse().unwrap_or(500), format!("status {code}"));
    }
    if path == "/hop" {
        let mut r = full(200, "hop");
        let h = r.headers_mut();
        h.insert("connection", "X-Upstream-Secret".parse().expect("value"));
        h.insert("x-upstream-secret", "1".parse().expect("value"));
        h.insert("keep-alive", "timeout=5".parse().expect("value"));
        h.insert("proxy-connection", "keep-alive".parse().expect("value"));
        h.insert("x-upstream-kept", "yes".parse().expect("value"));
        return r;
    }
    if let Some(n) = path.strip_prefix("/stream-out/") {
        let n: usize = n.parse().unwrap_or(3);
        return Response::new(http_body_util::Either::Right(Chunks::new(n)));
    }
    full(200, "ok")
}

/// `n` chunks "chunk-i\n", 20 ms apart.
pub struct Chunks {
    left: usize,
    i: usize,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Chunks {
    fn new(n: usize) -> Chunks {
        Chunks {
            left: n,
            i: 0,
            sleep: Box::pin(tokio::time::sleep(Duration::from_millis(20))),
        }
    }
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        use std::future::Future as _;
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        self.left -= 1;
        self.i += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        self.sleep.as_mut().reset(deadline);
        let chunk = format!("chunk-{}\n", self.i);
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
}
