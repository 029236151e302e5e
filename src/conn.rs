//! One client connection below HTTP: the PROXY protocol header a trusted
//! load balancer sends first, and the connection's own clock — an idle
//! keep-alive connection is closed after `idle_timeout`, a request head that
//! takes longer than `header_timeout` to arrive (slowloris) gets the
//! connection closed.
//!
//! The clock runs in the I/O wrapper [`Watched`]: the service marks each
//! request in flight with an [`InFlight`] guard (held until its response body
//! ends); with none in flight the connection is idle until bytes arrive,
//! then reading a head until the next request starts. A write the client
//! takes no bytes of for `idle_timeout` fails the connection too (nginx's
//! `send_timeout`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Longest PROXY protocol header read (v1 is at most 107 bytes; v2 carries TLVs).
const MAX_PROXY_HEADER: usize = 4096;

/// What the service and the I/O wrapper share about a connection.
#[derive(Debug)]
pub struct ConnState {
    start: Instant,
    active: AtomicU32,
    finished: AtomicU32,
    /// Milliseconds since `start` when the last request finished.
    last_finished_ms: AtomicU64,
    /// The head read after the connection was idle had two Content-Length
    /// lines (which the HTTP parser folds into one when they are equal).
    duplicate_length: AtomicBool,
    /// The peer's address as a header value (for `X-Forwarded-For`), made
    /// once per connection.
    pub peer_header: http::HeaderValue,
    /// The reader, woken when the last request in flight ends (its idle
    /// clock starts then).
    reader: atomic_waker::AtomicWaker,
}

impl ConnState {
    /// State of a connection from `peer`, accepted now.
    pub fn new(peer: std::net::IpAddr) -> Arc<ConnState> {
        let peer = peer.to_canonical().to_string();
        Arc::new(ConnState {
            peer_header: http::HeaderValue::from_str(&peer).expect("an address is a header value"),
            start: Instant::now(),
            active: AtomicU32::new(0),
            finished: AtomicU32::new(0),
            last_finished_ms: AtomicU64::new(0),
            duplicate_length: AtomicBool::new(false),
            reader: atomic_waker::AtomicWaker::new(),
        })
    }

    /// Drops the reader's waker: a reader that stopped waiting while a
    /// request was in flight is not to be woken when it ends.
    pub fn forget_reader(&self) {
        drop(self.reader.take());
    }

    /// Whether the request head just parsed repeated Content-Length (SPEC 5
    /// refuses duplicates, equal or not); clears the mark.
    pub fn take_duplicate_length(&self) -> bool {
        self.duplicate_length.swap(false, Ordering::AcqRel)
    }
}

/// Counts `Content-Length` header lines in a request head as its bytes
/// arrive, until the blank line that ends it.
#[derive(Debug, Clone, Copy, Default)]
struct HeadScan {
    /// Bytes of "content-length:" matched at the start of the current line.
    matched: usize,
    /// Whether the current position is still within a line's name prefix.
    at_start: bool,
    lengths: u8,
    done: bool,
}

impl HeadScan {
    const NAME: &'static [u8] = b"content-length:";

    fn new() -> HeadScan {
        HeadScan {
            // The request line is not a header line.
            at_start: false,
            ..HeadScan::default()
        }
    }

