use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};

use super::*;
use crate::api::pipeline::{DeployedRelease, DeploymentResult, HistoryEntry, PipelineStatus, RollbackPolicy};
use crate::api::release::{Artifact, CheckType, ReleasePhase, ReleaseStatus};
use crate::core::fixtures::{condition, pipeline_spec, release, release_spec, t};

/// Seconds since the epoch the fixtures' deployments start at (2023-11-14T22:13:20Z).
const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> Time {
    Time(t(T0 + secs))
}

/// `shop-<version>` running since `T0 + since`, applied.
fn deployed(version: &str, id: &str, since: i64) -> DeployedRelease {
    DeployedRelease {
        release: format!("shop-{version}"),
        version: version.into(),
        digest: Some(format!("sha256:{}", version.replace('.', ""))),
        since: Some(at(since)),
        deployment_id: Some(id.into()),
        healthy_since: None,
        applied_at: Some(at(since + 1)),
        rollback_of: None,
    }
}

/// A deployment of `shop-<version>` that ran from `T0 + start` for 90 seconds.
fn ran(id: &str, version: &str, result: DeploymentResult, start: i64) -> HistoryEntry {
    HistoryEntry {
        deployment_id: id.into(),
        release: format!("shop-{version}"),
        version: version.into(),
        result,
        started_at: at(start),
        finished_at: Some(at(start + 90)),
        reason: None,
        rollback_of: None,
        checks: Vec::new(),
    }
}

fn check(name: &str, type_: CheckType, result: CheckVerdict, message: Option<&str>, when: Option<i64>) -> CheckResult {
    CheckResult {
        name: name.into(),
        type_,
        result,
        message: message.map(Into::into),
        successes: None,
        failures: None,
        at: when.map(at),
    }
}

const FAILED_WHY: &str = "Prometheus check error-rate failed (1 failure): value 0.2 is not < 0.05";

/// development runs 1.1.0, healthy, both HTTP checks passed; staging failed 1.1.0 and was
/// rolled back to 1.0.0 automatically; production verifies 1.0.0 (in flight).
fn shop() -> Pipeline {
    use DeploymentResult::{RolledBack, Succeeded};
    let passed_http = |name| check(name, CheckType::Http, CheckVerdict::Passed, Some("200 OK"), Some(250));
    let development = EnvironmentStatus {
        name: "development".into(),
        phase: EnvironmentPhase::Healthy,
        current: Some(deployed("1.1.0", "development-2", 200)),
        checks: vec![passed_http("home"), passed_http("api")],
        history: vec![
            HistoryEntry {
                checks: vec![passed_http("home"), passed_http("api")],
                ..ran("development-2", "1.1.0", Succeeded, 200)
            },
            ran("development-1", "1.0.0", Succeeded, 0),
        ],
        ..EnvironmentStatus::default()
    };
    let error_rate = check("error-rate", CheckType::Prometheus, CheckVerdict::Failed, Some("value 0.2"), Some(450));
    let staging = EnvironmentStatus {
        name: "staging".into(),
        phase: EnvironmentPhase::Healthy,
        current: Some(DeployedRelease {
            rollback_of: Some("shop-1.1.0".into()),
            ..deployed("1.0.0", "staging-3", 500)
        }),
        reason: Some(format!("shop-1.1.0 failed: {FAILED_WHY}; rolled back to shop-1.0.0")),
        history: vec![
            HistoryEntry {
                rollback_of: Some("shop-1.1.0".into()),
                reason: Some("restored after shop-1.1.0 failed".into()),
                ..ran("staging-3", "1.0.0", Succeeded, 500)
            },
            HistoryEntry {
                reason: Some(FAILED_WHY.into()),
                checks: vec![error_rate],
                ..ran("staging-2", "1.1.0", RolledBack, 400)
            },
            ran("staging-1", "1.0.0", Succeeded, 100),
        ],
        ..EnvironmentStatus::default()
    };
    let production = EnvironmentStatus {
        name: "production".into(),
        phase: EnvironmentPhase::Verifying,
        current: Some(deployed("1.0.0", "production-1", 700)),
        checks: vec![check("home", CheckType::Http, CheckVerdict::Pending, None, None)],
        deployments: Some(1),
        ..EnvironmentStatus::default()
    };
    let spec = pipeline_spec(&[("development", "shop-dev"), ("staging", "shop-staging"), ("production", "shop-prod")]);
    let mut p = Pipeline::new("shop", spec);
    p.metadata.namespace = Some("shop".into());
    p.status = Some(PipelineStatus {
        conditions: vec![
            condition("Ready", "False", "Deploying", "production: Verifying shop-1.0.0 (production-1)"),
            condition("Reconciling", "True", "Deploying", "production: Verifying shop-1.0.0 (production-1)"),
            condition("Stalled", "False", "Deploying", "production: Verifying shop-1.0.0 (production-1)"),
        ],
        environments: vec![development, staging, production],
        ..PipelineStatus::default()
    });
    p
}

