//! Request-body limits (SPEC 2 `[server.limits]`): `max_body_bytes` counted
//! as the body streams (chunked bodies included) and `body_timeout` between
//! body bytes. A body that breaks either ends with a [`BodyLimit`] error,
//! which the gateway turns into 413 `body_too_large` or 408 when no response
//! head has been sent yet.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BodyError;

/// Which request-body limit a body broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyLimit {
    /// More than `max_body_bytes`.
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    /// No body bytes for `body_timeout`.
    #[error("no request body bytes for {0:?}")]
    Timeout(Duration),
}

impl BodyLimit {
    /// The limit error somewhere in `error`'s source chain, if any.
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<BodyLimit> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(limit) = e.downcast_ref::<BodyLimit>() {
                return Some(*limit);
            }
            cause = e.source();
        }
        None
    }
}

/// A client's request body with its limits.
#[derive(Debug)]
pub struct LimitedBody {
    inner: Incoming,
    max: Option<u64>,
    read: u64,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl LimitedBody {
    /// Limits `inner` to `max` bytes (none: unlimited), with at most
    /// `timeout` between body bytes.
    pub fn new(inner: Incoming, max: Option<u64>, timeout: Duration) -> LimitedBody {
        LimitedBody {
            inner,
            max,
            read: 0,
            timeout,
            sleep: None,
        }
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if let Some(max) = this.max
                        && this.read > max
                    {
                        return Poll::Ready(Some(Err(Box::new(BodyLimit::TooLarge(max)))));
                    }
                }
                if let Some(sleep) = &mut this.sleep {
                    sleep.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(Box::new(BodyLimit::Timeout(timeout)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;
