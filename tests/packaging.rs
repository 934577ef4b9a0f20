//! Packaging on real repositories: `conveyor package` and the controller agree on the digest,
//! artifacts are reproducible across clones, refs resolve, bad content stalls with a named
//! reason and stores nothing, a packaged spec is frozen, and a lost artifact is rebuilt.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use conveyor::api::{Pipeline, Release};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::ControllerProcess;
use support::git::{GitRepo, sample_manifests};

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is(conditions: &[Condition], type_: &str, status: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == status)
}

/// Runs `conveyor package … -o json` and returns its report.
fn package_cli(repo: &Path, reference: &str, path: &str, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .args(["package", "--repo", &repo.display().to_string(), "--ref", reference, "--path", path, "-o", "json"])
        .args(extra)
        .env_remove("CONVEYOR_CONFIG")
        .output()
        .expect("run conveyor package");
    assert!(out.status.success(), "conveyor package failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// A repository with an application under `deploy/` (plus files that must not be packaged).
fn app_repo() -> GitRepo {
    let repo = GitRepo::init();
    for (path, content) in sample_manifests("shop") {
        repo.write(&format!("deploy/{path}"), content);
    }
    repo.write("deploy/README.md", "not a manifest\n");
    repo.write("other/ignored.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere}\n");
    repo.write("README.md", "# shop\n");
    repo.commit("feat: first version of the shop");
    repo.tag("v1.0.0");
    repo
}

/// The manifest files `app_repo` puts under `deploy/`, sorted.
fn manifest_paths() -> Vec<String> {
    let mut paths: Vec<String> = sample_manifests("shop").into_iter().map(|(p, _)| p).collect();
    paths.sort();
    paths
}

fn pipeline() -> Value {
    json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "shop"},
           "spec": {"environments": [{"name": "development", "namespace": "shop-dev"}]}})
}

fn release(name: &str, version: &str, git: Value, path: &str) -> Value {
    json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Release", "metadata": {"name": name},
           "spec": {"pipeline": "shop", "version": version, "source": {"git": git, "path": path}}})
}

async fn apply<K>(api: &Api<K>, name: &str, obj: &Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // As `kubectl apply --server-side` does.
    api.patch(name, &PatchParams::apply("kubectl"), &Patch::Apply(obj)).await.expect("apply");
}

/// A namespace with the `shop` Pipeline and a controller (extra env vars given) watching it.
async fn start(prefix: &str, env: &[(&str, &str)]) -> (kube::Client, String, ControllerProcess, Api<Release>) {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, prefix).await;
    let controller = ControllerProcess::start_with(&ns, "packager", env);
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    apply(&pipelines, "shop", &pipeline()).await;
    let api = Api::namespaced(client.clone(), &ns);
    (client, ns, controller, api)
}

async fn packaged(api: &Api<Release>, name: &str) -> Release {
    support::wait_for(api, name, &format!("Release {name} Packaged and Ready"), |r: &Release| {
        r.status.as_ref().is_some_and(|s| {
            s.observed_generation == r.metadata.generation
                && s.phase == Some(conveyor::api::release::ReleasePhase::Packaged)
                && is(&s.conditions, "Ready", "True")
        })
    })
    .await
}

async fn stalled(api: &Api<Release>, name: &str) -> Condition {
    let r = support::wait_for(api, name, &format!("Release {name} Stalled"), |r: &Release| {
        r.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == r.metadata.generation && is(&s.conditions, "Stalled", "True"))
    })
    .await;
    let conditions = r.status.unwrap().conditions;
    assert!(is(&conditions, "Ready", "False"));
    condition(&conditions, "Stalled").cloned().unwrap()
}

/// The digests in a controller's artifact store.
fn stored(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("sha256"))
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn store_file(dir: &Path, digest: &str) -> PathBuf {
    dir.join("sha256").join(format!("{}.tar.gz", digest.trim_start_matches("sha256:")))
}

