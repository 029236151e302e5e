//! Serving: one single-threaded tokio runtime per worker thread, each with its
//! own `SO_REUSEPORT` listener on every address (the kernel spreads
//! connections across them), so a request never crosses threads; HTTP/1.1
//! and h2c with prior knowledge on every connection; connection limits; and
//! graceful shutdown (stop accepting, let in-flight requests finish for up to
//! `shutdown_grace`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::conn::{ConnState, ConnTimeout, Prefixed, Watched, read_proxy_header};
use crate::gateway::{Conn, Shared, Via, handle};
use crate::h1::{self, Ended};
use crate::metrics::ConnErrorKind;
use crate::policy::Limits;

/// Accept backlog of each listening socket.
const BACKLOG: i32 = 1024;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A worker thread or its runtime could not be created.
    #[error("cannot start a worker: {0}")]
    Worker(std::io::Error),
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    /// The bound public addresses (ports resolved when 0 was asked for).
    pub listen: Vec<SocketAddr>,
    /// The bound TLS addresses.
    pub tls_listen: Vec<SocketAddr>,
    /// The bound admin address, when the admin listener is on.
    pub admin: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    admin_thread: Option<JoinHandle<()>>,
}

/// A server dropped without a shutdown (an error on the way up) stops like
/// one: connections close after their answer.
impl Drop for Running {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
    }
}

impl Running {
    /// The shared state (policy, logs, readiness).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts a graceful shutdown: `/readyz` turns 503 and the listeners stop
    /// accepting; in-flight requests get `shutdown_grace` to finish.
    pub fn begin_shutdown(&self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
    }

    /// Waits for the workers to finish, then stops the admin listener.
    pub fn wait(mut self) {
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        // The last requests' access lines are written before the process ends.
        self.shared.access_log.flush();
        let _ = self.stop_admin.send(true);
        if let Some(admin) = self.admin_thread.take() {
            let _ = admin.join();
        }
    }

    /// Begins a graceful shutdown and waits for it.
    pub fn shutdown(self) {
        self.begin_shutdown();
        self.wait();
    }
}

/// Binds one listening socket with `SO_REUSEPORT`, non-blocking.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `count` sockets on `addr` (the first decides a port given as 0).
fn bind_group(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>, ServeError> {
    let err = |source| ServeError::Bind { addr, source };
    let first = bind(addr).map_err(err)?;
    let actual = first.local_addr().map_err(err)?;
    let mut group = vec![first];
    for _ in 1..count {
        group.push(bind(actual).map_err(err)?);
    }
    Ok(group)
}

/// Binds every listener and starts `workers` worker threads and the admin
/// listener; marks the gateway ready once all are bound.
pub fn start(shared: Arc<Shared>, workers: usize) -> Result<Running, ServeError> {
    let workers = workers.max(1);
    // A server started again on the same state serves again.
    shared.stopping.store(false, Ordering::SeqCst);
    let live = shared.live.load_full();
    let policy = &live.policy;
    let mut groups = Vec::new();
    for addr in &policy.settings.listen {
        groups.push((false, bind_group(*addr, workers)?));
    }
    for addr in policy.settings.tls.iter().flat_map(|t| &t.listen) {
        groups.push((true, bind_group(*addr, workers)?));
    }
    let bound = |tls: bool| -> Vec<SocketAddr> {
        groups
            .iter()
            .filter(|(t, _)| *t == tls)
            .filter_map(|(_, g)| g[0].local_addr().ok())
            .collect()
    };
    let (listen, tls_listen) = (bound(false), bound(true));
    let admin_listener = match policy.settings.admin {
        Some(addr) => Some(bind(addr).map_err(|source| ServeError::Bind { addr, source })?),
        None => None,
    };
    let admin = admin_listener.as_ref().and_then(|l| l.local_addr().ok());

    let (stop, stop_rx) = watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for w in 0..workers {
        let listeners: Vec<(bool, std::net::TcpListener)> = groups
            .iter_mut()
            .map(|(tls, g)| (*tls, g.pop().expect("one socket per worker")))
            .collect();
        let shared = Arc::clone(&shared);
        let stop_rx = stop_rx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("worker-{w}"))
            .spawn(move || worker(shared, listeners, stop_rx))
            .map_err(ServeError::Worker)?;
        threads.push(thread);
    }
    let (stop_admin, stop_admin_rx) = watch::channel(false);
    let admin_thread = match admin_listener {
        Some(listener) => {
            let shared = Arc::clone(&shared);
            Some(
                std::thread::Builder::new()
                    .name("admin".into())
                    .spawn(move || crate::admin::serve(shared, listener, stop_admin_rx))
                    .map_err(ServeError::Worker)?,
            )
        }
        None => None,
    };
    shared.ready.store(true, Ordering::SeqCst);
    Ok(Running {
        listen,
        tls_listen,
        admin,
        shared,
        stop,
        stop_admin,
        workers: threads,
        admin_thread,
    })
}

