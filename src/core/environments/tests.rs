use jiff::Timestamp;

use super::*;
use crate::api::pipeline::{Environment, HealthChecks};
use crate::api::release::{Artifact, ReleaseStatus};
use crate::core::fixtures::{pipeline_spec, release, release_spec};

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn deployment(id: &str, version: &str, started: i64, healthy: Option<i64>) -> Deployment {
    Deployment {
        id: id.into(),
        release: format!("shop-{version}"),
        version: v(version),
        digest: format!("sha256:{version}"),
        started_at: t(started),
        healthy_since: healthy.map(t),
        applied_at: Some(t(started + 1)),
        rollback_of: None,
    }
}

fn finished(id: &str, version: &str, result: DeploymentResult, reason: Option<&str>) -> Finished {
    Finished {
        id: id.into(),
        release: format!("shop-{version}"),
        version: v(version),
        result,
        started_at: t(10),
        finished_at: t(20),
        reason: reason.map(Into::into),
        rollback_of: None,
        checks: Vec::new(),
    }
}

fn specs() -> Vec<EnvironmentSpec> {
    environment_specs(&pipeline_spec(&[("dev", "shop-dev"), ("staging", "shop-staging"), ("prod", "shop-prod")]), MIN5)
}

const MIN5: Duration = Duration::from_secs(300);

/// A state exercising every field.
fn full_state() -> EnvironmentState {
    EnvironmentState {
        phase: EnvironmentPhase::Soaking,
        current: Some(deployment("staging-3", "1.2.0", 100, Some(130))),
        previous: Some(deployment("staging-2", "1.1.0", 50, Some(60))),
        awaiting: None,
        reason: None,
        inventory: vec![
            ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("x".into()),
                name: "a".into(),
            },
            ObjectRef {
                api_version: "rbac.authorization.k8s.io/v1".into(),
                kind: "ClusterRole".into(),
                namespace: None,
                name: "b".into(),
            },
        ],
        deployments: 3,
        newest: Some(v("1.2.0")),
        history: vec![
            finished("staging-2", "1.1.0", DeploymentResult::Succeeded, None),
            finished("staging-1", "1.0.0", DeploymentResult::Failed, Some("not healthy within 5m")),
        ],
        checks: vec![CheckState {
            name: "error-rate".into(),
            kind: CheckType::Prometheus,
            result: crate::api::release::CheckVerdict::Passed,
            successes: 2,
            failures: 1,
            message: Some("0.01 (wants < 0.05)".into()),
            at: Some(t(140)),
        }],
        refused_rollback: Some("shop-0.9.0@staging-3".into()),
    }
}

#[test]
fn state_survives_a_round_trip_through_status() {
    let states = [
        EnvironmentState::default(),
        full_state(),
        EnvironmentState {
            phase: EnvironmentPhase::AwaitingApproval,
            awaiting: Some("shop-1.3.0".into()),
            reason: Some("namespace x does not allow this pipeline".into()),
            ..full_state()
        },
    ];
    for state in states {
        let status = status_from_state("staging", &state);
        assert_eq!(status.name, "staging");
        assert_eq!(state_from_status(&status), state, "{status:#?}");
        // And the status survives JSON, as it does in the API server.
        let json = serde_json::to_value(&status).unwrap();
        let back: EnvironmentStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
    }
}

#[test]
fn status_field_names_are_the_documented_ones() {
    let json = serde_json::to_value(status_from_state("staging", &full_state())).unwrap();
    assert_eq!(json["current"]["deploymentId"], "staging-3");
    assert_eq!(json["current"]["healthySince"], "2023-11-14T22:15:30Z");
    assert_eq!(json["current"]["since"], "2023-11-14T22:15:00Z");
    assert_eq!(json["deployments"], 3);
    assert_eq!(json["newestVersion"], "1.2.0");
    assert_eq!(json["history"][1]["reason"], "not healthy within 5m");
    assert!(json.get("awaitingApproval").is_none(), "absent options are omitted: {json}");
    assert!(json["inventory"][1].get("namespace").is_none(), "{json}");
}