#[test]
fn the_same_commit_from_two_clones_gives_the_same_digest_and_the_tar_holds_exactly_the_manifests() {
    let repo = app_repo();
    let scratch = tempfile::tempdir().unwrap();
    let a = repo.clone_to(&scratch.path().join("a"));
    let b = repo.clone_to(&scratch.path().join("b"));
    let out_a = scratch.path().join("a.tar.gz");
    let out_b = scratch.path().join("b.tar.gz");
    let ra = package_cli(a.path(), "v1.0.0", "deploy", &["--out", &out_a.display().to_string()]);
    let rb = package_cli(b.path(), "v1.0.0", "deploy", &["--out", &out_b.display().to_string()]);
    assert_eq!(ra["digest"], rb["digest"]);
    assert_eq!(ra["commit"], rb["commit"]);
    let (bytes_a, bytes_b) = (std::fs::read(&out_a).unwrap(), std::fs::read(&out_b).unwrap());
    assert_eq!(bytes_a, bytes_b, "artifacts differ byte for byte");
    assert_eq!(ra["size"].as_u64(), Some(bytes_a.len() as u64));

    let files = conveyor::artifact::read_archive(&bytes_a).unwrap();
    let listed: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(listed, manifest_paths(), "the tar must hold exactly the manifests under deploy/");
    assert_eq!(ra["files"].as_u64(), Some(listed.len() as u64));
    assert!(ra["objects"].as_u64().unwrap() >= listed.len() as u64, "{ra}");
    assert!(ra["digest"].as_str().unwrap().starts_with("sha256:"), "{ra}");
}

