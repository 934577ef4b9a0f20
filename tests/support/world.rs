//! A pipeline test's world: a namespace for the Pipeline and its Releases, one namespace per
//! environment (opted in), a git repository, and the controller as a real process; with waits on
//! the Pipeline's status and Events, and the example application the tests release.

use std::time::Duration;

use conveyor::api::pipeline::{EnvironmentPhase, EnvironmentStatus, HistoryEntry};
use conveyor::api::{Pipeline, Release};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use super::ControllerProcess;
use super::git::GitRepo;

/// Walking three environments takes a few deployments; each waits for Pods.
pub const LONG: Duration = Duration::from_secs(90);

/// One test's world: a pipeline namespace, one namespace per environment (opted in), a git
/// repository, a controller watching the pipeline namespace.
pub struct World {
    pub client: kube::Client,
    pub ns: String,
    /// Environment name → its namespace.
    pub envs: Vec<(String, String)>,
    pub repo: GitRepo,
    pub pipelines: Api<Pipeline>,
    pub releases: Api<Release>,
    pub controller: ControllerProcess,
}

impl World {
    /// Environments `names` (namespaces created and opted in unless listed in `closed`).
    pub async fn new(prefix: &str, names: &[&str], closed: &[&str]) -> Self {
        Self::with_controller_env(prefix, names, closed, &[]).await
    }

    /// As [`World::new`], the controller started with extra environment variables.
    pub async fn with_controller_env(prefix: &str, names: &[&str], closed: &[&str], env: &[(&str, &str)]) -> Self {
        let client = super::client().await;
        super::install_crds(&client).await;
        let ns = super::namespace(&client, prefix).await;
        let mut envs = Vec::new();
        for name in names {
            let target = super::namespace(&client, &format!("{prefix}-{name}")).await;
            if !closed.contains(name) {
                allow(&client, &target, &ns).await;
            }
            envs.push(((*name).to_owned(), target));
        }
        let controller = ControllerProcess::start_with(&ns, "engine", env);
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

    pub fn namespace(&self, env: &str) -> &str {
        &self.envs.iter().find(|(n, _)| n == env).expect("known environment").1
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.envs.iter().map(|(_, ns)| ns.clone()).collect()
    }

    /// Applies the `shop` Pipeline; `extra(i)` adds fields to environment i.
    pub async fn pipeline(&self, extra: impl Fn(&str) -> Value) {
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
    pub async fn release(&self, version: &str, files: &[(&str, String)]) -> String {
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
    pub async fn until(&self, what: &str, cond: impl Fn(&Pipeline) -> bool + Send + 'static) -> Pipeline {
        let found = super::wait(
            what,
            LONG,
            await_condition(self.pipelines.clone(), "shop", move |p: Option<&Pipeline>| p.is_some_and(&cond)),
        )
        .await;
        found.expect("the object that satisfied the condition")
    }

    /// Waits until environment `env` is `phase` with `release` current.
    pub async fn settled(&self, env: &str, phase: EnvironmentPhase, release: &str) -> Pipeline {
        let (e, r) = (env.to_owned(), release.to_owned());
        self.until(&format!("{env} {phase:?} with {release}"), move |p| {
            environment(p, &e).is_some_and(|s| s.phase == phase && current(s) == Some(r.as_str()))
        })
        .await
    }

    pub async fn config_map(&self, env: &str, name: &str) -> Option<ConfigMap> {
        Api::<ConfigMap>::namespaced(self.client.clone(), self.namespace(env)).get_opt(name).await.unwrap()
    }

    /// Waits until an Event with `reason` is recorded on the Pipeline (Events are published
    /// after the status write that they describe).
    pub async fn event(&self, reason: &str) -> Event {
        self.event_saying(reason, "").await
    }

    /// Waits until an Event with `reason` whose note contains `words` is on the Pipeline.
    pub async fn event_saying(&self, reason: &str, words: &str) -> Event {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        super::poll(&format!("a {reason} Event on the Pipeline saying {words:?}"), super::DEADLINE, || {
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

pub async fn allow(client: &kube::Client, target: &str, from: &str) {
    let patch = json!({"metadata": {"labels": {"conveyor.dev/allow-from": from}}});
    Api::<Namespace>::all(client.clone()).patch(target, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

pub fn environment<'a>(p: &'a Pipeline, name: &str) -> Option<&'a EnvironmentStatus> {
    p.status.as_ref()?.environments.iter().find(|e| e.name == name)
}

pub fn current(e: &EnvironmentStatus) -> Option<&str> {
    e.current.as_ref().map(|c| c.release.as_str())
}

pub fn history<'a>(p: &'a Pipeline, env: &str) -> &'a [HistoryEntry] {
    environment(p, env).map(|e| e.history.as_slice()).unwrap_or_default()
}

/// The entry of `release` in `env`'s history.
pub fn entry<'a>(p: &'a Pipeline, env: &str, release: &str) -> &'a HistoryEntry {
    history(p, env)
        .iter()
        .find(|h| h.release == release)
        .unwrap_or_else(|| panic!("{release} not in {env}'s history: {:#?}", history(p, env)))
}

/// The application at `version`: a Deployment `web` and a ConfigMap `web-config` carrying the
/// environment and version through Conveyor's variables.
pub fn app(version: &str) -> Vec<(&'static str, String)> {
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

pub fn config_map(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  {data}\n")
}

pub const THREE: [&str; 3] = ["development", "staging", "production"];
