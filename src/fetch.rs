//! The upstream exchange for requests without a body — nearly all GET and
//! HEAD requests. The request head is written straight from the client's
//! headers (by [`forward::each_upstream_header`], the one place that decides
//! them), the response head is read and framed in the request's own task,
//! and the response body is read from the socket by the body itself as the
//! client takes it. No connection task, no channel between tasks, no
//! upstream `Request`: hyper's client machinery cost about a third of the
//! gateway's instructions per proxied request.
//!
//! Framing is strict (RFC 9112 §6.3), as nginx's is: a response whose length
//! is ambiguous — `Content-Length` with `Transfer-Encoding`, several or
//! malformed lengths, a transfer coding other than `chunked` — is a 502,
//! never a guess; so is a chunked coding that could be read two ways (a
//! chunk-size line without a digit, a bare CR or LF), which ends the body
//! with its connection. A connection goes back to the pool only after a body
//! ended exactly where its framing said, on HTTP/1.1 without `Connection:
//! close`, with nothing after it. Trailers are read and dropped.
//! `upstream_timeout` bounds the wait for the head and each wait for more of
//! the body.
//!
//! Requests with a body, and upgrades, go through hyper's client
//! ([`forward::send`]).

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::uri::Authority;
use http::{Method, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::body::{BodyError, ResponseBody};
use crate::connect::{self, Conn, UpstreamTls};
use crate::forward::{self, ForwardError, Idle, Listed, Origin, Pool};
use crate::headers::{Headers, RawHeaders};

/// The longest response head read (nginx's default is 4 or 8 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// The most response header lines (hyper's default).
const MAX_HEADERS: usize = 100;
/// The most informational (1xx) heads before the final one.
const MAX_INFORMATIONAL: usize = 8;
/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most trailer bytes read (and dropped).
const MAX_TRAILERS: usize = 16 * 1024;
/// The buffer a response starts with: a typical head and small body in one
/// read.
const FIRST_READ: usize = 8 * 1024;
/// The room made before each body read.
const BODY_READ: usize = 16 * 1024;

thread_local! {
    static POOL: RefCell<Pool<Conn>> = const { RefCell::new(Pool::new()) };
    /// A request head's buffer, kept for the worker's next request.
    static HEAD_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest head buffer kept for the next request.
const HEAD_BUF_KEPT: usize = 16 * 1024;

/// A request head being sent. Its buffer comes from the worker's spare one
/// and goes back when the exchange ends: a request allocates none once
/// the worker has served one.
struct HeadBuf(Vec<u8>);

impl HeadBuf {
    fn take() -> HeadBuf {
        let mut buf = HEAD_BUF.try_with(Cell::take).unwrap_or_default();
        buf.clear();
        buf.reserve(512);
        HeadBuf(buf)
    }
}

impl Drop for HeadBuf {
    fn drop(&mut self) {
        if self.0.capacity() <= HEAD_BUF_KEPT {
            let buf = std::mem::take(&mut self.0);
            let _ = HEAD_BUF.try_with(|spare| spare.set(buf));
        }
    }
}

/// An upstream request without a body, as the gateway will send it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The method.
    pub method: &'a Method,
    /// The target in origin form: the canonical path and the query.
    pub target: &'a str,
    /// The client's headers, as received.
    pub headers: Headers<'a>,
    /// Where the request came from.
    pub origin: &'a Origin<'a>,
    /// The `Host` the upstream gets.
    pub host: &'a [u8],
}

impl Outgoing<'_> {
    /// The request head, as bytes on the wire.
    fn encode(&self) -> HeadBuf {
        let mut buf = HeadBuf::take();
        let head = &mut buf.0;
        head.extend_from_slice(self.method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(self.target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        forward::each_upstream_header(self.headers, self.origin, self.host, |name, value| {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            value.write_to(head);
            head.extend_from_slice(b"\r\n");
        });
        head.extend_from_slice(b"\r\n");
        buf
    }
}

/// Why an exchange on one connection ended without a response head.
enum Failure {
    /// Nothing came back: on a reused connection the upstream may have
    /// closed it while idle, so an idempotent request is sent again.
    Unanswered(io::Error),
    /// The connection failed after the upstream began to answer.
    Io(io::Error),
    /// The answer is not HTTP/1 the gateway can frame.
    Invalid(&'static str),
}

/// Sends `outgoing` to `authority` (over TLS when `tls` is set) and reads
/// the response head within `head_timeout` of `now` (also the clock that
/// expires idle connections). The answer carries the client-facing header
/// lines: hop-by-hop ones and those the upstream's `Connection` names are
/// gone.
pub async fn fetch(
    authority: &Authority,
    tls: Option<&Arc<UpstreamTls>>,
    outgoing: &Outgoing<'_>,
    now: Instant,
    connect_timeout: Duration,
    head_timeout: Duration,
) -> Result<Fetched, ForwardError> {
    let head = outgoing.encode();
    let bodiless = *outgoing.method == Method::HEAD;
    let deadline = tokio::time::Instant::from_std(now) + head_timeout;
    let broken = |reason: String| ForwardError::Broken {
        authority: authority.clone(),
        reason,
    };
    for fresh in [false, true] {
        let pooled = if fresh {
            None
        } else {
            take_idle(connect::pool_key(authority, tls), now)
        };
        let reused = pooled.is_some();
        let mut io = match pooled {
            Some(io) => io,
            None => connect::connect(authority, tls.map(Arc::as_ref), connect_timeout).await?,
        };
        let mut buf = BytesMut::with_capacity(FIRST_READ);
        let exchanged = tokio::time::timeout_at(deadline, async {
            io.write_all(&head.0).await.map_err(Failure::Unanswered)?;
            // TLS may hold the last record back; TCP has nothing to flush.
            io.flush().await.map_err(Failure::Unanswered)?;
            read_head(&mut io, &mut buf, bodiless).await
        })
        .await;
        match exchanged {
            Err(_) => return Err(ForwardError::Timeout(authority.clone())),
            Ok(Ok(head)) => {
                let upstream = (authority, tls);
                return Ok(head.into_fetched(io, buf, upstream, now, head_timeout));
            }
            Ok(Err(Failure::Unanswered(_))) if reused && outgoing.method.is_idempotent() => {}
            Ok(Err(Failure::Unanswered(e) | Failure::Io(e))) => return Err(broken(e.to_string())),
            Ok(Err(Failure::Invalid(reason))) => return Err(broken(reason.to_owned())),
        }
    }
    Err(broken("connection closed before an answer".to_owned()))
}

/// Reads until a final response head parses; informational (1xx) heads
/// before it are skipped.
async fn read_head(io: &mut Conn, buf: &mut BytesMut, bodiless: bool) -> Result<Head, Failure> {
    let mut informational = 0;
    loop {
        if !buf.is_empty() {
            match parse_head(buf, bodiless).map_err(Failure::Invalid)? {
                Parsed::Partial => {}
                Parsed::Informational(len) => {
                    buf.advance(len);
                    informational += 1;
                    if informational > MAX_INFORMATIONAL {
                        return Err(Failure::Invalid("too many informational responses"));
                    }
                    continue;
                }
                Parsed::Final(head) => return Ok(head),
            }
        }
        let answered = informational > 0 || !buf.is_empty();
        make_room(buf, FIRST_READ);
        match io.read_buf(buf).await {
            Ok(0) => {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed");
                return Err(if answered {
                    Failure::Io(eof)
                } else {
                    Failure::Unanswered(eof)
                });
            }
            Ok(_) => {}
            Err(e) if answered => return Err(Failure::Io(e)),
            Err(e) => return Err(Failure::Unanswered(e)),
        }
    }
}

/// Makes room for a read of at least `room` bytes... or a little less:
/// `BytesMut` reuses its own space when it can.
fn make_room(buf: &mut BytesMut, room: usize) {
    if buf.capacity() - buf.len() < room / 4 {
        buf.reserve(room);
    }
}

/// How a response body is delimited, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes more.
    Length(u64),
    /// Chunked, at this point of the coding.
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Eof,
    /// Ended (or never had a body).
    Done,
}

/// Where a chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes more.
    Data(u64),
    /// At the CRLF after a chunk's data.
    DataEnd,
    /// In the trailer section, this many bytes read so far.
    Trailers(usize),
}

/// What a parse of the buffered bytes found.
enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An informational head of this many bytes, to skip.
    Informational(usize),
    /// The final head (split off the buffer).
    Final(Head),
}

