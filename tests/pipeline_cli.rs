//! `conveyor approve`, `pause`, `resume` and `rollback` end to end: the real binary against the
//! real API server, each test in its own namespace. No controller runs: these commands only record
//! gates and requests as annotations on the Pipeline, and the tests read them back through the API
//! (Pipeline and Release status is written here as the controller would write it).

mod support;

use std::collections::BTreeMap;

use conveyor::api::{Pipeline, Release};
use conveyor::core::environments::rollback_requests;
use conveyor::core::plan::RollbackRequest;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use support::cli::{conveyor, conveyor_with};

const PAUSED: &str = "conveyor.dev/paused";
const ROLLBACK_STAGING: &str = "rollback.conveyor.dev/staging";

/// A namespace with the CRDs installed, Pipeline `checkout` (development Automatic, staging and
/// production Manual, and an annotation of the user's own) and Releases checkout-2.4.0 and
/// checkout-2.4.1, not packaged (no controller runs).
async fn setup(prefix: &str) -> (Api<Pipeline>, String) {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, prefix).await;
    let pipeline: Pipeline = serde_norway::from_str(&format!(
        r#"
apiVersion: conveyor.dev/v1alpha1
kind: Pipeline
metadata:
  name: checkout
  annotations: {{ team: payments }}
spec:
  environments:
    - {{ name: development, namespace: {ns}, approval: Automatic }}
    - {{ name: staging, namespace: {ns}-staging, approval: Manual }}
    - {{ name: production, namespace: {ns}-prod, approval: Manual }}
"#
    ))
    .unwrap();
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    pipelines.create(&PostParams::default(), &pipeline).await.unwrap();
    let releases: Api<Release> = Api::namespaced(client, &ns);
    for version in ["2.4.0", "2.4.1"] {
        let release = support::fixtures::checkout_release(version);
        releases.create(&PostParams::default(), &release).await.unwrap();
    }
    (pipelines, ns)
}

async fn annotations(pipelines: &Api<Pipeline>) -> BTreeMap<String, String> {
    pipelines.get("checkout").await.unwrap().metadata.annotations.unwrap_or_default()
}

/// Pipeline status as the controller would write it: `release` awaits approval in production.
async fn await_approval(pipelines: &Api<Pipeline>, release: &str) {
    let status = json!({"status": {"environments": [
        {"name": "production", "phase": "AwaitingApproval", "awaitingApproval": release}
    ]}});
    pipelines.patch_status("checkout", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

#[tokio::test]
async fn pause_and_resume_record_the_annotation() {
    let (pipelines, ns) = setup("cli-pause").await;

    let run = conveyor(&["pause", "checkout", "-n", &ns]).ok();
    assert_eq!(
        run.stdout,
        format!(
            "paused pipeline checkout (namespace {ns}): no new deployment starts until 'conveyor resume checkout -n {ns}'; deployments in flight finish\n"
        )
    );
    let paused = annotations(&pipelines).await;
    assert_eq!(paused.get(PAUSED).map(String::as_str), Some("true"));
    assert_eq!(paused.get("team").map(String::as_str), Some("payments"), "the user's annotation stays");

    // Again: succeeds, says so, changes nothing.
    let version = pipelines.get("checkout").await.unwrap().metadata.resource_version;
    let run = conveyor(&["pause", "checkout", "--namespace", &ns]).ok();
    assert!(run.stdout.contains("was already paused; nothing changed"), "{}", run.stdout);
    assert_eq!(pipelines.get("checkout").await.unwrap().metadata.resource_version, version);

    let run = conveyor(&["resume", "checkout", "-n", &ns]).ok();
    assert_eq!(run.stdout, format!("resumed pipeline checkout (namespace {ns}): new deployments may start again\n"));
    let resumed = annotations(&pipelines).await;
    assert!(!resumed.contains_key(PAUSED), "{resumed:?}");
    assert_eq!(resumed.get("team").map(String::as_str), Some("payments"));

    let run = conveyor(&["resume", "checkout", "-n", &ns]).ok();
    assert!(run.stdout.contains("was not paused; nothing changed"), "{}", run.stdout);
}

#[tokio::test]
async fn the_namespace_defaults_to_the_kubeconfig_context() {
    let (pipelines, ns) = setup("cli-context").await;
    // A copy of the test kubeconfig whose current context names the test namespace.
    let mut config: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(support::kubeconfig()).unwrap()).unwrap();
    let current = config["current-context"].as_str().unwrap().to_owned();
    let contexts = config["contexts"].as_array_mut().unwrap();
    let context = contexts.iter_mut().find(|c| c["name"] == current.as_str()).unwrap();
    context["context"]["namespace"] = json!(ns);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, serde_norway::to_string(&config).unwrap()).unwrap();

    let run = conveyor_with(&kubeconfig, &["pause", "checkout"]).ok();
    assert!(run.stdout.contains(&format!("(namespace {ns})")), "{}", run.stdout);
    assert_eq!(annotations(&pipelines).await.get(PAUSED).map(String::as_str), Some("true"));
}

