//! Real-world sources on the real API server with the real engines (kubectl 1.32 with kustomize
//! v5.5, Helm 3.17, from `need_kubectl_layer` in tests/lib.sh, named by CONVEYOR_TEST_ENGINES):
//! a GitOps repository with a base and three overlays packages to exactly what `kubectl
//! kustomize` prints for each overlay, and walks all three environments; a local chart with
//! per-environment values renders like `helm template`; a broken kustomization and a failing
//! chart end Stalled with the engine's own message, storing and applying nothing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use conveyor::api::Release;
use conveyor::api::pipeline::EnvironmentPhase;
use conveyor::api::release::ReleasePhase;
use conveyor::artifact::read_archive;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::kubelet::Kubelet;
use support::world::{THREE, World};

/// The directory holding `kubectl` and `helm`, as the test command sets it.
fn engines() -> PathBuf {
    let dir = std::env::var_os("CONVEYOR_TEST_ENGINES").map(PathBuf::from).expect(
        "CONVEYOR_TEST_ENGINES must name the directory with kubectl and helm: \
         CONVEYOR_TEST_ENGINES=$(bash -c 'source tests/lib.sh; need_kubectl_layer') (tests/run-tests.sh sets it)",
    );
    for tool in ["kubectl", "helm"] {
        assert!(dir.join(tool).is_file(), "{} has no {tool}", dir.display());
    }
    dir
}

/// A World whose controller uses the test engines.
async fn world(prefix: &str) -> World {
    let dir = engines();
    let (kubectl, helm) = (dir.join("kubectl").display().to_string(), dir.join("helm").display().to_string());
    World::with_controller_env(
        prefix,
        &THREE,
        &[],
        &[("CONVEYOR_KUSTOMIZE_BINARY", &kubectl), ("CONVEYOR_HELM_BINARY", &helm), ("CONVEYOR_RENDER_TIMEOUT", "30s")],
    )
    .await
}

/// Runs an engine directly in the repository's work tree, as a user would; its stdout.
fn engine(repo: &Path, tool: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(engines().join(tool))
        .args(args)
        .current_dir(repo)
        // Helm's own directories out of the developer's home.
        .env("HELM_CACHE_HOME", scratch.path().join("cache"))
        .env("HELM_CONFIG_HOME", scratch.path().join("config"))
        .env("HELM_DATA_HOME", scratch.path().join("data"))
        .output()
        .expect("run the engine");
    if out.status.success() { Ok(out.stdout) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// Applies a Release of the `shop` pipeline at tag `v<version>` with `source` (its `git` added).
async fn release(w: &World, version: &str, source: Value) -> String {
    w.repo.commit(&format!("feat: version {version}"));
    w.repo.tag(&format!("v{version}"));
    let name = format!("shop-{version}");
    let mut source = source;
    source["git"] = json!({"url": w.repo.file_url(), "ref": {"tag": format!("v{version}")}});
    let release = json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Release", "metadata": {"name": name},
                         "spec": {"pipeline": "shop", "version": version, "source": source}});
    w.releases.patch(&name, &PatchParams::apply("kubectl"), &Patch::Apply(&release)).await.unwrap();
    name
}

fn condition<'a>(r: &'a Release, type_: &str) -> Option<&'a Condition> {
    r.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

async fn packaged(w: &World, name: &str) -> Release {
    support::wait_for(&w.releases, name, &format!("{name} Packaged"), |r: &Release| {
        r.status.as_ref().is_some_and(|s| s.phase == Some(ReleasePhase::Packaged))
    })
    .await
}

async fn stalled(w: &World, name: &str) -> Release {
    support::wait_for(&w.releases, name, &format!("{name} Stalled"), |r: &Release| {
        condition(r, "Stalled").is_some_and(|c| c.status == "True")
    })
    .await
}

/// The files of a packaged release's artifact, from the controller's store.
fn artifact_files(w: &World, r: &Release) -> Vec<(String, Vec<u8>)> {
    let digest = &r.status.as_ref().unwrap().artifact.as_ref().unwrap().digest;
    let file =
        w.controller.artifact_dir.join("sha256").join(format!("{}.tar.gz", digest.trim_start_matches("sha256:")));
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    read_archive(&bytes).unwrap().into_iter().map(|f| (f.path, f.content)).collect()
}

