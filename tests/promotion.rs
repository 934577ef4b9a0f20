//! The pipeline engine on the real API server with the test kubelet: releases walk the
//! environments in order, gates hold them, a newer release never overtakes an older one,
//! pruning and dry-run refusals behave, namespaces must opt in, and a restarted controller
//! resumes where it was.

mod support;

use std::time::Duration;

use conveyor::api::pipeline::{DeploymentResult, EnvironmentPhase, EnvironmentStatus, HistoryEntry};
use conveyor::api::{Pipeline, Release};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};
use support::ControllerProcess;
use support::cli::conveyor;
use support::git::GitRepo;
use support::kubelet::Kubelet;

/// Walking three environments takes a few deployments; each waits for Pods.
const LONG: Duration = Duration::from_secs(90);

/// One test's world: a pipeline namespace, one namespace per environment (opted in), a git
/// repository, a controller watching the pipeline namespace.
struct World {
    client: kube::Client,
    ns: String,
    /// Environment name → its namespace.
    envs: Vec<(String, String)>,
    repo: GitRepo,
    pipelines: Api<Pipeline>,
    releases: Api<Release>,
    controller: ControllerProcess,
}

impl World {
    /// Environments `names` (namespaces created and opted in unless listed in `closed`).
    async fn new(prefix: &str, names: &[&str], closed: &[&str]) -> Self {
        let client = support::client().await;
        support::install_crds(&client).await;
        let ns = support::namespace(&client, prefix).await;
        let mut envs = Vec::new();
        for name in names {
            let target = support::namespace(&client, &format!("{prefix}-{name}")).await;
            if !closed.contains(name) {
                allow(&client, &target, &ns).await;
            }
            envs.push(((*name).to_owned(), target));
        }
        let controller = ControllerProcess::start(&ns, "engine");
        let repo = GitRepo::init();
        Self {
            pipelines: Api::namespaced(client.clone(), &ns),
            releases: Api::namespaced(client.clone(), &ns),
            client,
            ns,
            envs,
            repo,
            controller,
        }
    }

    fn namespace(&self, env: &str) -> &str {
        &self.envs.iter().find(|(n, _)| n == env).expect("known environment").1
    }

    fn namespaces(&self) -> Vec<String> {
        self.envs.iter().map(|(_, ns)| ns.clone()).collect()
    }

