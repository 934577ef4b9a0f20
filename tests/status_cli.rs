//! `conveyor status` end to end: the real binary against the real API server, each test in its
//! own namespace. No controller runs: Pipeline and Release status is written here as the
//! controller would write it, and the command reads it back.

mod support;

use conveyor::api::{Pipeline, Release};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::cli::conveyor;

const AT: &str = "2024-05-01T10:00:00Z";
const DONE: &str = "2024-05-01T10:01:30Z";

/// A namespace with Pipeline `checkout` (development, staging) and Releases 2.3.0, 2.4.0 and
/// 2.4.1 (tagged, packaged), and the status the controller would have written after: 2.3.0 and
/// 2.4.1 healthy in development; in staging 2.3.0 healthy (staging-1), 2.4.0 failed its check and
/// rolled back to 2.3.0 (staging-2, staging-3), 2.4.1 healthy and running (staging-4).
async fn setup(prefix: &str) -> String {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, prefix).await;
    let pipeline: Pipeline = serde_norway::from_str(&format!(
        r#"
apiVersion: conveyor.dev/v1alpha1
kind: Pipeline
metadata: {{ name: checkout }}
spec:
  environments:
    - {{ name: development, namespace: {ns} }}
    - {{ name: staging, namespace: {ns}-staging }}
"#
    ))
    .unwrap();
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    pipelines.create(&PostParams::default(), &pipeline).await.unwrap();
    let releases: Api<Release> = Api::namespaced(client, &ns);
    for version in ["2.3.0", "2.4.0", "2.4.1"] {
        let release = support::fixtures::checkout_release(version);
        let name = format!("checkout-{version}");
        releases.create(&PostParams::default(), &release).await.unwrap();
        let status = json!({"status": {"phase": "Packaged", "commit": format!("c0ffee{}", version.replace('.', "")),
            "notes": format!("Release {version}"),
            "artifact": {"digest": digest(version), "size": 1024, "files": 1, "objects": 1}}});
        releases.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }

    let ran = |id: &str, version: &str, result: &str| {
        json!({"deploymentId": id, "release": format!("checkout-{version}"), "version": version,
            "result": result, "startedAt": AT, "finishedAt": DONE})
    };
    let deployed = |id: &str, version: &str| {
        json!({"deploymentId": id, "release": format!("checkout-{version}"), "version": version,
            "digest": digest(version), "since": AT, "appliedAt": AT})
    };
    let mut failed = ran("staging-2", "2.4.0", "RolledBack");
    failed["reason"] = json!("Prometheus check error-rate failed (1 failure): value 0.2 is not < 0.05");
    failed["checks"] = json!([{"name": "error-rate", "type": "Prometheus", "result": "Failed",
        "message": "value 0.2 is not < 0.05", "failures": 1, "at": DONE}]);
    let mut rollback = ran("staging-3", "2.3.0", "Succeeded");
    rollback["rollbackOf"] = json!("checkout-2.4.0");
    let message = "development=2.4.1 staging=2.4.1";
    let condition = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "Succeeded", "message": message,
            "lastTransitionTime": AT, "observedGeneration": 1})
    };
    let status = json!({"status": {
    "conditions": [condition("Ready", "True"), condition("Reconciling", "False"), condition("Stalled", "False")],
    "environments": [
        {"name": "development", "phase": "Healthy", "deployments": 2,
         "current": deployed("development-2", "2.4.1"),
         "history": [ran("development-2", "2.4.1", "Succeeded"), ran("development-1", "2.3.0", "Succeeded")]},
        {"name": "staging", "phase": "Healthy", "deployments": 4,
         "current": deployed("staging-4", "2.4.1"),
         "history": [ran("staging-4", "2.4.1", "Succeeded"), rollback, failed, ran("staging-1", "2.3.0", "Succeeded")]},
    ]}});
    pipelines.patch_status("checkout", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    ns
}

fn digest(version: &str) -> String {
    format!("sha256:{}", version.replace('.', ""))
}

#[tokio::test]
async fn the_table_shows_each_environment() {
    let ns = setup("cli-status-table").await;
    let run = conveyor(&["status", "checkout", "-n", &ns]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], format!("checkout (namespace {ns}): Ready Succeeded: development=2.4.1 staging=2.4.1"));
    let cells = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(cells(lines[1]), ["ENVIRONMENT", "PHASE", "VERSION", "SINCE", "CHECKS", "NOTE"]);
    // (environment, phase, version); SINCE depends on the clock.
    for (line, want) in lines[2..].iter().zip([("development", "Healthy", "2.4.1"), ("staging", "Healthy", "2.4.1")]) {
        let cells = cells(line);
        assert_eq!((cells[0].as_str(), cells[1].as_str(), cells[2].as_str()), want, "{line}");
        assert!(cells[3].ends_with('d'), "running since 2024: {line}");
    }
    assert_eq!(lines.len(), 4, "{}", run.stdout);

    // Without PIPELINE: every Pipeline of the namespace, the same table.
    let all = conveyor(&["status", "-n", &ns]).ok();
    assert_eq!(all.stdout, run.stdout);
    // Every namespace: this table among the others.
    let everywhere = conveyor(&["status", "-A"]).ok();
    assert!(everywhere.stdout.contains(&run.stdout), "{}", everywhere.stdout);
}