#[test]
fn tag_branch_and_commit_refs_resolve_to_their_commits() {
    let repo = app_repo();
    let tagged = repo.git(&["rev-parse", "HEAD"]);
    repo.write("deploy/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n");
    let second = repo.commit("fix: add the extra config");
    repo.branch("release-1.x");
    repo.write("deploy/more.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: more}\n");
    let head = repo.commit("feat: more");
    let cases = [("v1.0.0", &tagged), ("release-1.x", &second), (second.as_str(), &second), ("main", &head)];
    for (reference, expected) in &cases {
        let report = package_cli(repo.path(), reference, "deploy", &[]);
        assert_eq!(report["commit"].as_str(), Some(expected.as_str()), "ref {reference}");
    }
    // Different commits give different digests; the same commit through two names the same one.
    let by_branch = package_cli(repo.path(), "release-1.x", "deploy", &[]);
    let by_commit = package_cli(repo.path(), &second, "deploy", &[]);
    let by_tag = package_cli(repo.path(), "v1.0.0", "deploy", &[]);
    assert_eq!(by_branch["digest"], by_commit["digest"]);
    assert_ne!(by_branch["digest"], by_tag["digest"]);

    let out = Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .args(["package", "--repo", &repo.path().display().to_string(), "--ref", "v9.9.9", "--path", "deploy"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("v9.9.9") && stderr.contains("not found"), "{stderr}");
}

#[tokio::test]
async fn a_release_applied_like_kubectl_is_packaged_with_the_digest_conveyor_package_prints() {
    let (client, ns, controller, api) = start("pkg", &[]).await;

    let repo = app_repo();
    repo.write("deploy/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n");
    repo.commit("feat(api): add the extra config\n\nBREAKING CHANGE: the old config is gone");
    repo.write("deploy/fix.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fixed}\n");
    repo.commit("fix: mend the checkout");
    repo.tag("v1.1.0");

    let expected_1 = package_cli(repo.path(), "v1.0.0", "deploy", &[]);
    let expected_2 = package_cli(repo.path(), "v1.1.0", "deploy", &[]);
    let git = |tag: &str| json!({"url": repo.file_url(), "ref": {"tag": tag}});
    apply(&api, "shop-1.0.0", &release("shop-1.0.0", "1.0.0", git("v1.0.0"), "deploy")).await;
    let first = packaged(&api, "shop-1.0.0").await;
    let status = first.status.clone().unwrap();
    let artifact = status.artifact.clone().unwrap();
    assert_eq!(Some(artifact.digest.as_str()), expected_1["digest"].as_str());
    assert_eq!(status.commit.as_deref(), expected_1["commit"].as_str());
    assert_eq!(Some(artifact.files as u64), expected_1["files"].as_u64());
    assert_eq!(Some(artifact.objects as u64), expected_1["objects"].as_u64());
    assert_eq!(Some(artifact.size as u64), expected_1["size"].as_u64());
    assert!(store_file(&controller.artifact_dir, &artifact.digest).exists(), "artifact not in the store");
    let ready = condition(&status.conditions, "Ready").unwrap();
    assert_eq!(ready.reason, "Packaged");
    assert!(ready.message.contains(&artifact.digest), "{}", ready.message);

    // The second release's notes hold only what changed since the first, breaking change first.
    apply(&api, "shop-1.1.0", &release("shop-1.1.0", "1.1.0", git("v1.1.0"), "deploy")).await;
    let second = packaged(&api, "shop-1.1.0").await.status.unwrap();
    assert_eq!(second.artifact.as_ref().unwrap().digest.as_str(), expected_2["digest"].as_str().unwrap());
    let notes = second.notes.unwrap();
    assert!(notes.contains("mend the checkout") && notes.contains("the old config is gone"), "{notes}");
    assert!(!notes.contains("first version of the shop"), "notes reach back past the previous release:\n{notes}");
    let breaking = notes.find("the old config is gone").unwrap();
    assert!(breaking < notes.find("mend the checkout").unwrap(), "breaking changes come first:\n{notes}");

    // A Normal Event tells people it was packaged.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    support::poll("a Packaged Event", support::DEADLINE, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("Packaged")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("shop-1.0.0")
            })
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn a_packaged_spec_is_frozen_and_a_lost_artifact_is_rebuilt_and_verified() {
    let (client, ns, controller, api) = start("frozen", &[]).await;
    let repo = app_repo();
    repo.write("deploy/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n");
    repo.commit("feat: extra");
    repo.tag("v1.1.0");

    let git = |tag: &str| json!({"url": repo.file_url(), "ref": {"tag": tag}});
    apply(&api, "shop-1.0.0", &release("shop-1.0.0", "1.0.0", git("v1.0.0"), "deploy")).await;
    let before = packaged(&api, "shop-1.0.0").await.status.unwrap();
    let digest = before.artifact.clone().unwrap().digest;

    // Changing the ref after packaging is refused and changes nothing that was packaged.
    apply(&api, "shop-1.0.0", &release("shop-1.0.0", "1.0.0", git("v1.1.0"), "deploy")).await;
    let refused = stalled(&api, "shop-1.0.0").await;
    assert_eq!(refused.reason, "SpecImmutable");
    assert!(refused.message.contains("spec.source") && refused.message.contains("v1.1.0"), "{}", refused.message);
    let after = api.get("shop-1.0.0").await.unwrap().status.unwrap();
    assert_eq!(after.artifact, before.artifact);
    assert_eq!(after.commit, before.commit);
    assert_eq!(after.phase, before.phase);
    assert_eq!(stored(&controller.artifact_dir).len(), 1, "nothing new may be stored");

    // Reverting the change makes it Ready again.
    apply(&api, "shop-1.0.0", &release("shop-1.0.0", "1.0.0", git("v1.0.0"), "deploy")).await;
    packaged(&api, "shop-1.0.0").await;

    // The store loses the artifact: the controller rebuilds it from git and checks the digest.
    let file = store_file(&controller.artifact_dir, &digest);
    std::fs::remove_file(&file).unwrap();
    let touch = json!({"metadata": {"annotations": {"test/touch": "1"}}});
    api.patch("shop-1.0.0", &PatchParams::default(), &Patch::Merge(&touch)).await.unwrap();
    support::poll("the artifact rebuilt in the store", support::DEADLINE, || async { file.exists().then_some(()) })
        .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    support::poll("an ArtifactRebuilt Event", support::DEADLINE, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.iter().any(|e| e.reason.as_deref() == Some("ArtifactRebuilt")).then_some(())
    })
    .await;

    // A recorded digest that git cannot reproduce is DigestMismatch, never silently accepted.
    let mut status = api.get_status("shop-1.0.0").await.unwrap().status.unwrap();
    let wrong = format!("sha256:{}", "0".repeat(64));
    status.artifact.as_mut().unwrap().digest = wrong.clone();
    let patch = json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Release", "status": status});
    api.patch_status("shop-1.0.0", &PatchParams::apply("conveyor-status").force(), &Patch::Apply(&patch))
        .await
        .unwrap();
    let mismatch = stalled(&api, "shop-1.0.0").await;
    assert_eq!(mismatch.reason, "DigestMismatch");
    assert!(mismatch.message.contains(&wrong), "{}", mismatch.message);
    assert!(!store_file(&controller.artifact_dir, &wrong).exists());
}