/// Digests in the controller's store.
fn stored(w: &World) -> usize {
    std::fs::read_dir(w.controller.artifact_dir.join("sha256")).map(|d| d.count()).unwrap_or(0)
}

/// The environment's tag, replicas and log level in the GitOps repository.
fn overlay(env: &str) -> (&'static str, u32, &'static str) {
    match env {
        "development" => ("1.1.0-dev", 1, "debug"),
        "staging" => ("1.1.0-rc.1", 2, "info"),
        _ => ("1.1.0", 3, "warn"),
    }
}

/// Writes a repository laid out like a typical GitOps application: `deploy/base` (Deployment,
/// Service, generated ConfigMap, common labels) and `deploy/overlays/<environment>` with
/// `namespace`, `labels`, `images`, a merged `configMapGenerator` and a strategic-merge patch.
fn gitops_repository(w: &World) {
    w.repo.write(
        "deploy/base/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
  - service.yaml
labels:
  - pairs:
      app.kubernetes.io/name: web
configMapGenerator:
  - name: web-settings
    literals:
      - LOG_LEVEL=info
      - GREETING=hello
",
    );
    w.repo.write(
        "deploy/base/deployment.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.invalid/shop/web:1.0.0
          ports:
            - {containerPort: 8080, protocol: TCP}
          envFrom:
            - configMapRef: {name: web-settings}
",
    );
    w.repo.write(
        "deploy/base/service.yaml",
        "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - {port: 80, targetPort: 8080, protocol: TCP}
",
    );
    for env in THREE {
        let (tag, replicas, level) = overlay(env);
        w.repo.write(
            &format!("deploy/overlays/{env}/kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop-{env}
resources:
  - ../../base
labels:
  - pairs:
      environment: {env}
images:
  - name: registry.invalid/shop/web
    newTag: {tag}
configMapGenerator:
  - name: web-settings
    behavior: merge
    literals:
      - LOG_LEVEL={level}
patches:
  - path: replicas.yaml
"
            ),
        );
        w.repo.write(
            &format!("deploy/overlays/{env}/replicas.yaml"),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n"),
        );
    }
    w.repo.write("README.md", "# shop\n");
}

const OVERLAYS: &str = "deploy/overlays/${CONVEYOR_ENVIRONMENT}";

