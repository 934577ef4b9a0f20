//! Git credentials against a real smart-HTTP server (Debian's `git http-backend` behind basic
//! auth on loopback): the right Secret fetches, a second release fetches only what is new, wrong
//! or missing credentials and unreachable servers fail with a clear condition within the git
//! timeout, and the secret's value appears nowhere: not in logs, Events or status.

mod support;

use std::collections::BTreeMap;

use conveyor::api::{Pipeline, Release};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::ControllerProcess;
use support::git::{GitRepo, sample_manifests};
use support::git_server::GitHttpServer;

const USER: &str = "deploy";
const PASSWORD: &str = "s3cr3t-Zebra-4711";
const WRONG_PASSWORD: &str = "wrong-Walrus-0815";

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn release(name: &str, version: &str, url: &str, tag: &str, secret: Option<&str>) -> Value {
    let mut git = json!({"url": url, "ref": {"tag": tag}});
    if let Some(secret) = secret {
        git["secretRef"] = json!({"name": secret});
    }
    json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Release", "metadata": {"name": name},
           "spec": {"pipeline": "shop", "version": version, "source": {"git": git, "path": "deploy"}}})
}

async fn secret(api: &Api<Secret>, name: &str, password: &str) {
    let data: BTreeMap<String, ByteString> = [("username", USER), ("password", password)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let s = Secret {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(data),
        ..Default::default()
    };
    api.create(&PostParams::default(), &s).await.expect("create Secret");
}

/// Waits until the Release's conditions at its current generation satisfy `check`.
async fn wait_condition(
    api: &Api<Release>,
    name: &str,
    what: &str,
    type_: &'static str,
    status: &'static str,
) -> Condition {
    let r = support::wait_for(api, name, what, move |r: &Release| {
        r.status.as_ref().is_some_and(|s| {
            s.observed_generation == r.metadata.generation
                && condition(&s.conditions, type_).is_some_and(|c| c.status == status)
        })
    })
    .await;
    condition(&r.status.unwrap().conditions, type_).cloned().unwrap()
}

#[tokio::test]
async fn credentials_from_a_secret_fetch_and_bad_ones_fail_clearly_without_leaking() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "git-auth").await;
    let controller = ControllerProcess::start(&ns, "packager");
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let api: Api<Release> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pipeline = json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "shop"},
                          "spec": {"environments": [{"name": "development", "namespace": "shop-dev"}]}});
    pipelines.patch("shop", &PatchParams::apply("kubectl"), &Patch::Apply(&pipeline)).await.unwrap();
    secret(&secrets, "git-auth", PASSWORD).await;
    secret(&secrets, "git-wrong", WRONG_PASSWORD).await;

    let root = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_at(&root.path().join("shop"));
    for (path, content) in sample_manifests("shop") {
        repo.write(&format!("deploy/{path}"), content);
    }
    // Enough history that a full fetch is clearly bigger than an incremental one.
    let filler: String = (0..4000).map(|i| format!("  key-{i}: \"{}\"\n", i * 7919)).collect();
    repo.write(
        "deploy/filler.yaml",
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: filler}}\ndata:\n{filler}"),
    );
    repo.commit("feat: shop");
    repo.tag("v1.0.0");
    let server = GitHttpServer::start(root.path(), USER, PASSWORD);
    let url = server.url("shop");

    // Right credentials: packaged.
    let apply = |name: &str, obj: Value| {
        let api = api.clone();
        let name = name.to_owned();
        async move { api.patch(&name, &PatchParams::apply("kubectl"), &Patch::Apply(&obj)).await.expect("apply") }
    };
    apply("good", release("good", "1.0.0", &url, "v1.0.0", Some("git-auth"))).await;
    let ready = wait_condition(&api, "good", "good credentials packaged", "Ready", "True").await;
    assert_eq!(ready.reason, "Packaged");
    let first_fetch = server.upload_pack_bytes();
    assert!(first_fetch > 0, "the controller fetched over HTTP");

    // A second release of the same repository fetches only the new commit.
    repo.write("deploy/extra.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n");
    repo.commit("fix: extra config");
    repo.tag("v1.1.0");
    apply("good-2", release("good-2", "1.1.0", &url, "v1.1.0", Some("git-auth"))).await;
    wait_condition(&api, "good-2", "second release packaged", "Ready", "True").await;
    let second_fetch = server.upload_pack_bytes() - first_fetch;
    assert!(
        second_fetch * 4 < first_fetch,
        "the second fetch downloaded {second_fetch} bytes, the first {first_fetch}: the mirror should make it incremental"
    );

    // Failures, each with its reason, within the git timeout (5 s in tests) and the wait deadline.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/shop", refused.local_addr().unwrap());
    drop(refused);
    // Accepts connections (the kernel's backlog) but never answers: only the timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/shop", silent.local_addr().unwrap());
    // (name, release, condition type that turns True, reason, message fragment)
    let cases = [
        (
            "wrong",
            release("wrong", "2.0.0", &url, "v1.0.0", Some("git-wrong")),
            "Stalled",
            "GitAuthFailed",
            "git-wrong",
        ),
        ("anonymous", release("anonymous", "2.1.0", &url, "v1.0.0", None), "Stalled", "GitAuthFailed", "secretRef"),
        (
            "no-secret",
            release("no-secret", "2.2.0", &url, "v1.0.0", Some("missing")),
            "Stalled",
            "InvalidSecret",
            "`missing`",
        ),
        (
            "refused",
            release("refused", "2.3.0", &closed_url, "v1.0.0", Some("git-auth")),
            "Reconciling",
            "GitUnreachable",
            "cannot fetch",
        ),
        (
            "silent",
            release("silent", "2.4.0", &silent_url, "v1.0.0", Some("git-auth")),
            "Reconciling",
            "GitUnreachable",
            "git_timeout",
        ),
    ];
    for (name, obj, ..) in &cases {
        apply(name, obj.clone()).await;
    }
    for (name, _, type_, reason, fragment) in &cases {
        let c = support::wait_for(&api, name, &format!("{name}: {reason}"), {
            let (type_, reason) = (*type_, *reason);
            move |r: &Release| {
                r.status.as_ref().is_some_and(|s| {
                    condition(&s.conditions, type_).is_some_and(|c| c.status == "True" && c.reason == reason)
                })
            }
        })
        .await;
        let status = c.status.unwrap();
        let shown = condition(&status.conditions, type_).unwrap();
        assert!(shown.message.contains(fragment), "{name}: {}", shown.message);
        assert_eq!(condition(&status.conditions, "Ready").unwrap().status, "False", "{name}");
        assert!(status.artifact.is_none(), "{name}");
    }
    drop(silent);

    // The secret's value is nowhere: logs, Events, status.
    let mut everything = controller.logs();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    for e in events.list(&ListParams::default()).await.unwrap() {
        everything.push_str(&serde_json::to_string(&e).unwrap());
    }
    for r in api.list(&ListParams::default()).await.unwrap() {
        everything.push_str(&serde_json::to_string(&r.status).unwrap());
    }
    assert!(everything.contains("GitAuthFailed"), "the evidence gathered is real");
    for value in [PASSWORD, WRONG_PASSWORD] {
        assert!(!everything.contains(value), "a credential leaked into logs, Events or status");
    }
}