/// One worker: accepts on its listeners until told to stop, then waits for
/// its connections for up to `shutdown_grace`.
fn worker(
    shared: Arc<Shared>,
    listeners: Vec<(bool, std::net::TcpListener)>,
    stop: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        // Every connection task holds a clone of `alive`; when the last is
        // dropped, `all_done` yields None.
        let (alive, mut all_done) = mpsc::channel::<()>(1);
        let mut accepting = tokio::task::JoinSet::new();
        for (tls, std_listener) in listeners {
            match TcpListener::from_std(std_listener) {
                Ok(listener) => {
                    accepting.spawn(accept_loop(
                        listener,
                        tls,
                        Arc::clone(&shared),
                        stop.clone(),
                        alive.clone(),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "cannot register a listener"),
            }
        }
        drop(alive);
        let mut stopping = stop.clone();
        let _ = stopping.wait_for(|s| *s).await.map(|_| ());
        accepting.abort_all();
        while accepting.join_next().await.is_some() {}
        let grace = shared.live.load().policy.settings.limits.shutdown_grace;
        if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "shutdown grace over: closing the remaining connections"
            );
        }
    });
}

async fn accept_loop(
    listener: TcpListener,
    tls: bool,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        // At max_connections, stop accepting until a connection ends (or a
        // reload raises the limit).
        let Some(place) = shared.connections.acquire().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                shared
                    .control
                    .metrics
                    .connection_error(ConnErrorKind::Accept);
                tracing::warn!(kind = ConnErrorKind::Accept.code(), error = %e, "accept failed");
                // Out of file descriptors and the like: give it a moment.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let mut stop = stop.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _open = shared.control.metrics.connection_opened();
            serve_connection(Arc::clone(&shared), stream, peer, tls, &mut stop).await;
            shared.connections.release(place);
            drop(alive);
        });
    }
}

/// Serves one accepted connection until it ends or the worker stops (then
/// gracefully: requests in flight finish, no new ones start).
async fn serve_connection(
    shared: Arc<Shared>,
    mut stream: tokio::net::TcpStream,
    mut peer: SocketAddr,
    tls: bool,
    stop: &mut watch::Receiver<bool>,
) {
    let live = shared.live.load_full();
    let policy = &live.policy;
    let limits = policy.settings.limits.clone();
    let mut prefix = bytes::Bytes::new();
    // SPEC 4: from a trusted peer, the PROXY header's address stands for the
    // peer; a trusted peer without a valid one is disconnected.
    // (`proxy_protocol` is restart-only: a reload keeps the running value.)
    if policy.client_ip.proxy_protocol && policy.client_ip.is_trusted(peer.ip().to_canonical()) {
        match read_proxy_header(&mut stream, limits.header_timeout).await {
            Ok((source, rest)) => {
                if let Some(source) = source {
                    peer = source;
                }
                prefix = rest;
            }
            Err(e) => {
                connection_error(&shared, peer, ConnErrorKind::ProxyProtocol, &e);
                return;
            }
        }
    }
    let io = Prefixed::new(stream, prefix);
    let conn = Conn { peer, tls };
    if !tls {
        drop(live);
        return serve_http(shared, io, conn, &limits, stop).await;
    }
    let Some(acceptor) = policy.settings.tls.as_ref().map(|t| t.acceptor.0.clone()) else {
        return;
    };
    drop(live);
    match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
        Ok(Ok(tls_stream)) => serve_http(shared, tls_stream, conn, &limits, stop).await,
        Ok(Err(e)) => connection_error(&shared, peer, ConnErrorKind::TlsHandshake, &e),
        Err(_) => connection_error(
            &shared,
            peer,
            ConnErrorKind::HeaderTimeout,
            &"no TLS handshake within header_timeout",
        ),
    }
}

