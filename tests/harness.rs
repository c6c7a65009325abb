//! The e2e harness's own readers, against what they must not get wrong: Prometheus label values
//! with escapes (`\"`, `\\`, `\n`, and a comma), from a fixture and from a live Envoy, and HTTP
//! responses whose framing is broken, which must fail loudly rather than come back shortened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;

use serde_json::json;
use support::prometheus::{parse, value};
use support::raw_http::{read_request, request_bytes, Connection};
use support::{repo_root, Backend, Client, Envoy};

/// The cluster name of tests/data/envoy-stats-escaped-labels.prom: a quote, a comma, a
/// backslash and a line feed, which Envoy 1.40 writes as `we\"ird,name\\x\nnl`.
const WEIRD: &str = "we\"ird,name\\x\nnl";

#[test]
fn escaped_label_values_from_envoy_parse_whole() {
    // Excerpt of /stats/prometheus from Envoy 1.40 with a cluster named WEIRD.
    let text =
        std::fs::read_to_string(repo_root().join("tests/data/envoy-stats-escaped-labels.prom"))
            .unwrap();
    let m = parse(&text);
    let cluster = [("envoy_cluster_name", WEIRD)];
    assert_eq!(
        value(&m, "envoy_cluster_membership_healthy", &cluster),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "envoy_cluster_upstream_cx_total", &cluster),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "envoy_cluster_upstream_cx_length_ms_count", &cluster),
        Some(0.0)
    );
    let buckets: Vec<&str> = m
        .iter()
        .filter(|s| s.name == "envoy_cluster_upstream_cx_length_ms_bucket")
        .map(|s| {
            assert_eq!(s.labels["envoy_cluster_name"], WEIRD);
            s.labels["le"].as_str()
        })
        .collect();
    assert_eq!(buckets.len(), 20);
    assert!(buckets.contains(&"0.5") && buckets.contains(&"3600000"));
    assert_eq!(buckets.last(), Some(&"+Inf"));
    // Two labels per series, and none taken for part of another.
    assert_eq!(
        value(
            &m,
            "envoy_http_downstream_rq_xx",
            &[
                ("envoy_response_code_class", "2"),
                ("envoy_http_conn_manager_prefix", "ingress")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(&m, "envoy_cluster_manager_cluster_added", &[]),
        Some(1.0)
    );
    assert_eq!(m.len(), 1 + 1 + 10 + 2 + 1 + 22);
}

#[test]
fn every_escape_and_separator_inside_a_label_value() {
    let m = parse(concat!(
        "# TYPE t counter\n",
        r#"t{a="x\",y=\"z",b="back\\slash",c="line\nfeed",d="{braces} and spaces"} 7"#,
        "\n",
    ));
    assert_eq!(
        value(
            &m,
            "t",
            &[
                ("a", "x\",y=\"z"),
                ("b", "back\\slash"),
                ("c", "line\nfeed"),
                ("d", "{braces} and spaces"),
            ]
        ),
        Some(7.0)
    );
}

#[test]
fn text_that_is_not_the_format_fails_the_test() {
    for bad in ["t{a=\"unterminated} 1\n", "t{a=\"1\",b} 2\n", "t 1 2 3 4\n"] {
        let outcome = catch_unwind(|| parse(bad));
        assert!(outcome.is_err(), "{bad:?} parsed");
    }
}

/// A live Envoy whose one route goes to a cluster named WEIRD: its series come back under the
/// exact name, with the requests counted.
#[test]
fn a_live_envoy_cluster_named_with_escapes() {
    let backend = Backend::start("weird");
    let router = json!({
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        }
    });
    let bootstrap = json!({
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        "route_config": { "virtual_hosts": [{
                            "name": "all",
                            "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": WEIRD } }]
                        }] },
                        "http_filters": [router]
                    }
                }] }]
            }],
            "clusters": [{
                "name": WEIRD,
                "connect_timeout": "1s",
                "type": "STATIC",
                "load_assignment": {
                    "cluster_name": WEIRD,
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                        "socket_address": { "address": "127.0.0.1", "port_value": backend.port }
                    } } }] }]
                }
            }]
        }
    });
    let envoy = Envoy::start_yaml("harness-weird", &bootstrap.to_string());
    let ingress = [("envoy_http_conn_manager_prefix", "ingress")];
    let connections = |m: &[support::prometheus::Sample]| {
        value(m, "envoy_http_downstream_cx_total", &ingress).unwrap()
    };
    let mut client = Client::new(envoy.port);
    let mut after_first = 0.0;
    for i in 0..5 {
        let r = client.get("any.example", &format!("/{i}"), &[]);
        assert_eq!((r.status, r.backend()), (200, "weird"), "{}", r.text());
        if i == 0 {
            // Envoy::start's probe of the listener and this client's connection, one worker
            // having accepted both.
            after_first = connections(&envoy.prometheus());
        }
    }
    let cluster = [("envoy_cluster_name", WEIRD)];
    let m = envoy.prometheus();
    assert_eq!(
        value(&m, "envoy_cluster_upstream_rq_total", &cluster),
        Some(5.0)
    );
    assert_eq!(
        value(&m, "envoy_cluster_membership_healthy", &cluster),
        Some(1.0)
    );
    // The other four went on the first one's keep-alive connection.
    assert_eq!(connections(&m), after_first);
}

