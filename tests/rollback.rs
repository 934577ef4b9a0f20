//! Health checks and rollback on the real API server, with a real Prometheus scraping an
//! application stand-in whose metrics and `/healthz` the test controls: a failing Prometheus
//! check rolls back to the previous release (objects restored, new ones pruned), an HTTP check
//! failing mid-soak rolls back, a Prometheus that stops answering fails the check closed, and a
//! requested rollback restores a release healthy there while one that never ran is refused.

mod support;

use conveyor::api::Release;
use conveyor::api::pipeline::{DeploymentResult, EnvironmentPhase, ROLLBACK_ANNOTATION_PREFIX};
use conveyor::api::release::{CheckType, CheckVerdict};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use support::cli::conveyor;
use support::kubelet::Kubelet;
use support::probe_server::ProbeServer;
use support::prometheus::Prometheus;
use support::world::*;

const DEV: &str = "development";
const STAGING: &str = "staging";

/// The application at `version` plus a ConfigMap only that version has.
fn app_with(version: &str, extra: &str) -> Vec<(&'static str, String)> {
    let mut files = app(version);
    files.push(("extra.yaml", config_map(extra, "ADDED: \"yes\"")));
    files
}

/// A Prometheus check on the stand-in's error ratio.
fn error_rate_check(prometheus: &Prometheus, extra: Value) -> Value {
    let mut check = json!({"name": "error-rate", "query": "max(app_error_ratio)", "condition": "< 0.05",
                           "interval": "1s", "address": prometheus.url().as_str()});
    if let Value::Object(more) = extra {
        check.as_object_mut().unwrap().extend(more);
    }
    check
}

#[tokio::test]
async fn a_failing_prometheus_check_rolls_back_to_the_previous_release() {
    let app_server = ProbeServer::start().await;
    app_server.set_metric("app_error_ratio", 0.0);
    let prometheus = Prometheus::start(&[app_server.addr()]).await;
    let w = World::new("rb-prom", &[DEV, STAGING], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    let check = error_rate_check(&prometheus, json!({"successThreshold": 2}));
    w.pipeline(|env| if env == DEV { json!({"healthChecks": {"prometheus": [check.clone()]}}) } else { json!({}) })
        .await;

    // A healthy release promotes.
    let good = w.release("1.0.0", &app("1.0.0")).await;
    w.settled(STAGING, EnvironmentPhase::Healthy, &good).await;

    // The store loses 1.0.0's artifact: the rollback must rebuild it from git, digest-checked.
    let p = w.pipelines.get("shop").await.unwrap();
    let digest = environment(&p, DEV).unwrap().current.clone().unwrap().digest.unwrap();
    let stored = w.controller.artifact_dir.join(format!("sha256/{}.tar.gz", digest.trim_start_matches("sha256:")));
    std::fs::remove_file(&stored).expect("1.0.0's artifact was stored");

    // The next release ships while the error ratio is high: its check fails, and the
    // environment goes back to 1.0.0.
    app_server.set_metric("app_error_ratio", 0.5);
    prometheus.wait_for_value("max(app_error_ratio)", |v| v > 0.4, LONG).await;
    let bad = w.release("1.1.0", &app_with("1.1.0", "feature-flags")).await;
    let p = w.until("development rolling back", |p| phase(p, DEV) == Some(EnvironmentPhase::RollingBack)).await;
    let rolling = environment(&p, DEV).unwrap();
    assert_eq!(current(rolling), Some(good.as_str()));
    assert_eq!(rolling.current.as_ref().unwrap().rollback_of.as_deref(), Some(bad.as_str()));
    // What 1.0.0 ran with comes back: the error ratio falls again.
    app_server.set_metric("app_error_ratio", 0.0);
    let p = w.settled(DEV, EnvironmentPhase::Healthy, &good).await;

    assert!(stored.exists(), "the rollback rebuilt 1.0.0's artifact into the store");
    // Objects: 1.0.0's are back, the ConfigMap only 1.1.0 had is pruned.
    let data = w.config_map(DEV, "web-config").await.unwrap().data.unwrap();
    assert_eq!(data["BUILD"], "1.0.0");
    assert!(w.config_map(DEV, "feature-flags").await.is_none(), "1.1.0's new ConfigMap was not pruned");
    // History: the rollback, the failed release marked RolledBack with the check's verdict, the first.
    let h = history(&p, DEV);
    assert_eq!(h.len(), 3, "{h:#?}");
    assert_eq!((h[0].release.as_str(), h[0].result), (good.as_str(), DeploymentResult::Succeeded));
    assert_eq!(h[0].rollback_of.as_deref(), Some(bad.as_str()));
    assert_eq!((h[1].release.as_str(), h[1].result), (bad.as_str(), DeploymentResult::RolledBack));
    let why = h[1].reason.as_deref().unwrap();
    assert!(why.contains("Prometheus check error-rate failed") && why.contains("wants < 0.05"), "{why}");
    // The failed release never reached staging, which still runs 1.0.0.
    assert!(history(&p, STAGING).iter().all(|e| e.release != bad));
    assert_eq!(current(environment(&p, STAGING).unwrap()), Some(good.as_str()));
    // The Pipeline says what happened and that it needs a newer release.
    let stalled = condition(&p, "Stalled");
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "RolledBack"));
    assert!(stalled.message.contains("rolled back to shop-1.0.0"), "{}", stalled.message);
    // Events: a Warning when the rollback starts and when it is done.
    let started = w.event_saying("RollingBack", &bad).await;
    assert_eq!(started.type_.as_deref(), Some("Warning"));
    assert!(started.note.as_deref().unwrap().contains("rolling back to shop-1.0.0"));
    w.event_saying("RolledBack", "rolled back to shop-1.0.0").await;
    // The failed release's own status: Failed in development, with its checks.
    let r = support::wait_for(&w.releases, &bad, "1.1.0's journey", |r: &Release| {
        r.status.as_ref().is_some_and(|s| s.environments.iter().any(|e| e.phase == EnvironmentPhase::Failed))
    })
    .await;
    let step = &r.status.unwrap().environments[0];
    assert_eq!(step.name, DEV);
    let check = &step.checks[0];
    assert_eq!((check.type_, check.result, check.failures), (CheckType::Prometheus, CheckVerdict::Failed, Some(1)));
    // Counted in metrics.
    let (_, metrics) = w.controller.get("/metrics").await.expect("metrics answer");
    let counted = format!(
        "conveyor_rollbacks_total{{environment=\"{DEV}\",namespace=\"{}\",pipeline=\"shop\",trigger=\"automatic\"}} 1",
        w.ns
    );
    assert!(metrics.contains(&counted), "{counted} in {metrics}");
}

