//! [`FileBody`]: a file (or a range of it) streamed from disk in chunks.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::task::{JoinHandle, spawn_blocking};

/// The most read from disk at once, and so the largest frame sent: each
/// chunk costs a hop to the blocking pool and back, and each stream in
/// flight holds one in memory.
pub(super) const CHUNK: usize = 128 * 1024;

/// A file body streamed in chunks of at most 128 KiB, never held whole in
/// memory. Each chunk is read on tokio's blocking pool (a cold disk never
/// stalls the worker) straight into the buffer that becomes the frame: no
/// zeroing, no second copy. A file that ends before its announced length ends
/// the body with an error, so a client never takes a short body for a whole
/// one.
#[derive(Debug)]
pub struct FileBody {
    /// The file, while no read is in flight.
    file: Option<File>,
    /// The read in flight: it gives the file back with the chunk.
    reading: Option<JoinHandle<(File, io::Result<Vec<u8>>)>>,
    /// Bytes still to send.
    remaining: u64,
}

impl FileBody {
    /// `len` bytes of `file` from its current position.
    pub(super) fn new(file: File, len: u64) -> FileBody {
        FileBody {
            file: Some(file),
            reading: None,
            remaining: len,
        }
    }
}

/// Reads up to `chunk`'s capacity of `file` into it (its spare capacity:
/// nothing is zeroed first).
fn read_chunk(file: File, mut chunk: Vec<u8>) -> (File, io::Result<Vec<u8>>) {
    let want = chunk.capacity() as u64;
    let read = (&file).take(want).read_to_end(&mut chunk);
    (file, read.map(|_| chunk))
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
        let reading = match (&mut this.reading, this.file.take()) {
            (Some(reading), _) => reading,
            (None, Some(file)) => {
                let want = usize::try_from(this.remaining).map_or(CHUNK, |r| r.min(CHUNK));
                // Allocated here, on the worker, where the frame is freed
                // once sent: made on the blocking pool, the chunks spread
                // over an allocator arena per pool thread, each keeping its
                // peak (3–8 MB more resident after a run of 1 MB files).
                let chunk = Vec::with_capacity(want);
                this.reading
                    .insert(spawn_blocking(move || read_chunk(file, chunk)))
            }
            (None, None) => return Poll::Ready(None),
        };
        let joined = ready!(Pin::new(reading).poll(cx));
        this.reading = None;
        let chunk = match joined {
            Ok((file, read)) => {
                this.file = Some(file);
                read?
            }
            Err(e) => {
                this.remaining = 0;
                return Poll::Ready(Some(Err(io::Error::other(e))));
            }
        };
        if chunk.is_empty() {
            this.remaining = 0;
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being sent",
            ))));
        }
        this.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