/// What the client sends reaches the server as given: the Host, repeated names in order, and
/// values with bytes outside ASCII.
#[test]
fn the_client_sends_headers_as_given() {
    let backend = Backend::start("direct");
    let mut client = Client::new(backend.port);
    let r = client.send(
        "POST",
        "checkout.example.com",
        "/cart?x=1",
        [
            ("x-user-id", &b"a"[..]),
            ("x-user-id", b"b"),
            ("cookie", b"uid=\xff\xfe; beta=\x80"),
            ("baggage", b"user.id=alice,k=\"v\""),
        ],
        b"{}",
    );
    assert_eq!((r.status, r.backend()), (200, "direct"));
    let seen = backend.seen().pop().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/cart?x=1")
    );
    assert_eq!(seen.header("host").as_deref(), Some("checkout.example.com"));
    assert_eq!(seen.headers_named("x-user-id"), ["a", "b"]);
    let cookie = seen.headers.iter().find(|(n, _)| n == "cookie").unwrap();
    assert_eq!(cookie.1, b"uid=\xff\xfe; beta=\x80");
    assert_eq!(
        seen.header("baggage").as_deref(),
        Some("user.id=alice,k=\"v\"")
    );
    // Nothing the test did not ask for, beyond the body's length.
    let names: Vec<&str> = seen.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| !["host", "x-user-id", "cookie", "baggage", "content-length"].contains(n))
            .count(),
        0,
        "{names:?}"
    );
}

/// A server on loopback that answers every request on a connection with `response`, and then
/// closes the connection if `response` says `connection: close`.
fn serving(response: &'static [u8]) -> u16 {
    let close = response.windows(17).any(|w| w == b"connection: close");
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while let Ok(Some(_)) = read_request(&mut reader) {
                    if writer.write_all(response).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_broken_response_is_an_error_never_a_short_body() {
    let good: &[u8] =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx-trailer: t\r\n\r\n";
    let mut c = Connection::new(serving(good));
    let r = c
        .exchange("GET", &request_bytes("GET", "h", "/", [], b""))
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
    // The same connection again: the whole message was read, nothing left over.
    assert!(!c.drop_if_closed());
    let r = c
        .exchange("GET", &request_bytes("GET", "h", "/", [], b""))
        .unwrap();
    assert_eq!(r.body, b"abcde");

    for (broken, why) in [
        (
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nde\r\n0\r\n\r\n"[..],
            "bad chunk size line",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
            "not followed by CRLF",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nabc",
            "cut short",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nab",
            "cut short",
        ),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "malformed response head"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
            "conflicting content-lengths",
        ),
    ] {
        let port = serving(broken);
        let request = request_bytes("GET", "h", "/", [], b"");
        let e = Connection::new(port).exchange("GET", &request).unwrap_err();
        assert!(e.to_string().contains(why), "{:?}: {e}", String::from_utf8_lossy(broken));
        // The client fails the test, naming the request, rather than return part of a body.
        let outcome = catch_unwind(AssertUnwindSafe(|| Client::new(port).get("h", "/", &[])));
        assert!(outcome.is_err(), "{:?}", String::from_utf8_lossy(broken));
    }
}
