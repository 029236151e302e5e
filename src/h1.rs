//! The gateway's own HTTP/1.1 server loop for the common request, and
//! hyper's for everything else.
//!
//! A request is served here when its head is complete, parses (httparse,
//! hyper's own parser, with hyper's limits) and has no body and nothing to
//! negotiate: no `Content-Length`, no `Transfer-Encoding`, no `Upgrade`, no
//! `Expect`, not `CONNECT`. That is nearly every GET and HEAD. It is decided
//! in the connection's own task, and its response is written with one write
//! when it is small: there is no dispatcher, no body channel and no service
//! future per request.
//!
//! The first request that is anything else (a body, an upgrade, an HTTP/2
//! preface as the connection's first bytes, a head that does not parse, is
//! cut short or is too large) hands the connection, with every byte read so
//! far, to hyper for the rest of its life. So every hard case, and every
//! automatic error answer (400, 414, 431), stays hyper's, and a byte
//! sequence is never read two ways. An HTTP/2 preface after HTTP/1
//! requests ends the connection.
//!
//! While an answer waits (on an upstream, a file), the connection is read:
//! a client that closes it cancels its request. Writes are flushed (TLS
//! holds records until then) and bounded by the connection's send clock
//! ([`crate::conn::Watched`]).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, Request, StatusCode, Uri, Version};
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::conn::{ConnState, ConnTimeout};
use crate::fetch::{Span, parse_length, span_of};
use crate::forward::Listed;
use crate::gateway::{Answer, Answered, Conn, Shared, Via, handle};
use crate::headers::{Headers, RawHeaders};
use crate::log::Logged;
use crate::respond::X_REQUEST_ID;

/// Most header lines in a head served here: hyper's own default, so a head
/// with more goes to hyper, which answers 431.
const MAX_HEADERS: usize = 100;
/// Longest request target hyper accepts; a longer one goes to it for its 414.
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;
/// The read buffer's first size, and how much it grows by.
const READ_SIZE: usize = 8 * 1024;
const READ_GROW: usize = 4 * 1024;
/// Spare room below which the read buffer grows before a read.
const READ_MIN: usize = 1024;
/// Body data up to this size is copied behind what is waiting to be
/// written; larger data goes out from where it is, in the same write.
const COPY_MAX: usize = 16 * 1024;
/// Waiting bytes are written once this many have gathered; a write buffer
/// grown past it is not kept for the next request.
const FLUSH_AT: usize = 64 * 1024;
/// The start of HTTP/2's connection preface, as far as it is a request line.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
/// How long a closing connection may take to shut down (a TLS client that
/// reads nothing would hold its `close_notify` forever).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How a connection served here ended.
#[derive(Debug)]
pub enum Ended<T> {
    /// It is over: the client closed it or asked to, it was idle at a
    /// shutdown, or it failed (the error, for the log and metrics).
    Closed(Option<io::Error>),
    /// It goes on in hyper.
    HandOff {
        /// The stream.
        io: T,
        /// The bytes already read from it and not yet parsed.
        read: Bytes,
    },
}

/// A request head read here.
struct Head {
    parts: Parts,
    /// The client asked to close, or speaks HTTP/1.0 without asking for
    /// keep-alive.
    close: bool,
}

/// What the read buffer holds.
// Returned once per request and matched at once: boxing the head would
// cost an allocation each time.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    /// A request to serve here (its head already split off the buffer).
    Served(Head),
    /// Not yet a whole head.
    Partial,
    /// Something for hyper.
    Other,
}

