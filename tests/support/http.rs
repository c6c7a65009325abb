//! A minimal HTTP/1.1 client and backend over std::net: enough to drive Envoy and to see what
//! reached the upstream, with keep-alive so thousands of requests take seconds.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Lower-case names, in order, repeated names kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Which backend answered (backends stamp `x-backend`).
    pub fn backend(&self) -> &str {
        self.header("x-backend").unwrap_or("<none>")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Header pairs as read off the wire: lower-case name, raw value.
pub type RawHeaders = Vec<(String, Vec<u8>)>;

/// Reads one HTTP/1.1 message head: the start line and the header pairs.
pub fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<(String, RawHeaders)>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    let start = String::from_utf8_lossy(&line).trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_until(b'\n', &mut line)?;
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.is_empty() {
            break;
        }
        if let Some(colon) = l.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&l[..colon])
                .trim()
                .to_ascii_lowercase();
            let value = l[colon + 1..].trim_ascii().to_vec();
            headers.push((name, value));
        }
    }
    Ok(Some((start, headers)))
}

fn content_length(headers: &[(String, Vec<u8>)]) -> usize {
    headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
}

pub fn read_body(
    reader: &mut impl BufRead,
    headers: &[(String, Vec<u8>)],
) -> std::io::Result<Vec<u8>> {
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case(b"chunked"));
    if !chunked {
        let mut body = vec![0; content_length(headers)];
        reader.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// A keep-alive HTTP/1.1 connection to Envoy's listener.
pub struct Client {
    port: u16,
    conn: Option<(TcpStream, BufReader<TcpStream>)>,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client { port, conn: None }
    }

    /// One GET per user (`x-user-id: user-<i>` for i in 0..n); the backend that answered each.
    pub fn backends_of_users(&mut self, host: &str, path: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let r = self.get(host, path, &[("x-user-id", &format!("user-{i}"))]);
                assert_eq!(r.status, 200, "user-{i}: {}", r.text());
                r.backend().to_string()
            })
            .collect()
    }

    pub fn get(&mut self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        self.send(
            "GET",
            host,
            path,
            headers.iter().map(|(n, v)| (*n, v.as_bytes())),
            b"",
        )
    }

    /// Sends a request with raw header values (any bytes) and returns the response.
    pub fn send<'a>(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        body: &[u8],
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n").into_bytes();
        for (n, v) in headers {
            req.extend_from_slice(n.as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(v);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        // One retry on a fresh connection: Envoy may close an idle keep-alive connection.
        for attempt in 0..2 {
            if self.conn.is_none() {
                let stream = TcpStream::connect(("127.0.0.1", self.port))
                    .unwrap_or_else(|e| panic!("connect to Envoy on port {}: {e}", self.port));
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                stream.set_nodelay(true).unwrap();
                let reader = BufReader::new(stream.try_clone().unwrap());
                self.conn = Some((stream, reader));
            }
            let (stream, reader) = self.conn.as_mut().unwrap();
            let result = stream.write_all(&req).and_then(|_| {
                let (status_line, headers) = read_head(reader)?.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
                })?;
                let body = if method == "HEAD" {
                    Vec::new()
                } else {
                    read_body(reader, &headers)?
                };
                Ok((status_line, headers, body))
            });
            match result {
                Ok((status_line, headers, body)) => {
                    let status = status_line
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
                    if headers
                        .iter()
                        .any(|(n, v)| n == "connection" && v == b"close")
                    {
                        self.conn = None;
                    }
                    return Response {
                        status,
                        headers: headers
                            .into_iter()
                            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
                            .collect(),
                        body,
                    };
                }
                Err(e) if attempt == 0 => {
                    let _ = e;
                    self.conn = None;
                }
                Err(e) => panic!("request {method} {path} failed: {e}"),
            }
        }
        unreachable!()
    }
}

