//! Workload readiness against a real control plane: kube-controller-manager computes workload
//! status from Pods that the test kubelet marks ready or failing, and `workloads_health` judges it.

mod support;

use conveyor::checks::workloads::workloads_health;
use conveyor::core::plan::{Health, ObjectRef};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use support::kubelet::Kubelet;
use support::{DEADLINE, poll};

/// A Deployment of `replicas` Pods labelled `app: <name>`, with extra spec fields (YAML lines
/// indented by two spaces).
fn deployment(name: &str, replicas: i32, extra_spec: &str) -> Deployment {
    yaml(&format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
{extra_spec}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {name}
          image: registry.invalid/{name}:1
          ports:
            - containerPort: 8080
              protocol: TCP
"
    ))
}

fn statefulset(name: &str, replicas: i32) -> StatefulSet {
    yaml(&format!(
        "\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {name}
spec:
  replicas: {replicas}
  serviceName: {name}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {name}
          image: registry.invalid/{name}:1
"
    ))
}

fn daemonset(name: &str) -> DaemonSet {
    yaml(&format!(
        "\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
spec:
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {name}
          image: registry.invalid/{name}:1
"
    ))
}

fn yaml<K: DeserializeOwned>(text: &str) -> K {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("fixture does not parse: {e}\n{text}"))
}

async fn create<K>(client: &Client, ns: &str, object: K)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns).create(&PostParams::default(), &object).await.expect("create workload");
}

fn object(api_version: &str, kind: &str, ns: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        namespace: Some(ns.to_owned()),
        name: name.to_owned(),
    }
}

/// Reads the inventory's health until `done` accepts it (deadline [`DEADLINE`]); returns it.
async fn health_until(client: &Client, inventory: &[ObjectRef], what: &str, done: impl Fn(&Health) -> bool) -> Health {
    poll(what, DEADLINE, || async {
        let health = workloads_health(client, inventory).await.expect("read workloads");
        done(&health).then_some(health)
    })
    .await
}

#[tokio::test]
async fn a_deployment_is_progressing_until_its_pods_are_ready() {
    let client = support::client().await;
    let ns = support::namespace(&client, "workloads").await;
    create(&client, &ns, deployment("web", 2, "")).await;
    let inventory = [object("v1", "ConfigMap", &ns, "web-config"), object("apps/v1", "Deployment", &ns, "web")];

    // No kubelet yet: no Pod can be ready, whatever the controllers have done so far.
    let health = workloads_health(&client, &inventory).await.expect("read workloads");
    assert!(matches!(&health, Health::Progressing(m) if m.starts_with("Deployment/web")), "{health:?}");

    let _kubelet = Kubelet::start(client.clone(), std::slice::from_ref(&ns));
    health_until(&client, &inventory, "Deployment/web Ready", |h| *h == Health::Ready).await;
}

#[tokio::test]
async fn a_deployment_past_its_progress_deadline_fails() {
    let client = support::client().await;
    let ns = support::namespace(&client, "workloads").await;
    let kubelet = Kubelet::start(client.clone(), std::slice::from_ref(&ns));
    // Before the Deployment exists, so that no Pod of it is ever ready.
    kubelet.fail("app=stuck");
    create(&client, &ns, deployment("stuck", 1, "  progressDeadlineSeconds: 1")).await;
    let inventory = [object("apps/v1", "Deployment", &ns, "stuck")];

    let health = health_until(&client, &inventory, "Deployment/stuck Failed", |h| matches!(h, Health::Failed(_))).await;
    let Health::Failed(message) = health else { unreachable!("polled until Failed") };
    assert!(message.starts_with("Deployment/stuck exceeded its progress deadline: "), "{message}");
    assert!(message.contains("has timed out progressing"), "the controller's own message is kept: {message}");
}

#[tokio::test]
async fn a_statefulset_and_a_daemonset_become_ready() {
    let client = support::client().await;
    let ns = support::namespace(&client, "workloads").await;
    let _kubelet = Kubelet::start(client.clone(), std::slice::from_ref(&ns));
    create(&client, &ns, statefulset("db", 2)).await;
    // No node exists: the DaemonSet wants no Pod at all.
    create(&client, &ns, daemonset("agent")).await;
    let db = [object("apps/v1", "StatefulSet", &ns, "db")];
    let agent = [object("apps/v1", "DaemonSet", &ns, "agent")];

    // Pods of a StatefulSet start one at a time, each after the one before is ready.
    health_until(&client, &db, "StatefulSet/db Ready", |h| *h == Health::Ready).await;
    health_until(&client, &agent, "DaemonSet/agent Ready", |h| *h == Health::Ready).await;
    let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns).get("db").await.expect("get StatefulSet");
    assert_eq!(sts.status.and_then(|s| s.ready_replicas), Some(2), "both Pods ready, not just some");
    let both = [db, agent].concat();
    assert_eq!(workloads_health(&client, &both).await.expect("read workloads"), Health::Ready);
}

#[tokio::test]
async fn a_ready_deployment_whose_pods_start_failing_is_not_ready_again() {
    let client = support::client().await;
    let ns = support::namespace(&client, "workloads").await;
    let kubelet = Kubelet::start(client.clone(), std::slice::from_ref(&ns));
    create(&client, &ns, deployment("flaky", 2, "")).await;
    let inventory = [object("apps/v1", "Deployment", &ns, "flaky")];
    health_until(&client, &inventory, "Deployment/flaky Ready", |h| *h == Health::Ready).await;

    kubelet.fail("app=flaky");
    let health = health_until(&client, &inventory, "Deployment/flaky not Ready", |h| *h != Health::Ready).await;
    let Health::Progressing(message) = health else { panic!("failing Pods make it Progressing: {health:?}") };
    assert!(
        message.starts_with("Deployment/flaky: ") && message.ends_with("of 2 updated replicas available"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_workloads_are_progressing_and_other_kinds_are_ignored() {
    let client = support::client().await;
    let ns = support::namespace(&client, "workloads").await;

    let others = [
        object("v1", "ConfigMap", &ns, "web-config"),
        object("v1", "Service", &ns, "web"),
        object("apps/v1", "ReplicaSet", &ns, "web-1"),
    ];
    assert_eq!(workloads_health(&client, &others).await.expect("read workloads"), Health::Ready);

    let missing = [object("apps/v1", "Deployment", &ns, "ghost"), object("apps/v1", "StatefulSet", &ns, "spirit")];
    assert_eq!(
        workloads_health(&client, &missing).await.expect("a missing workload is no error"),
        Health::Progressing("2 of 2 workloads not ready: Deployment/ghost not found; also StatefulSet/spirit".into())
    );
}