#[test]
fn hand_edited_versions_are_dropped_not_misordered() {
    let mut status = status_from_state("staging", &full_state());
    status.current.as_mut().unwrap().version = "latest".into();
    status.history[0].version = "v1".into();
    status.newest_version = Some("newest".into());
    let state = state_from_status(&status);
    assert_eq!(state.current, None);
    assert_eq!(state.history.len(), 1);
    assert_eq!(state.newest, None);
}

#[test]
fn environment_specs_read_gates_and_durations() {
    let mut spec = pipeline_spec(&[("dev", "d"), ("prod", "p")]);
    spec.environments[1] = Environment {
        approval: Some(Approval::Manual),
        soak: Some("10m".into()),
        health_checks: Some(HealthChecks { timeout: Some("90s".into()), ..Default::default() }),
        ..spec.environments[1].clone()
    };
    let envs = environment_specs(&spec, MIN5);
    assert_eq!((envs[0].manual, envs[0].soak, envs[0].timeout), (false, Duration::ZERO, MIN5));
    assert_eq!(
        (envs[1].manual, envs[1].soak, envs[1].timeout),
        (true, Duration::from_secs(600), Duration::from_secs(90))
    );
    assert_eq!(envs[1].namespace, "p");
}

#[test]
fn history_limit_defaults_to_ten() {
    let mut spec = pipeline_spec(&[("dev", "d")]);
    assert_eq!(history_limit(&spec), 10);
    spec.history_limit = Some(3);
    assert_eq!(history_limit(&spec), 3);
    spec.history_limit = Some(0);
    assert_eq!(history_limit(&spec), 10);
}

#[test]
fn annotations_give_pause_and_approvals() {
    let a = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    assert!(paused(&a(&[("conveyor.dev/paused", "true")])));
    assert!(paused(&a(&[("conveyor.dev/paused", " True ")])));
    assert!(!paused(&a(&[("conveyor.dev/paused", "false")])));
    assert!(!paused(&a(&[])));
    let approvals = approvals(&a(&[
        ("approve.conveyor.dev/prod", "shop-1.2.0"),
        ("approve.conveyor.dev/staging", " shop-1.1.0 "),
        ("conveyor.dev/paused", "true"),
        ("example.com/approve.conveyor.dev/x", "y"),
    ]));
    assert_eq!(approvals.len(), 2);
    assert_eq!(approvals["prod"], "shop-1.2.0");
    assert_eq!(approvals["staging"], "shop-1.1.0");
}

#[test]
fn candidates_are_packaged_releases_of_this_pipeline() {
    let packaged = |name: &str, version: &str| {
        let mut r = release(name, release_spec(version), 1);
        r.status = Some(ReleaseStatus {
            phase: Some(ReleasePhase::Packaged),
            artifact: Some(Artifact {
                digest: format!("sha256:{version}"),
                size: 1,
                files: 1,
                objects: 1,
                environments: Vec::new(),
            }),
            ..Default::default()
        });
        r
    };
    let mut other = packaged("other-1.0.0", "1.0.0");
    other.spec.pipeline = "other".into();
    let mut pending = packaged("shop-1.1.0", "1.1.0");
    pending.status.as_mut().unwrap().phase = Some(ReleasePhase::Packaging);
    let bad_version = packaged("shop-x", "x");
    let releases = [packaged("shop-1.0.0", "1.0.0"), other, pending, bad_version, packaged("shop-2.0.0", "2.0.0")];
    let found = candidates("shop", &releases);
    let names: Vec<_> = found.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["shop-1.0.0", "shop-2.0.0"]);
    assert_eq!(found[1].digest, "sha256:2.0.0");
    assert_eq!(found[1].version, v("2.0.0"));
}