impl Client {
    /// One GET on the open connection (or a new one), without the retry `get` makes: an I/O
    /// error, or the connection closing before a response, is returned, and the connection is
    /// dropped. A response with `connection: close` drops it too (the next request reconnects).
    pub fn try_get(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Response> {
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n").into_bytes();
        for (n, v) in headers {
            req.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        req.extend_from_slice(b"content-length: 0\r\n\r\n");
        if self.conn.is_none() {
            let stream = TcpStream::connect(("127.0.0.1", self.port))?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            stream.set_nodelay(true)?;
            let reader = BufReader::new(stream.try_clone()?);
            self.conn = Some((stream, reader));
        }
        let Some((stream, reader)) = self.conn.as_mut() else {
            unreachable!()
        };
        let result = stream.write_all(&req).and_then(|_| {
            let (status_line, headers) = read_head(reader)?.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                )
            })?;
            let body = read_body(reader, &headers)?;
            let status = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad status line {status_line:?}"),
                    )
                })?;
            Ok(Response {
                status,
                headers: headers
                    .into_iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
                    .collect(),
                body,
            })
        });
        match &result {
            Ok(r) if r.header("connection") != Some("close") => {}
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
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
        if closed || stream.set_nonblocking(false).is_err() {
            self.conn = None;
            return true;
        }
        false
    }
}

/// What a backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    /// When the request arrived.
    pub at: Instant,
    /// The status the backend answered it with.
    pub status: u16,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// An HTTP/1.1 upstream on loopback that answers with its name in `x-backend` and the body,
/// and records every request it receives.
pub struct Backend {
    pub name: String,
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    count: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Self::start_on(name, 0)
    }

    pub fn start_on(name: &str, port: u16) -> Backend {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("backend {name} cannot listen on 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let backend = Backend {
            name: name.to_string(),
            port,
            seen: Arc::default(),
            count: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::default(),
            stop: Arc::default(),
        };
        let (seen, count, status, delay, stop) = (
            backend.seen.clone(),
            backend.count.clone(),
            backend.status.clone(),
            backend.delay_ms.clone(),
            backend.stop.clone(),
        );
        let name = name.to_string();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (seen, count, status, delay, name) = (
                    seen.clone(),
                    count.clone(),
                    status.clone(),
                    delay.clone(),
                    name.clone(),
                );
                thread::spawn(move || serve(stream, &name, &seen, &count, &status, &delay));
            }
        });
        backend
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Forgets the requests recorded so far (long runs would otherwise keep every one); the
    /// count stays.
    pub fn clear_seen(&self) {
        self.seen.lock().unwrap().clear();
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    stream: TcpStream,
    name: &str,
    seen: &Mutex<Vec<Seen>>,
    count: &AtomicU64,
    status: &AtomicU16,
    delay: &AtomicU64,
) {
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some((start, headers))) = read_head(&mut reader) {
        if read_body(&mut reader, &headers).is_err() {
            return;
        }
        let mut parts = start.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut body = format!("{name}\n");
        for (n, v) in &headers {
            body.push_str(&format!("{n}: {}\n", String::from_utf8_lossy(v)));
        }
        let code = status.load(Ordering::Relaxed);
        seen.lock().unwrap().push(Seen {
            method,
            path,
            headers,
            at: Instant::now(),
            status: code,
        });
        count.fetch_add(1, Ordering::Relaxed);
        let wait = delay.load(Ordering::Relaxed);
        if wait > 0 {
            thread::sleep(Duration::from_millis(wait));
        }
        let head = format!(
            "HTTP/1.1 {code} X\r\nx-backend: {name}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        // One write: a head and body in two segments would meet Nagle and delayed ACKs.
        if writer.write_all((head + &body).as_bytes()).is_err() {
            return;
        }
    }
}

/// Counts how many responses came from each backend.
pub fn tally<'a>(backends: impl IntoIterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for b in backends {
        *counts.entry(b.to_string()).or_insert(0) += 1;
    }
    counts
}
