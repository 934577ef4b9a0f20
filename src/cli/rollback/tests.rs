use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;
use crate::api::pipeline::{
    DeployedRelease, DeploymentResult, EnvironmentStatus, HistoryEntry, PipelineStatus, RollbackPolicy,
};
use crate::api::release::{Artifact, ReleaseStatus};
use crate::core::fixtures::{pipeline_spec, release, release_spec, t};

/// `shop-<version>` as it ran in an environment, with its artifact digest.
fn deployed(version: &str, id: &str, digest: &str) -> DeployedRelease {
    DeployedRelease {
        release: format!("shop-{version}"),
        version: version.into(),
        digest: Some(digest.into()),
        since: Some(Time(t(100))),
        deployment_id: Some(id.into()),
        healthy_since: None,
        applied_at: Some(Time(t(101))),
        rollback_of: None,
    }
}

/// A finished deployment of `shop-<version>`.
fn ran(id: &str, version: &str, result: DeploymentResult) -> HistoryEntry {
    HistoryEntry {
        deployment_id: id.into(),
        release: format!("shop-{version}"),
        version: version.into(),
        result,
        started_at: Time(t(10)),
        finished_at: Some(Time(t(20))),
        reason: None,
        rollback_of: None,
        checks: Vec::new(),
    }
}

/// Staging ran 0.9.0 and 1.0.0 (healthy), 1.0.1 (failed, rolled back to 1.0.0), and runs 1.1.0
/// (healthy) now; development runs 1.1.0, its first release; production never ran anything.
fn staging() -> EnvironmentStatus {
    use DeploymentResult::{RolledBack, Succeeded};
    let rollback = HistoryEntry { rollback_of: Some("shop-1.0.1".into()), ..ran("staging-4", "1.0.0", Succeeded) };
    EnvironmentStatus {
        name: "staging".into(),
        phase: EnvironmentPhase::Healthy,
        current: Some(deployed("1.1.0", "staging-5", "sha256:110")),
        previous: Some(deployed("1.0.0", "staging-4", "sha256:100")),
        deployments: Some(5),
        history: vec![
            ran("staging-5", "1.1.0", Succeeded),
            rollback,
            ran("staging-3", "1.0.1", RolledBack),
            ran("staging-2", "1.0.0", Succeeded),
            ran("staging-1", "0.9.0", Succeeded),
        ],
        ..EnvironmentStatus::default()
    }
}

fn development() -> EnvironmentStatus {
    EnvironmentStatus {
        name: "development".into(),
        phase: EnvironmentPhase::Healthy,
        current: Some(deployed("1.1.0", "development-1", "sha256:110")),
        history: vec![ran("development-1", "1.1.0", DeploymentResult::Succeeded)],
        ..EnvironmentStatus::default()
    }
}

