//! The HTTP and Prometheus probes against real servers: a real Prometheus (Debian's package)
//! scraping a probe server whose metrics and health the test sets. No control plane needed.

mod support;

use std::time::{Duration, Instant};

use conveyor::checks::http::Prober;
use conveyor::core::checks::Sample;
use conveyor::core::threshold::Threshold;
use support::probe_server::ProbeServer;
use support::prometheus::{JOB, Prometheus};
use support::{DEADLINE, poll};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Probes `query` at `prometheus` against `condition`.
async fn probe(prometheus: &Prometheus, query: &str, condition: &str) -> Sample {
    let threshold = Threshold::parse(condition).expect("test conditions parse");
    Prober::new(false).expect("client").prometheus(&prometheus.url(), query, &threshold, condition, TIMEOUT).await
}

#[tokio::test]
async fn a_healthy_value_passes_and_a_flipped_value_fails() {
    let app = ProbeServer::start().await;
    app.set_metric("conveyor_test_error_ratio", 0.01);
    let prometheus = Prometheus::start(&[app.addr()]).await;
    let query = format!("conveyor_test_error_ratio{{job=\"{JOB}\"}}");

    prometheus.wait_for_value(&query, |v| v == 0.01, DEADLINE).await;
    assert_eq!(probe(&prometheus, &query, "< 0.05").await, Sample::Pass("0.01 (wants < 0.05)".into()));

    app.set_metric("conveyor_test_error_ratio", 0.2);
    prometheus.wait_for_value(&query, |v| v == 0.2, DEADLINE).await;
    assert_eq!(probe(&prometheus, &query, "< 0.05").await, Sample::Fail("0.2, wants < 0.05".into()));
}

#[tokio::test]
async fn a_query_without_series_is_no_data() {
    let app = ProbeServer::start().await;
    app.set_metric("conveyor_test_queue_depth", 3.0);
    let prometheus = Prometheus::start(&[app.addr()]).await;
    let never_exported = probe(&prometheus, "conveyor_test_never_exported", "< 1").await;
    assert_eq!(never_exported, Sample::NoData("query returned no series".into()));

    // A series that stops being exported goes stale at the next scrape: no data, not its last value.
    prometheus.wait_for_value("conveyor_test_queue_depth", |v| v == 3.0, DEADLINE).await;
    app.remove_metric("conveyor_test_queue_depth");
    poll("the removed series to go stale", DEADLINE, || async {
        prometheus.query("conveyor_test_queue_depth").await.ok().filter(Vec::is_empty)
    })
    .await;
    let gone = probe(&prometheus, "conveyor_test_queue_depth", "< 5").await;
    assert_eq!(gone, Sample::NoData("query returned no series".into()));
}

#[tokio::test]
async fn more_than_one_series_fails_until_aggregated() {
    let app = ProbeServer::start().await;
    app.set_metric("conveyor_test_requests{pod=\"a\"}", 1.0);
    app.set_metric("conveyor_test_requests{pod=\"b\"}", 2.0);
    let prometheus = Prometheus::start(&[app.addr()]).await;
    prometheus.wait_for_value("sum(conveyor_test_requests)", |v| v == 3.0, DEADLINE).await;

    let split = probe(&prometheus, "conveyor_test_requests", ">= 1").await;
    assert!(matches!(&split, Sample::Fail(m) if m.contains("2 series") && m.contains("sum(")), "{split:?}");
    let summed = probe(&prometheus, "sum(conveyor_test_requests)", ">= 3").await;
    assert_eq!(summed, Sample::Pass("3 (wants >= 3)".into()));
}

#[tokio::test]
async fn bad_promql_fails_naming_the_parse_error() {
    let prometheus = Prometheus::start(&[]).await;
    let sample = probe(&prometheus, "sum(rate(conveyor_test_errors_total[1m])", "< 1").await;
    let Sample::Fail(message) = &sample else { panic!("a bad query must fail, got {sample:?}") };
    assert!(message.starts_with("query refused by Prometheus (bad_data): "), "{message}");
    assert!(message.contains("parse error"), "{message}");
}

#[tokio::test]
async fn a_stopped_prometheus_is_unreachable_within_the_timeout() {
    let mut prometheus = Prometheus::start(&[]).await;
    assert_eq!(probe(&prometheus, "vector(1)", "== 1").await, Sample::Pass("1 (wants == 1)".into()));

    prometheus.stop();
    let threshold = Threshold::parse("== 1").unwrap();
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let sample =
        Prober::new(false).unwrap().prometheus(&prometheus.url(), "vector(1)", &threshold, "== 1", timeout).await;
    assert!(started.elapsed() < timeout + Duration::from_secs(1), "took {:?}", started.elapsed());
    let expected = format!("Prometheus at {} could not be queried: connection refused", prometheus.url());
    assert_eq!(sample, Sample::Unreachable(expected));
}

#[tokio::test]
async fn the_http_probe_follows_healthz() {
    let app = ProbeServer::start().await;
    let url = app.url("/healthz");
    let prober = Prober::new(false).unwrap();
    assert_eq!(prober.http(&url, 200, Some("ok"), TIMEOUT).await, Sample::Pass(format!("GET {url}: 200")));
    assert_eq!(app.first_failure_served(), None);

    app.set_health(503);
    let before = Instant::now();
    assert_eq!(
        prober.http(&url, 200, Some("ok"), TIMEOUT).await,
        Sample::Fail(format!("GET {url}: 503, expected 200"))
    );
    let served = app.first_failure_served().expect("the failing answer is recorded");
    assert!(served >= before && served <= Instant::now());

    app.set_health(200);
    assert_eq!(app.first_failure_served(), None, "set_health forgets the last failure");
    assert!(matches!(prober.http(&url, 200, Some("ok"), TIMEOUT).await, Sample::Pass(_)));
    assert_eq!(app.health_requests(), 3);
}
