//! The contract's JSON error body on the few answers hyper writes by itself.
//!
//! hyper answers a request it cannot parse before any route runs — 431 when the head is over
//! [`super::limits::MAX_HEADER_BYTES`] or has more than 100 headers, 400 when the request line or a header is
//! malformed — with a bare status line and no body, then closes the connection. hyper has no hook to shape
//! that answer, and raising its limits to enforce ours in a route would still leave its own answer past the
//! raised ones. So the connection's socket is wrapped: a response head that hyper writes with one of those
//! statuses and without a `Content-Type` (every answer of ours has one) is replaced, as it is written, by the
//! same status with the contract's `{"error": {...}}` body and `Connection: close`. hyper writes such a head
//! only between two exchanges, never inside a body, and nothing after it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::limits::{MAX_HEADERS, MAX_HEADER_BYTES};

/// A connection's socket whose bare error answers from hyper carry the contract's JSON body.
pub struct JsonBareErrors<S> {
    inner: S,
    /// The answer written in place of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<S> JsonBareErrors<S> {
    pub fn new(inner: S) -> JsonBareErrors<S> {
        JsonBareErrors { inner, replacement: None }
    }
}

/// The code and message of each status hyper may answer by itself.
fn error_of(status: u16) -> Option<(&'static str, String)> {
    match status {
        431 => Some((
            "headers_too_large",
            format!(
                "the request's head is over {MAX_HEADER_BYTES} bytes or has more than {MAX_HEADERS} headers; \
                 send fewer or shorter headers"
            ),
        )),
        400 => Some((
            "invalid_request",
            "the request is not valid HTTP/1.1: check the request line and the headers' syntax".to_owned(),
        )),
        _ => None,
    }
}

/// The JSON answer to put in place of `head`, when `head` is a bare error head written by hyper.
fn replacement_for(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, rest) = text.split_once("\r\n")?;
    let status: u16 = status_line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let (code, message) = error_of(status)?;
    let headers: Vec<&str> = rest.split("\r\n").filter(|line| !line.is_empty()).collect();
    let is_named = |line: &str, name: &str| line.split(':').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(name));
    if headers.iter().any(|line| is_named(line, "content-type")) {
        return None;
    }
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    let mut answer = format!("{status_line}\r\n");
    for line in headers.iter().filter(|line| !is_named(line, "content-length") && !is_named(line, "connection")) {
        answer.push_str(line);
        answer.push_str("\r\n");
    }
    answer.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    Some(answer.into_bytes())
}

impl<S: AsyncWrite + Unpin> JsonBareErrors<S> {
    /// Writes what is left of the replacement, if any.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.replacement {
            if *written == answer.len() {
                self.replacement = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Starts replacing `head` when it is a bare error head; `len` is what hyper is told was written.
    fn poll_replace(&mut self, cx: &mut Context<'_>, head: &[u8], len: usize) -> Option<Poll<io::Result<usize>>> {
        if self.replacement.is_none() {
            self.replacement = Some((replacement_for(head)?, 0));
        }
        Some(self.poll_replacement(cx).map_ok(|()| len))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonBareErrors<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonBareErrors<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(replaced) = self.poll_replace(cx, buf, buf.len()) {
            return replaced;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|buf| !buf.is_empty()).map_or(&[][..], |buf| &buf[..]);
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if let Some(replaced) = self.poll_replace(cx, first, len) {
            return replaced;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_error_heads_get_a_json_body_and_others_pass() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(replacement_for(bare).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\ndate: x\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        assert!(head.contains("connection: close") && !head.contains("content-length: 0"), "{head}");
        let error: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(error["error"]["code"], "headers_too_large");
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(replacement_for(ours), None);
        assert_eq!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(replacement_for(b"{\"status\":\"HTTP/1.1 431 \"}"), None);
    }
}
