use super::*;
use crate::core::policy::DEFAULT_FLEET_PATH;

const S: u64 = 1_000_000_000;

fn fleet() -> Fleet {
    Fleet {
        cluster: "prometheus".into(),
        authority: "prometheus.example".into(),
        path: DEFAULT_FLEET_PATH.into(),
        every: 5 * S,
        window: 60 * S,
        timeout: S,
    }
}

fn guard() -> Guard {
    Guard {
        fleet: Some(fleet()),
        ..crate::core::guard::tests::guard()
    }
}

/// An answer as Prometheus gives it: `(dial label, value)` samples for release `checkout`.
fn answer(samples: &[(&str, &str)]) -> Vec<u8> {
    let result: Vec<String> = samples
        .iter()
        .map(|(figure, value)| {
            format!(
                r#"{{"metric":{{"dial":"{figure}","release":"checkout"}},"value":[1700000000.123,"{value}"]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        result.join(",")
    )
    .into_bytes()
}

#[test]
fn the_query_asks_for_each_judged_figure_and_the_responses() {
    let q = query("checkout", "canary", "stable", &guard(), &fleet());
    assert_eq!(q.matches("label_replace(").count(), 3, "{q}");
    for figure in ["\"errors\"", "\"slow\"", "\"responses\""] {
        assert!(q.contains(figure), "{q}");
    }
    assert!(q.contains(
        r#"sum by (release) (increase(dial_responses_total{release="checkout", subset="canary", status_class="5xx"}[60s]))"#
    ), "{q}");
    assert!(q.contains(
        r#"(sum by (release) (increase(dial_responses_total{release="checkout", subset="stable"}[60s])) >= 20)"#
    ), "{q}");
    assert!(
        q.contains(
            r#"increase(dial_guard_slow_responses_total{release="checkout", subset="canary"}[60s])"#
        ),
        "{q}"
    );
    let errors_only = Guard {
        max_slow_rate: None,
        ..guard()
    };
    let q = query("checkout", "canary", "stable", &errors_only, &fleet());
    assert!(!q.contains("slow"), "{q}");
    assert_eq!(q.matches("label_replace(").count(), 2, "{q}");
}

#[test]
fn windows_are_promql_durations() {
    assert_eq!(duration(60 * S), "60s");
    assert_eq!(duration(1_500_000_000), "1500ms");
    assert_eq!(literal(r#"a"b\c"#), r#""a\"b\\c""#);
}

#[test]
fn the_path_carries_the_query_url_encoded() {
    let p = request_path(&fleet(), "sum(x{a=\"b c\"}) >= 2");
    assert_eq!(
        p,
        "/api/v1/query?query=sum%28x%7Ba%3D%22b%20c%22%7D%29%20%3E%3D%202"
    );
    let thanos = Fleet {
        path: "/api/v1/query?dedup=true".into(),
        ..fleet()
    };
    assert!(request_path(&thanos, "x").ends_with("?dedup=true&query=x"));
}

#[test]
fn an_answer_gives_the_figures() {
    let f = read_answer(
        &answer(&[("errors", "0.25"), ("slow", "0"), ("responses", "120.5")]),
        "checkout",
    )
    .unwrap();
    assert_eq!(
        f,
        Figures {
            responses: 120.5,
            errors: Some(0.25),
            slow: Some(0.0)
        }
    );
    // Below minRequests the query gives the responses alone.
    let f = read_answer(&answer(&[("responses", "3")]), "checkout").unwrap();
    assert_eq!((f.errors, f.slow), (None, None));
}

#[test]
fn every_unreadable_answer_is_a_failure_by_reason() {
    let read = |body: &[u8]| read_answer(body, "checkout");
    assert_eq!(read(b"<html>"), Err(Failure::Malformed));
    assert_eq!(read(b""), Err(Failure::Malformed));
    assert_eq!(
        read(br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#),
        Err(Failure::Malformed)
    );
    assert_eq!(
        read(br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#),
        Err(Failure::Malformed)
    );
    assert_eq!(
        read(br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
        Err(Failure::Empty)
    );
    assert_eq!(read(&answer(&[("errors", "0.5")])), Err(Failure::Empty));
    assert_eq!(
        read(&answer(&[("errors", "NaN"), ("responses", "100")])),
        Err(Failure::NaN)
    );
    assert_eq!(read(&answer(&[("responses", "+Inf")])), Err(Failure::NaN));
    assert_eq!(
        read(&answer(&[("responses", "many")])),
        Err(Failure::Malformed)
    );
    assert_eq!(
        read_answer(&answer(&[("responses", "100")]), "search"),
        Err(Failure::WrongSeries)
    );
    assert_eq!(
        read(&answer(&[("requests", "100")])),
        Err(Failure::WrongSeries)
    );
    assert_eq!(
        read(&answer(&[("responses", "100"), ("responses", "100")])),
        Err(Failure::WrongSeries)
    );
    let huge = vec![b' '; MAX_ANSWER_BYTES + 1];
    assert_eq!(read(&huge), Err(Failure::TooLarge));
    let names: Vec<&str> = Failure::ALL.iter().map(|f| f.as_str()).collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique);
}

#[test]
fn the_verdict_follows_the_local_guards_rule() {
    let g = guard();
    let figures = |responses, errors, slow| Figures {
        responses,
        errors,
        slow,
    };
    // Over the threshold: a trip, with the fleet's figures.
    assert_eq!(
        verdict(&g, &figures(200.0, Some(0.2), Some(0.0))),
        Ok(Some(FleetTrip {
            what: Measure::Errors,
            excess: 0.2,
            responses: 200.0
        }))
    );
    // At the threshold, not over it: no trip.
    assert_eq!(
        verdict(&g, &figures(200.0, Some(0.05), Some(0.01))),
        Ok(None)
    );
    assert_eq!(
        verdict(&g, &figures(200.0, Some(0.0), Some(0.02))).map(|t| t.map(|t| t.what)),
        Ok(Some(Measure::Slow))
    );
    // Below minRequests fleet-wide: no verdict, whatever the rates.
    assert_eq!(verdict(&g, &figures(19.9, Some(1.0), Some(1.0))), Ok(None));
    // A judged figure missing although the responses are enough: a failure, not a pass.
    assert_eq!(
        verdict(&g, &figures(200.0, None, Some(0.0))),
        Err(Failure::Empty)
    );
    // A figure the guard does not judge may be missing.
    let errors_only = Guard {
        max_slow_rate: None,
        ..guard()
    };
    assert_eq!(
        verdict(&errors_only, &figures(200.0, Some(0.0), None)),
        Ok(None)
    );
}