/// A final response head, framed.
struct Head {
    status: StatusCode,
    lines: RawHeaders,
    framing: Framing,
    /// Whether the connection may serve another request once the body ends.
    reusable: bool,
}

/// Where a header's name and value lie in the head.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span {
    pub(crate) name: (u32, u32),
    pub(crate) value: (u32, u32),
}

/// The byte range of `part`, which lies inside `whole`.
pub(crate) fn span_of(whole: &[u8], part: &[u8]) -> (u32, u32) {
    // Offsets below MAX_HEAD + the read size: they fit in u32.
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// Parses the buffered bytes as a response head. A final head is split off
/// `buf` (what follows is the body's start) and its headers built without
/// copying their values.
fn parse_head(buf: &mut BytesMut, bodiless: bool) -> Result<Parsed, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut spans = [Span::default(); MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err("response head too large");
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response headers"),
        Err(_) => return Err("malformed response head"),
    };
    let code = response.code.ok_or("malformed response head")?;
    let status = StatusCode::from_u16(code).map_err(|_| "malformed response status")?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err("101 to a request that asked for no upgrade");
    }
    if status.is_informational() {
        return Ok(Parsed::Informational(len));
    }
    let mut reusable = response.version == Some(1);
    let (mut lengths, mut length, mut codings, mut chunked) = (0, None, 0, false);
    let count = response.headers.len();
    for (h, span) in response.headers.iter().zip(spans.iter_mut()) {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            length = Some(parse_length(h.value).ok_or("malformed Content-Length")?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            codings += 1;
            chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
        *span = Span {
            name: span_of(buf, name),
            value: span_of(buf, h.value),
        };
    }
    let framing =
        if bodiless || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Done
        } else if codings > 0 {
            if response.version != Some(1) {
                return Err("Transfer-Encoding in an HTTP/1.0 response");
            }
            if codings > 1 || !chunked || lengths > 0 {
                return Err("ambiguous response framing (Transfer-Encoding)");
            }
            Framing::Chunked(Chunk::Size)
        } else {
            match (lengths, length) {
                (0, _) => {
                    reusable = false;
                    Framing::Eof
                }
                (1, Some(0)) => Framing::Done,
                (1, Some(n)) => Framing::Length(n),
                _ => return Err("several Content-Length headers"),
            }
        };
    let raw = buf.split_to(len).freeze();
    let (lines, closes) = client_lines(raw, &spans[..count], status);
    Ok(Parsed::Final(Head {
        status,
        lines,
        framing,
        reusable: reusable && !closes,
    }))
}