    /// Applies the `shop` Pipeline; `extra(i)` adds fields to environment i.
    async fn pipeline(&self, extra: impl Fn(&str) -> Value) {
        let environments: Vec<Value> = self
            .envs
            .iter()
            .map(|(name, ns)| {
                let mut env = json!({"name": name, "namespace": ns});
                if let Value::Object(more) = extra(name) {
                    env.as_object_mut().unwrap().extend(more);
                }
                env
            })
            .collect();
        let pipeline = json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "shop"},
                              "spec": {"environments": environments}});
        self.pipelines.patch("shop", &PatchParams::apply("kubectl"), &Patch::Apply(&pipeline)).await.unwrap();
    }

    /// Commits `files` (path under deploy/ → content) as version `version`, tags it and
    /// applies its Release; returns the Release name.
    async fn release(&self, version: &str, files: &[(&str, String)]) -> String {
        self.repo.git(&["rm", "-rq", "--ignore-unmatch", "deploy"]);
        for (path, content) in files {
            self.repo.write(&format!("deploy/{path}"), content);
        }
        self.repo.commit(&format!("feat: version {version}"));
        self.repo.tag(&format!("v{version}"));
        let name = format!("shop-{version}");
        let release = json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Release", "metadata": {"name": name},
            "spec": {"pipeline": "shop", "version": version,
                     "source": {"git": {"url": self.repo.file_url(), "ref": {"tag": format!("v{version}")}}, "path": "deploy"}}});
        self.releases.patch(&name, &PatchParams::apply("kubectl"), &Patch::Apply(&release)).await.unwrap();
        name
    }

    /// Waits (watch-based, deadline `LONG`) until the Pipeline satisfies `cond`.
    async fn until(&self, what: &str, cond: impl Fn(&Pipeline) -> bool + Send + 'static) -> Pipeline {
        let found = support::wait(
            what,
            LONG,
            await_condition(self.pipelines.clone(), "shop", move |p: Option<&Pipeline>| p.is_some_and(&cond)),
        )
        .await;
        found.expect("the object that satisfied the condition")
    }

    /// Waits until environment `env` is `phase` with `release` current.
    async fn settled(&self, env: &str, phase: EnvironmentPhase, release: &str) -> Pipeline {
        let (e, r) = (env.to_owned(), release.to_owned());
        self.until(&format!("{env} {phase:?} with {release}"), move |p| {
            environment(p, &e).is_some_and(|s| s.phase == phase && current(s) == Some(r.as_str()))
        })
        .await
    }

    async fn config_map(&self, env: &str, name: &str) -> Option<ConfigMap> {
        Api::<ConfigMap>::namespaced(self.client.clone(), self.namespace(env)).get_opt(name).await.unwrap()
    }

    /// Waits until an Event with `reason` is recorded on the Pipeline (Events are published
    /// after the status write that they describe).
    async fn event(&self, reason: &str) -> Event {
        self.event_saying(reason, "").await
    }

    /// Waits until an Event with `reason` whose note contains `words` is on the Pipeline.
    async fn event_saying(&self, reason: &str, words: &str) -> Event {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        support::poll(&format!("a {reason} Event on the Pipeline saying {words:?}"), support::DEADLINE, || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items.into_iter().find(|e| {
                    e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Pipeline")
                        && e.reason.as_deref() == Some(reason)
                        && e.note.as_deref().is_some_and(|n| n.contains(words))
                })
            }
        })
        .await
    }
}

async fn allow(client: &kube::Client, target: &str, from: &str) {
    let patch = json!({"metadata": {"labels": {"conveyor.dev/allow-from": from}}});
    Api::<Namespace>::all(client.clone()).patch(target, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

fn environment<'a>(p: &'a Pipeline, name: &str) -> Option<&'a EnvironmentStatus> {
    p.status.as_ref()?.environments.iter().find(|e| e.name == name)
}

fn current(e: &EnvironmentStatus) -> Option<&str> {
    e.current.as_ref().map(|c| c.release.as_str())
}

fn history<'a>(p: &'a Pipeline, env: &str) -> &'a [HistoryEntry] {
    environment(p, env).map(|e| e.history.as_slice()).unwrap_or_default()
}

/// The entry of `release` in `env`'s history.
fn entry<'a>(p: &'a Pipeline, env: &str, release: &str) -> &'a HistoryEntry {
    history(p, env)
        .iter()
        .find(|h| h.release == release)
        .unwrap_or_else(|| panic!("{release} not in {env}'s history: {:#?}", history(p, env)))
}

/// The application at `version`: a Deployment `web` and a ConfigMap `web-config` carrying the
/// environment and version through Conveyor's variables.
fn app(version: &str) -> Vec<(&'static str, String)> {
    let deployment = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.invalid/web:1
          ports:
            - {containerPort: 8080, protocol: TCP}
"
    .to_owned();
    let config = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  ENVIRONMENT: \"${{CONVEYOR_ENVIRONMENT}}\"\n  VERSION: \"${{CONVEYOR_VERSION}}\"\n  BUILD: \"{version}\"\n"
    );
    vec![("web.yaml", deployment), ("config.yaml", config)]
}

fn config_map(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  {data}\n")
}

const THREE: [&str; 3] = ["development", "staging", "production"];