/// Serves requests on `io` until the connection ends or one of them is not
/// for this loop. `max_head` is the largest request head accepted. A
/// connection that ends here is shut down (bounded by `CLOSE_WAIT`).
pub async fn serve<T>(
    mut io: T,
    shared: &Shared,
    conn: Conn,
    state: &Arc<ConnState>,
    max_head: usize,
    stop: &mut watch::Receiver<bool>,
) -> Ended<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let ended = serve_requests(&mut io, shared, conn, state, max_head, stop).await;
    match ended {
        Ok(Some(read)) => Ended::HandOff { io, read },
        Ok(None) => {
            let _ = tokio::time::timeout(CLOSE_WAIT, io.shutdown()).await;
            Ended::Closed(None)
        }
        Err(e) => {
            let _ = tokio::time::timeout(CLOSE_WAIT, io.shutdown()).await;
            Ended::Closed(Some(e))
        }
    }
}

/// The loop of [`serve`]: `Ok(Some(read))` hands the connection to hyper.
async fn serve_requests<T>(
    io: &mut T,
    shared: &Shared,
    conn: Conn,
    state: &Arc<ConnState>,
    max_head: usize,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<Option<Bytes>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(1024);
    let mut served = false;
    // One future for the whole connection, to wait on while idle (a sender
    // gone is a shutdown too); between requests, `Shared::stopping` says it
    // (set before the stop is sent, or when the server is dropped).
    let mut stop = std::pin::pin!(async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    });
    let mut raw = RawHeaders::default();
    loop {
        // The last head's bytes go: the read buffer can take its room back.
        raw.clear();
        // Bytes before `checked` hold no end of a head: a head sent in
        // small pieces is parsed again only once it may be whole.
        let mut checked = 0;
        let head = loop {
            if may_end_head(&buf, checked) {
                match parse(&mut buf, max_head, &mut raw) {
                    Parsed::Served(head) => break head,
                    Parsed::Partial => {}
                    // HTTP/2 with prior knowledge starts a connection; hyper
                    // would take its preface later on too.
                    Parsed::Other if served && buf.starts_with(H2_PREFACE) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "an HTTP/2 preface after HTTP/1 requests",
                        ));
                    }
                    Parsed::Other => return Ok(Some(buf.freeze())),
                }
            }
            checked = buf.len();
            if buf.len() >= max_head {
                // hyper answers 431.
                return Ok(Some(buf.freeze()));
            }
            if buf.capacity() - buf.len() < READ_MIN {
                buf.reserve(READ_GROW);
            }
            let read = if buf.is_empty() {
                // Idle between requests: a shutdown closes the connection.
                if is_stopping(shared) {
                    return Ok(None);
                }
                tokio::select! {
                    biased;
                    read = io.read_buf(&mut buf) => read,
                    () = &mut stop => return Ok(None),
                }
            } else {
                io.read_buf(&mut buf).await
            };
            match read {
                Ok(0) if buf.is_empty() => return Ok(None),
                // A head cut short: hyper reads the same bytes and says so.
                Ok(0) => return Ok(Some(buf.freeze())),
                Ok(_) => {}
                // An idle connection reset by its client ends normally; the
                // connection's clocks are reported.
                Err(e) if buf.is_empty() && !is_clock(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        served = true;
        let head_only = head.parts.method == Method::HEAD;
        let version = head.parts.version;
        let mut handling = std::pin::pin!(handle(shared, conn, state, head.parts, Via::H1(&raw)));
        // Most answers are ready at once (every refusal is). One that waits
        // on an upstream or a file is dropped if the client goes away.
        let response = match poll_fn(|cx| Poll::Ready(handling.as_mut().poll(cx))).await {
            Poll::Ready(response) => response,
            Poll::Pending => {
                let response = tokio::select! {
                    biased;
                    response = &mut handling => Ok(response),
                    gone = client_gone(io, &mut buf, max_head) => Err(gone),
                };
                state.forget_reader();
                response?
            }
        };
        let keep = !head.close && !is_stopping(shared);
        if !write_answer(io, &mut out, response, head_only, version, keep).await? {
            return Ok(None);
        }
        if out.capacity() > FLUSH_AT {
            out = Vec::with_capacity(1024);
        }
    }
}

/// Whether the worker is shutting down.
fn is_stopping(shared: &Shared) -> bool {
    shared.stopping.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether a timeout of the connection's own clock ended the read.
fn is_clock(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<ConnTimeout>())
}