/// Parses a chunk-size line (RFC 9112 §7.1): one to sixteen hex digits,
/// optional whitespace, optional extensions after `;`, then CRLF. The
/// extensions are skipped; a CR or LF anywhere but the line's end, or another
/// control byte but HTAB, is an error — a bare LF here is how a chunked body
/// is read two ways. `Ok(None)` until the line's end has arrived; else the
/// line's length and the size.
fn parse_chunk_size(buf: &[u8]) -> Result<Option<(usize, u64)>, &'static str> {
    let digits = buf.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > 16 {
        return Err("chunk size too large");
    }
    if digits == buf.len() {
        return Ok(None);
    }
    if digits == 0 {
        return Err("malformed chunk size");
    }
    let size = buf[..digits].iter().fold(0u64, |n, &d| {
        // Sixteen hex digits at most: no overflow.
        let value = match d {
            b'0'..=b'9' => d - b'0',
            _ => (d | 0x20) - b'a' + 10,
        };
        (n << 4) | u64::from(value)
    });
    let rest = &buf[digits..];
    let blank = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    match rest.get(blank) {
        None => return Ok(None),
        Some(b'\r' | b';') => {}
        Some(b'\n') => return Err("bare LF in a chunk-size line"),
        Some(_) => return Err("malformed chunk size"),
    }
    for (i, &b) in rest.iter().enumerate().skip(blank) {
        match b {
            b'\r' => {
                return match rest.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some((digits + i + 2, size))),
                    Some(_) => Err("bare CR in a chunk-size line"),
                };
            }
            b'\n' => return Err("bare LF in a chunk-size line"),
            b'\t' | b' '..=b'~' | 0x80..=0xff => {}
            _ => return Err("control byte in a chunk extension"),
        }
    }
    Ok(None)
}