#[test]
fn journey_follows_a_release_through_the_environments() {
    let envs = specs();
    let dev = EnvironmentState {
        phase: EnvironmentPhase::Healthy,
        current: Some(deployment("dev-2", "1.2.0", 100, Some(110))),
        history: vec![
            Finished {
                started_at: t(100),
                finished_at: t(110),
                ..finished("dev-2", "1.2.0", DeploymentResult::Succeeded, None)
            },
            finished("dev-1", "1.1.0", DeploymentResult::Succeeded, None),
        ],
        ..Default::default()
    };
    let staging = EnvironmentState {
        phase: EnvironmentPhase::Verifying,
        current: Some(deployment("staging-2", "1.2.0", 120, None)),
        history: vec![finished("staging-1", "1.1.0", DeploymentResult::Failed, Some("broken"))],
        ..Default::default()
    };
    let prod = EnvironmentState {
        phase: EnvironmentPhase::AwaitingApproval,
        awaiting: Some("shop-1.1.0".into()),
        ..Default::default()
    };
    let states = [dev, staging, prod];

    let newer = journey("shop-1.2.0", &envs, &states, &[]);
    assert_eq!(newer.len(), 2);
    assert_eq!((newer[0].name.as_str(), newer[0].phase), ("dev", EnvironmentPhase::Healthy));
    assert_eq!(newer[0].deployment_id.as_deref(), Some("dev-2"));
    assert_eq!(newer[0].started_at, Some(Time(t(100))));
    assert_eq!(newer[0].finished_at, Some(Time(t(110))));
    assert_eq!((newer[1].name.as_str(), newer[1].phase), ("staging", EnvironmentPhase::Verifying));
    assert_eq!(newer[1].finished_at, None);
    assert_eq!(furthest(&newer).as_deref(), Some("staging"));

    let older = journey("shop-1.1.0", &envs, &states, &[]);
    let phases: Vec<_> = older.iter().map(|e| (e.name.as_str(), e.phase)).collect();
    assert_eq!(
        phases,
        [
            ("dev", EnvironmentPhase::Healthy),
            ("staging", EnvironmentPhase::Failed),
            ("prod", EnvironmentPhase::AwaitingApproval)
        ]
    );
    assert_eq!(older[1].reason.as_deref(), Some("broken"));
    assert_eq!(older[2].deployment_id, None);
    assert_eq!(furthest(&older).as_deref(), Some("staging"), "waiting for approval is not reaching");

    assert!(journey("shop-9.9.9", &envs, &states, &[]).is_empty());
}

#[test]
fn journey_keeps_what_history_no_longer_reaches() {
    let envs = specs();
    let recorded = vec![ReleaseEnvironment {
        name: "dev".into(),
        phase: EnvironmentPhase::Healthy,
        deployment_id: Some("dev-1".into()),
        started_at: Some(Time(t(1))),
        finished_at: Some(Time(t(2))),
        reason: None,
        checks: Vec::new(),
    }];
    let states = vec![EnvironmentState::default(); 3];
    assert_eq!(journey("shop-1.0.0", &envs, &states, &recorded), recorded);
}

fn healthy_state() -> EnvironmentState {
    EnvironmentState {
        phase: EnvironmentPhase::Healthy,
        current: Some(deployment("dev-1", "1.0.0", 1, Some(2))),
        ..Default::default()
    }
}

