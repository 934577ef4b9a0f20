//! The deploy adapter against a real API server: rendering lands in the cluster, prune deletes
//! only what is ours, a refusal applies nothing, cluster-scoped objects need the config key, and
//! an impersonated ServiceAccount's RBAC bounds what a deploy may do.

mod support;

use std::collections::BTreeMap;

use conveyor::api::OBJECT_MANAGER;
use conveyor::api::pipeline::{ENVIRONMENT_LABEL, PIPELINE_LABEL, PIPELINE_NAMESPACE_LABEL, RELEASE_LABEL};
use conveyor::artifact::{ManifestFile, Object, parse_file};
use conveyor::core::plan::{DeployOutcome, ObjectRef};
use conveyor::deploy::{Target, deploy, impersonating};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Resource};
use serde_json::json;

const PIPELINE: &str = "shop";

fn objects(yaml: &str) -> Vec<Object> {
    let file = ManifestFile { path: "deploy/app.yaml".into(), content: yaml.as_bytes().to_vec() };
    parse_file(&file, 100_000).expect("test manifests are valid")
}

/// The Pipeline lives in the environment's namespace here: one namespace per test.
fn target<'a>(ns: &'a str, release: &'a str) -> Target<'a> {
    Target {
        pipeline: PIPELINE,
        pipeline_namespace: ns,
        environment: "staging",
        namespace: ns,
        release,
        version: "1.2.3",
        allow_cluster_scoped: false,
    }
}

fn configmap(name: &str, data: &str) -> String {
    format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{ name: {name} }}\ndata: {{ value: {data:?} }}\n")
}

fn reference(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.into(),
    }
}

fn applied(outcome: DeployOutcome) -> Vec<ObjectRef> {
    match outcome {
        DeployOutcome::Applied { inventory } => inventory,
        DeployOutcome::Rejected { reason } => panic!("expected the deploy to apply, it was rejected: {reason}"),
    }
}

fn rejected(outcome: DeployOutcome) -> String {
    match outcome {
        DeployOutcome::Rejected { reason } => reason,
        DeployOutcome::Applied { inventory } => panic!("expected a rejection, got applied {inventory:?}"),
    }
}

fn labels<K: Resource>(object: &K) -> BTreeMap<String, String> {
    object.meta().labels.clone().unwrap_or_default()
}

fn managed_by_conveyor<K: Resource>(object: &K) -> bool {
    object
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some(OBJECT_MANAGER) && m.operation.as_deref() == Some("Apply"))
}

#[tokio::test]
async fn renders_and_applies_into_the_environment_namespace() {
    let client = support::client().await;
    let ns = support::namespace(&client, "deploy").await;
    let manifests = objects(
        "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: not-the-target
  labels: { app: shop }
data:
  environment: ${CONVEYOR_ENVIRONMENT}
  image: registry.example/shop:${CONVEYOR_VERSION}
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: web
          image: registry.example/web:${CONVEYOR_VERSION}
          ports: [{ containerPort: 8080, protocol: TCP }]
",
    );
    let target = target(&ns, "shop-1.2.3");
    let inventory = applied(deploy(&client, &manifests, &target, &[]).await.unwrap());
    let mut want =
        vec![reference("v1", "ConfigMap", Some(&ns), "settings"), reference("apps/v1", "Deployment", Some(&ns), "web")];
    want.sort();
    assert_eq!(inventory, want);

    let ours = BTreeMap::from([
        (PIPELINE_LABEL.to_owned(), PIPELINE.to_owned()),
        (PIPELINE_NAMESPACE_LABEL.to_owned(), ns.clone()),
        (RELEASE_LABEL.to_owned(), "shop-1.2.3".to_owned()),
        (ENVIRONMENT_LABEL.to_owned(), "staging".to_owned()),
    ]);
    let settings = Api::<ConfigMap>::namespaced(client.clone(), &ns).get("settings").await.unwrap();
    let data = settings.data.clone().unwrap_or_default();
    assert_eq!(data.get("environment").map(String::as_str), Some("staging"));
    assert_eq!(data.get("image").map(String::as_str), Some("registry.example/shop:1.2.3"));
    let mut want_labels = ours.clone();
    want_labels.insert("app".into(), "shop".into());
    assert_eq!(labels(&settings), want_labels);
    assert!(managed_by_conveyor(&settings), "{:?}", settings.metadata.managed_fields);
    // The manifest's own namespace was overridden, not used.
    let elsewhere = Api::<ConfigMap>::namespaced(client.clone(), "not-the-target").get_opt("settings").await;
    assert!(matches!(elsewhere, Ok(None)), "{elsewhere:?}");

    let web = Api::<Deployment>::namespaced(client.clone(), &ns).get("web").await.unwrap();
    assert_eq!(labels(&web), ours);
    assert!(managed_by_conveyor(&web));
    let template = web.spec.as_ref().unwrap().template.clone();
    assert_eq!(
        template.metadata.and_then(|m| m.labels),
        Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
        "pod template labels are left alone"
    );
    assert_eq!(template.spec.unwrap().containers[0].image.as_deref(), Some("registry.example/web:1.2.3"));

    // Deploying the same again is a no-op with the same inventory: the controller may retry.
    let again = applied(deploy(&client, &manifests, &target, &inventory).await.unwrap());
    assert_eq!(again, inventory);
    Api::<ConfigMap>::namespaced(client.clone(), &ns).get("settings").await.unwrap();
}

