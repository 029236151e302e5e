//! Connections to upstreams: TCP with Nagle off, and for `https://`
//! upstreams TLS over it (rustls; the certificate verified against the
//! system's roots and the route's `ca_file`, for the route's `sni` or the
//! upstream's host). Both HTTP/1.1 clients — the gateway's own
//! ([`crate::fetch`]) and hyper's ([`crate::forward::send`]) — talk through
//! [`Conn`].

use std::fmt;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::uri::Authority;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::forward::ForwardError;

/// An open connection to an upstream.
#[derive(Debug)]
pub enum Conn {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<TlsStream<TcpStream>>),
}

/// How an `https://` upstream is reached: the client configuration (roots,
/// ALPN `http/1.1`) and the name sent and verified.
#[derive(Clone)]
pub struct UpstreamTls {
    connector: TlsConnector,
    name: ServerName<'static>,
    /// The extra CA file, watched by reload.
    pub ca_file: Option<PathBuf>,
    /// What idle connections are pooled under: connections verified for
    /// one name and set of roots never serve another.
    pub pool_key: String,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("name", &self.name)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &UpstreamTls) -> bool {
        self.pool_key == other.pool_key
    }
}

impl Eq for UpstreamTls {}

impl UpstreamTls {
    /// The TLS side of `https://authority`: certificates verified for `sni`
    /// (else the authority's host) against the system's roots and those in
    /// `ca_file`. The error says what is wrong and which key it is about.
    pub fn new(
        authority: &Authority,
        sni: Option<&str>,
        ca_file: Option<&Path>,
    ) -> Result<UpstreamTls, TlsSetupError> {
        let error = |field, message| TlsSetupError { field, message };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name_text = sni.unwrap_or(host);
        let name = ServerName::try_from(name_text.to_owned()).map_err(|_| {
            let field = if sni.is_some() {
                TlsField::Sni
            } else {
                TlsField::Upstream
            };
            error(field, format!("invalid TLS server name \"{name_text}\""))
        })?;
        let mut roots = system_roots().clone();
        if let Some(path) = ca_file {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| {
                    let message = format!("cannot read ca_file \"{}\": {e}", path.display());
                    error(TlsField::CaFile, message)
                })?;
            if certs.is_empty() {
                let message = format!("ca_file \"{}\" holds no PEM certificate", path.display());
                return Err(error(TlsField::CaFile, message));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    let message =
                        format!("ca_file \"{}\": unusable certificate: {e}", path.display());
                    error(TlsField::CaFile, message)
                })?;
            }
        }
        if roots.is_empty() {
            let message = "no CA certificate to verify the upstream with: the system has none \
                 (install ca-certificates, or set SSL_CERT_FILE) and no ca_file is given";
            return Err(error(TlsField::Upstream, message.to_owned()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| error(TlsField::Upstream, format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let pool_key = format!(
            "https://{authority}|{name_text}|{}",
            ca_file
                .map(Path::display)
                .map(|p| p.to_string())
                .unwrap_or_default()
        );
        Ok(UpstreamTls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
            ca_file: ca_file.map(Path::to_path_buf),
            pool_key,
        })
    }
}

/// Why an `https://` upstream cannot be set up.
#[derive(Debug)]
pub struct TlsSetupError {
    /// The route key it is about.
    pub field: TlsField,
    /// What is wrong.
    pub message: String,
}

/// A route key of an `https://` upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsField {
    /// `upstream`.
    Upstream,
    /// `sni`.
    Sni,
    /// `ca_file`.
    CaFile,
}

/// What idle connections to `authority` (over `tls`) are pooled under.
pub fn pool_key<'a>(authority: &'a Authority, tls: Option<&'a Arc<UpstreamTls>>) -> &'a str {
    match tls {
        None => authority.as_str(),
        Some(tls) => &tls.pool_key,
    }
}

/// The system's root certificates (or `SSL_CERT_FILE`'s), read once.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the system's CA certificates");
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        roots
    })
}

/// Opens a connection to `authority` — TCP, then TLS when `tls` is set —
/// within `timeout`.
pub async fn connect(
    authority: &Authority,
    tls: Option<&UpstreamTls>,
    timeout: Duration,
) -> Result<Conn, ForwardError> {
    let unreachable = |reason: String| ForwardError::Unreachable {
        authority: authority.clone(),
        reason,
    };
    let default_port = if tls.is_some() { 443 } else { 80 };
    let port = authority.port_u16().unwrap_or(default_port);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let opening = async {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        match tls {
            None => Ok(Conn::Plain(stream)),
            Some(tls) => tls
                .connector
                .connect(tls.name.clone(), stream)
                .await
                .map(|s| Conn::Tls(Box::new(s)))
                .map_err(|e| unreachable(format!("TLS handshake: {e}"))),
        }
    };
    tokio::time::timeout(timeout, opening)
        .await
        .map_err(|_| unreachable(format!("no connection within {timeout:?}")))?
}

impl Conn {
    /// Whether an idle connection has neither been closed nor sent
    /// anything (for TLS: nothing decrypted and waiting either). The
    /// reactor's readiness answers without a system call unless the socket
    /// became readable since it was last read to the end.
    pub fn is_quiet(&mut self) -> bool {
        match self {
            Conn::Plain(tcp) => is_quiet(tcp),
            Conn::Tls(tls) => {
                let (tcp, session) = tls.get_mut();
                let nothing_buffered = matches!(
                    session.reader().fill_buf(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock
                );
                nothing_buffered && is_quiet(tcp)
            }
        }
    }
}

fn is_quiet(io: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match io.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(io) => io.is_write_vectored(),
            Conn::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_flush(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
