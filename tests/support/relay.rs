//! A service in a call chain, on loopback: for each request it receives it calls the next hop
//! (an Envoy, as an app's outbound calls go through its sidecar) with its inbound `baggage`
//! headers copied onto the outbound call, as OpenTelemetry's propagators do, and nothing else
//! of the request (no user id, no Dial header). It answers with its name, the next hop's
//! `x-dial-assignment` and the next hop's body, so a client reads the whole chain's route.

use std::io::{BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::thread;

use super::http::Client;
use super::raw_http::read_request;

pub struct Relay {
    pub name: String,
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// When not 0, the service fails: it answers this status without calling the next hop.
    failing: Arc<AtomicU16>,
}

impl Relay {
    /// A service called `name` whose outbound calls go to `next_port` on loopback.
    pub fn start(name: &str, next_port: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("relay {name} cannot listen: {e}"));
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let failing = Arc::new(AtomicU16::new(0));
        let (flag, me, fail) = (stop.clone(), name.to_string(), failing.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (me, fail) = (me.clone(), fail.clone());
                thread::spawn(move || serve(stream, &me, next_port, &fail));
            }
        });
        Relay {
            name: name.to_string(),
            port,
            stop,
            failing,
        }
    }

    /// From now on the service fails with `status` (0: it works again).
    pub fn fail_with(&self, status: u16) {
        self.failing.store(status, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, name: &str, next_port: u16, failing: &AtomicU16) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // One keep-alive connection to the next hop per inbound connection.
    let mut next = Client::new(next_port);
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) if matches!(e.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof) => {
                eprintln!("relay {name}: {e}");
                return;
            }
            Err(_) => return,
        };
        let (path, headers) = (request.path, request.headers);
        let host = headers
            .iter()
            .find(|(n, _)| n == "host")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let baggage = headers
            .iter()
            .filter(|(n, _)| n == "baggage")
            .map(|(_, v)| ("baggage", v.as_slice()));
        let (status, body) = match failing.load(Ordering::Relaxed) {
            0 => {
                let downstream = next.send("GET", &host, &path, baggage, b"");
                let body = format!(
                    "{name}\n{}\n{}",
                    downstream.header("x-dial-assignment").unwrap_or("-"),
                    downstream.text()
                );
                (downstream.status, body)
            }
            code => (code, format!("{name}\n-\n-\n-\n-\n")),
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nx-backend: {name}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if writer.write_all((head + &body).as_bytes()).is_err() {
            return;
        }
    }
}