#[tokio::test]
async fn json_and_yaml_report_every_deployment() {
    let ns = setup("cli-status-json").await;
    let json: Value = serde_json::from_str(&conveyor(&["status", "checkout", "-n", &ns, "-o", "json"]).ok().stdout)
        .expect("the output is JSON");
    let entries = json.as_array().expect("a JSON array");
    let outline: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["deployment"]["deployment_id"].as_str().unwrap(), e["deployment"]["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outline,
        [
            ("development-2", "Succeeded"),
            ("development-1", "Succeeded"),
            ("staging-4", "Succeeded"),
            ("staging-3", "Succeeded"),
            ("staging-2", "RolledBack"),
            ("staging-1", "Succeeded"),
        ]
    );
    for entry in entries {
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(entry), ["deployment", "release_info", "rollback_capability", "validation_results"]);
        let want = [
            (
                "deployment",
                &["deployment_id", "duration_seconds", "end_time", "environment", "start_time", "status", "version"][..],
            ),
            ("release_info", &["commit_hash", "release_notes", "released_by", "tag", "version"]),
            ("validation_results", &["functional_tests", "health_checks", "post_deployment", "pre_deployment"]),
            ("rollback_capability", &["available", "previous_version", "rollback_possible"]),
        ];
        for (part, fields) in want {
            assert_eq!(keys(&entry[part]), fields, "{part}");
        }
    }

    let succeeded = &entries[2];
    assert_eq!(
        succeeded,
        &json!({
            "deployment": {"deployment_id": "staging-4", "version": "2.4.1", "environment": "staging",
                "status": "Succeeded", "start_time": AT, "end_time": DONE, "duration_seconds": 90},
            "release_info": {"version": "2.4.1", "tag": "v2.4.1", "commit_hash": "c0ffee241",
                "release_notes": "Release 2.4.1", "released_by": null},
            "validation_results": {
                "pre_deployment": {"result": "Passed", "message": null},
                "post_deployment": {"result": "Passed", "message": null},
                "health_checks": [], "functional_tests": null},
            "rollback_capability": {"available": true, "previous_version": "2.3.0", "rollback_possible": true},
        })
    );
    let rolled_back = &entries[4];
    assert_eq!(
        rolled_back,
        &json!({
            "deployment": {"deployment_id": "staging-2", "version": "2.4.0", "environment": "staging",
                "status": "RolledBack", "start_time": AT, "end_time": DONE, "duration_seconds": 90},
            "release_info": {"version": "2.4.0", "tag": "v2.4.0", "commit_hash": "c0ffee240",
                "release_notes": "Release 2.4.0", "released_by": null},
            "validation_results": {
                "pre_deployment": {"result": "Passed", "message": null},
                "post_deployment": {"result": "Passed", "message": null},
                "health_checks": [{"name": "error-rate", "type": "Prometheus", "result": "Failed",
                    "message": "value 0.2 is not < 0.05", "at": DONE}],
                "functional_tests": null},
            "rollback_capability": {"available": true, "previous_version": "2.3.0", "rollback_possible": true},
        })
    );

    let yaml: Value = serde_norway::from_str(&conveyor(&["status", "checkout", "-n", &ns, "-o", "yaml"]).ok().stdout)
        .expect("the output is YAML");
    assert_eq!(yaml, json);
}

#[tokio::test]
async fn an_unknown_pipeline_is_an_error() {
    let ns = setup("cli-status-unknown").await;
    conveyor(&["status", "cart", "-n", &ns])
        .fails_with(&[&format!("no Pipeline `cart` in namespace {ns}"), "kubectl get pipelines -A"]);
    // An empty namespace is not an error: nothing to show.
    let client = support::client().await;
    let empty = support::namespace(&client, "cli-status-empty").await;
    let run = conveyor(&["status", "-n", &empty]).ok();
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains(&format!("no Pipelines in namespace {empty}")), "{}", run.stderr);
    assert_eq!(conveyor(&["status", "-n", &empty, "-o", "json"]).ok().stdout.trim(), "[]");
}
