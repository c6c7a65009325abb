//! HTTP for the end-to-end tests: requests to Envoy through ureq, a maintained blocking client
//! (each `Client` one agent whose pooled keep-alive connection carries thousands of requests),
//! and the backends that answer for the upstreams and record what reached them. Raw sockets
//! only where no client would do (tests/support/raw_http.rs).

use std::collections::HashMap;
use std::io::{BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ureq::config::{AutoHeaderValue, Config};

use super::raw_http::{self, Connection};

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Lower-case names; a repeated name's values in the order they came.
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

/// An agent that sends only what the test gives it (no user-agent, accept or accept-encoding
/// of its own), follows no redirect, takes a 4xx or 5xx as an answer, never goes through a
/// proxy from the environment, and keeps one idle connection; each step of a request (connect,
/// send, receive the head, receive the body) may take up to `timeout`.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::new_with_config(
        Config::builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(AutoHeaderValue::None)
            .accept(AutoHeaderValue::None)
            .accept_encoding(AutoHeaderValue::None)
            .max_idle_connections_per_host(1)
            // Not a global or per-call timeout: with either, ureq resolves even 127.0.0.1 on a
            // thread of its own for every request, which costs more than the request itself.
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_send_body(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .build(),
    )
}

/// One request with `agent` to 127.0.0.1:`port`, with `host` as its Host header.
fn request<'a>(
    agent: &ureq::Agent,
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    body: &[u8],
) -> Result<Response, ureq::Error> {
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host);
    for (n, v) in headers {
        builder = builder.header(n, v);
    }
    let mut response = if body.is_empty() {
        agent.run(builder.body(())?)?
    } else {
        agent.run(builder.body(body)?)?
    };
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Response {
        status: response.status().as_u16(),
        headers,
        body: response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()?,
    })
}

/// A GET of `path` on 127.0.0.1:`port` on a connection of its own (admin APIs, Prometheus):
/// the status and body; None if nothing answers, or not with a whole response.
pub fn get_once(port: u16, path: &str) -> Option<(u16, String)> {
    let host = format!("127.0.0.1:{port}");
    let r = request(
        &agent(Duration::from_secs(10)),
        port,
        "GET",
        &host,
        path,
        [],
        b"",
    )
    .ok()?;
    Some((r.status, r.text()))
}

/// A client of Envoy's listener on 127.0.0.1:`port`.
pub struct Client {
    port: u16,
    agent: ureq::Agent,
    /// The one connection of `try_get` and `drop_if_closed` (not the agent's).
    owned: Connection,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client {
            port,
            agent: agent(Duration::from_secs(30)),
            owned: Connection::new(port),
        }
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

    /// Sends a request with `headers` (values any bytes but control characters, a repeated
    /// name's values in order; for anything else, `raw_http::Connection`) and returns the
    /// response. Fails the test if no whole response comes, after one retry on a new
    /// connection when the pooled one failed (Envoy may close an idle keep-alive connection
    /// just as it is reused).
    pub fn send<'a>(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        body: &[u8],
    ) -> Response {
        let headers: Vec<(&str, &[u8])> = headers.into_iter().collect();
        let mut result = request(
            &self.agent,
            self.port,
            method,
            host,
            path,
            headers.iter().copied(),
            body,
        );
        if let Err(ureq::Error::Io(_)) = result {
            self.agent = agent(Duration::from_secs(30));
            result = request(
                &self.agent,
                self.port,
                method,
                host,
                path,
                headers.iter().copied(),
                body,
            );
        }
        result
            .unwrap_or_else(|e| panic!("{method} {path} (host {host}) on port {}: {e}", self.port))
    }

    /// One GET on this client's own keep-alive connection (opened if there is none), without
    /// a retry: an I/O error, the connection closing before a response, or a malformed response
    /// is returned, and the connection is dropped. A response with `connection: close` drops it
    /// too (the next request reconnects). For tests that watch what happens to a connection.
    pub fn try_get(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Response> {
        let request = raw_http::request_bytes(
            "GET",
            host,
            path,
            headers.iter().map(|(n, v)| (*n, v.as_bytes())),
            b"",
        );
        self.owned.exchange("GET", &request)
    }

    /// Before reusing `try_get`'s idle connection: if Envoy has closed it meanwhile, drop it
    /// so the next request opens a new one. Returns whether it was closed.
    pub fn drop_if_closed(&mut self) -> bool {
        self.owned.drop_if_closed()
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
    loop {
        let request = match raw_http::read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            // A malformed request: Envoy then answers 503 for this upstream; say why beside
            // the test's failure. (A reset is Envoy closing an idle upstream connection.)
            Err(e) if matches!(e.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof) => {
                eprintln!("backend {name}: {e}");
                return;
            }
            Err(_) => return,
        };
        let raw_http::RawRequest {
            method,
            path,
            headers,
            ..
        } = request;
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