/// Checks one trailer line, CRLF included: a field line (a name, a colon)
/// with no CR, LF or other control byte but HTAB before its CRLF, and no
/// obs-fold. Trailers are dropped, but one that could be read two ways ends
/// the body as an error, never as a clean end.
fn check_trailer(line: &[u8]) -> Result<(), &'static str> {
    let content = line
        .strip_suffix(b"\r\n")
        .ok_or("bare LF in the trailer section")?;
    let name = content.split(|&b| b == b':').next().unwrap_or(content);
    if name.len() == content.len() || name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err("malformed trailer line");
    }
    if content
        .iter()
        .any(|&b| (b < b' ' && b != b'\t') || b == 0x7f)
    {
        return Err("control byte in a trailer line");
    }
    Ok(())
}

/// Whether `b` may appear in a field name (RFC 9110 §5.6.2 tchar).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `Content-Length` value: digits only, at most 18 of them.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The header lines the client gets: the upstream's, less hop-by-hop ones,
/// those its `Connection` names, and `X-Request-Id` (the gateway sets its
/// own); names in any case. They stay where they lie in the head: no header
/// map is built for the h1 loop, which writes them as they are. A bodiless
/// answer (to HEAD, a 204 or 304) is not held to one `Content-Length`, so
/// only its first is kept, and a 204 or 304 keeps none (RFC 9110 §8.6; hyper
/// drops it there too): whichever loop writes it, the client sees one
/// length or none. Also tells whether `Connection` says `close`.
fn client_lines(raw: Bytes, spans: &[Span], status: StatusCode) -> (RawHeaders, bool) {
    let at = |(start, end): (u32, u32)| &raw[start as usize..end as usize];
    let mut listed = Listed::new();
    for span in spans {
        if at(span.name).eq_ignore_ascii_case(b"connection") {
            listed.add(at(span.value));
        }
    }
    let mut length_kept = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let kept = spans
        .iter()
        .filter(|span| {
            let name = at(span.name);
            if name.eq_ignore_ascii_case(b"content-length") {
                return !std::mem::replace(&mut length_kept, true);
            }
            !(forward::is_hop_by_hop_raw(name)
                || name.eq_ignore_ascii_case(b"x-request-id")
                || listed.contains_bytes(name))
        })
        .copied()
        .collect();
    let closes = listed.contains("close");
    (RawHeaders::new(raw, kept), closes)
}

/// An upstream's answer, for the client: its status, the header lines it
/// gets (hop-by-hop and `Connection`-named ones left out) and its body.
#[derive(Debug)]
pub struct Fetched {
    /// The status.
    pub status: StatusCode,
    /// The header lines the client gets.
    pub lines: RawHeaders,
    /// The body, read from the upstream as the client takes it.
    pub body: ResponseBody,
}

impl Head {
    /// The response, its body read from `io` (`buf` holds what came after
    /// the head). A bodiless response gives the connection back at once.
    fn into_fetched(
        self,
        io: Conn,
        buf: BytesMut,
        (authority, tls): (&Authority, Option<&Arc<UpstreamTls>>),
        now: Instant,
        stall: Duration,
    ) -> Fetched {
        let body = if self.framing == Framing::Done {
            if self.reusable && buf.is_empty() {
                put_idle(connect::pool_key(authority, tls), io, now);
            }
            ResponseBody::Empty
        } else {
            ResponseBody::Fetched(Box::new(FetchedBody {
                io: Some(io),
                buf,
                framing: self.framing,
                authority: authority.clone(),
                tls: tls.cloned(),
                reusable: self.reusable,
                sent: now,
                stall,
                waiting: None,
                progressed: false,
            }))
        };
        Fetched {
            status: self.status,
            lines: self.lines,
            body,
        }
    }
}

