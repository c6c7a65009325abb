//! HTTP/1.1 on raw sockets, for what no HTTP client does: the test servers (backends and relays
//! that record every header byte Envoy sent them, repeated names and order kept), and one owned
//! keep-alive connection whose life a test watches (closed by Envoy while idle, a request that
//! got no response): a pooling client retries and reconnects behind exactly that. Message heads
//! and chunk sizes are parsed by httparse (the parser under hyper and ureq); a malformed
//! message is an error that says what was wrong, never a shortened body.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::http::Response;

/// Header pairs as read off the wire: lower-case name, raw value.
pub type RawHeaders = Vec<(String, Vec<u8>)>;

/// More than any request or response in the tests carries; beyond it a head is refused.
const MAX_HEADERS: usize = 512;
const MAX_HEAD_BYTES: usize = 1 << 20;

/// One request as a server read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    pub headers: RawHeaders,
    pub body: Vec<u8>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn eof(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what)
}

fn shown(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// The bytes of one message head, through its empty line; None if the stream ended cleanly
/// before a message began.
fn read_head_bytes(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        if reader.read_until(b'\n', &mut head)? == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(eof(format!(
                    "connection closed inside a message head: {}",
                    shown(&head)
                )))
            };
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(invalid(format!("message head over {MAX_HEAD_BYTES} bytes")));
        }
        if matches!(&head[start..], b"\r\n" | b"\n") {
            if start == 0 {
                // An empty line before a message (RFC 9112, 2.2): skipped.
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

fn headers_of(parsed: &[httparse::Header]) -> RawHeaders {
    parsed
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect()
}

fn complete(
    parsed: Result<httparse::Status<usize>, httparse::Error>,
    head: &[u8],
    what: &str,
) -> io::Result<()> {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n == head.len() => Ok(()),
        Ok(_) => Err(invalid(format!("incomplete {what} head: {}", shown(head)))),
        Err(e) => Err(invalid(format!(
            "malformed {what} head ({e}): {}",
            shown(head)
        ))),
    }
}

/// Reads one request; None if the client closed the connection between requests.
pub fn read_request(reader: &mut impl BufRead) -> io::Result<Option<RawRequest>> {
    let Some(head) = read_head_bytes(reader)? else {
        return Ok(None);
    };
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    complete(parsed.parse(&head), &head, "request")?;
    let method = parsed.method.unwrap_or_default().to_string();
    let path = parsed.path.unwrap_or_default().to_string();
    let headers = headers_of(parsed.headers);
    // A request without a length or chunked coding has no body (RFC 9112, 6.3).
    let body = read_body(reader, &headers, false)?;
    Ok(Some(RawRequest {
        method,
        path,
        headers,
        body,
    }))
}

/// Reads one response to a request with `method`.
pub fn read_response(reader: &mut impl BufRead, method: &str) -> io::Result<Response> {
    let head = read_head_bytes(reader)?
        .ok_or_else(|| eof("connection closed before a response".to_string()))?;
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    complete(parsed.parse(&head), &head, "response")?;
    let status = parsed.code.unwrap_or_default();
    let headers = headers_of(parsed.headers);
    let bodiless = method == "HEAD" || status / 100 == 1 || status == 204 || status == 304;
    let body = if bodiless {
        Vec::new()
    } else {
        read_body(reader, &headers, true)?
    };
    Ok(Response {
        status,
        headers: headers
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect(),
        body,
    })
}

/// A message's body as its head frames it: chunked, a content-length, or (a response only)
/// everything up to the end of the stream.
fn read_body(
    reader: &mut impl BufRead,
    headers: &RawHeaders,
    response: bool,
) -> io::Result<Vec<u8>> {
    let codings: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .map(|(_, v)| v.as_slice())
        .collect();
    match codings.as_slice() {
        [] => {}
        [c] if c.eq_ignore_ascii_case(b"chunked") => return read_chunked(reader),
        _ => {
            return Err(invalid(format!(
                "unsupported transfer-encoding {:?}",
                codings.iter().map(|c| shown(c)).collect::<Vec<_>>()
            )))
        }
    }
    let mut lengths = headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| {
            std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| invalid(format!("bad content-length {}", shown(v))))
        })
        .collect::<io::Result<Vec<usize>>>()?;
    lengths.dedup();
    match lengths.as_slice() {
        [] if response => {
            let mut body = Vec::new();
            reader.read_to_end(&mut body)?;
            Ok(body)
        }
        [] => Ok(Vec::new()),
        [length] => {
            let mut body = vec![0; *length];
            reader
                .read_exact(&mut body)
                .map_err(|e| eof(format!("body cut short: content-length {length}, then {e}")))?;
            Ok(body)
        }
        _ => Err(invalid(format!("conflicting content-lengths {lengths:?}"))),
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(eof(format!(
                "connection closed where a chunk size was due, after {} body bytes",
                body.len()
            )));
        }
        let size = match httparse::parse_chunk_size(&line) {
            Ok(httparse::Status::Complete((n, size))) if n == line.len() => size,
            _ => return Err(invalid(format!("bad chunk size line {}", shown(&line)))),
        };
        if size == 0 {
            // Trailer fields, if any, then the empty line.
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Err(eof("connection closed inside the chunked trailer".into()));
                }
                if line == b"\r\n" {
                    return Ok(body);
                }
            }
        }
        let size =
            usize::try_from(size).map_err(|_| invalid(format!("chunk size {size} too large")))?;
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|e| eof(format!("chunk of {size} bytes cut short: {e}")))?;
        let mut end = [0u8; 2];
        reader.read_exact(&mut end)?;
        if end != *b"\r\n" {
            return Err(invalid(format!(
                "chunk of {size} bytes not followed by CRLF but {}",
                shown(&end)
            )));
        }
    }
}

