//! One HTTP/1.1 exchange at a time on one buyer connection: the request written in one buffer, the answer
//! read and framed in place. What a buyer client needs and nothing else: no connection task, no channel to
//! one, no header map (hyper's client spent ~14k instructions an exchange on those; BENCHMARKS.md "Outbound
//! leg"). The exchange is driven by whoever awaits it, so an auction's pings run on the auction's own thread.
//!
//! An answer is framed by RFC 9112 section 6.3: none for 1xx (skipped), 204 and 304; `Transfer-Encoding`
//! ending in `chunked`, else read to the end of the connection; `Content-Length` (every copy the same);
//! else to the end of the connection. A connection is used again only after an HTTP/1.1 answer framed by
//! its own length, without `Connection: close`, with nothing after it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Longest answer head read (status line and headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers an answer may have.
const MAX_HEADERS: usize = 64;
/// What one read asks the socket for at least.
const READ_CHUNK: usize = 4096;

/// A buyer connection's byte stream: plain TCP or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The request an exchange sends: always a `POST` of JSON.
pub struct Request<'a> {
    /// Origin form: the path and query only.
    pub target: &'a str,
    pub host: &'a str,
    /// The buyer's headers, then the engine's, which win over a buyer header of the same name.
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub extra: &'a [(HeaderName, HeaderValue)],
    pub body: &'a [u8],
}

/// A complete answer, and whether its connection may carry the next request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub reusable: bool,
}

/// Why an exchange failed on the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    /// The body was longer than the limit.
    TooLarge,
    /// The connection broke or closed before the answer was complete.
    Io(String),
    /// What came back is not an HTTP/1.x answer.
    Invalid(String),
}

/// One buyer connection and its buffers, which keep their capacity from one exchange to the next.
pub struct Connection {
    stream: Stream,
    out: Vec<u8>,
    read: Vec<u8>,
}

impl Connection {
    pub fn new(stream: Stream) -> Connection {
        Connection { stream, out: Vec::with_capacity(1024), read: Vec::with_capacity(READ_CHUNK) }
    }

    /// False when the buyer closed this idle connection or sent something unasked. Read through the TLS layer
    /// where there is one, so that what a TLS 1.3 server sends after its handshake (session tickets) is taken
    /// in and does not count. Costs no system call while the runtime has seen nothing arrive on the socket.
    pub fn is_open_and_quiet(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf).is_pending()
    }

    /// Writes `request` in one piece.
    pub async fn send(&mut self, request: &Request<'_>) -> io::Result<()> {
        self.out.clear();
        encode(&mut self.out, request);
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await
    }

    /// Reads the answer to the request just sent, its body up to `limit` bytes.
    pub async fn receive(&mut self, limit: usize) -> Result<Answer, WireError> {
        self.read.clear();
        let mut reading = Reading::default();
        let mut ended = !self.fill_or_end().await?;
        loop {
            if let Some(answer) = reading.frame(&self.read, ended, limit)? {
                return Ok(answer);
            }
            ended = !self.fill_or_end().await?;
        }
    }

    /// Reads more of the answer; false at the end of the connection.
    async fn fill_or_end(&mut self) -> Result<bool, WireError> {
        self.read.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.read).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(error) => Err(WireError::Io(error.to_string())),
        }
    }
}

/// The answer at the start of `bytes`, interim (1xx) answers skipped; `None` while more is to come. `ended`:
/// the buyer has closed its side, so nothing more will. The same as one [`Reading`] given all the bytes at
/// once; fuzzed (`fuzz/`, target `buyer_wire`): whichever pieces the bytes arrive in, the answer is the same.
pub fn frame(bytes: &[u8], ended: bool, limit: usize) -> Result<Option<Answer>, WireError> {
    Reading::default().frame(bytes, ended, limit)
}

/// One answer being read, called again each time more of it has arrived, with all of it so far. What it
/// has made out stays made out, so each piece costs the work of that piece: a buyer that trickles its
/// answer a byte at a time cannot make the engine re-read the whole of it each time.
#[derive(Default)]
pub struct Reading {
    /// Where the next head starts (after any interim answers).
    start: usize,
    /// How far the bytes were looked at for the line feed that ends a head.
    scanned: usize,
    head: Option<Head>,
    chunks: Chunks,
}

