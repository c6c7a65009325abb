//! The e2e harness's own readers, against what they must not get wrong: Prometheus label values
//! with escapes (`\"`, `\\`, `\n`, and a comma), from a fixture and from a live Envoy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::panic::catch_unwind;

use serde_json::json;
use support::prometheus::{parse, value};
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
    // Envoy::start's own probe of the listener is one.
    let before = connections(&envoy.prometheus());
    let mut client = Client::new(envoy.port);
    for i in 0..5 {
        let r = client.get("any.example", &format!("/{i}"), &[]);
        assert_eq!((r.status, r.backend()), (200, "weird"), "{}", r.text());
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
    // The client kept its one keep-alive connection for all five.
    assert_eq!(connections(&m), before + 1.0);
}