#[tokio::test]
async fn a_release_walks_the_environments_in_order() {
    let w = World::new("walk", &THREE, &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    let p = w.settled("production", EnvironmentPhase::Healthy, &release).await;

    // Status timestamps prove the order: each environment started once the one before it
    // had finished healthy.
    let entries: Vec<&HistoryEntry> = THREE.iter().map(|env| entry(&p, env, &release)).collect();
    for (env, e) in THREE.iter().zip(&entries) {
        assert_eq!(e.result, DeploymentResult::Succeeded, "{env}");
        assert_eq!(e.deployment_id, format!("{env}-1"));
        assert!(e.finished_at.as_ref().unwrap().0 >= e.started_at.0, "{env}: {e:?}");
    }
    for pair in entries.windows(2) {
        assert!(
            pair[1].started_at.0 >= pair[0].finished_at.as_ref().unwrap().0,
            "{} started before {} was healthy",
            pair[1].deployment_id,
            pair[0].deployment_id
        );
    }
    // Each environment's objects were created only after the environment before was healthy,
    // rendered for their environment.
    for (i, env) in THREE.iter().enumerate() {
        let cm = w.config_map(env, "web-config").await.expect("web-config applied");
        let data = cm.data.unwrap();
        assert_eq!((data["ENVIRONMENT"].as_str(), data["VERSION"].as_str()), (*env, "1.0.0"));
        let labels = cm.metadata.labels.unwrap();
        assert_eq!(labels["conveyor.dev/release"], release);
        assert_eq!(labels["conveyor.dev/environment"], *env);
        if i > 0 {
            let created = cm.metadata.creation_timestamp.unwrap().0;
            assert!(created >= entries[i - 1].finished_at.as_ref().unwrap().0, "{env} objects came too early");
        }
        let e = environment(&p, env).unwrap();
        assert_eq!(e.phase, EnvironmentPhase::Healthy);
        assert!(e.inventory.iter().any(|o| o.kind == "Deployment" && o.name == "web"), "{env}: {:?}", e.inventory);
    }
    // The Release's own status tells the same journey (written after the Pipeline's).
    let r = support::wait_for(&w.releases, &release, "the Release's journey", |r: &Release| {
        r.status.as_ref().is_some_and(|s| {
            s.environments.len() == 3 && s.environments.iter().all(|e| e.phase == EnvironmentPhase::Healthy)
        })
    })
    .await;
    let journey = r.status.unwrap();
    assert_eq!(journey.environment.as_deref(), Some("production"));
    let phases: Vec<_> = journey.environments.iter().map(|e| (e.name.as_str(), e.phase)).collect();
    assert_eq!(phases, THREE.map(|e| (e, EnvironmentPhase::Healthy)));
    // One Event per transition, none folded into another: a deploy, two promotions, three
    // environments healthy, each naming its environment.
    for (reason, expected) in [
        ("Deploying", vec!["to development"]),
        ("Promoting", vec!["to staging", "to production"]),
        ("Healthy", vec!["in development", "in staging", "in production"]),
    ] {
        for words in expected {
            w.event_saying(reason, words).await;
        }
    }
    // The Pipeline is Ready once everything settled.
    let p = w
        .until("Pipeline Ready", |p| {
            p.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .await;
    assert_eq!(p.status.unwrap().summary.as_deref(), Some("development=Healthy staging=Healthy production=Healthy"));
}

#[tokio::test]
async fn a_manual_gate_holds_production_until_approved_and_soak_is_honoured() {
    let w = World::new("gate", &THREE, &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|env| match env {
        "staging" => json!({"soak": "4s"}),
        "production" => json!({"approval": "Manual"}),
        _ => json!({}),
    })
    .await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    let r = release.clone();
    let p = w
        .until("production awaiting approval", move |p| {
            environment(p, "production").is_some_and(|e| {
                e.phase == EnvironmentPhase::AwaitingApproval && e.awaiting_approval.as_deref() == Some(r.as_str())
            })
        })
        .await;
    // Soak: staging stayed healthy for 4 s before it counted as Healthy.
    let staging = entry(&p, "staging", &release);
    let soaked = staging.finished_at.as_ref().unwrap().0.duration_since(staging.started_at.0);
    assert!(soaked.as_secs() >= 4, "staging finished {soaked:?} after it started, within its 4s soak");
    assert!(w.config_map("production", "web-config").await.is_none(), "nothing applied before approval");
    let condition = p.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Reconciling").unwrap();
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "AwaitingApproval"));
    let event = w.event("AwaitingApproval").await;
    assert!(event.note.unwrap_or_default().contains(&release));

    conveyor(&["approve", "shop", "production", "-n", &w.ns]).ok();
    let p = w.settled("production", EnvironmentPhase::Healthy, &release).await;
    let production = entry(&p, "production", &release);
    assert!(production.started_at.0 >= staging.finished_at.as_ref().unwrap().0);
    assert!(w.config_map("production", "web-config").await.is_some());
}

#[tokio::test]
async fn a_newer_release_follows_an_older_one_and_never_overtakes_it() {
    let w = World::new("order", &THREE, &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    // A soak in every environment keeps the first release in flight while the second arrives.
    w.pipeline(|_| json!({"soak": "3s"})).await;
    let first = w.release("1.0.0", &app("1.0.0")).await;
    let f = first.clone();
    w.until("1.0.0 in flight in development", move |p| {
        environment(p, "development")
            .is_some_and(|e| current(e) == Some(f.as_str()) && e.phase != EnvironmentPhase::Idle)
    })
    .await;
    let second = w.release("1.1.0", &app("1.1.0")).await;
    let p = w.settled("production", EnvironmentPhase::Healthy, &second).await;

    for (i, env) in THREE.iter().enumerate() {
        let (old, new) = (entry(&p, env, &first), entry(&p, env, &second));
        assert_eq!((old.result, new.result), (DeploymentResult::Succeeded, DeploymentResult::Succeeded), "{env}");
        // One release at a time: the newer one started here only after the older one finished here.
        assert!(new.started_at.0 >= old.finished_at.as_ref().unwrap().0, "{env}: {new:?} overtook {old:?}");
        if i > 0 {
            let upstream = entry(&p, THREE[i - 1], &second);
            assert!(new.started_at.0 >= upstream.finished_at.as_ref().unwrap().0, "{env} skipped ahead");
        }
        // Exactly two deployments here, the older first.
        let releases: Vec<&str> = history(&p, env).iter().map(|h| h.release.as_str()).collect();
        assert_eq!(releases, [second.as_str(), first.as_str()], "{env}");
    }
}

#[tokio::test]
async fn a_dropped_object_is_pruned_and_a_refused_object_leaves_the_environment_untouched() {
    let w = World::new("prune", &["development"], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let mut v1 = app("1.0.0");
    v1.push(("legacy.yaml", config_map("legacy", "OLD: \"yes\"")));
    let first = w.release("1.0.0", &v1).await;
    w.settled("development", EnvironmentPhase::Healthy, &first).await;
    assert!(w.config_map("development", "legacy").await.is_some());

    let second = w.release("1.1.0", &app("1.1.0")).await;
    let p = w.settled("development", EnvironmentPhase::Healthy, &second).await;
    assert!(w.config_map("development", "legacy").await.is_none(), "legacy was not pruned");
    let inventory = &environment(&p, "development").unwrap().inventory;
    assert!(!inventory.iter().any(|o| o.name == "legacy"), "{inventory:?}");

    // 1.2.0 changes the config and adds a ConfigMap the API server refuses (a data key with a space).
    let mut v3 = app("1.2.0");
    v3.push(("broken.yaml", config_map("broken", "\"not a key\": x")));
    let third = w.release("1.2.0", &v3).await;
    let t = third.clone();
    let p = w
        .until("1.2.0 failed in development", move |p| {
            history(p, "development").iter().any(|h| h.release == t && h.result == DeploymentResult::Failed)
        })
        .await;
    let dev = environment(&p, "development").unwrap();
    assert_eq!(dev.phase, EnvironmentPhase::Failed);
    assert_eq!(current(dev), Some(second.as_str()), "the environment still runs 1.1.0");
    let reason = dev.reason.as_deref().unwrap();
    assert!(reason.contains("broken"), "the reason names the refused object: {reason}");
    let cm = w.config_map("development", "web-config").await.unwrap();
    assert_eq!(cm.data.unwrap()["BUILD"], "1.1.0", "nothing of 1.2.0 was applied");
    assert!(w.config_map("development", "broken").await.is_none());
    let event = w.event("DeployFailed").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

#[tokio::test]
async fn a_namespace_without_the_opt_in_label_is_refused_until_it_opts_in() {
    let w = World::new("tenancy", &["development", "production"], &["production"]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.settled("development", EnvironmentPhase::Healthy, &release).await;
    let p = w
        .until("production refused", |p| {
            environment(p, "production").is_some_and(|e| e.reason.as_deref().is_some_and(|r| r.contains("allow-from")))
        })
        .await;
    let production = environment(&p, "production").unwrap();
    assert_eq!(production.phase, EnvironmentPhase::Idle);
    let stalled = p.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "NamespaceNotAllowed"));
    assert!(stalled.message.contains(w.namespace("production")), "{}", stalled.message);
    w.event("NamespaceNotAllowed").await;
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), w.namespace("production"));
    assert!(deployments.list(&ListParams::default()).await.unwrap().items.is_empty(), "nothing applied there");

    // Opting in (the Namespace watch wakes the pipeline) lets the release through.
    allow(&w.client, w.namespace("production"), &w.ns).await;
    w.settled("production", EnvironmentPhase::Healthy, &release).await;
}

#[tokio::test]
async fn a_controller_killed_mid_promotion_resumes_without_skipping_or_losing_history() {
    let mut w = World::new("restart", &THREE, &[]).await;
    // Only development's Pods become ready: staging stays Verifying.
    let kubelet = Kubelet::start(w.client.clone(), &[w.namespace("development").to_owned()]);
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.settled("staging", EnvironmentPhase::Verifying, &release).await;
    w.controller.kill();
    drop(kubelet);

    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.controller = ControllerProcess::start(&w.ns, "engine-2");
    let p = w.settled("production", EnvironmentPhase::Healthy, &release).await;
    for env in THREE {
        let ids: Vec<&str> = history(&p, env).iter().map(|h| h.deployment_id.as_str()).collect();
        assert_eq!(ids, [format!("{env}-1")], "{env}: one deployment, not lost, not repeated");
        assert_eq!(environment(&p, env).unwrap().deployments, Some(1), "{env}");
    }
    let staging = entry(&p, "staging", &release);
    let development = entry(&p, "development", &release);
    assert!(staging.started_at.0 >= development.finished_at.as_ref().unwrap().0);
}

#[tokio::test]
async fn a_paused_pipeline_holds_a_release_until_resumed() {
    let w = World::new("pause", &["development"], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    conveyor(&["pause", "shop", "-n", &w.ns]).ok();
    let release = w.release("1.0.0", &app("1.0.0")).await;
    let r = release.clone();
    // The controller saw the packaged release and held it: the Pipeline says so.
    let p = w
        .until("the pause holding 1.0.0", move |p| {
            p.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Stalled" && c.status == "True" && c.reason == "Paused" && c.message.contains(r.as_str())
                })
            })
        })
        .await;
    let dev = environment(&p, "development").unwrap();
    assert_eq!((dev.phase, dev.current.as_ref()), (EnvironmentPhase::Idle, None));
    assert!(w.config_map("development", "web-config").await.is_none(), "nothing applied while paused");

    conveyor(&["resume", "shop", "-n", &w.ns]).ok();
    w.settled("development", EnvironmentPhase::Healthy, &release).await;
}