impl Reading {
    /// The answer, once `bytes` hold all of it; see [`frame`].
    pub fn frame(&mut self, bytes: &[u8], ended: bool, limit: usize) -> Result<Option<Answer>, WireError> {
        let closed = |when: &str| WireError::Io(format!("the buyer closed the connection {when}"));
        // The limits are on what the bytes hold, never on how they were cut: a prefix that fails, fails for
        // the whole too, with the same error.
        let head_too_long = || WireError::Invalid(format!("answer heads over {MAX_HEAD_BYTES} bytes"));
        let head = match self.head {
            Some(head) => head,
            None => {
                // A head ends at a line feed: until one arrives there is nothing new to parse.
                let fresh = bytes.get(self.scanned..).unwrap_or_default();
                self.scanned = bytes.len();
                if !ended && bytes.len() <= MAX_HEAD_BYTES && !fresh.contains(&b'\n') {
                    return Ok(None);
                }
                loop {
                    match parse_head(&bytes[self.start..])? {
                        Some(head) if self.start + head.len > MAX_HEAD_BYTES => return Err(head_too_long()),
                        Some(head) if head.interim => self.start += head.len,
                        Some(head) => break *self.head.insert(head),
                        None if bytes.len() > MAX_HEAD_BYTES => return Err(head_too_long()),
                        None if ended && self.start == bytes.len() => return Err(closed("before answering")),
                        None if ended => return Err(closed("before the answer's head was complete")),
                        None => return Ok(None),
                    }
                }
            }
        };
        let body_start = self.start + head.len;
        let rest = &bytes[body_start..];
        let (body, end, keep_alive) = match head.framing {
            Framing::Empty => (Bytes::new(), body_start, head.keep_alive),
            Framing::Length(length) if length > limit => return Err(WireError::TooLarge),
            Framing::Length(length) => match rest.get(..length) {
                Some(body) => (Bytes::copy_from_slice(body), body_start + length, head.keep_alive),
                None if ended => return Err(closed("before the answer's body was complete")),
                None => return Ok(None),
            },
            // Chunk sizes, extensions and trailers may add to the body's bytes, but not without bound.
            Framing::Chunked => match self.chunks.decode(rest, limit)? {
                Some(used) if used > 2 * limit + MAX_HEAD_BYTES => return Err(WireError::TooLarge),
                Some(used) => (Bytes::from(std::mem::take(&mut self.chunks.body)), body_start + used, head.keep_alive),
                None if rest.len() > 2 * limit + MAX_HEAD_BYTES => return Err(WireError::TooLarge),
                None if ended => return Err(closed("before the answer's last chunk")),
                None => return Ok(None),
            },
            Framing::ToEnd if rest.len() > limit => return Err(WireError::TooLarge),
            Framing::ToEnd if ended => (Bytes::copy_from_slice(rest), bytes.len(), false),
            Framing::ToEnd => return Ok(None),
        };
        // Bytes after the answer were not asked for: the connection's framing can no longer be trusted.
        let reusable = keep_alive && end == bytes.len() && !ended;
        Ok(Some(Answer { status: head.status, body, reusable }))
    }
}