#[tokio::test]
async fn prunes_what_the_new_release_dropped_but_only_our_objects() {
    let client = support::client().await;
    let ns = support::namespace(&client, "deploy").await;
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let first = objects(&[configmap("a", "1"), configmap("b", "1"), configmap("taken", "1")].concat());
    let inventory = applied(deploy(&client, &first, &target(&ns, "shop-1"), &[]).await.unwrap());
    assert_eq!(inventory.len(), 3);

    // Someone else's pipeline took `taken` over.
    let takeover = json!({ "metadata": { "labels": { PIPELINE_LABEL: "someone-else" } } });
    configmaps.patch("taken", &PatchParams::default(), &Patch::Merge(&takeover)).await.unwrap();

    let mut previous = inventory.clone();
    // Leftovers prune must get past: a kind whose CRD is gone and an object already deleted.
    previous.push(reference("example.com/v1", "Widget", Some(&ns), "gone-with-its-crd"));
    previous.push(reference("v1", "ConfigMap", Some(&ns), "already-gone"));
    let second = objects(&configmap("a", "2"));
    let inventory = applied(deploy(&client, &second, &target(&ns, "shop-2"), &previous).await.unwrap());
    assert_eq!(inventory, [reference("v1", "ConfigMap", Some(&ns), "a")]);

    assert!(configmaps.get_opt("b").await.unwrap().is_none(), "b was in the previous inventory only");
    let a = configmaps.get("a").await.unwrap();
    assert_eq!(labels(&a).get(RELEASE_LABEL).map(String::as_str), Some("shop-2"));
    let taken = configmaps.get("taken").await.expect("an object another pipeline claims is not pruned");
    assert_eq!(labels(&taken).get(PIPELINE_LABEL).map(String::as_str), Some("someone-else"));
}

#[tokio::test]
async fn a_refused_dry_run_applies_nothing() {
    let client = support::client().await;
    let ns = support::namespace(&client, "deploy").await;
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let live =
        applied(deploy(&client, &objects(&configmap("settings", "1")), &target(&ns, "shop-1"), &[]).await.unwrap());

    let bad = objects(
        &[
            configmap("settings", "2"),
            configmap("extra", "2"),
            "---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers: [{ name: Bad_Name, image: registry.example/web:2 }]
"
            .to_owned(),
        ]
        .concat(),
    );
    let reason = rejected(deploy(&client, &bad, &target(&ns, "shop-2"), &live).await.unwrap());
    assert!(reason.starts_with("deploy/app.yaml document 3: Deployment apps/v1 \"web\": "), "{reason}");
    assert!(reason.contains("Bad_Name"), "the API server's message is carried: {reason}");

    assert!(configmaps.get_opt("extra").await.unwrap().is_none(), "nothing of the refused release is applied");
    assert!(Api::<Deployment>::namespaced(client.clone(), &ns).get_opt("web").await.unwrap().is_none());
    let settings = configmaps.get("settings").await.unwrap();
    assert_eq!(settings.data.clone().unwrap_or_default().get("value").map(String::as_str), Some("1"));
    assert_eq!(
        labels(&settings).get(RELEASE_LABEL).map(String::as_str),
        Some("shop-1"),
        "the live release is unchanged"
    );
}

#[tokio::test]
async fn cluster_scoped_and_unknown_kinds_are_refused() {
    let client = support::client().await;
    let ns = support::namespace(&client, "deploy").await;
    let role_name = format!("{ns}-reader");
    let cases = [
        (
            format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{ name: {role_name} }}\n"),
            format!(
                "deploy/app.yaml document 2: ClusterRole rbac.authorization.k8s.io/v1 \"{role_name}\": cluster-scoped \
                 objects are not allowed; set the controller config key `allow_cluster_scoped: true` or remove the \
                 object from the release"
            ),
        ),
        (
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: foo }\n".to_owned(),
            "deploy/app.yaml document 2: Widget example.com/v1 \"foo\": no API serves this kind in the cluster"
                .to_owned(),
        ),
        (
            // A group/version the server has, without that kind.
            "apiVersion: v1\nkind: Widget\nmetadata: { name: foo }\n".to_owned(),
            "deploy/app.yaml document 2: Widget v1 \"foo\": no API serves this kind in the cluster".to_owned(),
        ),
    ];
    for (second, want) in cases {
        let manifests = objects(&format!("{}---\n{second}", configmap("settings", "1")));
        let reason = rejected(deploy(&client, &manifests, &target(&ns, "shop-1"), &[]).await.unwrap());
        assert_eq!(reason, want);
        assert!(Api::<ConfigMap>::namespaced(client.clone(), &ns).get_opt("settings").await.unwrap().is_none());
    }
    assert!(Api::<ClusterRole>::all(client.clone()).get_opt(&role_name).await.unwrap().is_none());
}

