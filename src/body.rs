//! The body types the gateway moves: what it sends to clients
//! ([`ResponseBody`]) and to upstreams ([`RequestBody`]). Enums rather than
//! boxed trait objects, so that no body costs an allocation of its own.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The error a body yields (hyper's, or a limit's).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: an upstream's streamed body or bytes made here.
#[derive(Debug)]
pub enum ResponseBody {
    /// Nothing.
    Empty,
    /// Bytes the gateway made (refusals, health answers).
    Full(Option<Bytes>),
    /// Streamed from an upstream through hyper's client.
    Upstream(Incoming),
    /// Streamed from an upstream by [`crate::fetch`].
    Fetched(Box<crate::fetch::FetchedBody>),
    /// Streamed from a file of a `root` route.
    File(crate::files::FileBody),
}

impl ResponseBody {
    /// A body of these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Full(Some(bytes.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Upstream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ResponseBody::Fetched(body) => Pin::new(body.as_mut()).poll_frame(cx),
            ResponseBody::File(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Upstream(body) => body.is_end_stream(),
            ResponseBody::Fetched(body) => body.is_end_stream(),
            ResponseBody::File(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Upstream(body) => body.size_hint(),
            ResponseBody::Fetched(body) => body.size_hint(),
            ResponseBody::File(body) => body.size_hint(),
        }
    }
}

/// A request body on its way to an upstream.
#[derive(Debug)]
pub enum RequestBody {
    /// No body (index retries, HEAD/GET re-sent by the gateway).
    Empty,
    /// The client's body, streamed within its limits.
    Client(crate::limits::LimitedBody),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Client(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Client(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Client(body) => body.size_hint(),
        }
    }
}