/// The request's bytes: `Host` and `Content-Type` unless the buyer's headers set them, the buyer's headers
/// unless the engine's set them, the engine's, and the body's length (never taken from a header: the
/// framing is this module's).
fn encode(out: &mut Vec<u8>, request: &Request<'_>) {
    let overridden = |name: &HeaderName, later: &[&[(HeaderName, HeaderValue)]]| {
        later.iter().any(|headers| headers.iter().any(|(other, _)| other == name))
    };
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(request.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !overridden(&HOST, &[request.headers, request.extra]) {
        push_header(out, HOST.as_str(), request.host.as_bytes());
    }
    if !overridden(&CONTENT_TYPE, &[request.headers, request.extra]) {
        push_header(out, CONTENT_TYPE.as_str(), b"application/json");
    }
    for (name, value) in request.headers {
        if !overridden(name, &[request.extra]) && !is_framing(name) {
            push_header(out, name.as_str(), value.as_bytes());
        }
    }
    for (name, value) in request.extra {
        if !is_framing(name) {
            push_header(out, name.as_str(), value.as_bytes());
        }
    }
    let mut digits = itoa::Buffer::new();
    push_header(out, CONTENT_LENGTH.as_str(), digits.format(request.body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(request.body);
}

fn is_framing(name: &HeaderName) -> bool {
    name == CONTENT_LENGTH || name == TRANSFER_ENCODING
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    ToEnd,
}

/// What the head of an answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    /// The head's bytes, up to and with the empty line.
    len: usize,
    status: u16,
    /// A 1xx answer before the real one (`101` is not: nothing here asks to switch protocols).
    interim: bool,
    framing: Framing,
    /// HTTP/1.1 without `Connection: close`.
    keep_alive: bool,
}

/// The answer head at the start of `bytes`; `None` while it is incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(WireError::Invalid(format!("not an HTTP answer: {error}"))),
    };
    let status = response.code.unwrap_or_default();
    if status < 100 {
        return Err(WireError::Invalid(format!("status {status:03} is not one of HTTP's")));
    }
    let mut keep_alive = response.version == Some(1);
    let mut length: Option<usize> = None;
    let mut chunked = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok().and_then(|text| text.trim().parse().ok());
            match (value, length) {
                (Some(value), None) => length = Some(value),
                (Some(value), Some(seen)) if value == seen => {}
                _ => return Err(WireError::Invalid("an invalid or repeated Content-Length".into())),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding listed is the one applied last: the body ends where it says only if it is chunked.
            let last = header.value.rsplit(|&byte| byte == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection")
            && header.value.split(|&byte| byte == b',').any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
        {
            keep_alive = false;
        }
    }
    let interim = (100..200).contains(&status) && status != 101;
    let framing = match (status, chunked, length) {
        (100..=199 | 204 | 304, _, _) => Framing::Empty,
        (_, Some(true), _) => Framing::Chunked,
        (_, Some(false), _) => Framing::ToEnd,
        (_, None, Some(length)) => Framing::Length(length),
        (_, None, None) => Framing::ToEnd,
    };
    Ok(Some(Head { len, status, interim, framing, keep_alive }))
}

/// A chunked body read so far: what its complete chunks held, and where the next chunk (or trailer line)
/// starts.
#[derive(Default)]
struct Chunks {
    body: Vec<u8>,
    at: usize,
    /// Past the last chunk: what is left is trailer lines, up to an empty one.
    trailers: bool,
}

impl Chunks {
    /// Goes on reading the chunked body at the start of `bytes` (the same bytes as before, and maybe more)
    /// from where it stopped; the bytes the body took, trailers included, once it is complete.
    fn decode(&mut self, bytes: &[u8], limit: usize) -> Result<Option<usize>, WireError> {
        let invalid = || WireError::Invalid("an invalid chunk in a chunked answer".into());
        while !self.trailers {
            let (size_len, size) = match httparse::parse_chunk_size(&bytes[self.at..]) {
                Ok(httparse::Status::Complete(found)) => found,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err(invalid()),
            };
            if size == 0 {
                self.at += size_len;
                self.trailers = true;
                break;
            }
            let size = usize::try_from(size).map_err(|_| WireError::TooLarge)?;
            if self.body.len() + size > limit {
                return Err(WireError::TooLarge);
            }
            let data = self.at + size_len;
            match bytes.get(data + size..data + size + 2) {
                None => return Ok(None),
                Some(b"\r\n") => {}
                Some(_) => return Err(invalid()),
            }
            self.body.extend_from_slice(&bytes[data..data + size]);
            self.at = data + size + 2;
        }
        // Trailer lines, ignored, up to the empty line.
        loop {
            let Some(line_end) = bytes[self.at..].windows(2).position(|pair| pair == b"\r\n") else {
                return Ok(None);
            };
            self.at += line_end + 2;
            if line_end == 0 {
                return Ok(Some(self.at));
            }
        }
    }
}

/// A whole chunked body at the start of `bytes` and the bytes it took, from a fresh start.
#[cfg(test)]
fn decode_chunked(bytes: &[u8], limit: usize) -> Result<Option<(Vec<u8>, usize)>, WireError> {
    let mut chunks = Chunks::default();
    Ok(chunks.decode(bytes, limit)?.map(|used| (chunks.body, used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn an_answer_is_framed_as_rfc_9112_says() {
        let ok = |extra: &str| head(&format!("HTTP/1.1 200 OK\r\n{extra}\r\n"));
        assert_eq!(ok("Content-Length: 12\r\n").framing, Framing::Length(12));
        assert_eq!(ok("content-length: 3\r\nContent-Length: 3\r\n").framing, Framing::Length(3));
        assert_eq!(ok("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n").framing, Framing::Chunked);
        assert_eq!(ok("Transfer-Encoding: gzip, chunked\r\n").framing, Framing::Chunked);
        assert_eq!(ok("Transfer-Encoding: chunked, gzip\r\n").framing, Framing::ToEnd);
        assert_eq!(ok("").framing, Framing::ToEnd);
        assert_eq!(head("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").framing, Framing::Empty);
        assert_eq!(head("HTTP/1.1 304 Not Modified\r\n\r\n").framing, Framing::Empty);
        let interim = head("HTTP/1.1 100 Continue\r\n\r\n");
        assert!(interim.interim && interim.framing == Framing::Empty);
        assert!(!head("HTTP/1.1 101 Switching Protocols\r\n\r\n").interim);
        for bad in ["Content-Length: 3\r\nContent-Length: 4\r\n", "Content-Length: -1\r\n", "Content-Length: x\r\n"] {
            assert!(matches!(
                parse_head(format!("HTTP/1.1 200 OK\r\n{bad}\r\n").as_bytes()),
                Err(WireError::Invalid(_))
            ));
        }
        assert!(matches!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(WireError::Invalid(_))));
        assert!(matches!(parse_head(b"HTTP/1.1 020 OK\r\n\r\n"), Err(WireError::Invalid(_))), "found by fuzzing");
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None, "incomplete");
    }

    #[test]
    fn only_an_http_1_1_answer_without_connection_close_keeps_its_connection() {
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\n\r\n").keep_alive);
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(head("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn a_chunked_body_is_joined_and_waits_for_its_end() {
        let whole = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n";
        assert_eq!(decode_chunked(whole, 64).unwrap(), Some((b"Wikipedia".to_vec(), whole.len())));
        for cut in 0..whole.len() {
            assert_eq!(decode_chunked(&whole[..cut], 64).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(decode_chunked(b"0\r\n\r\nHTTP", 64).unwrap(), Some((Vec::new(), 5)), "what follows is not taken");
        assert_eq!(decode_chunked(whole, 8), Err(WireError::TooLarge));
        assert_eq!(decode_chunked(whole, 9).unwrap().map(|(body, _)| body.len()), Some(9), "at the limit");
        assert!(matches!(decode_chunked(b"4\r\nWikiXX", 64), Err(WireError::Invalid(_))));
        assert!(matches!(decode_chunked(b"zz\r\n", 64), Err(WireError::Invalid(_))));
    }

    #[test]
    fn an_answer_is_the_same_whichever_pieces_it_comes_in() {
        let answers: [(&str, &str, bool); 4] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"bid\":1}", "{\"bid\":1}", true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"b\r\n0\r\n\r\n", "{\"b", true),
            ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", "", true),
            ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", "{}", false),
        ];
        for (wire, body, reusable) in answers {
            let whole = frame(wire.as_bytes(), false, 64).unwrap().unwrap();
            assert_eq!((whole.body.as_ref(), whole.reusable), (body.as_bytes(), reusable), "{wire:?}");
            for cut in 0..wire.len() {
                assert!(frame(&wire.as_bytes()[..cut], false, 64).unwrap().is_none(), "{wire:?} cut at {cut}");
            }
            // A byte at a time into one reading, which keeps what it made out.
            let mut reading = Reading::default();
            for cut in 0..wire.len() {
                assert!(reading.frame(&wire.as_bytes()[..cut], false, 64).unwrap().is_none(), "{wire:?} at {cut}");
            }
            let trickled = reading.frame(wire.as_bytes(), false, 64).unwrap().unwrap();
            assert_eq!(
                (trickled.status, trickled.body, trickled.reusable),
                (whole.status, whole.body.clone(), reusable)
            );
            let closed = frame(&wire.as_bytes()[..wire.len() - 1], true, 64).unwrap_err();
            assert!(matches!(closed, WireError::Io(_)), "{wire:?}: {closed:?}");
        }
        let to_the_end = "HTTP/1.1 200 OK\r\n\r\n{}";
        assert!(frame(to_the_end.as_bytes(), false, 64).unwrap().is_none(), "more may come until the end");
        let ended = frame(to_the_end.as_bytes(), true, 64).unwrap().unwrap();
        assert_eq!((ended.body.as_ref(), ended.reusable), (&b"{}"[..], false));
        let extra = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP";
        assert!(!frame(extra.as_bytes(), false, 64).unwrap().unwrap().reusable, "bytes nobody asked for");
    }

    #[test]
    fn a_request_is_one_post_whose_framing_is_its_own() {
        let name = HeaderName::from_static;
        let value = HeaderValue::from_static;
        let headers = [
            (name("authorization"), value("Bearer b")),
            (name("x-tag"), value("buyer")),
            (name("content-length"), value("999")),
            (name("content-type"), value("application/vnd.buyer+json")),
        ];
        let extra = [(name("x-tag"), value("engine"))];
        let mut out = Vec::new();
        encode(
            &mut out,
            &Request { target: "/ping?v=2", host: "b.example:8080", headers: &headers, extra: &extra, body: b"{}" },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /ping?v=2 HTTP/1.1\r\nhost: b.example:8080\r\nauthorization: Bearer b\r\n\
             content-type: application/vnd.buyer+json\r\nx-tag: engine\r\ncontent-length: 2\r\n\r\n{}"
        );
    }
}
