//! kstatus semantics as GitOps tools read them, on the real API server: every status revision the
//! controller writes is recorded through a watch while a release waits for approval, walks on,
//! and the next one fails and is rolled back; each revision must say exactly one of Ready,
//! Reconciling and Stalled, Ready only when nothing is in flight or waiting, and the real
//! `kubectl wait` must agree.

mod support;

use std::sync::{Arc, Mutex};

use conveyor::api::Pipeline;
use conveyor::api::pipeline::EnvironmentPhase;
use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use support::cli::{conveyor, kubectl};
use support::kubelet::Kubelet;
use support::probe_server::ProbeServer;
use support::world::*;

const DEV: &str = "development";
const STAGING: &str = "staging";

/// The one condition that is True, as `(type, reason)`; panics unless exactly one is.
fn the_true_condition(p: &Pipeline) -> (String, String) {
    let status = p.status.as_ref().expect("a revision with status");
    let true_ones: Vec<_> = status.conditions.iter().filter(|c| c.status == "True").collect();
    assert_eq!(true_ones.len(), 1, "exactly one of Ready, Reconciling, Stalled is True: {:?}", status.conditions);
    for c in &status.conditions {
        assert_eq!(c.observed_generation, status.observed_generation, "{} describes the same generation", c.type_);
    }
    (true_ones[0].type_.clone(), true_ones[0].reason.clone())
}

/// `kubectl wait --for=condition=<condition>` on the pipeline, off the async runtime.
async fn kubectl_wait(ns: &str, condition: &str, timeout: &str) -> bool {
    let args =
        ["wait", "-n", ns, &format!("--for=condition={condition}"), &format!("--timeout={timeout}"), "pipeline/shop"]
            .map(str::to_owned);
    tokio::task::spawn_blocking(move || kubectl(&args.iter().map(String::as_str).collect::<Vec<_>>(), None).success)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_status_revision_follows_kstatus_and_kubectl_wait_agrees() {
    let app_server = ProbeServer::start().await;
    let w = World::new("kstatus", &[DEV, STAGING], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    let seen: Arc<Mutex<Vec<Pipeline>>> = Arc::default();
    let recorder = {
        let seen = seen.clone();
        let config = watcher::Config::default().fields("metadata.name=shop");
        let stream = watcher(w.pipelines.clone(), config).default_backoff().applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(Ok(p)) = stream.next().await {
                seen.lock().unwrap().push(p);
            }
        })
    };
    let url = app_server.url("/healthz");
    w.pipeline(|env| {
        if env == DEV {
            json!({"healthChecks": {"http": [{"name": "healthz", "url": url, "interval": "1s"}]}})
        } else {
            json!({"approval": "Manual"})
        }
    })
    .await;

    // Waiting for approval is work in progress, not done: Reconciling, and `kubectl wait` for
    // Ready does not return while it lasts.
    let good = w.release("1.0.0", &app("1.0.0")).await;
    let p = w
        .until("staging awaiting approval", |p| {
            environment(p, STAGING).is_some_and(|e| e.phase == EnvironmentPhase::AwaitingApproval)
        })
        .await;
    assert_eq!(the_true_condition(&p), ("Reconciling".into(), "AwaitingApproval".into()));
    assert!(!kubectl_wait(&w.ns, "Ready", "2s").await, "Ready while a release awaits approval");

    // Approved, it walks on; `kubectl wait` returns once it is Ready, and then it has settled.
    conveyor(&["approve", "shop", STAGING, "-n", &w.ns]).ok();
    assert!(kubectl_wait(&w.ns, "Ready", "90s").await, "kubectl wait --for=condition=Ready");
    let p = w.pipelines.get("shop").await.unwrap();
    for env in [DEV, STAGING] {
        let e = environment(&p, env).unwrap();
        assert_eq!((e.phase, current(e)), (EnvironmentPhase::Healthy, Some(good.as_str())), "{env} when Ready");
    }

    // A failing release is rolled back: Reconciling while it happens, Stalled after (the pipeline
    // needs a newer release), which `kubectl wait` sees.
    app_server.set_health(503);
    w.release("1.1.0", &app("1.1.0")).await;
    w.until("development rolling back", |p| {
        environment(p, DEV).is_some_and(|e| e.phase == EnvironmentPhase::RollingBack)
    })
    .await;
    app_server.set_health(200);
    assert!(kubectl_wait(&w.ns, "Stalled", "90s").await, "kubectl wait --for=condition=Stalled");
    let p = w.settled(DEV, EnvironmentPhase::Healthy, &good).await;
    assert_eq!(the_true_condition(&p), ("Stalled".into(), "RolledBack".into()));

    // Every revision written on the way: one condition True; Ready never while anything is in
    // flight, awaiting approval or failed; Reconciling whenever something is in flight.
    recorder.abort();
    let seen = seen.lock().unwrap();
    let with_status: Vec<&Pipeline> = seen.iter().filter(|p| p.status.is_some()).collect();
    assert!(with_status.len() >= 10, "the watch saw the walk ({} revisions)", with_status.len());
    let mut kinds = Vec::new();
    for p in with_status {
        let (kind, reason) = the_true_condition(p);
        let envs = &p.status.as_ref().unwrap().environments;
        let in_flight = envs.iter().any(|e| {
            matches!(
                e.phase,
                EnvironmentPhase::Deploying
                    | EnvironmentPhase::Verifying
                    | EnvironmentPhase::Soaking
                    | EnvironmentPhase::RollingBack
            )
        });
        let waiting = envs.iter().any(|e| e.phase == EnvironmentPhase::AwaitingApproval);
        let failed = envs.iter().any(|e| e.phase == EnvironmentPhase::Failed);
        if kind == "Ready" {
            assert!(!in_flight && !waiting && !failed, "Ready while not settled: {envs:?}");
        }
        if in_flight {
            assert_eq!(kind, "Reconciling", "something is in flight: {envs:?}");
        }
        if kinds.last() != Some(&(kind.clone(), reason.clone())) {
            kinds.push((kind, reason));
        }
    }
    // The story, as the conditions told it.
    let told: Vec<String> = kinds.iter().map(|(k, r)| format!("{k}/{r}")).collect();
    assert_eq!(
        told,
        [
            "Ready/Succeeded", // nothing released yet: done
            "Reconciling/Deploying",
            "Reconciling/AwaitingApproval",
            "Reconciling/Deploying",
            "Ready/Succeeded",
            "Reconciling/Deploying", // 1.1.0, then its rollback
            "Stalled/RolledBack",
        ]
    );
}
