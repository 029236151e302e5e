//! [`FileBody`]: a file (or a range of it) streamed from disk in chunks.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

/// The most read from disk at once, and so the largest frame sent.
pub(super) const CHUNK: usize = 64 * 1024;

/// A file body streamed in chunks of at most 64 KiB, never held whole in
/// memory. Each chunk is read through `tokio::fs::File` (one blocking-pool
/// hop per chunk, so a cold disk never stalls the worker); a file that ends
/// before its announced length ends the body with an error, so a client never
/// takes a short body for a whole one.
#[derive(Debug)]
pub struct FileBody {
    file: tokio::fs::File,
    /// Bytes still to send.
    remaining: u64,
    /// The chunk being read, kept across a pending read.
    buf: BytesMut,
}

impl FileBody {
    /// `len` bytes of `file` from its current position.
    pub(super) fn new(file: std::fs::File, len: u64) -> FileBody {
        FileBody {
            file: tokio::fs::File::from_std(file),
            remaining: len,
            buf: BytesMut::new(),
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        if this.buf.is_empty() {
            let want = usize::try_from(this.remaining).map_or(CHUNK, |r| r.min(CHUNK));
            this.buf = BytesMut::zeroed(want);
        }
        let mut read_buf = ReadBuf::new(&mut this.buf);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        if n == 0 {
            this.remaining = 0;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being sent",
            ))));
        }
        let mut chunk = std::mem::take(&mut this.buf);
        chunk.truncate(n);
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
