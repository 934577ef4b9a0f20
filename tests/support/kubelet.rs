//! A test kubelet: no kubelet runs on the test control plane, so Pods are marked ready (or
//! failing) here, as a kubelet would; kube-controller-manager then computes workload status.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

fn condition(type_: &str, status: bool, now: &str) -> serde_json::Value {
    json!({"type": type_, "status": if status { "True" } else { "False" }, "lastTransitionTime": now})
}

async fn set_pods(client: &Client, ns: &str, selector: &str, ready: bool) -> usize {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api.list(&ListParams::default().labels(selector)).await.expect("list pods");
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap().to_string();
    for pod in &pods.items {
        let name = pod.metadata.name.as_deref().expect("pods have names");
        let containers: Vec<_> =
            pod.spec.as_ref().map(|s| s.containers.iter().map(|c| c.name.clone()).collect()).unwrap_or_default();
        let statuses: Vec<_> = containers
            .iter()
            .map(|c| {
                let state = if ready {
                    json!({"running": {"startedAt": now}})
                } else {
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": "test kubelet: container keeps failing"}})
                };
                json!({"name": c, "ready": ready, "started": ready, "restartCount": if ready { 0 } else { 3 },
                       "image": "test", "imageID": "", "state": state})
            })
            .collect();
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [condition("PodScheduled", true, &now), condition("Initialized", true, &now),
                           condition("ContainersReady", ready, &now), condition("Ready", ready, &now)],
            "containerStatuses": statuses,
            "startTime": now,
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("patch pod status");
    }
    pods.items.len()
}

/// Marks every Pod matching `selector` Running and Ready; returns how many.
pub async fn mark_pods_ready(client: &Client, ns: &str, selector: &str) -> usize {
    set_pods(client, ns, selector, true).await
}

/// Marks every Pod matching `selector` Running but not Ready (crash-looping); returns how many.
pub async fn mark_pods_failing(client: &Client, ns: &str, selector: &str) -> usize {
    set_pods(client, ns, selector, false).await
}
