//! Pipeline controller: validate → decide status → write status.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, future};
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{Context, Error, Result, status};
use crate::api::{Pipeline, Release};
use crate::core::status::pipeline_status;
use crate::core::validate::validate_pipeline;

const CONTROLLER: &str = "pipeline";
/// Periodic resync of valid objects.
const RESYNC: Duration = Duration::from_secs(600);

/// Builds the Pipeline controller; also returns its store for readiness.
pub fn controller(ctx: Arc<Context>, shutdown: CancellationToken) -> (BoxFuture<'static, ()>, Store<Pipeline>) {
    let controller = Controller::new(ctx.watched_api::<Pipeline>(), watcher::Config::default());
    let store = controller.store();
    let stream = controller
        // A Release change wakes its Pipeline.
        .watches(ctx.watched_api::<Release>(), watcher::Config::default(), |r: Release| {
            r.namespace().map(|ns| ObjectRef::new(&r.spec.pipeline).within(&ns))
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| {
            if let Err(e) = res {
                tracing::debug!(error = %e, "pipeline controller event");
            }
            future::ready(())
        })
        .boxed();
    (stream, store)
}

#[instrument(skip_all, fields(namespace = pipeline.namespace().unwrap_or_default(), name = pipeline.name_any()))]
async fn reconcile(pipeline: Arc<Pipeline>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_timer(CONTROLLER);
    let ns = pipeline.namespace().ok_or(Error::MissingField("metadata.namespace"))?;

    let problems = validate_pipeline(&pipeline.spec);
    let new_status = pipeline_status(&pipeline, &problems, super::now());

    let api = kube::Api::<Pipeline>::namespaced(ctx.client.clone(), &ns);
    let before = pipeline.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    status::apply(&api, pipeline.as_ref(), pipeline.status.as_ref(), &new_status).await?;
    status::event_on_stall(&ctx, pipeline.as_ref(), before, &new_status.conditions).await;
    ctx.backoff.reset(&key(&pipeline));

    Ok(if problems.is_empty() { Action::requeue(RESYNC) } else { Action::await_change() })
}

fn key(pipeline: &Pipeline) -> String {
    format!("Pipeline/{}/{}", pipeline.namespace().unwrap_or_default(), pipeline.name_any())
}

fn error_policy(pipeline: Arc<Pipeline>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_error(CONTROLLER, error.kind());
    tracing::warn!(error = %error, pipeline = %key(&pipeline), "reconcile failed");
    if error.is_transient() { Action::requeue(ctx.backoff.next_delay(&key(&pipeline))) } else { Action::await_change() }
}
