//! Server-sent events: one stream per open page, each ending when the server stops (hyper's graceful
//! shutdown would otherwise wait for it for ever, hyperium/hyper#2787).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame as BodyFrame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::watch;

use super::dashboard::Frame;
use super::page::WebResponse;

/// A comment line sent after this long without an event, so proxies keep the connection open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Event streams open at once at most; a browser allows six connections per site, so this is plenty of tabs.
pub const MAX_STREAMS: usize = 256;

/// Appends one event: its name, then its data one `data:` line per line.
pub fn event(out: &mut String, name: &str, data: &str) {
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

/// Counts open streams; a slot is given back when its stream ends.
#[derive(Default)]
pub struct OpenStreams(Arc<AtomicUsize>);

struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl OpenStreams {
    fn take(&self) -> Option<StreamSlot> {
        let taken =
            self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| (open < MAX_STREAMS).then_some(open + 1));
        taken.ok().map(|_| StreamSlot(Arc::clone(&self.0)))
    }

    /// Streams open now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// The dashboard's event stream: the current frame at once, then each new one; ends when `stop` turns true.
/// A reader that is slow only ever gets the newest frame (a watch channel keeps one).
pub fn dashboard(
    open: &OpenStreams,
    frames: watch::Receiver<Arc<Frame>>,
    stop: watch::Receiver<bool>,
) -> Option<WebResponse> {
    let slot = open.take()?;
    struct State {
        frames: watch::Receiver<Arc<Frame>>,
        stop: watch::Receiver<bool>,
        first: bool,
        _slot: StreamSlot,
    }
    let state = State { frames, stop, first: true, _slot: slot };
    let events = stream::unfold(state, |mut state| async move {
        if state.first {
            state.first = false;
            let now = Arc::clone(&state.frames.borrow_and_update());
            // Nothing drawn yet (nobody had looked): the frame this stream asked for comes next.
            if !now.events.is_empty() {
                return Some((Ok(BodyFrame::data(now.events.clone())), state));
            }
        }
        let chunk = tokio::select! {
            () = super::dashboard::stopped(&mut state.stop) => return None,
            changed = state.frames.changed() => match changed {
                Ok(()) => Arc::clone(&state.frames.borrow_and_update()).events.clone(),
                Err(_) => return None,
            },
            () = tokio::time::sleep(KEEP_ALIVE) => Bytes::from_static(b": keep-alive\n\n"),
        };
        Some((Ok(BodyFrame::data(chunk)), state))
    });
    let mut response = Response::new(StreamBody::new(events).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_carry_each_line_as_data() {
        let mut out = String::new();
        super::event(&mut out, "figures", "<p>a</p>\n<p>b</p>");
        assert_eq!(out, "event: figures\ndata: <p>a</p>\ndata: <p>b</p>\n\n");
    }
}