#[tokio::test]
async fn a_gitops_repository_packages_what_kubectl_kustomize_prints_for_each_overlay() {
    let w = world("kustomize").await;
    w.pipeline(|_| json!({})).await;
    gitops_repository(&w);
    let name = release(&w, "1.1.0", json!({"path": OVERLAYS})).await;
    let r = packaged(&w, &name).await;

    // One rendering per environment, each exactly what kustomize prints for its overlay.
    let files = artifact_files(&w, &r);
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["development/rendered.yaml", "production/rendered.yaml", "staging/rendered.yaml"]);
    let artifact = r.status.as_ref().unwrap().artifact.clone().unwrap();
    for env in THREE {
        let expected = engine(w.repo.path(), "kubectl", &["kustomize", &format!("deploy/overlays/{env}")]).unwrap();
        let (_, got) = files.iter().find(|(p, _)| p == &format!("{env}/rendered.yaml")).unwrap();
        assert_eq!(String::from_utf8_lossy(got), String::from_utf8_lossy(&expected), "{env}");
        // What makes the overlays differ is there: image tag, replicas, generated settings.
        let (tag, replicas, level) = overlay(env);
        let text = String::from_utf8_lossy(got);
        assert!(text.contains(&format!("image: registry.invalid/shop/web:{tag}")), "{env}: {text}");
        assert!(text.contains(&format!("replicas: {replicas}")), "{env}: {text}");
        assert!(text.contains(&format!("LOG_LEVEL: {level}")), "{env}: {text}");
        assert!(!text.contains("kind: Kustomization"), "{env}: a kustomization is never an object");
        let recorded = artifact.environments.iter().find(|e| e.name == env).unwrap();
        // Deployment, Service, ConfigMap.
        assert_eq!((recorded.objects, recorded.namespace.as_deref()), (3, None), "{env}");
    }
    assert_eq!((artifact.objects, artifact.files), (9, 3));

    // `conveyor package` with the Pipeline's environments gives the controller's digest and
    // the per-environment counts.
    let out = Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .args(["package", "--repo", &w.repo.path().display().to_string(), "--ref", "v1.1.0", "--path", OVERLAYS])
        .args(["--environment", "development", "--environment", "staging", "--environment", "production", "-o", "json"])
        .env("CONVEYOR_KUSTOMIZE_BINARY", engines().join("kubectl"))
        .env_remove("CONVEYOR_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["digest"], artifact.digest);
    assert_eq!(report["environments"][1], json!({"name": "staging", "namespace": null, "objects": 3}));
    let one = Command::new(env!("CARGO_BIN_EXE_conveyor"))
        .args(["package", "--repo", &w.repo.path().display().to_string(), "--ref", "v1.1.0", "--path", OVERLAYS])
        .args(["--environment", "staging"])
        .env("CONVEYOR_KUSTOMIZE_BINARY", engines().join("kubectl"))
        .env_remove("CONVEYOR_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(one.status.success() && text.contains("environment staging") && !text.contains("production"), "{text}");
}

#[tokio::test]
async fn a_release_from_kustomize_overlays_walks_all_three_environments() {
    let w = world("overlays").await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    gitops_repository(&w);
    // Detected, not named: each overlay holds a kustomization.yaml.
    let name = release(&w, "1.1.0", json!({"path": OVERLAYS})).await;
    w.settled("production", EnvironmentPhase::Healthy, &name).await;

    for env in THREE {
        let ns = w.namespace(env);
        let (tag, replicas, level) = overlay(env);
        let web = Api::<Deployment>::namespaced(w.client.clone(), ns).get("web").await.unwrap();
        let spec = web.spec.unwrap();
        assert_eq!(spec.replicas, Some(replicas as i32), "{env}");
        let container = &spec.template.spec.unwrap().containers[0];
        assert_eq!(container.image.as_deref(), Some(format!("registry.invalid/shop/web:{tag}").as_str()), "{env}");
        let labels = web.metadata.labels.unwrap();
        assert_eq!(labels["environment"], env);
        assert_eq!(labels["app.kubernetes.io/name"], "web");
        assert_eq!(labels["conveyor.dev/environment"], env);
        // The generated ConfigMap, under its content-hash name, is the one the Deployment reads.
        let settings = container.env_from.as_ref().unwrap()[0].config_map_ref.as_ref().unwrap().name.clone();
        assert!(settings.starts_with("web-settings-"), "{settings}");
        let cm = Api::<ConfigMap>::namespaced(w.client.clone(), ns).get(&settings).await.unwrap();
        let data = cm.data.unwrap();
        assert_eq!((data["LOG_LEVEL"].as_str(), data["GREETING"].as_str()), (level, "hello"), "{env}");
    }
}

/// A local chart whose values differ per environment.
fn chart(w: &World) {
    w.repo.write("charts/shop/Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.3.0\nappVersion: 1.1.0\n");
    w.repo.write("charts/shop/values.yaml", "replicas: 1\ngreeting: hello\nimage:\n  tag: \"1.1.0\"\n");
    for (env, replicas, greeting) in
        [("development", 1, "hi dev"), ("staging", 2, "hello staging"), ("production", 3, "welcome")]
    {
        w.repo
            .write(&format!("charts/shop/values-{env}.yaml"), format!("replicas: {replicas}\ngreeting: {greeting}\n"));
    }
    w.repo.write(
        "charts/shop/templates/deployment.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: \"registry.invalid/shop/web:{{ required \"image.tag is required: set it in values.yaml\" .Values.image.tag }}\"
",
    );
    w.repo.write(
        "charts/shop/templates/configmap.yaml",
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
  namespace: {{ .Release.Namespace | quote }}
",
    );
    w.repo.write(
        "charts/shop/templates/tests/smoke.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-smoke
  annotations: {\"helm.sh/hook\": test}
spec:
  containers: [{name: smoke, image: busybox}]
",
    );
}

#[tokio::test]
async fn a_local_chart_with_per_environment_values_renders_like_helm_template() {
    let w = world("helm").await;
    w.pipeline(|_| json!({})).await;
    chart(&w);
    let source = json!({"path": "charts/shop", "helm": {"valuesFiles": ["values-${CONVEYOR_ENVIRONMENT}.yaml"]}});
    let name = release(&w, "1.1.0", source).await;
    let r = packaged(&w, &name).await;
    let files = artifact_files(&w, &r);
    let artifact = r.status.as_ref().unwrap().artifact.clone().unwrap();
    for env in THREE {
        let ns = w.namespace(env);
        let values = format!("./charts/shop/values-{env}.yaml");
        let args = ["template", "shop", "./charts/shop", "--namespace", ns, "--skip-tests", "--values", &values];
        let expected = engine(w.repo.path(), "helm", &args).unwrap();
        let (_, got) = files.iter().find(|(p, _)| p == &format!("{env}/rendered.yaml")).unwrap();
        assert_eq!(String::from_utf8_lossy(got), String::from_utf8_lossy(&expected), "{env}");
        let text = String::from_utf8_lossy(got);
        // The Pipeline's name is the release name; the environment's values and namespace are in.
        assert!(text.contains("name: shop-web") && text.contains(&format!("namespace: \"{ns}\"")), "{env}: {text}");
        assert!(!text.contains("shop-smoke"), "{env}: test hooks are left out");
        let recorded = artifact.environments.iter().find(|e| e.name == env).unwrap();
        assert_eq!((recorded.objects, recorded.namespace.as_deref()), (2, Some(ns)), "{env}");
    }
    for (env, greeting) in [("development", "hi dev"), ("production", "welcome")] {
        let (_, got) = files.iter().find(|(p, _)| p == &format!("{env}/rendered.yaml")).unwrap();
        assert!(String::from_utf8_lossy(got).contains(&format!("greeting: \"{greeting}\"")), "{env}");
    }
}

#[tokio::test]
async fn a_broken_kustomization_and_a_failing_chart_stall_with_the_engines_message() {
    let w = world("broken").await;
    w.pipeline(|_| json!({})).await;
    // A patch for a Deployment that the kustomization does not have.
    w.repo.write("broken/kustomization.yaml", "resources: [configmap.yaml]\npatches:\n  - path: patch.yaml\n");
    w.repo.write("broken/configmap.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n");
    w.repo.write(
        "broken/patch.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nothing}\nspec: {replicas: 2}\n",
    );
    chart(&w);
    // The chart fails in production only: its values drop the required image tag.
    w.repo.write("charts/shop/values-production.yaml", "image:\n  tag: null\n");
    let kustomize = release(&w, "1.0.0", json!({"path": "broken"})).await;
    let helm = release(
        &w,
        "1.1.0",
        json!({"path": "charts/shop", "helm": {"valuesFiles": ["values-${CONVEYOR_ENVIRONMENT}.yaml"]}}),
    )
    .await;

    let engine_says = engine(w.repo.path(), "kubectl", &["kustomize", "broken"]).unwrap_err();
    let last_line = engine_says.lines().rev().find(|l| !l.trim().is_empty()).unwrap().trim().to_owned();
    let r = stalled(&w, &kustomize).await;
    let c = condition(&r, "Stalled").unwrap();
    assert_eq!(c.reason, "RenderFailed");
    assert!(c.message.starts_with("kubectl kustomize broken failed (exit code 1): "), "{}", c.message);
    assert!(c.message.contains(&last_line), "{} does not carry kustomize's {last_line:?}", c.message);
    assert_eq!(r.status.as_ref().unwrap().phase, Some(ReleasePhase::Failed));

    let r = stalled(&w, &helm).await;
    let c = condition(&r, "Stalled").unwrap();
    assert_eq!(c.reason, "RenderFailed");
    assert!(c.message.contains("for environment production failed"), "{}", c.message);
    assert!(c.message.contains("image.tag is required: set it in values.yaml"), "{}", c.message);
    assert!(!c.message.contains("conveyor-render-"), "scratch paths are not shown: {}", c.message);

    // Nothing stored, nothing applied anywhere, no scratch copy left behind.
    assert_eq!(stored(&w), 0);
    let scratch = std::fs::read_dir(w.controller.artifact_dir.join("render")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(scratch, 0, "scratch copies are removed");
    for env in THREE {
        let deployments = Api::<Deployment>::namespaced(w.client.clone(), w.namespace(env));
        assert!(deployments.list(&ListParams::default()).await.unwrap().items.is_empty(), "{env}");
        let ours = ListParams::default().labels("conveyor.dev/pipeline");
        let cms = Api::<ConfigMap>::namespaced(w.client.clone(), w.namespace(env));
        assert!(cms.list(&ours).await.unwrap().items.is_empty(), "{env}");
    }
    let p = w.pipelines.get("shop").await.unwrap();
    let deployed = p.status.iter().flat_map(|s| &s.environments).filter(|e| e.current.is_some()).count();
    assert_eq!(deployed, 0);
}