#[tokio::test]
async fn cluster_scoped_objects_apply_and_prune_when_allowed() {
    let client = support::client().await;
    let ns = support::namespace(&client, "deploy").await;
    let roles = Api::<ClusterRole>::all(client.clone());
    let role_name = format!("{ns}-reader");
    let role = format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{ name: {role_name}, namespace: {ns} }}\n\
         rules: [{{ apiGroups: [''], resources: [configmaps], verbs: [get] }}]\n"
    );
    let allowed = Target { allow_cluster_scoped: true, ..target(&ns, "shop-1") };
    let inventory =
        applied(deploy(&client, &objects(&[configmap("settings", "1"), role].concat()), &allowed, &[]).await.unwrap());
    let want_role = reference("rbac.authorization.k8s.io/v1", "ClusterRole", None, &role_name);
    assert!(inventory.contains(&want_role), "{inventory:?}");
    let live = roles.get(&role_name).await.unwrap();
    assert_eq!(labels(&live).get(PIPELINE_NAMESPACE_LABEL), Some(&ns));

    let allowed = Target { release: "shop-2", ..allowed };
    applied(deploy(&client, &objects(&configmap("settings", "2")), &allowed, &inventory).await.unwrap());
    assert!(roles.get_opt(&role_name).await.unwrap().is_none(), "the dropped ClusterRole is pruned");
}

#[tokio::test]
async fn an_impersonated_service_account_is_bound_by_its_rbac() {
    let client = support::client().await;
    let ns = support::namespace(&client, "deploy").await;
    let meta = |name: &str| ObjectMeta { name: Some(name.into()), ..Default::default() };
    let post = PostParams::default();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&post, &ServiceAccount { metadata: meta("deployer"), ..Default::default() })
        .await
        .unwrap();
    let kubeconfig = Kubeconfig::read_from(support::kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let deployer = impersonating(&config, &ns, "deployer").unwrap();
    let manifests = objects(&configmap("settings", "1"));

    let reason = rejected(deploy(&deployer, &manifests, &target(&ns, "shop-1"), &[]).await.unwrap());
    assert!(reason.starts_with("deploy/app.yaml document 1: ConfigMap v1 \"settings\": "), "{reason}");
    assert!(reason.contains("forbidden"), "{reason}");
    assert!(reason.contains(&format!("system:serviceaccount:{ns}:deployer")), "{reason}");
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    assert!(configmaps.get_opt("settings").await.unwrap().is_none());

    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "deploy-configmaps" },
        "rules": [{ "apiGroups": [""], "resources": ["configmaps"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"] }],
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), &ns).create(&post, &role).await.unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "deployer" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deploy-configmaps" },
        "subjects": [{ "kind": "ServiceAccount", "name": "deployer", "namespace": ns }],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns).create(&post, &binding).await.unwrap();

    // The authorizer learns of the binding through its own watch: try until it has.
    let inventory = support::poll("the deployer to be allowed", support::DEADLINE, || {
        let (deployer, manifests, ns) = (deployer.clone(), manifests.clone(), ns.clone());
        async move {
            match deploy(&deployer, &manifests, &target(&ns, "shop-1"), &[]).await.unwrap() {
                DeployOutcome::Applied { inventory } => Some(inventory),
                DeployOutcome::Rejected { reason } => {
                    assert!(reason.contains("forbidden"), "only RBAC may refuse: {reason}");
                    None
                }
            }
        }
    })
    .await;
    assert_eq!(inventory, [reference("v1", "ConfigMap", Some(&ns), "settings")]);
    assert!(managed_by_conveyor(&configmaps.get("settings").await.unwrap()));
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_transient_error() {
    // A port nothing listens on once the listener is dropped.
    let port = support::free_port();
    let mut config = kube::Config::new(format!("https://127.0.0.1:{port}").parse().unwrap());
    config.accept_invalid_certs = true;
    let client = Client::try_from(config).unwrap();
    let err = deploy(&client, &objects(&configmap("settings", "1")), &target("default", "shop-1"), &[])
        .await
        .expect_err("nothing answers");
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.kind(), "client");
    assert!(err.to_string().starts_with("discover ConfigMap v1: "), "{err}");
}

#[tokio::test]
async fn a_port_without_protocol_is_refused_not_retried() {
    // kube-apiserver 1.20 answers HTTP 500 to this; the same manifest always gets the same
    // answer, so it must come back as a refusal the user can act on, not a transient error.
    let client = support::client().await;
    let ns = support::namespace(&client, "deploy").await;
    let service = "\
apiVersion: v1
kind: Service
metadata: { name: web }
spec:
  selector: { app: web }
  ports: [{ port: 80 }]
";
    let reason = rejected(deploy(&client, &objects(service), &target(&ns, "shop-1"), &[]).await.unwrap());
    assert!(reason.starts_with("deploy/app.yaml document 1: Service v1 \"web\": "), "{reason}");
    assert!(reason.contains("protocol"), "{reason}");
}
