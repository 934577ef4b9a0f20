//! A test kubelet: no kubelet runs on the test control plane, so Pods are marked ready (or
//! failing) here, as a kubelet would; kube-controller-manager then computes workload status.
//!
//! Two ways to use it: the one-shot [`mark_pods_ready`] / [`mark_pods_failing`] for a test that
//! drives each step, and the automatic [`Kubelet`] for tests of the whole controller, where Pods
//! appear whenever a release is deployed.

use std::collections::BTreeMap;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

fn condition(type_: &str, status: bool, now: &str) -> serde_json::Value {
    json!({"type": type_, "status": if status { "True" } else { "False" }, "lastTransitionTime": now})
}

/// Now, to the second (as Kubernetes writes times).
fn now() -> String {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap().to_string()
}

/// A status patch making `pod` Running, and Ready or crash-looping, as a kubelet reports it.
fn pod_status(pod: &Pod, ready: bool, now: &str) -> serde_json::Value {
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
    json!({"status": {
        "phase": "Running",
        "conditions": [condition("PodScheduled", true, now), condition("Initialized", true, now),
                       condition("ContainersReady", ready, now), condition("Ready", ready, now)],
        "containerStatuses": statuses,
        "startTime": now,
    }})
}

async fn set_pods(client: &Client, ns: &str, selector: &str, ready: bool) -> usize {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api.list(&ListParams::default().labels(selector)).await.expect("list pods");
    let now = now();
    for pod in &pods.items {
        let name = pod.metadata.name.as_deref().expect("pods have names");
        let status = pod_status(pod, ready, &now);
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

/// A label selector in the equality-only form `k=v,k2=v2` (also `k==v`): every pair must match.
/// Set-based forms (`in`, `notin`), `!=` and bare keys are not supported and panic.
#[derive(Clone, Debug)]
struct Selector(Vec<(String, String)>);

impl Selector {
    fn parse(text: &str) -> Self {
        let pairs = text
            .split(',')
            .map(|term| {
                let supported = !term.contains('!') && !term.contains('(');
                let pair = term.split_once("==").or_else(|| term.split_once('='));
                match pair {
                    Some((k, v)) if supported && !k.trim().is_empty() => (k.trim().to_owned(), v.trim().to_owned()),
                    _ => panic!("test kubelet: selector {text:?}: only `k=v,k2=v2` is supported, not {term:?}"),
                }
            })
            .collect();
        Self(pairs)
    }

    fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.0.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    }
}

/// Marks every Pod that appears in `namespaces` Running and Ready, as a kubelet would, until dropped.
///
/// Pods matching a selector given to [`fail`](Self::fail) are marked Running but not Ready
/// (crash-looping) instead. A Pod already in the wanted state is left alone, so the kubelet's
/// own patches, seen again through its watch, end there.
pub struct Kubelet {
    /// Selectors of the Pods to keep failing; each namespace's task re-judges its Pods on change.
    failing: watch::Sender<Vec<Selector>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Kubelet {
    /// Starts watching Pods in each of `namespaces` (one task each, on the current tokio runtime).
    pub fn start(client: Client, namespaces: &[String]) -> Self {
        let (failing, _) = watch::channel(Vec::new());
        let tasks =
            namespaces.iter().map(|ns| tokio::spawn(run(client.clone(), ns.clone(), failing.subscribe()))).collect();
        Self { failing, tasks }
    }

    /// From now on Pods whose labels match `selector` (equality only: `app=web,version=2`) in any
    /// watched namespace are marked failing (not ready, CrashLoopBackOff) instead of ready;
    /// already-ready matching Pods are switched to failing.
    pub fn fail(&self, selector: &str) {
        let selector = Selector::parse(selector);
        self.failing.send_modify(|all| all.push(selector));
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One namespace: marks each Pod as it appears or changes, and every known Pod again when the
/// failing selectors change.
async fn run(client: Client, ns: String, mut failing: watch::Receiver<Vec<Selector>>) {
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).default_backoff().boxed();
    // The latest version seen of each Pod, to re-judge them when a selector is added.
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Init)) => pods.clear(),
                Some(Ok(Event::InitDone)) => {}
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                    let rules = failing.borrow().clone();
                    mark(&api, &pod, &rules).await;
                    pods.insert(pod.metadata.name.clone().unwrap_or_default(), pod);
                }
                Some(Ok(Event::Delete(pod))) => {
                    pods.remove(pod.metadata.name.as_deref().unwrap_or_default());
                }
                // The backoff retries; say why in the test's output.
                Some(Err(e)) => eprintln!("test kubelet: watching pods in {ns}: {e}"),
                None => return,
            },
            changed = failing.changed() => {
                if changed.is_err() {
                    return; // the Kubelet is gone
                }
                let rules = failing.borrow_and_update().clone();
                for pod in pods.values() {
                    mark(&api, pod, &rules).await;
                }
            }
        }
    }
}

/// `Some(ready)` when `pod` is Running with a `Ready` condition, `None` while it is not running.
fn marked(pod: &Pod) -> Option<bool> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ready = status.conditions.iter().flatten().find(|c| c.type_ == "Ready")?;
    Some(ready.status == "True")
}

/// Marks `pod` ready, or failing when a selector in `failing` matches it, unless it already is.
async fn mark(api: &Api<Pod>, pod: &Pod, failing: &[Selector]) {
    if pod.metadata.deletion_timestamp.is_some() {
        return;
    }
    let ready = !failing.iter().any(|s| s.matches(pod.metadata.labels.as_ref()));
    if marked(pod) == Some(ready) {
        return;
    }
    let name = pod.metadata.name.as_deref().expect("pods have names");
    let status = pod_status(pod, ready, &now());
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {} // deleted meanwhile: nothing to run
        // A task cannot fail the test; the test's deadline will, with this printed beside it.
        Err(e) => eprintln!("test kubelet: marking pod {name} ready={ready}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn selectors_match_every_pair() {
        let pod = labels(&[("app", "web"), ("version", "2")]);
        assert!(Selector::parse("app=web").matches(Some(&pod)));
        assert!(Selector::parse("app=web,version=2").matches(Some(&pod)));
        assert!(Selector::parse("app==web").matches(Some(&pod)));
        assert!(!Selector::parse("app=web,version=1").matches(Some(&pod)));
        assert!(!Selector::parse("tier=db").matches(Some(&pod)));
        assert!(!Selector::parse("app=web").matches(None));
    }

    #[test]
    #[should_panic(expected = "only `k=v,k2=v2` is supported")]
    fn set_based_selectors_are_refused() {
        Selector::parse("app in (web)");
    }
}