/// Serves HTTP/1.1 and HTTP/2 on an established connection.
async fn serve_http<T>(
    shared: Arc<Shared>,
    io: T,
    conn: Conn,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let state = ConnState::new(peer.ip());
    let io = Watched::new(
        io,
        Arc::clone(&state),
        limits.header_timeout,
        limits.idle_timeout,
    );
    // Bodiless requests are served by the gateway's own loop; the first
    // other one hands the connection to hyper with the bytes read so far.
    let (io, read) = match h1::serve(io, &shared, conn, &state, limits.max_header_bytes, stop).await
    {
        Ended::HandOff { mut io, read } => {
            io.scan_from(&read);
            (io, read)
        }
        Ended::Closed(None) => return,
        Ended::Closed(Some(e)) => {
            match classify(&e) {
                Some(kind) => connection_error(&shared, peer, kind, &e),
                None => tracing::debug!(peer = %peer, error = %e, "idle connection closed"),
            }
            return;
        }
    };
    let io = Prefixed::new(io, read);
    let shared_for_errors = Arc::clone(&shared);
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let shared = Arc::clone(&shared);
        let state = Arc::clone(&state);
        async move {
            let (parts, body) = request.into_parts();
            let answer = handle(&shared, conn, &state, parts, Via::Hyper(body)).await;
            Ok::<_, Infallible>(answer.into_response())
        }
    });
    let builder = builder(limits);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        match classify(&*e) {
            Some(kind) => connection_error(&shared_for_errors, peer, kind, &e),
            None => tracing::debug!(peer = %peer, error = %e, "idle connection closed"),
        }
    }
}

/// How a served connection ended, for the log and
/// `edgeguard_connection_errors_total{kind}`: `None` for an idle keep-alive
/// connection closed after `idle_timeout`, a normal end.
fn classify(error: &(dyn std::error::Error + 'static)) -> Option<ConnErrorKind> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        let timeout = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<ConnTimeout>())
            .or_else(|| e.downcast_ref::<ConnTimeout>());
        match timeout {
            Some(ConnTimeout::Idle) => return None,
            Some(ConnTimeout::Header) => return Some(ConnErrorKind::HeaderTimeout),
            Some(ConnTimeout::Send) => return Some(ConnErrorKind::SendTimeout),
            None => cause = e.source(),
        }
    }
    Some(ConnErrorKind::of(error))
}

/// Counts and logs a connection error (an ordinary I/O end at debug level).
fn connection_error(
    shared: &Shared,
    peer: SocketAddr,
    kind: ConnErrorKind,
    error: &dyn std::fmt::Display,
) {
    shared.control.metrics.connection_error(kind);
    match kind {
        ConnErrorKind::Io => {
            tracing::debug!(peer = %peer, kind = kind.code(), error = %error, "connection ended");
        }
        _ => tracing::info!(peer = %peer, kind = kind.code(), error = %error, "connection error"),
    }
}

/// The HTTP/1.1 + h2c connection builder for the current limits.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The connection's own clock (conn::Watched) times request heads and
        // idle keep-alive separately; hyper's would close idle connections
        // after header_timeout.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}
