//! The pipeline engine on the real API server with the test kubelet: releases walk the
//! environments in order, gates hold them, a newer release never overtakes an older one,
//! pruning and dry-run refusals behave, namespaces must opt in, and a restarted controller
//! resumes where it was.

mod support;

use conveyor::api::Release;
use conveyor::api::pipeline::{DeploymentResult, EnvironmentPhase, HistoryEntry};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::ControllerProcess;
use support::cli::conveyor;
use support::kubelet::Kubelet;
use support::world::*;

#[tokio::test]
async fn a_release_walks_the_environments_in_order() {
    let w = World::new("walk", &THREE, &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    let p = w.settled("production", EnvironmentPhase::Healthy, &release).await;

    // Status timestamps prove the order: each environment started once the one before it
    // had finished healthy.
    let entries: Vec<&HistoryEntry> = THREE.iter().map(|env| entry(&p, env, &release)).collect();
    for (env, e) in THREE.iter().zip(&entries) {
        assert_eq!(e.result, DeploymentResult::Succeeded, "{env}");
        assert_eq!(e.deployment_id, format!("{env}-1"));
        assert!(e.finished_at.as_ref().unwrap().0 >= e.started_at.0, "{env}: {e:?}");
    }
    for pair in entries.windows(2) {
        assert!(
            pair[1].started_at.0 >= pair[0].finished_at.as_ref().unwrap().0,
            "{} started before {} was healthy",
            pair[1].deployment_id,
            pair[0].deployment_id
        );
    }
    // Each environment's objects were created only after the environment before was healthy,
    // rendered for their environment.
    for (i, env) in THREE.iter().enumerate() {
        let cm = w.config_map(env, "web-config").await.expect("web-config applied");
        let data = cm.data.unwrap();
        assert_eq!((data["ENVIRONMENT"].as_str(), data["VERSION"].as_str()), (*env, "1.0.0"));
        let labels = cm.metadata.labels.unwrap();
        assert_eq!(labels["conveyor.dev/release"], release);
        assert_eq!(labels["conveyor.dev/environment"], *env);
        if i > 0 {
            let created = cm.metadata.creation_timestamp.unwrap().0;
            assert!(created >= entries[i - 1].finished_at.as_ref().unwrap().0, "{env} objects came too early");
        }
        let e = environment(&p, env).unwrap();
        assert_eq!(e.phase, EnvironmentPhase::Healthy);
        assert!(e.inventory.iter().any(|o| o.kind == "Deployment" && o.name == "web"), "{env}: {:?}", e.inventory);
    }
    // The Release's own status tells the same journey (written after the Pipeline's).
    let r = support::wait_for(&w.releases, &release, "the Release's journey", |r: &Release| {
        r.status.as_ref().is_some_and(|s| {
            s.environments.len() == 3 && s.environments.iter().all(|e| e.phase == EnvironmentPhase::Healthy)
        })
    })
    .await;
    let journey = r.status.unwrap();
    assert_eq!(journey.environment.as_deref(), Some("production"));
    let phases: Vec<_> = journey.environments.iter().map(|e| (e.name.as_str(), e.phase)).collect();
    assert_eq!(phases, THREE.map(|e| (e, EnvironmentPhase::Healthy)));
    // One Event per transition, none folded into another: a deploy, two promotions, three
    // environments healthy, each naming its environment.
    for (reason, expected) in [
        ("Deploying", vec!["to development"]),
        ("Promoting", vec!["to staging", "to production"]),
        ("Healthy", vec!["in development", "in staging", "in production"]),
    ] {
        for words in expected {
            w.event_saying(reason, words).await;
        }
    }
    // The Pipeline is Ready once everything settled.
    let p = w
        .until("Pipeline Ready", |p| {
            p.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .await;
    assert_eq!(p.status.unwrap().summary.as_deref(), Some("development=Healthy staging=Healthy production=Healthy"));
}

#[tokio::test]
async fn a_manual_gate_holds_production_until_approved_and_soak_is_honoured() {
    let w = World::new("gate", &THREE, &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|env| match env {
        "staging" => json!({"soak": "4s"}),
        "production" => json!({"approval": "Manual"}),
        _ => json!({}),
    })
    .await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    let r = release.clone();
    let p = w
        .until("production awaiting approval", move |p| {
            environment(p, "production").is_some_and(|e| {
                e.phase == EnvironmentPhase::AwaitingApproval && e.awaiting_approval.as_deref() == Some(r.as_str())
            })
        })
        .await;
    // Soak: staging stayed healthy for 4 s before it counted as Healthy.
    let staging = entry(&p, "staging", &release);
    let soaked = staging.finished_at.as_ref().unwrap().0.duration_since(staging.started_at.0);
    assert!(soaked.as_secs() >= 4, "staging finished {soaked:?} after it started, within its 4s soak");
    assert!(w.config_map("production", "web-config").await.is_none(), "nothing applied before approval");
    let condition = p.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Reconciling").unwrap();
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "AwaitingApproval"));
    let event = w.event("AwaitingApproval").await;
    assert!(event.note.unwrap_or_default().contains(&release));

    conveyor(&["approve", "shop", "production", "-n", &w.ns]).ok();
    let p = w.settled("production", EnvironmentPhase::Healthy, &release).await;
    let production = entry(&p, "production", &release);
    assert!(production.started_at.0 >= staging.finished_at.as_ref().unwrap().0);
    assert!(w.config_map("production", "web-config").await.is_some());
}

#[tokio::test]
async fn a_newer_release_follows_an_older_one_and_never_overtakes_it() {
    let w = World::new("order", &THREE, &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    // A soak in every environment keeps the first release in flight while the second arrives.
    w.pipeline(|_| json!({"soak": "3s"})).await;
    let first = w.release("1.0.0", &app("1.0.0")).await;
    let f = first.clone();
    w.until("1.0.0 in flight in development", move |p| {
        environment(p, "development")
            .is_some_and(|e| current(e) == Some(f.as_str()) && e.phase != EnvironmentPhase::Idle)
    })
    .await;
    let second = w.release("1.1.0", &app("1.1.0")).await;
    let p = w.settled("production", EnvironmentPhase::Healthy, &second).await;

    for (i, env) in THREE.iter().enumerate() {
        let (old, new) = (entry(&p, env, &first), entry(&p, env, &second));
        assert_eq!((old.result, new.result), (DeploymentResult::Succeeded, DeploymentResult::Succeeded), "{env}");
        // One release at a time: the newer one started here only after the older one finished here.
        assert!(new.started_at.0 >= old.finished_at.as_ref().unwrap().0, "{env}: {new:?} overtook {old:?}");
        if i > 0 {
            let upstream = entry(&p, THREE[i - 1], &second);
            assert!(new.started_at.0 >= upstream.finished_at.as_ref().unwrap().0, "{env} skipped ahead");
        }
        // Exactly two deployments here, the older first.
        let releases: Vec<&str> = history(&p, env).iter().map(|h| h.release.as_str()).collect();
        assert_eq!(releases, [second.as_str(), first.as_str()], "{env}");
    }
}

#[tokio::test]
async fn a_dropped_object_is_pruned_and_a_refused_object_leaves_the_environment_untouched() {
    let w = World::new("prune", &["development"], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let mut v1 = app("1.0.0");
    v1.push(("legacy.yaml", config_map("legacy", "OLD: \"yes\"")));
    let first = w.release("1.0.0", &v1).await;
    w.settled("development", EnvironmentPhase::Healthy, &first).await;
    assert!(w.config_map("development", "legacy").await.is_some());

    let second = w.release("1.1.0", &app("1.1.0")).await;
    let p = w.settled("development", EnvironmentPhase::Healthy, &second).await;
    assert!(w.config_map("development", "legacy").await.is_none(), "legacy was not pruned");
    let inventory = &environment(&p, "development").unwrap().inventory;
    assert!(!inventory.iter().any(|o| o.name == "legacy"), "{inventory:?}");

    // 1.2.0 changes the config and adds a ConfigMap the API server refuses (a data key with a space).
    let mut v3 = app("1.2.0");
    v3.push(("broken.yaml", config_map("broken", "\"not a key\": x")));
    let third = w.release("1.2.0", &v3).await;
    let t = third.clone();
    let p = w
        .until("1.2.0 failed in development", move |p| {
            history(p, "development").iter().any(|h| h.release == t && h.result == DeploymentResult::Failed)
        })
        .await;
    let dev = environment(&p, "development").unwrap();
    assert_eq!(dev.phase, EnvironmentPhase::Failed);
    assert_eq!(current(dev), Some(second.as_str()), "the environment still runs 1.1.0");
    let reason = dev.reason.as_deref().unwrap();
    assert!(reason.contains("broken"), "the reason names the refused object: {reason}");
    let cm = w.config_map("development", "web-config").await.unwrap();
    assert_eq!(cm.data.unwrap()["BUILD"], "1.1.0", "nothing of 1.2.0 was applied");
    assert!(w.config_map("development", "broken").await.is_none());
    let event = w.event("DeployFailed").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

#[tokio::test]
async fn a_namespace_without_the_opt_in_label_is_refused_until_it_opts_in() {
    let w = World::new("tenancy", &["development", "production"], &["production"]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.settled("development", EnvironmentPhase::Healthy, &release).await;
    let p = w
        .until("production refused", |p| {
            environment(p, "production").is_some_and(|e| e.reason.as_deref().is_some_and(|r| r.contains("allow-from")))
        })
        .await;
    let production = environment(&p, "production").unwrap();
    assert_eq!(production.phase, EnvironmentPhase::Idle);
    let stalled = p.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "NamespaceNotAllowed"));
    assert!(stalled.message.contains(w.namespace("production")), "{}", stalled.message);
    w.event("NamespaceNotAllowed").await;
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), w.namespace("production"));
    assert!(deployments.list(&ListParams::default()).await.unwrap().items.is_empty(), "nothing applied there");

    // Opting in (the Namespace watch wakes the pipeline) lets the release through.
    allow(&w.client, w.namespace("production"), &w.ns).await;
    w.settled("production", EnvironmentPhase::Healthy, &release).await;
}

#[tokio::test]
async fn a_controller_killed_mid_promotion_resumes_without_skipping_or_losing_history() {
    let mut w = World::new("restart", &THREE, &[]).await;
    // Only development's Pods become ready: staging stays Verifying.
    let kubelet = Kubelet::start(w.client.clone(), &[w.namespace("development").to_owned()]);
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.settled("staging", EnvironmentPhase::Verifying, &release).await;
    w.controller.kill();
    drop(kubelet);

    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.controller = ControllerProcess::start(&w.ns, "engine-2");
    let p = w.settled("production", EnvironmentPhase::Healthy, &release).await;
    for env in THREE {
        let ids: Vec<&str> = history(&p, env).iter().map(|h| h.deployment_id.as_str()).collect();
        assert_eq!(ids, [format!("{env}-1")], "{env}: one deployment, not lost, not repeated");
        assert_eq!(environment(&p, env).unwrap().deployments, Some(1), "{env}");
    }
    let staging = entry(&p, "staging", &release);
    let development = entry(&p, "development", &release);
    assert!(staging.started_at.0 >= development.finished_at.as_ref().unwrap().0);
}

#[tokio::test]
async fn a_paused_pipeline_holds_a_release_until_resumed() {
    let w = World::new("pause", &["development"], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    conveyor(&["pause", "shop", "-n", &w.ns]).ok();
    let release = w.release("1.0.0", &app("1.0.0")).await;
    let r = release.clone();
    // The controller saw the packaged release and held it: the Pipeline says so.
    let p = w
        .until("the pause holding 1.0.0", move |p| {
            p.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Stalled" && c.status == "True" && c.reason == "Paused" && c.message.contains(r.as_str())
                })
            })
        })
        .await;
    let dev = environment(&p, "development").unwrap();
    assert_eq!((dev.phase, dev.current.as_ref()), (EnvironmentPhase::Idle, None));
    assert!(w.config_map("development", "web-config").await.is_none(), "nothing applied while paused");

    conveyor(&["resume", "shop", "-n", &w.ns]).ok();
    w.settled("development", EnvironmentPhase::Healthy, &release).await;
}