/// shop-1.0.0 (tag v1.0.0, commit and notes recorded) and shop-1.1.0, both packaged.
fn releases() -> Vec<Release> {
    ["1.0.0", "1.1.0"]
        .into_iter()
        .map(|version| {
            let mut spec = release_spec(version);
            if let Some(git) = spec.source.as_mut().and_then(|s| s.git.as_mut()) {
                git.reference.tag = Some(format!("v{version}"));
            }
            let mut r = release(&format!("shop-{version}"), spec, 0);
            r.status = Some(ReleaseStatus {
                phase: Some(ReleasePhase::Packaged),
                commit: Some(format!("c0ffee{}", version.replace('.', ""))),
                notes: Some(format!("## {version}\n- fixes")),
                artifact: Some(Artifact {
                    digest: "sha256:x".into(),
                    size: 1,
                    files: 1,
                    objects: 1,
                    environments: Vec::new(),
                }),
                ..ReleaseStatus::default()
            });
            r
        })
        .collect()
}

#[test]
fn rows_show_each_environment_in_spec_order() {
    let now = t(T0 + 800);
    let row = |environment: &str, phase: &str, version: &str, since: &str, checks: &str, note: &str| Row {
        environment: environment.into(),
        phase: phase.into(),
        version: version.into(),
        since: since.into(),
        checks: checks.into(),
        note: note.into(),
    };
    assert_eq!(
        rows(&shop(), now),
        [
            row("development", "Healthy", "1.1.0", "10m", "2/2 passed", "-"),
            row("staging", "Healthy", "1.0.0", "5m", "-", "rolled back from shop-1.1.0"),
            row("production", "Verifying", "1.0.0", "100s", "0/1 passed", "-"),
        ]
    );
}

#[test]
fn the_table_is_aligned_under_a_headline() {
    let want = "\
shop (namespace shop): Reconciling Deploying: production: Verifying shop-1.0.0 (production-1)
ENVIRONMENT  PHASE      VERSION  SINCE  CHECKS      NOTE
development  Healthy    1.1.0    10m    2/2 passed  -
staging      Healthy    1.0.0    5m     -           rolled back from shop-1.1.0
production   Verifying  1.0.0    100s   0/1 passed  -
";
    assert_eq!(table(&shop(), t(T0 + 800)), want);
}

#[test]
fn an_environment_without_status_is_idle() {
    let mut p = shop();
    p.status = None;
    let table = table(&p, t(T0));
    assert!(table.starts_with("shop (namespace shop): no status yet (is the controller running?)\n"), "{table}");
    assert!(table.contains("\nproduction   Idle   -        -      -       -\n"), "{table}");
}

