//! Pipeline controller: observe → validate → plan (pure) → write status → execute → repeat
//! while the plan moves on at once, then update each Release's journey.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{Context, Error, Result, environment, status};
use crate::api::pipeline::{PIPELINE_LABEL, PIPELINE_NAMESPACE_LABEL};
use crate::api::{Pipeline, Release};
use crate::core::environments::{
    approvals, automatic_rollback, candidates, environment_specs, history_limit, paused, rollback_requests,
};
use crate::core::metrics::{self, ended};
use crate::core::plan::{self, Input, Observation, checks_to_probe, namespace_allowed};
use crate::core::status::{current_states, pipeline_status};
use crate::core::validate::validate_pipeline;

const CONTROLLER: &str = "pipeline";
/// Periodic resync of settled pipelines.
const RESYNC: Duration = Duration::from_secs(600);
/// Plan-and-execute rounds in one reconcile: enough for every environment to settle what it
/// observed, start a deployment and take its outcome; the rest waits for the next reconcile.
const ROUNDS_PER_ENVIRONMENT: usize = 3;

/// State the Pipeline reconciler reads besides the Pipeline itself.
pub struct PipelineContext {
    base: Arc<Context>,
    releases: Store<Release>,
}

/// Builds the Pipeline controller; also returns its store for readiness.
///
/// Besides its Pipelines it watches their Releases (through its own cache, updated before the
/// Pipeline is woken, so a reconcile never misses the release that woke it), the workloads it
/// applied (labelled with the pipeline) so that health is seen as soon as it changes, and
/// Namespaces (an opt-in label may arrive after the pipeline was refused).
pub fn controller(ctx: Arc<Context>, shutdown: CancellationToken) -> (BoxFuture<'static, ()>, Store<Pipeline>) {
    let (releases, writer) = reflector::store::<Release>();
    let release_changes = watcher(ctx.watched_api::<Release>(), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .filter_map(|r| {
            future::ready(match r {
                Ok(r) => r.namespace().map(|ns| ObjectRef::new(&r.spec.pipeline).within(&ns)),
                Err(e) => {
                    tracing::warn!(error = %e, "Release watch failed; retrying with backoff");
                    None
                }
            })
        });
    let controller = Controller::new(ctx.watched_api::<Pipeline>(), watcher::Config::default());
    let store = controller.store();
    let applied = || watcher::Config::default().labels(PIPELINE_LABEL);
    let client = ctx.client.clone();
    let targets = store.clone();
    let stream = controller
        .reconcile_on(release_changes)
        .watches(Api::<Deployment>::all(client.clone()), applied(), owner)
        .watches(Api::<StatefulSet>::all(client.clone()), applied(), owner)
        .watches(Api::<DaemonSet>::all(client.clone()), applied(), owner)
        .watches(Api::<Namespace>::all(client), watcher::Config::default(), move |ns: Namespace| {
            let name = ns.name_any();
            targets
                .state()
                .into_iter()
                .filter(|p| p.spec.environments.iter().any(|e| e.namespace == name))
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, Arc::new(PipelineContext { base: ctx, releases }))
        .for_each(|res| {
            if let Err(e) = res {
                tracing::debug!(error = %e, "pipeline controller event");
            }
            future::ready(())
        })
        .boxed();
    (stream, store)
}

/// The Pipeline that applied a workload, from the labels Conveyor put on it.
fn owner<K: Resource>(obj: K) -> Option<ObjectRef<Pipeline>> {
    let labels = obj.meta().labels.as_ref()?;
    Some(ObjectRef::new(labels.get(PIPELINE_LABEL)?).within(labels.get(PIPELINE_NAMESPACE_LABEL)?))
}

#[instrument(skip_all, fields(namespace = cached.namespace().unwrap_or_default(), name = cached.name_any()))]
async fn reconcile(cached: Arc<Pipeline>, ctx: Arc<PipelineContext>) -> Result<Action> {
    let base = &ctx.base;
    let _timer = base.metrics.reconcile_timer(CONTROLLER);
    let ns = cached.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let api = Api::<Pipeline>::namespaced(base.client.clone(), &ns);
    // Read afresh: the cache may not hold the status written by the previous reconcile yet, and
    // planning from an older status would repeat steps already taken.
    let Some(mut pipeline) = api.get_opt(&cached.name_any()).await? else { return Ok(Action::await_change()) };

    // Validate (pure).
    let problems = validate_pipeline(&pipeline.spec);
    if !problems.is_empty() {
        let new_status = pipeline_status(&pipeline, &problems, None, super::now());
        let before = pipeline.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
        status::apply(&api, &pipeline, pipeline.status.as_ref(), &new_status).await?;
        status::event_on_stall(base, &pipeline, &before, &new_status.conditions).await;
        return Ok(Action::await_change());
    }

    // Observe what does not change within this reconcile.
    let name = pipeline.name_any();
    let specs = environment_specs(&pipeline.spec, base.config.validation_timeout);
    let annotations = pipeline.metadata.annotations.clone().unwrap_or_default();
    let approvals = approvals(&annotations);
    let rollbacks = rollback_requests(&annotations);
    let rollback = automatic_rollback(&pipeline.spec, base.config.rollback_enabled);
    let releases: Vec<Arc<Release>> =
        ctx.releases.state().into_iter().filter(|r| r.namespace().as_deref() == Some(&ns)).collect();
    let candidates = candidates(&name, releases.iter().map(AsRef::as_ref));
    let allowed = allowed_namespaces(base, &ns, &specs).await?;
    let limit = history_limit(&pipeline.spec);
    for env in &specs {
        base.metrics.environment_known([&ns, &name, &env.name]);
    }

    let mut state = current_states(&pipeline);
    let mut observed = vec![Observation::default(); specs.len()];
    let mut requeue = None;
    for _ in 0..ROUNDS_PER_ENVIRONMENT * specs.len() + 1 {
        // Look at every environment being verified at once: workloads first, then the checks
        // that are due (all concurrently), once per reconcile.
        let now = super::now();
        let looks = pipeline.spec.environments.iter().enumerate().filter_map(|(i, env)| {
            let verifying = state[i].verifying() && observed[i].health.is_none();
            let (spec, state) = (&specs[i], &state[i]);
            verifying.then_some(async move {
                let workloads = environment::health(base, env, state).await?;
                let due = checks_to_probe(spec, state, &workloads, now);
                let samples = environment::probe(base, env, &due).await;
                Ok::<_, Error>((i, Observation { deploy: None, health: Some(workloads), samples }))
            })
        });
        for (i, seen) in future::try_join_all(looks).await? {
            observed[i] = seen;
        }
        let plan = plan::plan(&Input {
            environments: &specs,
            allowed: &allowed,
            paused: paused(&annotations),
            approvals: &approvals,
            rollbacks: &rollbacks,
            rollback,
            releases: &candidates,
            state: &state,
            observed: &observed,
            history_limit: limit,
            now,
        });

        // Write status before acting on it: a restart then resumes the same deployment.
        let new_status = pipeline_status(&pipeline, &[], Some(&plan), super::now());
        status::apply(&api, &pipeline, pipeline.status.as_ref(), &new_status).await?;
        pipeline.status = Some(new_status);
        record_ended(base, &ns, &name, &specs, &state, &plan.state, &releases);
        state = plan.state;
        requeue = plan.requeue;
        // Deploy outcomes are consumed by this plan; health read moments ago still holds for the
        // next round, except where a new deployment starts (cleared below).
        for seen in &mut observed {
            seen.deploy = None;
            seen.samples.clear();
        }

        let mut deployed = false;
        for action in plan.actions {
            match action {
                plan::Action::Event(e) => {
                    // Webhooks hear of it too: queued, never awaited, so a dead receiver cannot slow this loop.
                    base.notifier.announce(&pipeline, &specs[e.environment].name, &state[e.environment], &releases, &e);
                    if e.reason == "RollingBack" {
                        let at = [ns.as_str(), name.as_str(), specs[e.environment].name.as_str()];
                        base.metrics.rollback(at, if e.warning { "automatic" } else { "requested" });
                    }
                    let type_ = if e.warning { EventType::Warning } else { EventType::Normal };
                    // One action per environment and the release as related object: Events of
                    // different transitions must not fold into one another.
                    let action = format!("Deploy/{}", specs[e.environment].name);
                    let related = releases.iter().find(|r| r.name_any() == e.release).map(|r| r.object_ref(&()));
                    status::publish_related(base, &pipeline, related, type_, e.reason, &e.message, &action).await;
                }
                plan::Action::Deploy { environment: i, release, id } => {
                    tracing::info!(environment = %specs[i].name, %release, %id, "deploying");
                    let outcome = environment::deploy(base, &pipeline, i, &state[i], &release, &releases).await?;
                    // What was seen before belongs to the release this one replaces.
                    observed[i] = Observation { deploy: Some(outcome), ..Observation::default() };
                    deployed = true;
                }
            }
        }
        if !deployed && requeue != Some(Duration::ZERO) {
            break;
        }
    }

    environment::write_journeys(base, &pipeline, &specs, &state, &releases).await?;
    base.backoff.reset(&key(&pipeline));
    Ok(match requeue {
        // Rounds ran out with more to do at once: come back shortly.
        Some(Duration::ZERO) => Action::requeue(Duration::from_secs(1)),
        Some(after) => Action::requeue(after),
        None => Action::requeue(RESYNC),
    })
}

/// Counts and times the deployments that ended in this round (once its status is written, so a
/// round that is planned again after a failed write is not counted twice).
fn record_ended(
    ctx: &Context,
    ns: &str,
    name: &str,
    specs: &[plan::EnvironmentSpec],
    before: &[plan::EnvironmentState],
    after: &[plan::EnvironmentState],
    releases: &[Arc<Release>],
) {
    for ended in ended(before, after) {
        let at = [ns, name, specs[ended.environment].name.as_str()];
        // Lead time for changes: from the commit to healthy here, for a new release.
        let lead_time = (ended.result == Some(metrics::Result::Succeeded))
            .then(|| releases.iter().find(|r| r.name_any() == ended.release))
            .flatten()
            .and_then(|r| r.status.as_ref()?.committed_at.as_ref())
            .map(|committed| metrics::seconds(committed.0, ended.finished_at));
        ctx.metrics.deployment_ended(at, &ended, lead_time);
    }
}

/// Per environment, whether the pipeline may deploy into its namespace (a namespace that does
/// not exist does not allow it, unless it is the pipeline's own).
async fn allowed_namespaces(ctx: &Context, ns: &str, specs: &[plan::EnvironmentSpec]) -> Result<Vec<bool>> {
    let api = Api::<Namespace>::all(ctx.client.clone());
    let mut labels: BTreeMap<&str, Option<BTreeMap<String, String>>> = BTreeMap::new();
    for env in specs {
        if env.namespace != ns && !labels.contains_key(env.namespace.as_str()) {
            let found = api.get_opt(&env.namespace).await?;
            labels.insert(&env.namespace, found.and_then(|n| n.metadata.labels));
        }
    }
    Ok(specs
        .iter()
        .map(|env| namespace_allowed(ns, &env.namespace, labels.get(env.namespace.as_str()).and_then(Option::as_ref)))
        .collect())
}

fn key(pipeline: &Pipeline) -> String {
    format!("Pipeline/{}/{}", pipeline.namespace().unwrap_or_default(), pipeline.name_any())
}

fn error_policy(pipeline: Arc<Pipeline>, error: &Error, ctx: Arc<PipelineContext>) -> Action {
    ctx.base.metrics.reconcile_error(CONTROLLER, error.kind());
    tracing::warn!(error = %error, pipeline = %key(&pipeline), "reconcile failed");
    if error.is_transient() {
        Action::requeue(ctx.base.backoff.next_delay(&key(&pipeline)))
    } else {
        Action::await_change()
    }
}