/// Whether `buf` may hold a whole head: always at first (so what is not
/// HTTP/1 is told at once), then only once a blank line may have come
/// after byte `checked`.
fn may_end_head(buf: &[u8], checked: usize) -> bool {
    if checked == 0 {
        return !buf.is_empty();
    }
    let from = checked.saturating_sub(3);
    let tail = &buf[from..];
    memchr::memchr_iter(b'\n', tail).any(|i| {
        let after = &tail[i + 1..];
        after.first() == Some(&b'\n') || after.starts_with(b"\r\n")
    })
}

/// Reads what the client sends while its request is handled, keeping the
/// bytes (the next request's, up to `max_head`); returns when the client
/// closed the connection or it failed.
async fn client_gone<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    max_head: usize,
) -> io::Error {
    loop {
        if buf.len() >= max_head {
            return std::future::pending().await;
        }
        if buf.capacity() - buf.len() < READ_MIN {
            buf.reserve(READ_GROW);
        }
        match io.read_buf(buf).await {
            Ok(0) => {
                return io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before its answer",
                );
            }
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

/// Parses the buffered bytes as a request head, the way hyper's server
/// does, and tells whether it is one to serve here. A head served here is
/// split off `buf`, its lines kept in `raw`.
fn parse(buf: &mut BytesMut, max_head: usize, raw: &mut RawHeaders) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Parsed::Other;
    };
    if len > max_head || path.len() > MAX_URI_LEN || method == "CONNECT" {
        return Parsed::Other;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    let path = span_of(buf, path.as_bytes());
    let mut connection = Listed::new();
    // The lines go straight into `raw` (its list kept from the last head).
    let spans = raw.lines();
    for h in request.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
        {
            return Parsed::Other;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            connection.add(h.value);
        }
        spans.push(Span {
            name: span_of(buf, name),
            value: span_of(buf, h.value),
        });
    }
    // `close` wins wherever it is; HTTP/1.0 closes unless asked not to.
    let close = connection.contains("close") || (minor == 0 && !connection.contains("keep-alive"));
    let head = buf.split_to(len);
    match request_parts(head, method, path, minor) {
        Ok((parts, head)) => {
            raw.set_head(head);
            Parsed::Served(Head { parts, close })
        }
        Err(head) => {
            // A target httparse takes and `Uri` does not: hyper gets the
            // bytes back, and answers 400.
            let mut all = BytesMut::with_capacity(head.len() + buf.len());
            all.extend_from_slice(&head);
            all.extend_from_slice(buf);
            *buf = all;
            Parsed::Other
        }
    }
}

/// The request's parts, without headers (they stay in the head, see
/// [`RawHeaders`]); the target shares the head's bytes. The head comes
/// back on failure.
fn request_parts(
    head: BytesMut,
    method: Method,
    (start, end): (u32, u32),
    minor: u8,
) -> Result<(Parts, Bytes), Bytes> {
    let head = head.freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(start as usize..end as usize)) else {
        return Err(head);
    };
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    Ok((parts, head))
}

/// The response headers the writer minds, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    /// `Transfer-Encoding`: the framing is decided here.
    Framing,
    /// `X-Request-Id`: the request's own is written.
    RequestId,
    /// `Content-Length`.
    Length,
    /// `Connection`.
    Connection,
    /// `Date`.
    Date,
    /// Anything else.
    Other,
}

impl Said {
    /// A name's kind, in any case: a switch on its length, then one
    /// comparison.
    fn of(name: &[u8]) -> Said {
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        match name.len() {
            4 if is(b"date") => Said::Date,
            10 if is(b"connection") => Said::Connection,
            12 if is(b"x-request-id") => Said::RequestId,
            14 if is(b"content-length") => Said::Length,
            17 if is(b"transfer-encoding") => Said::Framing,
            _ => Said::Other,
        }
    }
}

/// How a response body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body bytes are sent (HEAD, 204, 304, an empty body).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (HTTP/1.0, length unknown).
    Close,
}