#[test]
fn the_headline_shows_the_condition_that_holds() {
    let with = |conditions: Vec<Condition>| {
        let mut p = shop();
        p.status.as_mut().expect("fixture has status").conditions = conditions;
        headline(&p)
    };
    let long = format!("staging: {}", "x".repeat(200));
    // (case, conditions, headline)
    let cases = [
        (
            "stalled wins",
            vec![
                condition("Ready", "False", "DeploymentFailed", "staging: failed"),
                condition("Stalled", "True", "DeploymentFailed", "staging:\n failed"),
            ],
            "shop (namespace shop): Stalled DeploymentFailed: staging: failed".to_owned(),
        ),
        (
            "ready",
            vec![condition("Ready", "True", "Succeeded", "development=1.1.0 staging=1.0.0")],
            "shop (namespace shop): Ready Succeeded: development=1.1.0 staging=1.0.0".to_owned(),
        ),
        (
            "none holds",
            vec![condition("Ready", "False", "Progressing", "starting")],
            "shop (namespace shop): Ready=False Progressing: starting".to_owned(),
        ),
        (
            "cut short",
            vec![condition("Stalled", "True", "RolledBack", &long)],
            format!("shop (namespace shop): Stalled RolledBack: staging: {}…", "x".repeat(HEADER_WIDTH - 53)),
        ),
    ];
    for (case, conditions, want) in cases {
        let got = with(conditions);
        assert_eq!(got, want, "{case}");
        assert!(got.chars().count() <= HEADER_WIDTH, "{case}");
    }
}

#[test]
fn notes_say_what_waits_or_went_wrong() {
    let base = EnvironmentStatus { name: "production".into(), ..EnvironmentStatus::default() };
    let rolled = DeployedRelease { rollback_of: Some("shop-1.1.0".into()), ..deployed("1.0.0", "production-3", 0) };
    // (case, status, note)
    let cases = [
        ("nothing to say", base.clone(), "-".to_owned()),
        (
            "awaiting approval",
            EnvironmentStatus {
                phase: EnvironmentPhase::AwaitingApproval,
                awaiting_approval: Some("shop-1.1.0".into()),
                ..base.clone()
            },
            "awaiting approval: shop-1.1.0".to_owned(),
        ),
        (
            "rolling back",
            EnvironmentStatus { phase: EnvironmentPhase::RollingBack, current: Some(rolled.clone()), ..base.clone() },
            "rolling back from shop-1.1.0".to_owned(),
        ),
        (
            "rolled back, a newer release waiting",
            EnvironmentStatus {
                current: Some(rolled),
                reason: Some("shop-1.1.0 failed: …; rolled back to shop-1.0.0".into()),
                awaiting_approval: Some("shop-1.2.0".into()),
                ..base.clone()
            },
            "rolled back from shop-1.1.0; awaiting approval: shop-1.2.0".to_owned(),
        ),
        (
            "failed, cut short",
            EnvironmentStatus {
                phase: EnvironmentPhase::Failed,
                reason: Some(format!("shop-1.1.0 failed: {FAILED_WHY}; automatic rollback is off")),
                ..base
            },
            "shop-1.1.0 failed: Prometheus check error-rate failed (1 fa…".to_owned(),
        ),
    ];
    for (case, status, want) in cases {
        assert_eq!(note(&status), want, "{case}");
    }
}

#[test]
fn check_summaries_and_ages() {
    let c = |name, result| check(name, CheckType::Http, result, None, None);
    use CheckVerdict::{Failed, Passed, Pending};
    // (checks, summary)
    let cases = [
        (vec![], "-"),
        (vec![c("a", Passed), c("b", Passed), c("c", Pending)], "2/3 passed"),
        (vec![c("a", Passed), c("error-rate", Failed)], "error-rate failed"),
        (vec![c("a", Failed), c("b", Failed)], "a, b failed"),
    ];
    for (checks, want) in cases {
        assert_eq!(checks_summary(&checks), want, "{checks:?}");
    }
    // (seconds ago, age)
    for (secs, want) in
        [(-5, "0s"), (45, "45s"), (119, "119s"), (300, "5m"), (7199, "119m"), (7200, "2h"), (3 * 86400, "3d")]
    {
        assert_eq!(age(t(T0), t(T0 + secs)), want, "{secs}s");
    }
}

/// (environment, deployment id, status) of each report entry, in order.
fn outline(report: &[DeploymentReport]) -> Vec<(&str, &str, &str)> {
    report
        .iter()
        .map(|r| (r.deployment.environment.as_str(), r.deployment.deployment_id.as_str(), r.deployment.status.as_str()))
        .collect()
}

