//! Holding an outbox until the seller's answer is written: the response body carries it, and hyper drops
//! the body once the last byte of the answer is in the connection's write buffer (flushed in the same poll).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use hyper::Response;
use parking_lot::Mutex;

use super::Outbox;

/// An outbox riding in a response's extensions from the handler to the server. Extensions must be `Clone`,
/// so it is shared; whoever drops the last handle drops the outbox, which queues its notices.
#[derive(Clone)]
pub(super) struct Held(Arc<Mutex<Option<Outbox>>>);

impl Held {
    pub(super) fn new(outbox: Outbox) -> Held {
        Held(Arc::new(Mutex::new(Some(outbox))))
    }
}

/// A response body that keeps the call's notices until hyper is done with it.
pub struct AfterAnswer {
    body: Full<Bytes>,
    _notices: Option<Outbox>,
}

/// Moves a response's held outbox, if any, into its body: the server's last step before hyper writes it.
pub fn after_answer(response: Response<Full<Bytes>>) -> Response<AfterAnswer> {
    let (mut parts, body) = response.into_parts();
    let notices = parts.extensions.remove::<Held>().and_then(|held| held.0.lock().take());
    Response::from_parts(parts, AfterAnswer { body, _notices: notices })
}

impl Body for AfterAnswer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
