//! Release controller: validate → decide status → write status.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, future};
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{Context, Error, Result, status};
use crate::api::{Pipeline, Release};
use crate::core::status::release_status;
use crate::core::validate::{ReleaseNeighbours, displaced_duplicates, validate_release};

const CONTROLLER: &str = "release";
/// How often a Stalled release whose problem depends on other objects looks again.
const RECHECK_DEPENDENT: Duration = Duration::from_secs(60);
/// Periodic resync of healthy objects.
const RESYNC: Duration = Duration::from_secs(600);

/// State the Release reconciler reads besides the Release itself.
pub struct ReleaseContext {
    base: Arc<Context>,
    pipelines: Store<Pipeline>,
    releases: Store<Release>,
    /// Releases to reconcile again because another reconcile changed what they should show.
    recheck: futures::channel::mpsc::UnboundedSender<ObjectRef<Release>>,
}

/// Builds the Release controller; also returns its Release store and a signal that turns true
/// once the Pipeline cache has synced.
///
/// Validation needs every Pipeline in view, so reconciles start only after that cache synced.
/// The cache is driven by its own stream (not a trigger stream of the controller) and signals
/// readiness through a `watch` channel: kube-runtime's `Store::wait_until_ready` wakes only the
/// last of several concurrent waiters, so reconciles must never wait on it.
pub fn controller(
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> (BoxFuture<'static, ()>, Store<Release>, watch::Receiver<bool>) {
    let (recheck, rechecks) = futures::channel::mpsc::unbounded();
    let controller = Controller::new(ctx.watched_api::<Release>(), watcher::Config::default())
        .reconcile_on(rechecks)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned());
    let releases = controller.store();

    let (pipelines, writer) = reflector::store::<Pipeline>();
    let (synced_tx, synced) = watch::channel(false);
    let by_pipeline = releases.clone();
    let pipeline_trigger = recheck.clone();
    let pipeline_events = watcher(ctx.watched_api::<Pipeline>(), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .take_until(shutdown.clone().cancelled_owned())
        .for_each(move |event| {
            match event {
                Ok(watcher::Event::InitDone) => {
                    synced_tx.send_replace(true);
                }
                // A Pipeline appearing or going away changes whether its Releases are valid.
                Ok(watcher::Event::Apply(p) | watcher::Event::Delete(p)) => {
                    let (ns, name) = (p.namespace(), p.name_any());
                    for r in by_pipeline.state().iter().filter(|r| r.namespace() == ns && r.spec.pipeline == name) {
                        let _ = pipeline_trigger.unbounded_send(ObjectRef::from_obj(r.as_ref()));
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Pipeline watch failed; retrying with backoff"),
            }
            future::ready(())
        });

    let rctx = Arc::new(ReleaseContext { base: ctx, pipelines, releases: releases.clone(), recheck });
    let mut gate = synced.clone();
    let reconciles = async move {
        tokio::select! {
            _ = gate.wait_for(|synced| *synced) => {}
            () = shutdown.cancelled() => return,
        }
        controller
            .run(reconcile, error_policy, rctx)
            .for_each(|res| {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "release controller event");
                }
                future::ready(())
            })
            .await;
    };
    let both = async move {
        tokio::join!(reconciles, pipeline_events);
    };
    (both.boxed(), releases, synced)
}

#[instrument(skip_all, fields(namespace = release.namespace().unwrap_or_default(), name = release.name_any()))]
async fn reconcile(release: Arc<Release>, ctx: Arc<ReleaseContext>) -> Result<Action> {
    let _timer = ctx.base.metrics.reconcile_timer(CONTROLLER);
    let ns = release.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    // Observe (the controller starts only once the Pipeline cache has synced).
    let pipeline_exists = ctx.pipelines.get(&ObjectRef::new(&release.spec.pipeline).within(&ns)).is_some();
    let others: Vec<Arc<Release>> =
        ctx.releases.state().into_iter().filter(|r| r.namespace().as_deref() == Some(&ns)).collect();
    let others: Vec<&Release> = others.iter().map(AsRef::as_ref).collect();

    // Validate and decide (pure).
    let problems = validate_release(&release, &ReleaseNeighbours { pipeline_exists, others: &others });
    let new_status = release_status(&release, &problems, super::now());

    // Write status once, then tell people about transitions.
    let api = kube::Api::<Release>::namespaced(ctx.base.client.clone(), &ns);
    let before = release.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    status::apply(&api, release.as_ref(), release.status.as_ref(), &new_status).await?;
    status::event_on_stall(&ctx.base, release.as_ref(), before, &new_status.conditions).await;
    for displaced in displaced_duplicates(&release, &others) {
        // The receiver lives as long as the controller; a send fails only during shutdown.
        let _ = ctx.recheck.unbounded_send(ObjectRef::from_obj(displaced));
    }
    ctx.base.backoff.reset(&key(&release));

    Ok(match problems.first() {
        Some(p) if p.reason.depends_on_others() => Action::requeue(RECHECK_DEPENDENT),
        Some(_) => Action::await_change(),
        None => Action::requeue(RESYNC),
    })
}

fn key(release: &Release) -> String {
    format!("Release/{}/{}", release.namespace().unwrap_or_default(), release.name_any())
}

fn error_policy(release: Arc<Release>, error: &Error, ctx: Arc<ReleaseContext>) -> Action {
    ctx.base.metrics.reconcile_error(CONTROLLER, error.kind());
    tracing::warn!(error = %error, release = %key(&release), "reconcile failed");
    if error.is_transient() {
        Action::requeue(ctx.base.backoff.next_delay(&key(&release)))
    } else {
        Action::await_change()
    }
}