/// A response body read from its upstream connection as the client takes
/// it. The connection goes back to the pool when the body ends cleanly;
/// dropped before that, it is closed.
#[derive(Debug)]
pub struct FetchedBody {
    io: Option<Conn>,
    buf: BytesMut,
    framing: Framing,
    authority: Authority,
    tls: Option<Arc<UpstreamTls>>,
    reusable: bool,
    /// When the request was sent: close enough to when the connection goes
    /// idle, for expiring it 30 s later, and no clock read per request.
    sent: Instant,
    /// The longest wait for more of the body (`upstream_timeout`, like
    /// nginx's `proxy_read_timeout`).
    stall: Duration,
    /// Since when the body has been waited for, and its timer; `None` while
    /// bytes come as fast as they are taken (no clock read, no timer).
    waiting: Option<(tokio::time::Instant, Pin<Box<tokio::time::Sleep>>)>,
    /// Whether bytes came since the current wait began.
    progressed: bool,
}

/// What the buffered bytes give.
enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The body ended.
    End,
    /// More bytes are needed.
    Read,
    /// The coding is broken.
    Invalid(&'static str),
}

impl FetchedBody {
    /// The body ended where its framing said: the connection is kept if
    /// nothing follows and the upstream allows it.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(io) = self.io.take()
            && self.reusable
            && self.buf.is_empty()
        {
            let key = connect::pool_key(&self.authority, self.tls.as_ref());
            put_idle(key, io, self.sent);
        }
    }

    /// Takes what the buffered bytes give.
    fn step(&mut self) -> Step {
        match self.framing {
            Framing::Done => Step::End,
            Framing::Length(left) => {
                if self.buf.is_empty() {
                    return Step::Read;
                }
                let n = left.min(self.buf.len() as u64);
                let data = self.buf.split_to(n as usize).freeze();
                self.framing = Framing::Length(left - n);
                if left == n {
                    self.finish();
                }
                Step::Data(data)
            }
            Framing::Eof if self.buf.is_empty() => Step::Read,
            Framing::Eof => Step::Data(self.buf.split().freeze()),
            Framing::Chunked(chunk) => self.step_chunked(chunk),
        }
    }

    /// Decodes the chunked coding from the buffered bytes.
    fn step_chunked(&mut self, mut chunk: Chunk) -> Step {
        loop {
            match chunk {
                Chunk::Size => match parse_chunk_size(&self.buf) {
                    Ok(Some((used, size))) => {
                        self.buf.advance(used);
                        chunk = if size == 0 {
                            Chunk::Trailers(0)
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Ok(None) if self.buf.len() > MAX_CHUNK_LINE => {
                        return Step::Invalid("chunk-size line too long");
                    }
                    Ok(None) => {
                        self.framing = Framing::Chunked(chunk);
                        return Step::Read;
                    }
                    Err(reason) => return Step::Invalid(reason),
                },
                Chunk::Data(left) => {
                    self.framing = Framing::Chunked(chunk);
                    if self.buf.is_empty() {
                        return Step::Read;
                    }
                    let n = left.min(self.buf.len() as u64);
                    let data = self.buf.split_to(n as usize).freeze();
                    let next = if left == n {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    };
                    self.framing = Framing::Chunked(next);
                    return Step::Data(data);
                }
                Chunk::DataEnd => match &self.buf[..] {
                    [b'\r', b'\n', ..] => {
                        self.buf.advance(2);
                        chunk = Chunk::Size;
                    }
                    [] | [b'\r'] => {
                        self.framing = Framing::Chunked(chunk);
                        return Step::Read;
                    }
                    _ => return Step::Invalid("chunk data longer than its size"),
                },
                Chunk::Trailers(seen) => {
                    let Some(end) = memchr::memchr(b'\n', &self.buf) else {
                        if seen + self.buf.len() > MAX_TRAILERS {
                            return Step::Invalid("trailers too large");
                        }
                        self.framing = Framing::Chunked(chunk);
                        return Step::Read;
                    };
                    if end == 1 && self.buf[0] == b'\r' {
                        self.buf.advance(2);
                        self.finish();
                        return Step::End;
                    }
                    if let Err(reason) = check_trailer(&self.buf[..=end]) {
                        return Step::Invalid(reason);
                    }
                    self.buf.advance(end + 1);
                    if seen + end + 1 > MAX_TRAILERS {
                        return Step::Invalid("trailers too large");
                    }
                    chunk = Chunk::Trailers(seen + end + 1);
                }
            }
        }
    }

    /// Reads more of the body; `Ok(0)` when the upstream closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        make_room(&mut self.buf, BODY_READ);
        tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut self.buf)
    }

    /// Waits for the body's next bytes at most `stall` since the wait began.
    /// The timer is made on the first wait and moved only when it fires
    /// before the current wait's end.
    fn poll_stall(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let stall = self.stall;
        let (since, timer) = self.waiting.get_or_insert_with(|| {
            let now = tokio::time::Instant::now();
            (now, Box::pin(tokio::time::sleep_until(now + stall)))
        });
        loop {
            ready!(timer.as_mut().poll(cx));
            let end = *since + stall;
            if timer.deadline() >= end {
                return self
                    .fail("upstream sent no more of the body within upstream_timeout".into());
            }
            timer.as_mut().reset(end);
        }
    }

    /// Ends the body with an error; the connection is closed.
    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.framing = Framing::Done;
        self.io = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for FetchedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            match this.step() {
                Step::Data(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Step::End => return Poll::Ready(None),
                Step::Invalid(reason) => return this.fail(reason.into()),
                Step::Read => match this.poll_fill(cx) {
                    Poll::Pending => {
                        if let Some((since, _)) = &mut this.waiting
                            && this.progressed
                        {
                            *since = tokio::time::Instant::now();
                            this.progressed = false;
                        }
                        return this.poll_stall(cx);
                    }
                    Poll::Ready(Ok(0)) if this.framing == Framing::Eof => {
                        this.framing = Framing::Done;
                        this.io = None;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(0)) => {
                        return this
                            .fail("upstream closed the connection before the body's end".into());
                    }
                    Poll::Ready(Ok(_)) => this.progressed = true,
                    Poll::Ready(Err(e)) => return this.fail(e.into()),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            Framing::Done => SizeHint::with_exact(0),
            Framing::Chunked(_) | Framing::Eof => SizeHint::default(),
        }
    }
}