/// Writes `response` as hyper's server would, to a request of `version`
/// (HEAD when `head_only`). Returns whether the connection can carry
/// another request: `keep` unless the response says `close` or can only be
/// ended by closing. An error leaves the connection unusable.
async fn write_answer<T: AsyncWrite + Unpin>(
    io: &mut T,
    out: &mut Vec<u8>,
    answer: Answer,
    head_only: bool,
    version: Version,
    keep: bool,
) -> io::Result<bool> {
    let id = answer.id.as_bytes();
    let (refused, mut logged) = match answer.kind {
        Answered::Response(response) => {
            let (parts, body) = response.into_parts();
            let lines = parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()));
            let head = (parts.status, lines, id);
            return write_response(io, out, head, body, head_only, version, keep).await;
        }
        Answered::Fetched {
            status,
            lines,
            body,
        } => {
            let lines = Headers::Raw(&lines)
                .iter()
                .map(|(name, value)| (name.as_bytes(), value.as_bytes()));
            let head = (status, lines, id);
            return write_response(io, out, head, body, head_only, version, keep).await;
        }
        Answered::Refused(refused, logged) => (refused, logged),
    };
    // A refusal's head is written from fixed strings: no header map.
    status_line(out, version, refused.status());
    refused.each_header(|name, value| header_line(out, name.as_str().as_bytes(), value.as_bytes()));
    header_line(out, X_REQUEST_ID.as_str().as_bytes(), id);
    // Refusals are never 1xx, 204 or 304: the length is always said.
    let length = refused.body_len(id);
    header_line(
        out,
        b"content-length",
        itoa::Buffer::new().format(length).as_bytes(),
    );
    let closes = refused.closes();
    if closes {
        header_line(out, b"connection", b"close");
    }
    end_head(out, version, keep && !closes, closes, false);
    let keep = keep && !closes;
    if !head_only {
        refused.write_body(id, out);
        logged.count_sent(length as u64);
    }
    // Dropping it ends the access line and the request.
    drop(logged);
    write_all(io, out, &[]).await?;
    Ok(keep)
}