#[test]
fn summary_says_what_the_pipeline_waits_for() {
    let envs = ["dev", "staging", "prod"];
    let healthy = EnvironmentState {
        phase: EnvironmentPhase::Healthy,
        current: Some(deployment("dev-1", "1.0.0", 1, Some(2))),
        ..Default::default()
    };
    let idle = EnvironmentState::default();
    let verifying = EnvironmentState { phase: EnvironmentPhase::Verifying, ..healthy.clone() };
    let awaiting = EnvironmentState {
        phase: EnvironmentPhase::AwaitingApproval,
        awaiting: Some("shop-1.0.0".into()),
        ..Default::default()
    };
    let failed = EnvironmentState { phase: EnvironmentPhase::Failed, reason: Some("broken".into()), ..healthy.clone() };
    let refused = EnvironmentState {
        reason: Some("namespace shop-prod does not allow this pipeline".into()),
        ..Default::default()
    };

    let reason = |s: Summary| match s {
        Summary::Ready { reason, message } => ("Ready", reason, message),
        Summary::Reconciling { reason, message } => ("Reconciling", reason, message),
        Summary::Stalled { reason, message } => ("Stalled", reason, message),
    };
    let (kind, r, m) =
        reason(summary(("shop", "shop-ns"), &envs, &[healthy.clone(), idle.clone(), idle.clone()], false, &[]));
    assert_eq!((kind, r), ("Ready", Reason::Succeeded));
    assert_eq!(m, "dev=1.0.0 staging=none prod=none");
    let (kind, r, m) =
        reason(summary(("shop", "shop-ns"), &envs, &[healthy.clone(), verifying.clone(), failed.clone()], false, &[]));
    assert_eq!((kind, r), ("Reconciling", Reason::Deploying), "in flight wins: {m}");
    assert!(m.starts_with("staging: Verifying shop-1.0.0 (dev-1)"), "{m}");
    let (kind, r, m) =
        reason(summary(("shop", "shop-ns"), &envs, &[healthy.clone(), idle.clone(), awaiting.clone()], false, &[]));
    assert_eq!((kind, r), ("Reconciling", Reason::AwaitingApproval));
    assert!(m.ends_with("conveyor approve shop prod -n shop-ns"), "{m}");
    // A failure or a refused namespace is not hidden behind an approval elsewhere.
    let (kind, r, _) =
        reason(summary(("shop", "shop-ns"), &envs, &[healthy.clone(), failed.clone(), awaiting.clone()], false, &[]));
    assert_eq!((kind, r), ("Stalled", Reason::DeploymentFailed));
    let (kind, r, _) =
        reason(summary(("shop", "shop-ns"), &envs, &[refused.clone(), idle.clone(), awaiting.clone()], false, &[]));
    assert_eq!((kind, r), ("Stalled", Reason::NamespaceNotAllowed));
    let (kind, r, m) =
        reason(summary(("shop", "shop-ns"), &envs, &[healthy.clone(), failed, refused.clone()], false, &[]));
    assert_eq!((kind, r, m.as_str()), ("Stalled", Reason::DeploymentFailed, "staging: broken"));
    let (kind, r, _) =
        reason(summary(("shop", "shop-ns"), &envs, &[healthy.clone(), idle.clone(), refused.clone()], false, &[]));
    assert_eq!((kind, r), ("Stalled", Reason::NamespaceNotAllowed));
    let mut restored = healthy.clone();
    restored.current.as_mut().unwrap().rollback_of = Some("shop-1.1.0".into());
    restored.reason = Some("shop-1.1.0 failed: crash; rolled back to shop-1.0.0".into());
    let (kind, r, m) =
        reason(summary(("shop", "shop-ns"), &envs, &[restored.clone(), idle.clone(), refused], false, &[]));
    assert_eq!((kind, r), ("Stalled", Reason::RolledBack), "{m}");
    assert_eq!(m, "dev: shop-1.1.0 failed: crash; rolled back to shop-1.0.0");
    restored.reason = None;
    let (kind, _, _) = reason(summary(("shop", "shop-ns"), &envs, &[restored, idle.clone(), idle.clone()], false, &[]));
    assert_eq!(kind, "Ready", "a requested rollback is done once restored");
    let (kind, r, m) = reason(summary(("shop", "shop-ns"), &envs, &[healthy, idle.clone(), idle], true, &[]));
    assert_eq!((kind, r), ("Ready", Reason::Paused), "nothing held: done");
    assert!(m.starts_with("paused"), "{m}");
    let held = [(1, "shop-1.1.0".to_owned())];
    let settled = [healthy_state(), EnvironmentState::default(), EnvironmentState::default()];
    let (kind, r, m) = reason(summary(("shop", "shop-ns"), &envs, &settled, true, &held));
    assert_eq!((kind, r), ("Stalled", Reason::Paused), "a held release needs a person: {m}");
    assert_eq!(m, "paused: shop-1.1.0 waits to enter staging; conveyor resume shop -n shop-ns lets it start");
    let (kind, _, _) = reason(summary(("shop", "shop-ns"), &envs, &settled, false, &held));
    assert_eq!(kind, "Ready", "held only counts while paused");
}