    /// Feeds bytes; returns true once the head has ended. Only the first
    /// bytes of each line are looked at; the rest is skipped with memchr.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut i = 0;
        while i < bytes.len() && !self.done {
            if !self.at_start {
                match memchr::memchr(b'\n', &bytes[i..]) {
                    Some(n) => {
                        i += n + 1;
                        self.at_start = true;
                        self.matched = 0;
                    }
                    None => i = bytes.len(),
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            match b {
                // A line with nothing but its end: the head is over.
                b'\n' if self.matched == 0 => self.done = true,
                b'\r' if self.matched == 0 => {}
                _ if self.matched < Self::NAME.len()
                    && b.to_ascii_lowercase() == Self::NAME[self.matched] =>
                {
                    self.matched += 1;
                    if self.matched == Self::NAME.len() {
                        self.lengths = self.lengths.saturating_add(1);
                        self.at_start = false;
                    }
                }
                b'\n' => self.matched = 0,
                _ => self.at_start = false,
            }
        }
        self.done
    }
}

/// Marks a request in flight on its connection until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<ConnState>);

impl InFlight {
    /// A request starts on the connection of `state`.
    pub fn start(state: &Arc<ConnState>) -> InFlight {
        state.active.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.0.start.elapsed().as_millis() as u64;
        self.0.last_finished_ms.store(ms, Ordering::Release);
        self.0.finished.fetch_add(1, Ordering::AcqRel);
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in flight and no bytes of the next one yet.
    Idle { since: Instant },
    /// Bytes of a request head arrived; the request has not started.
    Head { since: Instant },
    /// A request is in flight: the gateway's other timeouts apply.
    Busy,
}

/// Which of the connection's clocks ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnTimeout {
    /// No request for `idle_timeout`.
    #[error("idle keep-alive connection closed")]
    Idle,
    /// A request head took longer than `header_timeout`.
    #[error("request head not received in time")]
    Header,
    /// The client took none of the bytes written to it for `idle_timeout`
    /// (nginx's `send_timeout`).
    #[error("client took no bytes in time")]
    Send,
}

/// A stream with bytes already read ahead of it (those after a PROXY
/// header) served first.
#[derive(Debug)]
pub struct Prefixed<T> {
    inner: T,
    prefix: Bytes,
}

impl<T> Prefixed<T> {
    /// `prefix`, then `inner`'s bytes.
    pub fn new(inner: T, prefix: Bytes) -> Prefixed<T> {
        Prefixed { inner, prefix }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// Writes go straight to the inner stream.
impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A client connection's I/O with its clock.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    state: Arc<ConnState>,
    phase: Phase,
    seen_finished: u32,
    header_timeout: Duration,
    idle_timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    scan: HeadScan,
    /// Whether heads are scanned for repeated `Content-Length` lines: only
    /// once hyper reads them (see [`Watched::scan_from`]).
    scanning: bool,
    /// The clock of a write the client is not taking: made the first time a
    /// write waits, set when a wait starts.
    send: Option<Pin<Box<Sleep>>>,
    /// Whether the last write (or flush) waited.
    send_waiting: bool,
}

impl<T> Watched<T> {
    /// Wraps `inner`.
    pub fn new(
        inner: T,
        state: Arc<ConnState>,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Watched<T> {
        let now = Instant::now();
        // A new connection is reading its first head: the header clock runs.
        let phase = Phase::Head { since: now };
        Watched {
            inner,
            state,
            phase,
            seen_finished: 0,
            header_timeout,
            idle_timeout,
            sleep: Box::pin(tokio::time::sleep_until(now + header_timeout)),
            scan: HeadScan::new(),
            scanning: false,
            send: None,
            send_waiting: false,
        }
    }

    /// Starts scanning request heads, from `read`: the bytes already read
    /// and not yet parsed, which hyper is about to read again. The
    /// gateway's own loop ([`crate::h1`]) sees every header line itself;
    /// hyper folds equal `Content-Length` lines into one, so the heads it
    /// reads are scanned on their way in.
    pub fn scan_from(&mut self, read: &[u8]) {
        self.scanning = true;
        self.update_phase();
        if read.is_empty() {
            return;
        }
        if let Phase::Idle { .. } = self.phase {
            self.phase = Phase::Head {
                since: Instant::now(),
            };
        }
        self.scan(read);
    }

    /// Scans bytes read while a head is awaited (the head that follows an
    /// idle connection, or a new one).
    fn scan(&mut self, bytes: &[u8]) {
        if !self.scanning {
            return;
        }
        if let Phase::Head { .. } = self.phase
            && !self.scan.done
            && self.scan.feed(bytes)
            && self.scan.lengths > 1
        {
            self.state.duplicate_length.store(true, Ordering::Release);
        }
    }

    fn update_phase(&mut self) {
        if self.state.active.load(Ordering::Acquire) > 0 {
            self.phase = Phase::Busy;
            return;
        }
        let finished = self.state.finished.load(Ordering::Acquire);
        if self.phase == Phase::Busy || finished != self.seen_finished {
            self.seen_finished = finished;
            let ms = self.state.last_finished_ms.load(Ordering::Acquire);
            let since = self.state.start + Duration::from_millis(ms);
            self.phase = Phase::Idle { since };
            self.scan = HeadScan::new();
        }
    }

    /// When the connection's clock runs out, and which one; none while a
    /// request is in flight.
    fn deadline(&self) -> Option<(Instant, ConnTimeout)> {
        match self.phase {
            Phase::Busy => None,
            Phase::Idle { since } => Some((since + self.idle_timeout, ConnTimeout::Idle)),
            Phase::Head { since } => Some((since + self.header_timeout, ConnTimeout::Header)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.update_phase();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    if let Phase::Idle { .. } = this.phase {
                        this.phase = Phase::Head {
                            since: Instant::now(),
                        };
                    }
                    this.scan(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => loop {
                let Some((deadline, which)) = this.deadline() else {
                    // Busy: no clock runs; the last request to end wakes
                    // the reader, whose idle clock starts then.
                    this.state.reader.register(cx.waker());
                    if this.state.active.load(Ordering::Acquire) == 0 {
                        this.update_phase();
                        continue;
                    }
                    return Poll::Pending;
                };
                // The timer is moved only to an earlier deadline: a keep-alive
                // connection's idle deadline moves later with every request,
                // and resetting the timer each time cost a timer-wheel removal
                // and insertion per request. One that fires early is re-armed.
                if deadline < this.sleep.deadline() {
                    this.sleep.as_mut().reset(deadline);
                }
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if this.sleep.deadline() < deadline {
                    this.sleep.as_mut().reset(deadline);
                    continue;
                }
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, which)));
            },
        }
    }
}

impl<T> Watched<T> {
    /// A write or flush that `polled`: one that waits longer than
    /// `idle_timeout` without the client taking a byte fails.
    fn sent<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.send_waiting = false;
            return polled;
        }
        let idle = self.idle_timeout;
        let send = self
            .send
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if !self.send_waiting {
            self.send_waiting = true;
            send.as_mut().reset(Instant::now() + idle);
        }
        match send.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                ConnTimeout::Send,
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.sent(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.sent(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.sent(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

use std::future::Future as _;

/// Why a PROXY protocol header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection failed or closed first.
    #[error("connection ended before a PROXY header: {0}")]
    Io(#[from] io::Error),
    /// Not a valid PROXY v1 or v2 header.
    #[error("invalid PROXY protocol header")]
    Invalid,
    /// No complete header within the time allowed.
    #[error("no PROXY protocol header in time")]
    Timeout,
}

/// Reads a PROXY protocol v1 or v2 header. Returns the source address it
/// states (`None` for `LOCAL`/`UNKNOWN`, which stand for the peer itself)
/// and the bytes read past the header.
pub async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Option<SocketAddr>, Bytes), ProxyHeaderError> {
    let deadline = Instant::now() + timeout;
    let mut buf = BytesMut::with_capacity(256);
    loop {
        match parse_proxy_header(&buf) {
            ProxyParse::Done { source, length } => {
                let rest = buf.split_off(length).freeze();
                return Ok((source, rest));
            }
            ProxyParse::Invalid => return Err(ProxyHeaderError::Invalid),
            ProxyParse::Incomplete if buf.len() >= MAX_PROXY_HEADER => {
                return Err(ProxyHeaderError::Invalid);
            }
            ProxyParse::Incomplete => {}
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf))
            .await
            .map_err(|_| ProxyHeaderError::Timeout)??;
        if read == 0 {
            return Err(ProxyHeaderError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

enum ProxyParse {
    Done {
        source: Option<SocketAddr>,
        length: usize,
    },
    Incomplete,
    Invalid,
}

fn parse_proxy_header(input: &[u8]) -> ProxyParse {
    use ppp::{HeaderResult, PartialResult, v1, v2};
    if input.is_empty() {
        return ProxyParse::Incomplete;
    }
    let parsed = HeaderResult::parse(input);
    if parsed.is_incomplete() {
        return ProxyParse::Incomplete;
    }
    match parsed {
        HeaderResult::V1(Ok(header)) => {
            let source = match header.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            };
            ProxyParse::Done {
                source,
                length: header.header.len(),
            }
        }
        HeaderResult::V2(Ok(header)) => {
            let source = match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => None,
            };
            ProxyParse::Done {
                source,
                length: header.len(),
            }
        }
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => ProxyParse::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<(Option<SocketAddr>, Vec<u8>), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut input = bytes;
            read_proxy_header(&mut input, Duration::from_secs(1))
                .await
                .map(|(a, rest)| (a, rest.to_vec()))
                .map_err(|e| e.to_string())
        })
    }

    fn v2(command: u8, family: u8, addresses: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h.extend_from_slice(rest);
        h
    }

    #[test]
    fn head_scan_counts_content_length_lines_of_one_head() {
        let table: [(&[u8], u8, bool); 6] = [
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
                1,
                true,
            ),
            (
                b"POST / HTTP/1.1\r\ncontent-length: 1\r\nCONTENT-LENGTH: 1\r\n\r\n",
                2,
                true,
            ),
            (
                b"POST / HTTP/1.1\nContent-Length: 1\nContent-Length: 1\n\n",
                2,
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nX-Content-Length: 1\r\nContent-Lengthy: 2\r\n\r\n",
                0,
                true,
            ),
            (
                b"POST /content-length: HTTP/1.1\r\nContent-Length: 1\r\n",
                1,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nContent-Length: 9\r\n",
                1,
                true,
            ),
        ];
        for (bytes, lengths, done) in table {
            // Fed whole and byte by byte, the answer is the same.
            let mut whole = HeadScan::new();
            assert_eq!(
                whole.feed(bytes),
                done,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
            let mut split = HeadScan::new();
            for b in bytes {
                split.feed(std::slice::from_ref(b));
            }
            assert_eq!(
                (whole.lengths, split.lengths),
                (lengths, lengths),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn proxy_v1_headers_state_the_client() {
        let (addr, rest) =
            parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 8080\r\nGET / HTTP/1.1\r\n").expect("v1");
        assert_eq!(addr, Some("203.0.113.7:51234".parse().expect("addr")));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (addr, _) = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 443 8080\r\n").expect("v1 v6");
        assert_eq!(addr, Some("[2001:db8::7]:443".parse().expect("addr")));
        let (addr, rest) = parse(b"PROXY UNKNOWN\r\nx").expect("unknown");
        assert_eq!((addr, rest), (None, b"x".to_vec()));
    }

    #[test]
    fn proxy_v2_headers_state_the_client() {
        let mut ipv4 = vec![198, 51, 100, 9, 10, 0, 0, 1];
        ipv4.extend_from_slice(&4000u16.to_be_bytes());
        ipv4.extend_from_slice(&80u16.to_be_bytes());
        let (addr, rest) = parse(&v2(1, 0x11, &ipv4, b"GET")).expect("v2");
        assert_eq!(addr, Some("198.51.100.9:4000".parse().expect("addr")));
        assert_eq!(rest, b"GET");
        let (addr, _) = parse(&v2(0, 0x00, &[], b"")).expect("v2 local");
        assert_eq!(addr, None);
    }

    #[test]
    fn garbage_and_plain_http_are_not_proxy_headers() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 extra\r\n",
            b"PROXY TCP4 300.1.1.1 5.6.7.8 1 2\r\n",
            b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse(b"PROXY TCP4 1.2.3.4").is_err(), "truncated then EOF");
    }
}