/// The connection headers and `Date`, as hyper says them: HTTP/1.0 closes
/// unless told otherwise, HTTP/1.1 stays open unless told otherwise. Then
/// the blank line.
fn end_head(out: &mut Vec<u8>, version: Version, keep: bool, says_close: bool, dated: bool) {
    if version == Version::HTTP_10 {
        if keep {
            header_line(out, b"connection", b"keep-alive");
        }
    } else if !keep && !says_close {
        header_line(out, b"connection", b"close");
    }
    if !dated {
        DATE_NOW.with(|date| header_line(out, b"date", date.borrow_mut().now()));
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response, with `X-Request-Id: id` in place of any of its own.
async fn write_response<'h, T: AsyncWrite + Unpin>(
    io: &mut T,
    out: &mut Vec<u8>,
    (status, lines, id): (
        StatusCode,
        impl Iterator<Item = (&'h [u8], &'h [u8])>,
        &[u8],
    ),
    mut body: Logged,
    head_only: bool,
    version: Version,
    mut keep: bool,
) -> io::Result<bool> {
    status_line(out, version, status);
    let mut length = None;
    let mut dated = false;
    let mut connection = Listed::new();
    // Names in any case: lowercase from a map, as sent from an upstream head.
    for (name, value) in lines {
        match Said::of(name) {
            Said::Framing | Said::RequestId => continue,
            Said::Length => {
                // One length, and one that parses: the framing follows it.
                match (length, parse_length(value)) {
                    (None, Some(n)) => length = Some(n),
                    _ => continue,
                }
            }
            Said::Connection => connection.add(value),
            Said::Date => dated = true,
            Said::Other => {}
        }
        header_line(out, name, value);
    }
    let says_close = connection.contains("close");
    let bodiless_status = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let sends_body = !head_only && !bodiless_status;
    let framing = match (length, body.size_hint().exact()) {
        (Some(n), _) if sends_body => Framing::Length(n),
        (Some(_), _) => Framing::None,
        (None, Some(0)) | (None, None) if body.is_end_stream() => {
            if sends_body {
                header_line(out, b"content-length", b"0");
            }
            Framing::None
        }
        (None, Some(0)) => {
            if sends_body {
                header_line(out, b"content-length", b"0");
            }
            Framing::None
        }
        (None, Some(n)) => {
            if !bodiless_status {
                header_line(
                    out,
                    b"content-length",
                    itoa::Buffer::new().format(n).as_bytes(),
                );
            }
            if sends_body {
                Framing::Length(n)
            } else {
                Framing::None
            }
        }
        (None, None) if !sends_body => Framing::None,
        (None, None) if version == Version::HTTP_10 => Framing::Close,
        (None, None) => {
            header_line(out, b"transfer-encoding", b"chunked");
            Framing::Chunked
        }
    };
    keep &= !says_close && framing != Framing::Close;
    header_line(out, X_REQUEST_ID.as_str().as_bytes(), id);
    end_head(out, version, keep, says_close, dated);
    if framing == Framing::None {
        // Dropping the body ends its access line and the request.
        drop(body);
        write_all(io, out, &[]).await?;
        return Ok(keep);
    }
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    loop {
        // Whatever waits is written before waiting for more of the body.
        let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                write_all(io, out, &[]).await?;
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers are not sent.
                Err(_) => continue,
            },
            Some(Err(e)) => return Err(io::Error::other(e)),
        };
        if data.is_empty() {
            continue;
        }
        let data = match framing {
            Framing::Length(_) if data.len() as u64 > left => {
                return Err(io::Error::other("response body longer than its length"));
            }
            Framing::Length(_) => {
                left -= data.len() as u64;
                data
            }
            Framing::Chunked => {
                out.extend_from_slice(format_hex(data.len()).as_bytes());
                out.extend_from_slice(b"\r\n");
                data
            }
            Framing::Close | Framing::None => data,
        };
        if data.len() <= COPY_MAX {
            out.extend_from_slice(&data);
        } else {
            write_all(io, out, &data).await?;
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= FLUSH_AT {
            write_all(io, out, &[]).await?;
        }
    }
    match framing {
        Framing::Length(_) if left != 0 => {
            return Err(io::Error::other("response body shorter than its length"));
        }
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        _ => {}
    }
    write_all(io, out, &[]).await?;
    Ok(keep)
}

/// `HTTP/1.x code reason`, as hyper writes it.
fn status_line(out: &mut Vec<u8>, version: Version, status: StatusCode) {
    if version == Version::HTTP_11 && status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A chunk size in hex.
fn format_hex(n: usize) -> HexBuf {
    let mut buf = HexBuf {
        bytes: [0; 16],
        start: 16,
    };
    let mut n = n;
    loop {
        buf.start -= 1;
        buf.bytes[buf.start] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            return buf;
        }
    }
}

struct HexBuf {
    bytes: [u8; 16],
    start: usize,
}