#[test]
fn the_report_lists_every_deployment_newest_first_per_environment() {
    let report = report(&shop(), &releases());
    assert_eq!(
        outline(&report),
        [
            ("development", "development-2", "Succeeded"),
            ("development", "development-1", "Succeeded"),
            ("staging", "staging-3", "Succeeded"),
            ("staging", "staging-2", "RolledBack"),
            ("staging", "staging-1", "Succeeded"),
            ("production", "production-1", "Verifying"),
        ]
    );
}

#[test]
fn a_succeeded_deployment_reports_its_release_checks_and_rollback() {
    let report = report(&shop(), &releases());
    let got = serde_json::to_value(&report[0]).expect("serializes");
    let want = json!({
        "deployment": {
            "deployment_id": "development-2", "version": "1.1.0", "environment": "development",
            "status": "Succeeded", "start_time": "2023-11-14T22:16:40Z", "end_time": "2023-11-14T22:18:10Z",
            "duration_seconds": 90,
        },
        "release_info": {
            "version": "1.1.0", "tag": "v1.1.0", "commit_hash": "c0ffee110", "release_notes": "## 1.1.0\n- fixes",
            "released_by": null,
        },
        "validation_results": {
            "pre_deployment": {"result": "Passed", "message": null},
            "post_deployment": {"result": "Passed", "message": null},
            "health_checks": [
                {"name": "home", "type": "Http", "result": "Passed", "message": "200 OK", "at": "2023-11-14T22:17:30Z"},
                {"name": "api", "type": "Http", "result": "Passed", "message": "200 OK", "at": "2023-11-14T22:17:30Z"},
            ],
            "functional_tests": null,
        },
        "rollback_capability": {"available": true, "previous_version": "1.0.0", "rollback_possible": true},
    });
    assert_eq!(got, want);
}

#[test]
fn a_rolled_back_deployment_reports_its_failed_check_and_what_was_restored() {
    let report = report(&shop(), &releases());
    let got = serde_json::to_value(&report[3]).expect("serializes");
    assert_eq!(got["deployment"]["status"], "RolledBack");
    assert_eq!(got["deployment"]["version"], "1.1.0");
    // The check failed after the workloads became ready.
    assert_eq!(got["validation_results"]["pre_deployment"], json!({"result": "Passed", "message": null}));
    assert_eq!(got["validation_results"]["post_deployment"], json!({"result": "Passed", "message": null}));
    assert_eq!(
        got["validation_results"]["health_checks"],
        json!([{"name": "error-rate", "type": "Prometheus", "result": "Failed", "message": "value 0.2", "at": "2023-11-14T22:20:50Z"}])
    );
    assert_eq!(
        got["rollback_capability"],
        json!({"available": true, "previous_version": "1.0.0", "rollback_possible": true})
    );
    // The restore that followed has nothing left to go back to: 1.1.0 was rolled back from.
    let restore = serde_json::to_value(&report[2]).expect("serializes");
    assert_eq!(
        restore["rollback_capability"],
        json!({"available": false, "previous_version": null, "rollback_possible": false})
    );
}

#[test]
fn a_deployment_in_flight_has_no_end_yet() {
    let report = report(&shop(), &releases());
    let got = serde_json::to_value(&report[5]).expect("serializes");
    assert_eq!(
        got["deployment"],
        json!({
            "deployment_id": "production-1", "version": "1.0.0", "environment": "production", "status": "Verifying",
            "start_time": "2023-11-14T22:25:00Z", "end_time": null, "duration_seconds": null,
        })
    );
    assert_eq!(got["validation_results"]["pre_deployment"]["result"], "Passed");
    assert_eq!(got["validation_results"]["post_deployment"], json!({"result": "Pending", "message": null}));
    assert_eq!(got["rollback_capability"]["available"], false);
}