/// A request's bytes exactly as given: `host`, then `headers` in order with raw values (any
/// bytes, repeated names kept), then a content-length.
pub fn request_bytes<'a>(
    method: &str,
    host: &str,
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n").into_bytes();
    for (n, v) in headers {
        req.extend_from_slice(n.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    req
}

/// One keep-alive connection to 127.0.0.1:`port`, opened on first use and never reopened
/// behind the caller's back: an error drops it, and the next request opens a new one.
pub struct Connection {
    port: u16,
    conn: Option<(TcpStream, BufReader<TcpStream>)>,
}

impl Connection {
    pub fn new(port: u16) -> Connection {
        Connection { port, conn: None }
    }

    /// Writes `request` as it is and reads one response. Any error (connecting, writing, the
    /// connection closing before a response, a malformed response) is returned and the
    /// connection dropped; so is a connection the response says `connection: close` to.
    pub fn exchange(&mut self, method: &str, request: &[u8]) -> io::Result<Response> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(("127.0.0.1", self.port))?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            stream.set_nodelay(true)?;
            let reader = BufReader::new(stream.try_clone()?);
            self.conn = Some((stream, reader));
        }
        let Some((stream, reader)) = self.conn.as_mut() else {
            unreachable!("opened above")
        };
        let result = stream
            .write_all(request)
            .and_then(|()| read_response(reader, method));
        match &result {
            Ok(r) if !r.headers_named("connection").contains(&"close") => {}
            _ => self.conn = None,
        }
        result
    }

    /// What an HTTP client does before reusing an idle keep-alive connection: if the server has
    /// closed it meanwhile (end of stream, or a reset), drop it so the next request opens a new
    /// one. Returns whether it was closed.
    pub fn drop_if_closed(&mut self) -> bool {
        let Some((stream, reader)) = self.conn.as_mut() else {
            return false;
        };
        if !reader.buffer().is_empty() {
            // Bytes nobody asked for: the connection is out of step; never reuse it.
            self.conn = None;
            return true;
        }
        let mut byte = [0u8; 1];
        let closed = stream.set_nonblocking(true).is_err()
            || match stream.peek(&mut byte) {
                Ok(_) => true,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            };
        if closed || stream.set_nonblocking(false).is_err() {
            self.conn = None;
            return true;
        }
        false
    }
}