#[tokio::test]
async fn an_http_check_failing_mid_soak_rolls_back() {
    let app_server = ProbeServer::start().await;
    let w = World::new("rb-http", &[DEV], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    let url = app_server.url("/healthz");
    w.pipeline(
        |_| json!({"soak": "6s", "healthChecks": {"http": [{"name": "healthz", "url": url, "interval": "1s"}]}}),
    )
    .await;
    let good = w.release("1.0.0", &app("1.0.0")).await;
    w.settled(DEV, EnvironmentPhase::Healthy, &good).await;

    let bad = w.release("1.1.0", &app_with("1.1.0", "feature-flags")).await;
    w.settled(DEV, EnvironmentPhase::Soaking, &bad).await;
    app_server.set_health(503);
    w.until("development rolling back", |p| phase(p, DEV) == Some(EnvironmentPhase::RollingBack)).await;
    app_server.set_health(200);
    let p = w.settled(DEV, EnvironmentPhase::Healthy, &good).await;

    let failed = entry(&p, DEV, &bad);
    assert_eq!(failed.result, DeploymentResult::RolledBack);
    let why = failed.reason.as_deref().unwrap();
    assert!(why.starts_with("became unhealthy while soaking: HTTP check healthz failed"), "{why}");
    assert!(why.contains("503, expected 200"), "{why}");
    assert_eq!(w.config_map(DEV, "web-config").await.unwrap().data.unwrap()["BUILD"], "1.0.0");
    assert!(w.config_map(DEV, "feature-flags").await.is_none());
}

#[tokio::test]
async fn a_prometheus_that_stops_answering_fails_the_check_after_its_failure_limit() {
    let app_server = ProbeServer::start().await;
    app_server.set_metric("app_error_ratio", 0.0);
    let mut prometheus = Prometheus::start(&[app_server.addr()]).await;
    let w = World::new("rb-down", &[DEV], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    // Passing needs 30 good answers in a row: the check is still verifying when Prometheus stops.
    let check = error_rate_check(&prometheus, json!({"successThreshold": 30, "failureLimit": 2, "timeout": "1s"}));
    w.pipeline(|_| json!({"healthChecks": {"prometheus": [check.clone()]}})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.until("a first good answer", |p| {
        environment(p, DEV).and_then(|e| e.checks.first()).and_then(|c| c.successes).is_some_and(|n| n >= 1)
    })
    .await;
    prometheus.stop();

    // The documented policy: unreachable counts as a failure (fail closed); the third one, past
    // failureLimit 2, fails the check. Nothing healthy ran before, so nothing can be restored.
    let p = w.settled(DEV, EnvironmentPhase::Failed, &release).await;
    let env = environment(&p, DEV).unwrap();
    let check = &env.checks[0];
    assert_eq!((check.result, check.failures), (CheckVerdict::Failed, Some(3)));
    assert!(check.message.as_deref().unwrap().contains("could not be queried"), "{check:?}");
    let why = env.reason.as_deref().unwrap();
    assert!(why.contains("Prometheus check error-rate failed (3 failures)"), "{why}");
    assert!(why.ends_with("nothing could be restored: no earlier release was healthy in development"), "{why}");
    w.event_saying("DeploymentFailed", "could not be queried").await;
}

#[tokio::test]
async fn a_restarted_controller_carries_check_counts_on() {
    let app_server = ProbeServer::start().await;
    let mut w = World::new("rb-restart", &[DEV], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    let url = app_server.url("/healthz");
    w.pipeline(|_| json!({"healthChecks": {"http": [{"name": "healthz", "url": url, "interval": "1s", "successThreshold": 8}]}}))
        .await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    let successes = |p: &conveyor::api::Pipeline| {
        environment(p, DEV).and_then(|e| e.checks.first()).and_then(|c| c.successes).unwrap_or(0)
    };
    let p = w.until("three passing probes", move |p| successes(p) >= 3).await;
    w.controller.kill();
    let before = successes(&p);
    assert!(before < 8, "still verifying when killed");

    // The new process resumes from status: every count it writes continues from where the
    // first left off, never from zero.
    w.controller = support::ControllerProcess::start(&w.ns, "engine-2");
    let lowest = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(i32::MAX));
    let seen = lowest.clone();
    let p = w
        .until("healthy after the restart", move |p| {
            if let Some(e) = environment(p, DEV).filter(|e| e.phase == EnvironmentPhase::Verifying) {
                let n = e.checks.first().and_then(|c| c.successes).unwrap_or(0);
                seen.fetch_min(n, std::sync::atomic::Ordering::SeqCst);
            }
            phase(p, DEV) == Some(EnvironmentPhase::Healthy)
        })
        .await;
    assert!(lowest.load(std::sync::atomic::Ordering::SeqCst) >= before, "check counts restarted after the restart");
    let done = entry(&p, DEV, &release);
    assert_eq!((done.result, done.checks[0].successes), (DeploymentResult::Succeeded, Some(8)));
}

#[tokio::test]
async fn a_requested_rollback_restores_a_healthy_release_and_refuses_one_that_never_ran() {
    let w = World::new("rb-manual", &[DEV], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let first = w.release("1.0.0", &app("1.0.0")).await;
    w.settled(DEV, EnvironmentPhase::Healthy, &first).await;
    let second = w.release("1.1.0", &app_with("1.1.0", "feature-flags")).await;
    w.settled(DEV, EnvironmentPhase::Healthy, &second).await;
    let never = w.release("0.9.0", &app("0.9.0")).await;
    support::wait_for(&w.releases, &never, "0.9.0 packaged", |r: &Release| {
        r.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some()
    })
    .await;

    // The CLI refuses a version that never ran there, and changes nothing.
    let refused = conveyor(&["rollback", "shop", DEV, "--to", "0.9.0", "-n", &w.ns]);
    assert!(!refused.success);
    assert!(refused.stderr.contains("never finished Healthy"), "{}", refused.stderr);
    assert!(refused.stderr.contains("shop-1.0.0"), "the versions that did are listed: {}", refused.stderr);
    // Asked behind the CLI's back, the controller refuses it too, with a Warning Event.
    let p = w.until("settled", |p| phase(p, DEV) == Some(EnvironmentPhase::Healthy)).await;
    let id = environment(&p, DEV).unwrap().current.as_ref().unwrap().deployment_id.clone().unwrap();
    let key = format!("{ROLLBACK_ANNOTATION_PREFIX}{DEV}");
    let patch = json!({"metadata": {"annotations": {key: format!("{never}@{id}")}}});
    w.pipelines.patch("shop", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let event = w.event("RollbackRefused").await;
    assert!(event.note.as_deref().unwrap().contains("was never healthy in development"), "{event:?}");
    let p = w.until("refusal recorded", |p| environment(p, DEV).is_some_and(|e| e.refused_rollback.is_some())).await;
    assert_eq!(current(environment(&p, DEV).unwrap()), Some(second.as_str()));

    // A rollback to the release that was healthy there restores it.
    let asked = conveyor(&["rollback", "shop", DEV, "-n", &w.ns]);
    assert!(asked.success, "{}", asked.stderr);
    let p = w
        .until("1.0.0 restored", move |p| {
            environment(p, DEV).is_some_and(|e| {
                e.phase == EnvironmentPhase::Healthy
                    && e.current.as_ref().is_some_and(|c| c.rollback_of.as_deref() == Some("shop-1.1.0"))
            })
        })
        .await;
    assert_eq!(current(environment(&p, DEV).unwrap()), Some(first.as_str()));
    assert_eq!(w.config_map(DEV, "web-config").await.unwrap().data.unwrap()["BUILD"], "1.0.0");
    assert!(w.config_map(DEV, "feature-flags").await.is_none());
    assert_eq!(
        entry(&p, DEV, &second).result,
        DeploymentResult::Succeeded,
        "it was healthy; it was replaced on request"
    );
    assert_eq!(condition(&p, "Ready").status, "True");
    w.event_saying("RolledBack", "runs shop-1.0.0 again").await;
}

fn phase(p: &conveyor::api::Pipeline, env: &str) -> Option<EnvironmentPhase> {
    environment(p, env).map(|e| e.phase)
}

fn condition(p: &conveyor::api::Pipeline, type_: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    p.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == type_).cloned().unwrap()
}