#[test]
fn validation_results_follow_how_the_deployment_ended() {
    let not_applied = HistoryEntry {
        reason: Some("shop-1.2.0 was not applied: ConfigMap/bad: invalid name".into()),
        ..ran("production-2", "1.2.0", DeploymentResult::Failed, 900)
    };
    let never_ready = HistoryEntry {
        reason: Some("not healthy within 5m: 1 of 1 workloads not ready: Deployment/web: 0 of 2 pods ready".into()),
        checks: vec![check("home", CheckType::Http, CheckVerdict::Pending, None, None)],
        ..ran("production-3", "1.2.1", DeploymentResult::Failed, 1000)
    };
    let deploying = DeployedRelease { applied_at: None, ..deployed("1.2.2", "production-4", 1100) };
    let mut p = shop();
    let production = &mut p.status.as_mut().expect("fixture has status").environments[2];
    production.phase = EnvironmentPhase::Deploying;
    production.current = Some(deploying);
    production.checks = Vec::new();
    production.history = vec![never_ready, not_applied];
    let report = report(&p, &releases());
    let results = |id: &str| {
        let entry = report.iter().find(|r| r.deployment.deployment_id == id).expect("reported");
        serde_json::to_value(&entry.validation_results).expect("serializes")
    };
    assert_eq!(results("production-4")["pre_deployment"], json!({"result": "Pending", "message": null}));
    assert_eq!(results("production-4")["post_deployment"], Value::Null);
    assert_eq!(
        results("production-3")["post_deployment"],
        json!({"result": "Failed", "message": "not healthy within 5m: 1 of 1 workloads not ready: Deployment/web: 0 of 2 pods ready"})
    );
    assert_eq!(
        results("production-2")["pre_deployment"],
        json!({"result": "Failed", "message": "shop-1.2.0 was not applied: ConfigMap/bad: invalid name"})
    );
    assert_eq!(results("production-2")["post_deployment"], Value::Null);
}

#[test]
fn a_rollback_is_possible_only_while_its_release_is_packaged() {
    let mut gone = releases();
    gone.retain(|r| r.spec.version != "1.0.0");
    let mut failed = releases();
    failed[0].status.as_mut().expect("fixture has status").phase = Some(ReleasePhase::Failed);
    for (case, releases) in [("gone", gone), ("not packaged", failed)] {
        let report = report(&shop(), &releases);
        assert_eq!(
            serde_json::to_value(&report[0].rollback_capability).expect("serializes"),
            json!({"available": true, "previous_version": "1.0.0", "rollback_possible": false}),
            "{case}"
        );
    }
}

#[test]
fn a_deleted_release_keeps_the_version_only() {
    let report = report(&shop(), &[]);
    assert_eq!(
        serde_json::to_value(&report[0].release_info).expect("serializes"),
        json!({"version": "1.1.0", "tag": null, "commit_hash": null, "release_notes": null, "released_by": null})
    );
}

#[test]
fn yaml_and_json_carry_the_same_report() {
    let mut other = shop();
    other.metadata.name = Some("cart".into());
    other.spec.rollback = Some(RollbackPolicy { automatic: Some(false) });
    let pipelines = [shop(), other];
    let json: Value = serde_json::from_str(&render(&pipelines, &releases(), Output::Json, t(T0)).expect("json"))
        .expect("JSON parses");
    let yaml: Value = serde_norway::from_str(&render(&pipelines, &releases(), Output::Yaml, t(T0)).expect("yaml"))
        .expect("YAML parses");
    assert_eq!(json, yaml);
    // Both pipelines, every entry with exactly the report's keys.
    assert_eq!(json.as_array().expect("an array").len(), 12);
    for entry in json.as_array().expect("an array") {
        let keys: Vec<&str> = entry.as_object().expect("an object").keys().map(String::as_str).collect();
        assert_eq!(keys, ["deployment", "release_info", "rollback_capability", "validation_results"]);
    }
    // Releases of another pipeline are not confused with this one's.
    assert_eq!(json[6]["release_info"]["tag"], Value::Null);
}

#[test]
fn several_pipelines_print_one_table_each() {
    let mut other = shop();
    other.metadata.name = Some("cart".into());
    let text = render(&[shop(), other], &[], Output::Table, t(T0 + 800)).expect("table");
    assert!(text.starts_with("shop (namespace shop):"), "{text}");
    assert!(text.contains("\n\ncart (namespace shop):"), "{text}");
}