impl HexBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Writes `out`, then `more`, in as few writes as the stream takes; `out`
/// is left empty.
async fn write_all<T: AsyncWrite + Unpin>(
    io: &mut T,
    out: &mut Vec<u8>,
    more: &[u8],
) -> io::Result<()> {
    let (mut first, mut second) = (&out[..], more);
    while !first.is_empty() || !second.is_empty() {
        let n = if first.is_empty() {
            io.write(second).await?
        } else if second.is_empty() {
            io.write(first).await?
        } else {
            io.write_vectored(&[IoSlice::new(first), IoSlice::new(second)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < first.len() {
            first = &first[n..];
        } else {
            second = &second[n - first.len()..];
            first = &[];
        }
    }
    out.clear();
    // A TLS stream holds records until flushed.
    io.flush().await
}

thread_local! {
    static DATE_NOW: RefCell<DateNow> = const {
        RefCell::new(DateNow { second: u64::MAX, value: Vec::new() })
    };
}

/// The `Date` value, formatted once a second per thread.
struct DateNow {
    second: u64,
    value: Vec<u8>,
}

impl DateNow {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.value = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward;
    use crate::headers::Headers;

    fn parsed(bytes: &[u8]) -> (Parsed, BytesMut) {
        parsed_with(bytes).0
    }

    fn parsed_with(bytes: &[u8]) -> ((Parsed, BytesMut), RawHeaders) {
        let mut buf = BytesMut::from(bytes);
        let mut raw = RawHeaders::default();
        let parsed = parse(&mut buf, 8192, &mut raw);
        ((parsed, buf), raw)
    }

    #[test]
    fn a_plain_get_is_served_here_and_split_off() {
        let ((p, rest), raw) =
            parsed_with(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\nGET /next");
        let Parsed::Served(head) = p else {
            panic!("not served here")
        };
        assert_eq!(head.parts.method, Method::GET);
        assert_eq!(head.parts.uri.path(), "/a");
        assert_eq!(head.parts.uri.query(), Some("b=1"));
        assert_eq!(head.parts.version, Version::HTTP_11);
        let x_a = http::HeaderName::from_static("x-a");
        assert_eq!(Headers::Raw(&raw).get_all(&x_a).count(), 2);
        assert!(head.parts.headers.is_empty());
        assert!(!head.close);
        assert_eq!(&rest[..], b"GET /next");
    }

    #[test]
    fn close_and_http_1_0_end_the_connection() {
        for raw in [
            &b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n",
        ] {
            let (Parsed::Served(head), _) = parsed(raw) else {
                panic!("not served here")
            };
            assert!(head.close, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn bodies_upgrades_and_odd_heads_go_to_hyper_untouched() {
        for raw in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n bad fold\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX\x00: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\x7f\r\n\r\n",
        ] {
            let (p, rest) = parsed(raw);
            if let Parsed::Served(head) = p {
                panic!(
                    "{:?} served here as {:?}",
                    String::from_utf8_lossy(raw),
                    head.parts
                );
            }
            assert_eq!(&rest[..], raw, "bytes kept for hyper");
        }
    }

    #[test]
    fn a_head_over_the_limit_or_with_too_many_lines_goes_to_hyper() {
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 9000));
        big.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parsed(&big).0, Parsed::Other));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(parsed(&many).0, Parsed::Other));
    }

    #[test]
    fn header_lines_are_found_in_any_case_where_they_lie() {
        use http::header::{HOST, SET_COOKIE};
        let ((p, _), raw) = parsed_with(
            b"GET / HTTP/1.1\r\nhOST: x\r\nX-Forwarded-For: 1.2.3.4\r\nSet-Cookie: a\r\n\
              Accept:  */* \r\nset-cookie: b\r\n\r\n",
        );
        assert!(matches!(p, Parsed::Served(_)));
        let h = Headers::Raw(&raw);
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(&HOST), Some(&b"x"[..]));
        assert_eq!(h.get(&forward::X_FORWARDED_FOR), Some(&b"1.2.3.4"[..]));
        // Values as httparse gives them: surrounding spaces gone.
        assert_eq!(h.get(&http::header::ACCEPT), Some(&b"*/*"[..]));
        assert_eq!(h.get_all(&SET_COOKIE).collect::<Vec<_>>(), [b"a", b"b"]);
        assert_eq!(h.get_all(&SET_COOKIE).next_back(), Some(&b"b"[..]));
        assert!(!h.contains(&http::header::REFERER));
        let names: Vec<_> = h.iter().map(|(n, _)| n.as_bytes().to_vec()).collect();
        assert_eq!(names[0], b"hOST", "names as sent");
        assert!(h.iter().next().is_some_and(|(n, _)| n.is(&HOST)));
        // The map holds the same lines, in hyper's terms.
        let map = h.to_map();
        assert_eq!(map.len(), 5);
        assert_eq!(map["host"], "x");
        assert_eq!(map.get_all(SET_COOKIE).iter().count(), 2);
    }

    #[test]
    fn the_headers_the_writer_minds_are_known_in_any_case() {
        for (name, said) in [
            ("date", Said::Date),
            ("DATE", Said::Date),
            ("Connection", Said::Connection),
            ("x-request-id", Said::RequestId),
            ("X-Request-ID", Said::RequestId),
            ("Content-Length", Said::Length),
            ("transfer-ENCODING", Said::Framing),
            ("dates", Said::Other),
            ("content-type", Said::Other),
            ("", Said::Other),
        ] {
            assert_eq!(Said::of(name.as_bytes()), said, "{name}");
        }
    }

    #[test]
    fn a_head_is_parsed_again_only_once_it_may_have_ended() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        // At first, whatever came.
        assert!(may_end_head(b"G", 0));
        assert!(!may_end_head(b"", 0));
        // Then only with a blank line after what was checked, wherever the
        // earlier read cut it.
        for cut in 1..head.len() {
            assert!(may_end_head(head, cut), "cut at {cut}");
            assert!(!may_end_head(
                &head[..head.len() - 1],
                cut.min(head.len() - 1)
            ));
        }
        assert!(may_end_head(b"GET / HTTP/1.1\nHost: x\n\n", 20));
        assert!(!may_end_head(
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n",
            20
        ));
    }

    #[test]
    fn a_partial_head_waits() {
        assert!(matches!(
            parsed(b"GET / HTTP/1.1\r\nHost:").0,
            Parsed::Partial
        ));
        assert!(matches!(parsed(b"").0, Parsed::Partial));
    }

    #[test]
    fn chunk_sizes_are_lower_hex() {
        for (n, hex) in [
            (0, "0"),
            (9, "9"),
            (255, "ff"),
            (4096, "1000"),
            (usize::MAX, "ffffffffffffffff"),
        ] {
            assert_eq!(format_hex(n).as_bytes(), hex.as_bytes());
        }
    }

    #[test]
    fn status_lines_follow_the_request_version() {
        let line = |v, s| {
            let mut out = Vec::new();
            status_line(&mut out, v, s);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            line(Version::HTTP_11, StatusCode::OK),
            "HTTP/1.1 200 OK\r\n"
        );
        assert_eq!(
            line(Version::HTTP_10, StatusCode::FORBIDDEN),
            "HTTP/1.0 403 Forbidden\r\n"
        );
        assert_eq!(
            line(Version::HTTP_11, StatusCode::from_u16(599).unwrap()),
            "HTTP/1.1 599 <none>\r\n"
        );
    }

    proptest::proptest! {
        /// Whatever the bytes: no panic; a request served here is split off
        /// exactly (its head, as httparse measures it, and nothing more);
        /// anything else leaves every byte where it was, for hyper.
        #[test]
        fn any_bytes_are_split_exactly_or_left_whole(
            head in "(GET|HEAD|POST|OPTIONS|CONNECT) (/[ -~]{0,12}|\\*|http://a/) HTTP/1\\.[0-2]\r?\n\
                     ([A-Za-z-]{1,16}:[ -~\t]{0,12}\r?\n){0,6}(\r?\n)?[ -~\r\n]{0,20}",
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            for bytes in [head.as_bytes(), &raw[..]] {
                let mut buf = BytesMut::from(bytes);
                match parse(&mut buf, 8192, &mut RawHeaders::default()) {
                    Parsed::Served(_) => {
                        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                        let measured = httparse::Request::new(&mut slots).parse(bytes);
                        let Ok(httparse::Status::Complete(len)) = measured else {
                            panic!("served a head httparse does not complete: {measured:?}");
                        };
                        proptest::prop_assert_eq!(&buf[..], &bytes[len..]);
                    }
                    Parsed::Partial | Parsed::Other => proptest::prop_assert_eq!(&buf[..], bytes),
                }
            }
        }
    }
}