/// An idle connection to an upstream (by its pool key), the most recently
/// used first. One the upstream closed, or sent bytes on while idle, is
/// dropped.
fn take_idle(key: &str, now: Instant) -> Option<Conn> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.idle(key)?;
        while let Some(Idle { mut conn, since }) = idle.pop() {
            if forward::is_fresh(since, now) && conn.is_quiet() {
                return Some(conn);
            }
        }
        None
    })
}

/// Keeps `io` for reuse. The oldest idle connection is checked on every
/// return, so one the upstream closed while others were busy is closed too
/// rather than lingering until it would be taken.
fn put_idle(key: &str, io: Conn, now: Instant) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.put(key, io, now);
        if idle.len() > 1 && !(forward::is_fresh(idle[0].since, now) && idle[0].conn.is_quiet()) {
            idle.remove(0);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, bodiless: bool) -> Result<Head, &'static str> {
        let mut buf = BytesMut::from(raw.as_bytes());
        match parse_head(&mut buf, bodiless)? {
            Parsed::Final(head) => Ok(head),
            Parsed::Partial => Err("partial"),
            Parsed::Informational(_) => Err("informational"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112_and_refuses_ambiguity() {
        let cases: &[(&str, bool, Result<Framing, &str>, bool)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Ok(Framing::Length(5)),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                Ok(Framing::Done),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length:  7 \r\n\r\n",
                false,
                Ok(Framing::Length(7)),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Ok(Framing::Chunked(Chunk::Size)),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
                false,
                Ok(Framing::Chunked(Chunk::Size)),
                true,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Ok(Framing::Eof), false),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                false,
                Ok(Framing::Length(5)),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, Close\r\n\r\n",
                false,
                Ok(Framing::Length(5)),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Ok(Framing::Length(5)),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                Ok(Framing::Done),
                true,
            ),
            (
                "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Ok(Framing::Done),
                true,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
                false,
                Ok(Framing::Done),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                false,
                Err("several Content-Length headers"),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
                false,
                Err("malformed Content-Length"),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
                false,
                Err("malformed Content-Length"),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                false,
                Err("malformed Content-Length"),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Err("ambiguous response framing (Transfer-Encoding)"),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false,
                Err("ambiguous response framing (Transfer-Encoding)"),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Err("ambiguous response framing (Transfer-Encoding)"),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Err("Transfer-Encoding in an HTTP/1.0 response"),
                false,
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                false,
                Err("101 to a request that asked for no upgrade"),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
                false,
                Err("malformed response head"),
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
                false,
                Err("malformed response head"),
                false,
            ),
            (
                "HTTP/2 200 OK\r\n\r\n",
                false,
                Err("malformed response head"),
                false,
            ),
        ];
        for (raw, bodiless, framing, reusable) in cases {
            let got = head(raw, *bodiless);
            match (framing, &got) {
                (Ok(f), Ok(h)) => {
                    assert_eq!(h.framing, *f, "{raw:?}");
                    assert_eq!(h.reusable, *reusable, "{raw:?}");
                }
                (Err(e), Err(g)) => assert_eq!(e, g, "{raw:?}"),
                _ => panic!(
                    "{raw:?}: expected {framing:?}, got {:?}",
                    got.as_ref().map(|h| h.framing)
                ),
            }
        }
    }

    #[test]
    fn informational_heads_are_skipped_and_partial_heads_wait() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200"[..]);
        let Ok(Parsed::Informational(len)) = parse_head(&mut buf, false) else {
            panic!("expected an informational head");
        };
        buf.advance(len);
        assert!(matches!(parse_head(&mut buf, false), Ok(Parsed::Partial)));
        let mut big = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        big.extend_from_slice(&vec![b'x'; MAX_HEAD]);
        assert_eq!(
            parse_head(&mut big, false).err(),
            Some("response head too large")
        );
    }

    #[test]
    fn client_headers_drop_hop_by_hop_connection_named_and_request_id() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\n\
             X-Internal: secret\r\nTransfer-Encoding: chunked\r\nX-Request-Id: upstream\r\n\
             Content-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody",
            false,
        )
        .expect("head");
        let lines = Headers::Raw(&h.lines);
        let names: Vec<&[u8]> = lines.iter().map(|(n, _)| n.as_bytes()).collect();
        assert_eq!(names, [&b"Content-Type"[..], b"Set-Cookie", b"Set-Cookie"]);
        let map = lines.to_map();
        assert_eq!(map.len(), 3);
        assert_eq!(map.get_all("set-cookie").iter().count(), 2);
    }

    fn decode(chunks: &[&[u8]]) -> Result<(Vec<u8>, BytesMut, Framing), &'static str> {
        // The decoder's step alone, fed piece by piece: no socket.
        let mut body = FetchedBody {
            io: None,
            buf: BytesMut::new(),
            framing: Framing::Chunked(Chunk::Size),
            authority: Authority::from_static("127.0.0.1:9"),
            tls: None,
            reusable: false,
            sent: Instant::now(),
            stall: Duration::from_secs(1),
            waiting: None,
            progressed: false,
        };
        let mut out = Vec::new();
        for (i, piece) in chunks.iter().enumerate() {
            body.buf.extend_from_slice(piece);
            loop {
                match body.step() {
                    Step::Data(d) => out.extend_from_slice(&d),
                    Step::End => {
                        // What follows the end stays unread (and the
                        // connection unused again).
                        for rest in &chunks[i + 1..] {
                            body.buf.extend_from_slice(rest);
                        }
                        return Ok((out, body.buf, body.framing));
                    }
                    Step::Read => break,
                    Step::Invalid(reason) => return Err(reason),
                }
            }
        }
        Ok((out, body.buf, body.framing))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_pieces() {
        let whole: &[u8] =
            b"5;ext=1\r\nhello\r\n6 ; a=\"b c\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
        for split in 0..whole.len() {
            let (a, b) = whole.split_at(split);
            let (out, rest, framing) = decode(&[a, b]).expect("valid coding");
            assert_eq!(out, b"hello world", "split at {split}");
            assert!(rest.is_empty());
            assert_eq!(framing, Framing::Done);
        }
        let bytewise: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(decode(&bytewise).expect("valid").0, b"hello world");
    }

    #[test]
    fn broken_chunked_codings_are_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"zz\r\n", "malformed chunk size"),
            (b"5\r\nhello!!\r\n", "chunk data longer than its size"),
            (b"0\r\nX: y\n\r\n", "bare LF in the trailer section"),
            (b"ffffffffffffffffffff\r\n", "chunk size too large"),
            // No digit at all: not a last chunk (hyper: "missing size digit").
            (b"3\r\nabc\r\n\r\n\r\n", "malformed chunk size"),
            (b";x\r\n", "malformed chunk size"),
            (b"\t\r\n", "malformed chunk size"),
            // A bare LF in an extension: read as "abc" by some, "xyz" by others.
            (
                b"3;x\nabc\r\nxyz\r\n0\r\n\r\n",
                "bare LF in a chunk-size line",
            ),
            (b"3\nabc\r\n0\r\n\r\n", "bare LF in a chunk-size line"),
            (b"3;x\rabc\r\n", "bare CR in a chunk-size line"),
            (b"3 x\r\nabc\r\n", "malformed chunk size"),
            (b"3;a=\x01\r\nabc\r\n", "control byte in a chunk extension"),
            (b"0\r\nX: a\rb\r\n\r\n", "control byte in a trailer line"),
            (b"0\r\n folded\r\n\r\n", "malformed trailer line"),
            (b"0\r\nno-colon\r\n\r\n", "malformed trailer line"),
        ];
        for (raw, reason) in cases {
            assert_eq!(
                decode(&[raw]).err(),
                Some(*reason),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    /// A chunked coding, valid or not: sizes that match their data or not,
    /// extensions, trailers, bare CR/LF and stray bytes, as pieces to join.
    fn coding() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            (0usize..40).prop_map(|n| format!("{n:x}\r\n{}\r\n", "d".repeat(n)).into_bytes()),
            (0usize..40, 0usize..40)
                .prop_map(|(n, m)| format!("{n:X}\r\n{}\r\n", "e".repeat(m)).into_bytes()),
            "[a-z=\"; \t]{0,12}".prop_map(|ext| format!("3;{ext}\r\nabc\r\n").into_bytes()),
            Just(b"0\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            "[A-Za-z-]{1,8}: [ -~]{0,12}\r\n".prop_map(String::into_bytes),
            proptest::collection::vec(proptest::sample::select(b"\r\n;:0a \t\x01x".to_vec()), 0..6),
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #[test]
        fn the_chunked_decoder_answers_the_same_however_its_input_is_split(
            whole in coding(),
            cut in 0usize..400,
            second_cut in 0usize..400,
        ) {
            let at = cut.min(whole.len());
            let then = (at + second_cut).min(whole.len());
            let at_once = decode(&[&whole]);
            let split = decode(&[&whole[..at], &whole[at..then], &whole[then..]]);
            proptest::prop_assert_eq!(at_once, split, "{:?} cut at {} and {}",
                String::from_utf8_lossy(&whole), at, then);
        }

        #[test]
        fn any_bytes_give_a_head_an_error_or_a_wait_never_a_panic(
            head in "HTTP/1\\.[01] [0-9]{3} [ -~]{0,10}\r\n([A-Za-z-]{1,10}:[ -~\t]{0,12}\r?\n){0,6}(\r\n)?[ -~\r\n]{0,20}",
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            bodiless in proptest::bool::ANY,
        ) {
            for bytes in [head.as_bytes(), &raw[..]] {
                let mut buf = BytesMut::from(bytes);
                let _ = parse_head(&mut buf, bodiless);
            }
        }
    }
}