#[tokio::test]
async fn approve_records_the_named_release_per_environment() {
    let (pipelines, ns) = setup("cli-approve").await;
    conveyor(&["pause", "checkout", "-n", &ns]).ok();

    let run = conveyor(&["approve", "checkout", "production", "--release", "checkout-2.4.0", "-n", &ns]).ok();
    assert!(
        run.stdout
            .starts_with(&format!("approved checkout-2.4.0 to enter production of pipeline checkout (namespace {ns})")),
        "{}",
        run.stdout
    );
    // The pipeline is paused, and the line says what that means for the approval.
    assert!(run.stdout.contains("the pipeline is paused"), "{}", run.stdout);
    assert_eq!(
        annotations(&pipelines).await.get("approve.conveyor.dev/production").map(String::as_str),
        Some("checkout-2.4.0")
    );

    // A version resolves to the Release's name and replaces the environment's approval.
    let run = conveyor(&["approve", "checkout", "production", "--release", "2.4.1", "-n", &ns]).ok();
    assert!(run.stdout.contains("approved checkout-2.4.1 to enter production"), "{}", run.stdout);
    assert!(run.stdout.contains("replacing the approval of checkout-2.4.0"), "{}", run.stdout);

    // An approval for another environment leaves this one, the pause and the user's annotation alone.
    conveyor(&["approve", "checkout", "staging", "--release", "v2.4.1", "-n", &ns]).ok();
    let all = annotations(&pipelines).await;
    let expected: BTreeMap<String, String> = [
        ("approve.conveyor.dev/production", "checkout-2.4.1"),
        ("approve.conveyor.dev/staging", "checkout-2.4.1"),
        (PAUSED, "true"),
        ("team", "payments"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(all, expected);

    // Approving again is a success that changes nothing.
    let args = ["approve", "checkout", "staging", "--release", "checkout-2.4.1", "-n", &ns];
    repeat_changes_nothing(&pipelines, &args, "was already approved").await;
}

/// Running `args` again succeeds, says `says`, and leaves the Pipeline as it was; what the CLI
/// wrote is under its own field manager, by merge patch (not server-side apply).
async fn repeat_changes_nothing(pipelines: &Api<Pipeline>, args: &[&str], says: &str) {
    let version = pipelines.get("checkout").await.unwrap().metadata.resource_version;
    let run = conveyor(args).ok();
    assert!(run.stdout.contains(says), "{}", run.stdout);
    assert_eq!(pipelines.get("checkout").await.unwrap().metadata.resource_version, version);
    let managed = pipelines.get("checkout").await.unwrap().metadata.managed_fields.unwrap_or_default();
    let cli =
        managed.iter().find(|m| m.manager.as_deref() == Some("conveyor-cli")).expect("conveyor-cli manages fields");
    assert_eq!(cli.operation.as_deref(), Some("Update"));
}

#[tokio::test]
async fn approve_without_release_takes_the_awaited_one() {
    let (pipelines, ns) = setup("cli-awaited").await;

    conveyor(&["approve", "checkout", "production", "-n", &ns])
        .fails_with(&["no release is awaiting approval in environment production", "--release"]);
    assert!(!annotations(&pipelines).await.contains_key("approve.conveyor.dev/production"));

    await_approval(&pipelines, "checkout-2.4.0").await;
    let run = conveyor(&["approve", "checkout", "production", "-n", &ns]).ok();
    assert_eq!(
        run.stdout,
        format!(
            "approved checkout-2.4.0 to enter production of pipeline checkout (namespace {ns}); the controller deploys it to production next\n"
        )
    );
    assert_eq!(
        annotations(&pipelines).await.get("approve.conveyor.dev/production").map(String::as_str),
        Some("checkout-2.4.0")
    );
}

#[tokio::test]
async fn refusals_name_the_fix_and_change_nothing() {
    let (pipelines, ns) = setup("cli-refuse").await;
    await_approval(&pipelines, "checkout-2.4.0").await;
    let before = pipelines.get("checkout").await.unwrap().metadata;

    conveyor(&["approve", "checkout", "prod", "-n", &ns]).fails_with(&[
        "pipeline checkout has no environment `prod`",
        "its environments are: development, staging, production",
    ]);
    conveyor(&["approve", "checkout", "development", "--release", "2.4.1", "-n", &ns])
        .fails_with(&["approval Automatic", "nothing to approve"]);
    conveyor(&["approve", "shop", "production", "-n", &ns])
        .fails_with(&[&format!("no Pipeline `shop` in namespace {ns}"), "-n/--namespace"]);
    conveyor(&["pause", "shop", "-n", &ns]).fails_with(&["no Pipeline `shop`"]);
    conveyor(&["resume", "shop", "-n", &ns]).fails_with(&["no Pipeline `shop`"]);
    conveyor(&["approve", "checkout", "production", "--release", "9.9.9", "-n", &ns]).fails_with(&[
        "no Release `9.9.9` of pipeline checkout",
        "pass one of: checkout-2.4.1 (2.4.1), checkout-2.4.0 (2.4.0)",
    ]);
    conveyor(&["approve", "checkout", "production", "--release", "checkout-9.9.9", "-n", &ns])
        .fails_with(&["no Release `checkout-9.9.9`"]);

    let after = pipelines.get("checkout").await.unwrap().metadata;
    assert_eq!(after.annotations, before.annotations);
    assert_eq!(after.resource_version, before.resource_version, "nothing was written");
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let (pipelines, ns) = setup("cli-dry-run").await;
    await_approval(&pipelines, "checkout-2.4.0").await;
    let before = pipelines.get("checkout").await.unwrap().metadata;

    let run = conveyor(&["pause", "checkout", "-n", &ns, "--dry-run"]).ok();
    assert_eq!(
        run.stdout,
        format!(
            "dry run: would pause pipeline checkout (namespace {ns}) by setting conveyor.dev/paused=true; nothing changed\n"
        )
    );
    let run = conveyor(&["approve", "checkout", "production", "-n", &ns, "--dry-run"]).ok();
    assert!(run.stdout.starts_with("dry run: would approve checkout-2.4.0 to enter production"), "{}", run.stdout);
    conveyor(&["approve", "checkout", "staging", "--release", "2.4.1", "-n", &ns, "--dry-run"]).ok();
    // A dry run refuses what a real run would.
    conveyor(&["approve", "checkout", "development", "-n", &ns, "--dry-run"]).fails_with(&["nothing to approve"]);

    let after = pipelines.get("checkout").await.unwrap().metadata;
    assert_eq!(after.annotations, before.annotations);
    assert_eq!(after.resource_version, before.resource_version);

    // Resuming for real, then a dry-run resume of a paused pipeline leaves it paused.
    conveyor(&["pause", "checkout", "-n", &ns]).ok();
    let run = conveyor(&["resume", "checkout", "-n", &ns, "--dry-run"]).ok();
    assert!(run.stdout.starts_with("dry run: would resume"), "{}", run.stdout);
    assert_eq!(annotations(&pipelines).await.get(PAUSED).map(String::as_str), Some("true"));
}

/// Writes what the controller would have written after this in staging: checkout-2.3.0 healthy
/// (deployment staging-1), checkout-2.4.0 failed and rolled back to 2.3.0 (staging-2, staging-3),
/// checkout-2.4.1 healthy and running (staging-4). Packages the three Releases (2.3.0 is created).
async fn staging_ran(pipelines: &Api<Pipeline>, ns: &str) {
    let releases: Api<Release> = Api::namespaced(support::client().await, ns);
    let mut v230: Release = releases.get("checkout-2.4.0").await.unwrap();
    v230.metadata = kube::api::ObjectMeta { name: Some("checkout-2.3.0".into()), ..Default::default() };
    v230.spec.version = "2.3.0".into();
    releases.create(&PostParams::default(), &v230).await.unwrap();
    for version in ["2.3.0", "2.4.0", "2.4.1"] {
        let digest = format!("sha256:{}", version.replace('.', ""));
        let status = json!({"status": {"phase": "Packaged",
            "artifact": {"digest": digest, "size": 1024, "files": 1, "objects": 1}}});
        let name = format!("checkout-{version}");
        releases.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }
    let at = "2024-05-01T10:00:00Z";
    let ran = |id: &str, version: &str, result: &str| {
        json!({"deploymentId": id, "release": format!("checkout-{version}"), "version": version,
            "result": result, "startedAt": at, "finishedAt": at})
    };
    let deployed = |id: &str, version: &str| {
        json!({"deploymentId": id, "release": format!("checkout-{version}"), "version": version,
            "digest": format!("sha256:{}", version.replace('.', "")), "since": at, "appliedAt": at})
    };
    let mut rollback = ran("staging-3", "2.3.0", "Succeeded");
    rollback["rollbackOf"] = json!("checkout-2.4.0");
    let mut previous = deployed("staging-3", "2.3.0");
    previous["rollbackOf"] = json!("checkout-2.4.0");
    let status = json!({"status": {"environments": [{
        "name": "staging", "phase": "Healthy", "deployments": 4,
        "current": deployed("staging-4", "2.4.1"),
        "previous": previous,
        "history": [
            ran("staging-4", "2.4.1", "Succeeded"),
            rollback,
            ran("staging-2", "2.4.0", "RolledBack"),
            ran("staging-1", "2.3.0", "Succeeded"),
        ],
    }]}});
    pipelines.patch_status("checkout", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

#[tokio::test]
async fn rollback_records_the_request_for_the_running_deployment() {
    let (pipelines, ns) = setup("cli-rollback").await;
    staging_ran(&pipelines, &ns).await;

    let run = conveyor(&["rollback", "checkout", "staging", "-n", &ns]).ok();
    assert_eq!(
        run.stdout,
        format!(
            "rollback of staging requested: checkout-2.4.1 → checkout-2.3.0 (replaces deployment staging-4); the controller re-applies checkout-2.3.0 to staging and verifies it; follow it with: kubectl get pipeline checkout -n {ns} -w\n"
        )
    );
    let all = annotations(&pipelines).await;
    assert_eq!(all.get(ROLLBACK_STAGING).map(String::as_str), Some("checkout-2.3.0@staging-4"));
    assert_eq!(all.get("team").map(String::as_str), Some("payments"), "the user's annotation stays");
    // As the controller reads it.
    assert_eq!(
        rollback_requests(&all).get("staging"),
        Some(&RollbackRequest { release: "checkout-2.3.0".into(), after: "staging-4".into() })
    );

    // Asking again, by version, is a success that changes nothing.
    let args = ["rollback", "checkout", "staging", "--to", "2.3.0", "-n", &ns];
    repeat_changes_nothing(&pipelines, &args, "rollback of staging already requested").await;
}

#[tokio::test]
async fn rollback_refusals_name_the_fix_and_change_nothing() {
    let (pipelines, ns) = setup("cli-rollback-refuse").await;
    staging_ran(&pipelines, &ns).await;
    let before = pipelines.get("checkout").await.unwrap().metadata;

    // Ran in staging, but failed there; and never ran there at all.
    conveyor(&["rollback", "checkout", "staging", "--to", "2.4.0", "-n", &ns]).fails_with(&[
        "2.4.0 never finished Healthy in environment staging of pipeline checkout",
        "pass one that finished Healthy there to --to: checkout-2.3.0 (2.3.0)",
    ]);
    conveyor(&["rollback", "checkout", "staging", "--to", "9.9.9", "-n", &ns])
        .fails_with(&["9.9.9 never finished Healthy", "checkout-2.3.0 (2.3.0)"]);
    conveyor(&["rollback", "checkout", "staging", "--to", "checkout-2.4.1", "-n", &ns])
        .fails_with(&["checkout-2.4.1 is what environment staging of pipeline checkout runs now"]);
    conveyor(&["rollback", "checkout", "production", "-n", &ns])
        .fails_with(&["nothing has run in environment production of pipeline checkout yet"]);
    conveyor(&["rollback", "checkout", "prod", "-n", &ns])
        .fails_with(&["its environments are: development, staging, production"]);
    conveyor(&["rollback", "shop", "staging", "-n", &ns])
        .fails_with(&[&format!("no Pipeline `shop` in namespace {ns}"), "-n/--namespace"]);

    // The target's Release no longer holds what ran in staging.
    let releases: Api<Release> = Api::namespaced(support::client().await, &ns);
    let changed = json!({"status": {"artifact": {"digest": "sha256:other", "size": 1, "files": 1, "objects": 1}}});
    releases.patch_status("checkout-2.3.0", &PatchParams::default(), &Patch::Merge(&changed)).await.unwrap();
    conveyor(&["rollback", "checkout", "staging", "-n", &ns]).fails_with(&[
        "the artifact of Release checkout-2.3.0 changed since it ran in environment staging",
        "it ran there as sha256:230, the Release now holds sha256:other",
    ]);

    let after = pipelines.get("checkout").await.unwrap().metadata;
    assert_eq!(after.annotations, before.annotations);
    assert_eq!(after.resource_version, before.resource_version, "nothing was written");
}

#[tokio::test]
async fn rollback_dry_run_changes_nothing() {
    let (pipelines, ns) = setup("cli-rollback-dry").await;
    staging_ran(&pipelines, &ns).await;
    let before = pipelines.get("checkout").await.unwrap().metadata;

    let run = conveyor(&["rollback", "checkout", "staging", "--to", "checkout-2.3.0", "-n", &ns, "--dry-run"]).ok();
    assert_eq!(
        run.stdout,
        "dry run: would request rollback of staging: checkout-2.4.1 → checkout-2.3.0 (replaces deployment staging-4) by setting rollback.conveyor.dev/staging=checkout-2.3.0@staging-4; nothing changed\n"
    );
    // A dry run refuses what a real run would.
    conveyor(&["rollback", "checkout", "staging", "--to", "2.4.0", "-n", &ns, "--dry-run"])
        .fails_with(&["never finished Healthy"]);

    let after = pipelines.get("checkout").await.unwrap().metadata;
    assert_eq!(after.annotations, before.annotations);
    assert_eq!(after.resource_version, before.resource_version);
}

/// kubectl runs `kubectl conveyor …` as `kubectl-conveyor …` found on PATH: the binary answers
/// to that name as well.
#[tokio::test]
async fn rollback_runs_as_a_kubectl_plugin() {
    let (pipelines, ns) = setup("cli-rollback-plugin").await;
    staging_ran(&pipelines, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-conveyor");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_conveyor"), &plugin).unwrap();

    let out = std::process::Command::new(&plugin)
        .env("KUBECONFIG", support::kubeconfig())
        .args(["rollback", "checkout", "staging", "-n", &ns])
        .output()
        .unwrap();
    let run = support::cli::Run::from(out).ok();
    assert!(run.stdout.starts_with("rollback of staging requested"), "{}", run.stdout);
    assert_eq!(
        annotations(&pipelines).await.get(ROLLBACK_STAGING).map(String::as_str),
        Some("checkout-2.3.0@staging-4")
    );
}