/// Pipeline `shop` in namespace `shop` (development, staging, production) with these
/// environments' status and annotations.
fn shop(environments: Vec<EnvironmentStatus>, annotations: &[(&str, &str)]) -> Pipeline {
    let spec = pipeline_spec(&[("development", "shop-dev"), ("staging", "shop-staging"), ("production", "shop-prod")]);
    let mut p = Pipeline::new("shop", spec);
    p.metadata.namespace = Some("shop".into());
    p.metadata.annotations = Some(annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
    p.status = Some(PipelineStatus { environments, ..PipelineStatus::default() });
    p
}

fn with_staging(edit: impl FnOnce(&mut EnvironmentStatus)) -> Pipeline {
    let mut env = staging();
    edit(&mut env);
    shop(vec![development(), env], &[])
}

fn packaged(version: &str, digest: &str) -> Release {
    let mut r = release(&format!("shop-{version}"), release_spec(version), 0);
    r.status = Some(ReleaseStatus {
        phase: Some(ReleasePhase::Packaged),
        artifact: Some(Artifact { digest: digest.into(), size: 1, files: 1, objects: 1, environments: Vec::new() }),
        ..ReleaseStatus::default()
    });
    r
}

/// Every release of `shop`, packaged, with the digests they ran with.
fn releases() -> Vec<Release> {
    vec![
        packaged("0.9.0", "sha256:090"),
        packaged("1.0.0", "sha256:100"),
        packaged("1.0.1", "sha256:101"),
        packaged("1.1.0", "sha256:110"),
    ]
}

/// `releases()` with `version`'s Release changed by `edit`.
fn releases_with(version: &str, edit: impl FnOnce(&mut Release)) -> Vec<Release> {
    let mut all = releases();
    let name = format!("shop-{version}");
    edit(all.iter_mut().find(|r| r.metadata.name.as_deref() == Some(name.as_str())).expect("a known release"));
    all
}

fn target(pipeline: &Pipeline, env: &str, to: Option<&str>) -> Result<String, Refusal> {
    plan_rollback(pipeline, env, to, &releases()).map(|p| p.request.release)
}

#[test]
fn the_target_is_the_requested_release_else_the_last_healthy_one() {
    let p = shop(vec![development(), staging()], &[]);
    // (case, --to, target)
    let cases = [
        // Not 1.0.1: it failed here.
        ("default", None, "shop-1.0.0"),
        ("by version", Some("0.9.0"), "shop-0.9.0"),
        ("by tag-like version", Some("v0.9.0"), "shop-0.9.0"),
        ("by version with build metadata", Some("0.9.0+build.7"), "shop-0.9.0"),
        ("by name", Some("shop-0.9.0"), "shop-0.9.0"),
        ("the default, named", Some("1.0.0"), "shop-1.0.0"),
    ];
    for (case, to, want) in cases {
        assert_eq!(target(&p, "staging", to), Ok(want.to_owned()), "{case}");
    }
}

#[test]
fn the_request_names_the_deployment_it_replaces() {
    let plan = plan_rollback(&shop(vec![development(), staging()], &[]), "staging", None, &releases()).expect("plan");
    assert_eq!(plan.request, RollbackRequest { release: "shop-1.0.0".into(), after: "staging-5".into() });
    assert_eq!(plan.from, "shop-1.1.0");
    assert_eq!(
        plan.patch(),
        json!({"metadata": {"annotations": {"rollback.conveyor.dev/staging": "shop-1.0.0@staging-5"}}})
    );
    // The controller reads back what was written.
    let annotations = [(rollback_annotation("staging"), plan.request.to_string())].into_iter().collect();
    assert_eq!(crate::core::environments::rollback_requests(&annotations).get("staging"), Some(&plan.request));
}

#[test]
fn refusals_name_the_fix() {
    let all_healthy = || vec!["shop-1.0.0 (1.0.0)".to_owned(), "shop-0.9.0 (0.9.0)".to_owned()];
    let fine = shop(vec![development(), staging()], &[]);
    let verifying = with_staging(|e| e.phase = EnvironmentPhase::Verifying);
    let no_status = shop(Vec::new(), &[]);
    // (case, pipeline, env, --to, refusal, text the message must contain)
    type Case<'a> = (&'a str, &'a Pipeline, &'a str, Option<&'a str>, Refusal, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "unknown environment",
            &fine,
            "prod",
            None,
            Refusal::Gate(control::Refusal::UnknownEnvironment {
                pipeline: "shop".into(),
                environment: "prod".into(),
                valid: vec!["development".into(), "staging".into(), "production".into()],
            }),
            "its environments are: development, staging, production",
        ),
        (
            "nothing ran there",
            &fine,
            "production",
            None,
            Refusal::NothingDeployed {
                pipeline: "shop".into(),
                namespace: "shop".into(),
                environment: "production".into(),
            },
            "nothing has run in environment production of pipeline shop yet",
        ),
        (
            "no status at all",
            &no_status,
            "staging",
            Some("1.0.0"),
            Refusal::NothingDeployed {
                pipeline: "shop".into(),
                namespace: "shop".into(),
                environment: "staging".into(),
            },
            "nothing to roll back",
        ),
        (
            "in flight",
            &verifying,
            "staging",
            None,
            Refusal::InFlight {
                pipeline: "shop".into(),
                namespace: "shop".into(),
                environment: "staging".into(),
                phase: EnvironmentPhase::Verifying,
                release: "shop-1.1.0".into(),
                deployment: "staging-5".into(),
                automatic: None,
            },
            "is verifying shop-1.1.0 (deployment staging-5); wait until it settles (`kubectl get pipeline shop -n shop -w`) and run this again; if the release fails its checks it rolls back by itself",
        ),
        (
            "the running release",
            &fine,
            "staging",
            Some("1.1.0"),
            Refusal::AlreadyRunning {
                pipeline: "shop".into(),
                environment: "staging".into(),
                release: "shop-1.1.0".into(),
                healthy: all_healthy(),
            },
            "shop-1.1.0 is what environment staging of pipeline shop runs now; pass one that finished Healthy there to --to: shop-1.0.0 (1.0.0), shop-0.9.0 (0.9.0)",
        ),
        (
            "failed there",
            &fine,
            "staging",
            Some("1.0.1"),
            Refusal::NeverHealthy {
                pipeline: "shop".into(),
                environment: "staging".into(),
                requested: "1.0.1".into(),
                healthy: all_healthy(),
            },
            "1.0.1 never finished Healthy in environment staging of pipeline shop (as far as its history reaches), so it cannot be rolled back to; pass one that finished Healthy there to --to: shop-1.0.0 (1.0.0), shop-0.9.0 (0.9.0)",
        ),
        (
            "never ran there",
            &fine,
            "staging",
            Some("shop-2.0.0"),
            Refusal::NeverHealthy {
                pipeline: "shop".into(),
                environment: "staging".into(),
                requested: "shop-2.0.0".into(),
                healthy: all_healthy(),
            },
            "shop-2.0.0 never finished Healthy",
        ),
        (
            "never ran in an environment with nothing else healthy",
            &fine,
            "development",
            Some("1.0.0"),
            Refusal::NeverHealthy {
                pipeline: "shop".into(),
                environment: "development".into(),
                requested: "1.0.0".into(),
                healthy: Vec::new(),
            },
            "no other release finished Healthy there, so there is nothing to roll back to",
        ),
        (
            "nothing else was healthy",
            &fine,
            "development",
            None,
            Refusal::NothingToRollBackTo {
                pipeline: "shop".into(),
                environment: "development".into(),
                current: "shop-1.1.0".into(),
                healthy: Vec::new(),
            },
            "nothing to roll back to in environment development of pipeline shop: no release other than shop-1.1.0, which runs there now, finished Healthy there",
        ),
    ];
    for (case, pipeline, env, to, want, text) in cases {
        let got = plan_rollback(pipeline, env, to, &releases()).expect_err(case);
        assert!(got.to_string().contains(text), "{case}: {got}");
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn an_environment_in_flight_says_what_it_is_doing() {
    // (phase, spec.rollback.automatic, text)
    let cases = [
        (EnvironmentPhase::Deploying, Some(true), "is deploying shop-1.1.0 (deployment staging-5)"),
        (EnvironmentPhase::Soaking, Some(true), "rolls back by itself (automatic rollback is on)"),
        (EnvironmentPhase::Soaking, None, "unless the controller's rollback_enabled is false"),
        (
            EnvironmentPhase::Verifying,
            Some(false),
            "automatic rollback is off for this pipeline, so if the release fails its checks it stays Failed until you roll it back",
        ),
        (
            EnvironmentPhase::RollingBack,
            Some(true),
            "is rolling back to shop-1.1.0 (deployment staging-5); wait until it settles (`kubectl get pipeline shop -n shop -w`) and run this again",
        ),
    ];
    for (phase, automatic, text) in cases {
        let mut p = with_staging(|e| e.phase = phase);
        p.spec.rollback = Some(RollbackPolicy { automatic });
        let got = plan_rollback(&p, "staging", Some("0.9.0"), &releases()).expect_err("in flight").to_string();
        assert!(got.contains(text), "{phase:?} {automatic:?}: {got}");
    }
    // A rollback in flight is not told to roll back by itself.
    let p = with_staging(|e| e.phase = EnvironmentPhase::RollingBack);
    let got = plan_rollback(&p, "staging", None, &releases()).expect_err("in flight").to_string();
    assert!(got.ends_with("and run this again"), "{got}");
}

#[test]
fn failed_and_awaiting_environments_may_roll_back() {
    for phase in [EnvironmentPhase::Failed, EnvironmentPhase::AwaitingApproval, EnvironmentPhase::Idle] {
        assert_eq!(target(&with_staging(|e| e.phase = phase), "staging", None), Ok("shop-1.0.0".into()), "{phase:?}");
    }
}

#[test]
fn a_release_rolled_back_from_is_no_default_but_may_be_named() {
    // Staging was rolled back from 1.1.0 to 1.0.0 on request: nothing left by default.
    use DeploymentResult::Succeeded;
    let p = with_staging(|e| {
        e.current = Some(DeployedRelease {
            rollback_of: Some("shop-1.1.0".into()),
            ..deployed("1.0.0", "staging-3", "sha256:100")
        });
        e.previous = Some(deployed("1.1.0", "staging-2", "sha256:110"));
        e.history = vec![
            HistoryEntry { rollback_of: Some("shop-1.1.0".into()), ..ran("staging-3", "1.0.0", Succeeded) },
            ran("staging-2", "1.1.0", Succeeded),
            ran("staging-1", "1.0.0", Succeeded),
        ];
    });
    let got = plan_rollback(&p, "staging", None, &releases()).expect_err("nothing by default");
    assert_eq!(
        got.to_string(),
        "nothing to roll back to in environment staging of pipeline shop: every release that finished Healthy there was rolled back from since (shop-1.1.0 (1.1.0)); to restore one anyway, pass it to --to"
    );
    assert_eq!(target(&p, "staging", Some("1.1.0")), Ok("shop-1.1.0".into()));
}

#[test]
fn the_release_must_still_hold_the_artifact_that_ran() {
    let p = shop(vec![development(), staging()], &[]);
    let gone: Vec<Release> = releases().into_iter().filter(|r| r.spec.version != "1.0.0").collect();
    let other_pipeline = releases_with("1.0.0", |r| r.spec.pipeline = "cart".into());
    let failed = releases_with("1.0.0", |r| r.status.as_mut().expect("status").phase = Some(ReleasePhase::Failed));
    let no_status = releases_with("1.0.0", |r| r.status = None);
    let no_artifact = releases_with("1.0.0", |r| r.status.as_mut().expect("status").artifact = None);
    let changed = releases_with("1.0.0", |r| {
        r.status.as_mut().expect("status").artifact.as_mut().expect("artifact").digest = "sha256:999".into();
    });
    let gone_refusal = || Refusal::ReleaseGone { release: "shop-1.0.0".into(), namespace: "shop".into() };
    // (case, releases, refusal, text the message must contain)
    let cases = [
        ("deleted", gone, gone_refusal(), "Release shop-1.0.0 no longer exists in namespace shop"),
        ("now another pipeline's", other_pipeline, gone_refusal(), "re-create it from the same source and version"),
        (
            "packaging failed",
            failed,
            Refusal::NotPackaged {
                release: "shop-1.0.0".into(),
                namespace: "shop".into(),
                phase: ReleasePhase::Failed,
            },
            "Release shop-1.0.0 is Failed, not Packaged, so it has no artifact to re-apply; see why with `kubectl describe release shop-1.0.0 -n shop`",
        ),
        (
            "not packaged yet",
            no_status,
            Refusal::NotPackaged {
                release: "shop-1.0.0".into(),
                namespace: "shop".into(),
                phase: ReleasePhase::Pending,
            },
            "is Pending, not Packaged",
        ),
        (
            "no artifact",
            no_artifact,
            Refusal::NoArtifact { release: "shop-1.0.0".into(), namespace: "shop".into() },
            "records no artifact",
        ),
        (
            "artifact changed",
            changed,
            Refusal::ArtifactChanged {
                release: "shop-1.0.0".into(),
                environment: "staging".into(),
                ran: "sha256:100".into(),
                packaged: "sha256:999".into(),
            },
            "the artifact of Release shop-1.0.0 changed since it ran in environment staging: it ran there as sha256:100, the Release now holds sha256:999",
        ),
    ];
    for (case, releases, want, text) in cases {
        let got = plan_rollback(&p, "staging", None, &releases).expect_err(case);
        assert!(got.to_string().contains(text), "{case}: {got}");
        assert_eq!(got, want, "{case}");
    }
    // No digest recorded for 0.9.0 (it is neither current nor previous): nothing to compare.
    let repackaged = releases_with("0.9.0", |r| {
        r.status.as_mut().expect("status").artifact.as_mut().expect("artifact").digest = "sha256:999".into();
    });
    assert!(plan_rollback(&p, "staging", Some("0.9.0"), &repackaged).is_ok());
}

#[test]
fn a_duplicate_version_must_be_named() {
    let p = with_staging(|e| {
        let mut again = ran("staging-6", "0.9.0", DeploymentResult::Succeeded);
        again.release = "shop-0.9.0-again".into();
        e.history.push(again);
    });
    let got = plan_rollback(&p, "staging", Some("0.9.0"), &releases()).expect_err("ambiguous");
    assert_eq!(
        got.to_string(),
        "version 0.9.0 matches several releases that ran in environment staging (shop-0.9.0, shop-0.9.0-again); pass the Release name to --to"
    );
    assert_eq!(target(&p, "staging", Some("shop-0.9.0")), Ok("shop-0.9.0".into()));
}

#[test]
fn a_request_the_controller_refused_is_not_made_again() {
    let p = with_staging(|e| e.refused_rollback = Some("shop-1.0.0@staging-5".into()));
    let got = plan_rollback(&p, "staging", None, &releases()).expect_err("refused before").to_string();
    assert!(
        got.contains(
            "the controller already refused this request (rollback.conveyor.dev/staging=shop-1.0.0@staging-5)"
        ),
        "{got}"
    );
    assert!(got.contains("Warning Event RollbackRefused (`kubectl describe pipeline shop -n shop`)"), "{got}");
    // One refused for an earlier deployment, or for another release, does not matter.
    let p = with_staging(|e| e.refused_rollback = Some("shop-1.0.0@staging-4".into()));
    assert!(plan_rollback(&p, "staging", None, &releases()).is_ok());
    let p = with_staging(|e| e.refused_rollback = Some("shop-1.0.0@staging-5".into()));
    assert!(plan_rollback(&p, "staging", Some("0.9.0"), &releases()).is_ok());
}

#[test]
fn reports_say_what_happens_next() {
    let plan = |annotations: &[(&str, &str)]| {
        plan_rollback(&shop(vec![development(), staging()], annotations), "staging", None, &releases()).expect("plan")
    };
    let key = "rollback.conveyor.dev/staging";
    // (case, plan, dry run, line)
    let cases = [
        (
            "requested",
            plan(&[]),
            false,
            "rollback of staging requested: shop-1.1.0 → shop-1.0.0 (replaces deployment staging-5); the controller re-applies shop-1.0.0 to staging and verifies it; follow it with: kubectl get pipeline shop -n shop -w",
        ),
        (
            "replacing an earlier request",
            plan(&[(key, "shop-0.9.0@staging-4")]),
            false,
            "rollback of staging requested: shop-1.1.0 → shop-1.0.0 (replaces deployment staging-5), replacing the earlier request shop-0.9.0@staging-4; the controller re-applies shop-1.0.0 to staging and verifies it; follow it with: kubectl get pipeline shop -n shop -w",
        ),
        (
            "already requested",
            plan(&[(key, "shop-1.0.0@staging-5")]),
            false,
            "rollback of staging already requested: shop-1.1.0 → shop-1.0.0 (replaces deployment staging-5); nothing changed; follow it with: kubectl get pipeline shop -n shop -w",
        ),
        (
            "dry run",
            plan(&[]),
            true,
            "dry run: would request rollback of staging: shop-1.1.0 → shop-1.0.0 (replaces deployment staging-5) by setting rollback.conveyor.dev/staging=shop-1.0.0@staging-5; nothing changed",
        ),
    ];
    for (case, plan, dry_run, want) in cases {
        assert_eq!(plan.report(dry_run), want, "{case}");
    }
    assert!(plan(&[(key, "shop-1.0.0@staging-5")]).is_recorded());
    assert!(!plan(&[(key, "shop-1.0.0@staging-4")]).is_recorded());
}
