//! Logs (SPEC 11): one JSON line per request on stdout, written by a thread of
//! its own through a bounded channel so that logging never blocks a request
//! (lines that do not fit are counted as dropped); and the JSON event log of
//! everything else (start-up, reloads, shutdown, connection errors) through
//! `tracing`.
//!
//! An access line is written when the response body ends, so that
//! `bytes_sent` and `duration_ms` are true; its request fields are formatted
//! before the request is forwarded, in one buffer.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};

use crate::queue::{BoundedReceiver, BoundedSender, Empty, bounded};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::body::{BodyError, ResponseBody};
use crate::conn::InFlight;
use crate::decision::Reason;
use crate::respond::json_string;

/// Lines waiting for the writer before new ones are dropped.
const CHANNEL_LINES: usize = 16 * 1024;

/// How often the writer drains the channel.
const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// What the writer thread receives.
#[derive(Debug)]
enum Msg {
    Line(String),
    /// Write out everything queued, then acknowledge.
    Flush(SyncSender<()>),
}

/// The access log's sending side.
#[derive(Debug)]
pub struct AccessLog {
    tx: BoundedSender<Msg>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// An access log written to stdout by a new thread.
    pub fn stdout() -> Arc<AccessLog> {
        Self::to_writer(|| Box::new(std::io::stdout()))
    }

    /// An access log written to what `open` returns, by a new thread.
    pub fn to_writer(
        open: impl FnOnce() -> Box<dyn std::io::Write + Send> + Send + 'static,
    ) -> Arc<AccessLog> {
        let (tx, rx) = bounded(CHANNEL_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, open()))
            .expect("spawn the access-log thread");
        Arc::new(AccessLog {
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a line; never waits.
    pub fn send(&self, line: String) {
        if self.tx.try_send(Msg::Line(line)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes out every line queued so far (at shutdown); waits at most a
    /// second.
    pub fn flush(&self) {
        let (ack, done) = sync_channel(1);
        if self.tx.send_anyway(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Drains the channel every [`DRAIN_EVERY`], never waiting on it: a
/// receiver blocked in `recv` makes every send wake it (a system call and a
/// context switch per request); a sleeping one costs senders nothing.
fn write_lines(mut rx: BoundedReceiver<Msg>, out: Box<dyn std::io::Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    loop {
        std::thread::sleep(DRAIN_EVERY);
        loop {
            match rx.try_recv() {
                Ok(Msg::Line(line)) => {
                    let _ = out.write_all(line.as_bytes());
                }
                Ok(Msg::Flush(ack)) => {
                    let _ = out.flush();
                    let _ = ack.send(());
                }
                Err(Empty::Now) => break,
                Err(Empty::ForGood) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
    }
}

/// The request half of an access line, waiting for the response to end.
#[derive(Debug)]
pub struct PendingLine {
    text: String,
    outcome: LineOutcome,
    status: u16,
    start: Instant,
    log: Arc<AccessLog>,
}

/// How a request ended, for its access line.
#[derive(Debug, Clone, Default)]
pub struct LineOutcome {
    /// "allow", "deny", or "error" (the upstream failed).
    pub decision: &'static str,
    /// The reason code, for refusals and errors.
    pub reason: Option<Reason>,
    /// The deciding rule: its name, `(default)`, or none.
    pub rule: Option<Arc<str>>,
    /// The upstream the request went to.
    pub upstream: Option<http::uri::Authority>,
}

/// Builds the request fields of an access line.
#[derive(Debug)]
pub struct LineBuilder {
    text: String,
}

impl LineBuilder {
    /// Starts a line at `ts`.
    pub fn new(ts: SystemTime) -> LineBuilder {
        let mut text = String::with_capacity(512);
        text.push_str("{\"ts\":\"");
        text.push_str(&humantime::format_rfc3339_millis(ts).to_string());
        text.push('"');
        LineBuilder { text }
    }

    /// Adds a string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        json_string(&mut self.text, value);
        self
    }

    /// Adds a string field, or null.
    pub fn opt(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => {
                self.key(key);
                self.text.push_str("null");
                self
            }
        }
    }

    /// Adds a field from raw header bytes (lossily decoded), or null.
    pub fn bytes(&mut self, key: &str, value: Option<&[u8]>) -> &mut Self {
        match value {
            Some(v) => self.str(key, &String::from_utf8_lossy(v)),
            None => self.opt(key, None),
        }
    }

    /// Adds a field printed with `Display` as a string.
    pub fn display(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        use std::fmt::Write as _;
        self.key(key);
        self.text.push('"');
        let _ = write!(self.text, "{value}");
        self.text.push('"');
        self
    }

    fn key(&mut self, key: &str) {
        self.text.push_str(",\"");
        self.text.push_str(key);
        self.text.push_str("\":");
    }

    /// The line, to be finished when the response with `status` ends.
    pub fn pending(
        self,
        outcome: LineOutcome,
        status: u16,
        start: Instant,
        log: Arc<AccessLog>,
    ) -> PendingLine {
        PendingLine {
            text: self.text,
            outcome,
            status,
            start,
            log,
        }
    }
}

impl PendingLine {
    fn finish(self, bytes_sent: u64) {
        use std::fmt::Write as _;
        let PendingLine {
            text,
            outcome,
            status,
            start,
            log,
        } = self;
        let mut line = LineBuilder { text };
        line.str("decision", outcome.decision)
            .opt("reason", outcome.reason.map(Reason::code))
            .opt("rule", outcome.rule.as_deref())
            .opt("upstream", outcome.upstream.as_ref().map(|a| a.as_str()));
        let mut text = line.text;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let _ = writeln!(
            text,
            ",\"status\":{status},\"bytes_sent\":{bytes_sent},\"duration_ms\":{ms:.3}}}"
        );
        log.send(text);
    }
}

/// A response body that writes its access line when it ends or is dropped,
/// and holds its request's [`InFlight`] mark on the connection until then.
#[derive(Debug)]
pub struct Logged {
    inner: ResponseBody,
    /// Boxed: a response is moved several times on its way out, and most
    /// carry no line (the access log is off, or logs refusals only).
    line: Option<Box<PendingLine>>,
    in_flight: Option<InFlight>,
    sent: u64,
}

impl Logged {
    /// Wraps `inner`; `line` is written when it ends (nothing when `None`).
    pub fn new(
        inner: ResponseBody,
        line: Option<PendingLine>,
        in_flight: Option<InFlight>,
    ) -> Logged {
        Logged {
            inner,
            line: line.map(Box::new),
            in_flight,
            sent: 0,
        }
    }

    /// Puts `inner` in place of the body.
    pub fn with_body(mut self, inner: ResponseBody) -> Logged {
        self.inner = inner;
        self
    }

    /// Counts `n` bytes as sent (for a body written without being polled).
    pub fn count_sent(&mut self, n: u64) {
        self.sent += n;
    }

    fn finish(&mut self) {
        if let Some(line) = self.line.take() {
            line.finish(self.sent);
        }
        self.in_flight = None;
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Sets up the JSON event log on stdout; `RUST_LOG` sets its level (default `info`).
pub fn init_events() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}