#[tokio::test]
async fn bad_content_stalls_with_a_named_reason_and_nothing_is_stored() {
    let limits = [
        ("CONVEYOR_PACKAGE_MAX_FILES", "6"),
        ("CONVEYOR_PACKAGE_MAX_FILE_BYTES", "8Ki"),
        ("CONVEYOR_PACKAGE_MAX_YAML_NODES", "2000"),
    ];
    let (_client, _ns, mut controller, api) = start("bad-content", &limits).await;

    let repo = GitRepo::init();
    let ok = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n";
    repo.write("broken/app.yaml", format!("{ok}---\napiVersion: v1\nkind: [unclosed\n"));
    repo.write("nokind/app.yaml", format!("{ok}---\napiVersion: v1\nmetadata: {{name: x}}\n"));
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"]) {
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("  {next}: &{next} [{refs}]\n"));
    }
    repo.write("bomb/app.yaml", bomb);
    for i in 0..7 {
        repo.write(
            &format!("many/cm-{i}.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\n"),
        );
    }
    repo.write("big/app.yaml", format!("{ok}data:\n  blob: \"{}\"\n", "x".repeat(10_000)));
    repo.write("escape/app.yaml", ok);
    repo.symlink("escape/secret.yaml", "../outside/secret.yaml");
    repo.write("outside/secret.yaml", ok);
    repo.write("empty/README.md", "nothing to deploy\n");
    repo.write("good/app.yaml", ok);
    repo.commit("feat: all sorts");
    repo.tag("v1.0.0");

    let git = json!({"url": repo.file_url(), "ref": {"tag": "v1.0.0"}});
    // (name, version, git, path, reason, what the message must name)
    let cases: Vec<(&str, &str, Value, &str, &str, &str)> = vec![
        ("broken-yaml", "0.1.0", git.clone(), "broken", "InvalidYaml", "broken/app.yaml, document 2"),
        ("no-kind", "0.2.0", git.clone(), "nokind", "InvalidObject", "nokind/app.yaml, document 2"),
        ("alias-bomb", "0.3.0", git.clone(), "bomb", "YamlExpansionLimit", "bomb/app.yaml"),
        ("too-many-files", "0.4.0", git.clone(), "many", "TooManyFiles", "package_max_files"),
        ("oversized-file", "0.5.0", git.clone(), "big", "FileTooLarge", "big/app.yaml"),
        ("symlink-escape", "0.6.0", git.clone(), "escape", "SymlinkEscape", "escape/secret.yaml"),
        ("dot-dot-path", "0.7.0", git.clone(), "good/../../etc", "InvalidPath", "spec.source.path"),
        ("empty-path", "0.8.0", git.clone(), "empty", "NoManifests", "empty"),
        ("missing-path", "0.9.0", git.clone(), "nowhere", "PathNotFound", "nowhere"),
        (
            "unknown-ref",
            "0.10.0",
            json!({"url": repo.file_url(), "ref": {"tag": "v7.7.7"}}),
            "good",
            "RefNotFound",
            "v7.7.7",
        ),
        ("not-semver", "v1.0", git.clone(), "good", "InvalidVersion", "spec.version"),
    ];
    for (name, version, git, path, ..) in &cases {
        apply(&api, name, &release(name, version, git.clone(), path)).await;
    }
    for (name, _, _, _, reason, names) in &cases {
        let c = stalled(&api, name).await;
        assert_eq!(c.reason, *reason, "release {name}: {}", c.message);
        assert!(c.message.contains(names), "release {name}: message should name {names}: {}", c.message);
        let r = api.get(name).await.unwrap();
        let status = r.status.unwrap();
        assert!(status.artifact.is_none(), "release {name} has an artifact");
    }
    assert!(
        stored(&controller.artifact_dir).is_empty(),
        "failed releases stored {:?}",
        stored(&controller.artifact_dir)
    );
    assert!(controller.is_running(), "the controller must survive bad content");

    // And it still packages good content afterwards.
    apply(&api, "good", &release("good", "1.0.0", git.clone(), "good")).await;
    packaged(&api, "good").await;
    assert_eq!(stored(&controller.artifact_dir).len(), 1);
}
