//! The harness itself: the test kubelet makes a real Deployment available (or not) through
//! kube-controller-manager, as a kubelet would.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support::kubelet;

fn deployment(name: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
                {"name": "web", "image": "registry.invalid/web:1", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}
    })
}

async fn pods_created(client: &kube::Client, ns: &str, app: &str, n: usize) {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    support::poll("pods created by the ReplicaSet", support::DEADLINE, || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.ok()?;
            (list.items.len() == n).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn kubelet_marks_a_deployment_available() {
    let client = support::client().await;
    let ns = support::namespace(&client, "kubelet").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    api.patch("web", &PatchParams::apply("tests"), &Patch::Apply(deployment("web", 2))).await.unwrap();
    pods_created(&client, &ns, "web", 2).await;
    assert_eq!(kubelet::mark_pods_ready(&client, &ns, "app=web").await, 2);
    let d = support::wait_for(&api, "web", "Deployment web 2/2 available", |d: &Deployment| {
        d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)
    })
    .await;
    assert_eq!(d.status.unwrap().ready_replicas, Some(2));
}

#[tokio::test]
async fn kubelet_failing_pods_make_an_available_deployment_unavailable() {
    let client = support::client().await;
    let ns = support::namespace(&client, "kubelet").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    api.patch("flaky", &PatchParams::apply("tests"), &Patch::Apply(deployment("flaky", 1))).await.unwrap();
    pods_created(&client, &ns, "flaky", 1).await;
    kubelet::mark_pods_ready(&client, &ns, "app=flaky").await;
    support::wait_for(&api, "flaky", "Deployment flaky available", |d: &Deployment| {
        d.status.as_ref().and_then(|s| s.available_replicas) == Some(1)
    })
    .await;
    assert_eq!(kubelet::mark_pods_failing(&client, &ns, "app=flaky").await, 1);
    let d = support::wait_for(&api, "flaky", "Deployment flaky unavailable again", |d: &Deployment| {
        d.status.as_ref().is_some_and(|s| s.available_replicas.unwrap_or(0) == 0 && s.unavailable_replicas == Some(1))
    })
    .await;
    assert_eq!(d.status.unwrap().ready_replicas.unwrap_or(0), 0);
}
