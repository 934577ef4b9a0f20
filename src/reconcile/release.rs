//! Release controller: observe → validate → decide the step → package or verify → write status.

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

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::EventType;

use super::{Context, Error, Result, status};
use crate::api::release::{Artifact, ArtifactEnvironment, ReleasePhase};
use crate::api::types::{Digest, Version};
use crate::api::{Pipeline, Reason, Release};
use crate::core::notes::{MAX_NOTES_BYTES, truncate_at_char_boundary};
use crate::core::release::{Outcome, Step, immutability_problems, next_step, own_part, packaged_spec, release_status};
use crate::core::validate::{ReleaseNeighbours, displaced_duplicates, validate_release};
use crate::packaging;
use crate::renderers::{Engines, Environment};
use crate::source::{Credentials, Reference};

const CONTROLLER: &str = "release";
/// How often a Stalled release whose problem depends on other objects looks again.
const RECHECK_DEPENDENT: Duration = Duration::from_secs(60);
/// Releases reconciled (and so packaged) at once: packaging is CPU, disk and network heavy.
const PACKAGING_CONCURRENCY: u16 = 4;
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
        .with_config(kube::runtime::controller::Config::default().concurrency(PACKAGING_CONCURRENCY))
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

    // Validate (pure). Once packaged, the packaged spec is what counts; changes are refused.
    let mut problems = immutability_problems(&release);
    let neighbours = ReleaseNeighbours { pipeline_exists, others: &others };
    match packaged_spec(&release) {
        Some(spec) if !problems.is_empty() => {
            let mut packaged = release.as_ref().clone();
            packaged.spec = spec.clone();
            problems.extend(validate_release(&packaged, &neighbours));
        }
        _ => problems.extend(validate_release(&release, &neighbours)),
    }

    // Decide (pure), then execute the one step.
    let step = next_step(&release, &problems);
    let outcome = match &step {
        Step::Stall => None,
        Step::Wait => return Ok(Action::await_change()),
        Step::Begin => Some(Outcome::Begun),
        Step::Package => Some(package(&release, &ns, &others, &ctx).await),
        Step::Verify { commit, digest } => Some(verify(&release, &ns, commit, digest, &ctx).await),
    };
    let new_status = release_status(&release, &problems, outcome.as_ref(), super::now());

    // Write status once, then tell people about transitions.
    let api = kube::Api::<Release>::namespaced(ctx.base.client.clone(), &ns);
    let before = release.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let written = release.status.as_ref().map(own_part);
    status::apply(&api, release.as_ref(), written.as_ref(), &new_status).await?;
    status::event_on_stall(&ctx.base, release.as_ref(), before, &new_status.conditions).await;
    if let Some(Outcome::Packaged { artifact, commit, .. }) = &outcome
        && release.status.as_ref().and_then(|s| s.artifact.as_ref()) != Some(artifact)
    {
        let note = format!("packaged commit {commit} as {} ({} objects)", artifact.digest, artifact.objects);
        status::publish(&ctx.base, release.as_ref(), EventType::Normal, Reason::Packaged.as_str(), &note, "Package")
            .await;
    }
    for displaced in displaced_duplicates(&release, &others) {
        // The receiver lives as long as the controller; a send fails only during shutdown.
        let _ = ctx.recheck.unbounded_send(ObjectRef::from_obj(displaced));
    }

    Ok(match (&outcome, problems.first()) {
        (_, Some(p)) if p.reason.depends_on_others() => Action::requeue(RECHECK_DEPENDENT),
        (_, Some(_)) => Action::await_change(),
        // The status write wakes this Release again; the requeue is only a safety net.
        (Some(Outcome::Begun), _) => Action::requeue(Duration::from_secs(1)),
        (Some(Outcome::Retrying { .. }), _) => Action::requeue(ctx.base.backoff.next_delay(&key(&release))),
        (Some(Outcome::Failed { reason, .. }), _) if reason.depends_on_others() => Action::requeue(RECHECK_DEPENDENT),
        (Some(Outcome::Failed { .. }), _) => Action::await_change(),
        _ => {
            ctx.base.backoff.reset(&key(&release));
            Action::requeue(RESYNC)
        }
    })
}

/// Fetches the source at the spec's ref and packages it into the store, with notes.
async fn package(release: &Release, ns: &str, others: &[&Release], ctx: &ReleaseContext) -> Outcome {
    let Some(reference) =
        release.spec.source.as_ref().and_then(|s| s.git.as_ref()).and_then(|g| Reference::from_spec(&g.reference))
    else {
        return Outcome::Failed { reason: Reason::MissingSource, message: "spec.source.git is missing".to_owned() };
    };
    // Rendered for the environments the Pipeline has now; they are recorded with the artifact.
    let Some(pipeline) = ctx.pipelines.get(&ObjectRef::new(&release.spec.pipeline).within(ns)) else {
        return Outcome::Retrying {
            reason: Reason::PipelineNotFound,
            message: format!("Pipeline {} is not in the cache yet", release.spec.pipeline),
        };
    };
    let environments: Vec<Environment> = pipeline
        .spec
        .environments
        .iter()
        .map(|e| Environment { name: e.name.clone(), namespace: e.namespace.clone() })
        .collect();
    let previous = previous_commit(release, others);
    let notes = release.spec.notes.clone().filter(|n| !n.trim().is_empty());
    let version = release.spec.version.clone();
    run_packaging(release, ns, &ctx.base, reference, None, environments, move |repo, packaged| match notes {
        // Notes written in the spec are cut to the same bound as generated ones.
        Some(notes) => Ok(truncate_at_char_boundary(notes, MAX_NOTES_BYTES)),
        None => packaging::notes(repo, &version, previous, packaged.commit),
    })
    .await
}

/// Checks that the recorded artifact is in the store; rebuilds it at the recorded commit if not.
async fn verify(release: &Release, ns: &str, commit: &str, digest: &str, ctx: &ReleaseContext) -> Outcome {
    rebuild_if_missing(release, ns, commit, digest, &ctx.base).await
}

/// Makes sure the artifact `digest` of `release` is in the store: when it is missing, rebuilds
/// it from git at `commit` and keeps it only if the digest matches (one Event says so).
pub(super) async fn rebuild_if_missing(
    release: &Release,
    ns: &str,
    commit: &str,
    digest: &str,
    ctx: &Context,
) -> Outcome {
    let Ok(digest) = Digest::parse(digest) else {
        return Outcome::Failed {
            reason: Reason::DigestMismatch,
            message: format!("status.artifact.digest `{digest}` is not a sha256 digest"),
        };
    };
    if ctx.store.contains(&digest) {
        return Outcome::Verified;
    }
    tracing::info!(%digest, "artifact missing from the store; rebuilding it from git");
    // Rendered again for the environments it was rendered for, whatever the Pipeline has now.
    let environments = recorded_environments(release);
    let reference = Reference::Commit(commit.to_owned());
    let outcome =
        run_packaging(release, ns, ctx, reference, Some(digest.clone()), environments, |_, _| Ok(String::new())).await;
    match outcome {
        Outcome::Packaged { .. } => {
            let note =
                format!("artifact {digest} was missing from the store; rebuilt from commit {commit}, digest verified");
            status::publish(ctx, release, EventType::Normal, "ArtifactRebuilt", &note, "Package").await;
            Outcome::Verified
        }
        other => other,
    }
}

/// The environments a packaged release's artifact was rendered for (Helm's with their namespace).
fn recorded_environments(release: &Release) -> Vec<Environment> {
    let recorded = release.status.as_ref().and_then(|s| s.artifact.as_ref()).map(|a| a.environments.as_slice());
    recorded
        .unwrap_or_default()
        .iter()
        .map(|e| Environment { name: e.name.clone(), namespace: e.namespace.clone().unwrap_or_default() })
        .collect()
}

/// Reads credentials, then fetches and packages (rendering for `environments`) on a blocking
/// thread, within the git timeout plus the engines' time.
#[allow(clippy::too_many_arguments)]
async fn run_packaging(
    release: &Release,
    ns: &str,
    ctx: &Context,
    reference: Reference,
    expected: Option<Digest>,
    environments: Vec<Environment>,
    notes: impl FnOnce(&git2::Repository, &packaging::Packaged) -> Result<String, packaging::Error> + Send + 'static,
) -> Outcome {
    let started = std::time::Instant::now();
    let source = release.spec.source.clone().unwrap_or_default();
    let Some(git) = source.git else {
        return Outcome::Failed { reason: Reason::MissingSource, message: "spec.source.git is missing".to_owned() };
    };
    let credentials = match &git.secret_ref {
        None => None,
        Some(secret) => match credentials(&ctx.client, ns, &secret.name).await {
            Ok(c) => Some(c),
            Err(outcome) => return outcome,
        },
    };
    let (mirrors, store) = (ctx.mirrors.clone(), ctx.store.clone());
    let (limits, git_timeout) = (ctx.config.package_limits, ctx.config.git_timeout);
    let engines = Engines::for_controller(&ctx.config);
    // Each environment's rendering has its own deadline; this bounds them all together.
    let timeout = git_timeout + engines.timeout * u32::try_from(environments.len().max(1)).unwrap_or(u32::MAX);
    let url = git.url.trim().to_owned();
    let pipeline = release.spec.pipeline.clone();
    let spec_source = release.spec.source.clone().unwrap_or_default();
    type Built = (packaging::Packaged, String, Option<jiff::Timestamp>);
    let job = tokio::task::spawn_blocking(move || -> Result<Built, packaging::Error> {
        let (repo, commit) = mirrors.fetch(&url, credentials.as_ref(), &reference, git_timeout)?;
        let request = packaging::Request {
            source: &spec_source,
            environments: &environments,
            pipeline: &pipeline,
            engines: &engines,
        };
        let packaged = packaging::package_source(
            &repo,
            commit,
            &request,
            &limits,
            packaging::Sink::Store { store: &store, expected: expected.as_ref() },
        )?;
        let notes = notes(&repo, &packaged)?;
        // Lead time starts at the commit; a commit that cannot be read back only loses that figure.
        let committed_at =
            repo.find_commit(commit).ok().and_then(|c| jiff::Timestamp::from_second(c.time().seconds()).ok());
        Ok((packaged, notes, committed_at))
    });
    // The fetch stops itself at the git timeout; this bounds the rest (reading, packaging).
    let outcome = match tokio::time::timeout(timeout + PACKAGING_GRACE, job).await {
        Ok(Ok(Ok((p, notes, committed_at)))) => Outcome::Packaged {
            commit: p.commit.to_string(),
            committed_at,
            artifact: Artifact {
                digest: p.digest.to_string(),
                size: i64::try_from(p.size).unwrap_or(i64::MAX),
                files: i32::try_from(p.files).unwrap_or(i32::MAX),
                objects: i32::try_from(p.objects).unwrap_or(i32::MAX),
                environments: p
                    .environments
                    .into_iter()
                    .map(|e| ArtifactEnvironment {
                        name: e.name,
                        namespace: e.namespace,
                        objects: i32::try_from(e.objects).unwrap_or(i32::MAX),
                    })
                    .collect(),
            },
            notes,
        },
        Ok(Ok(Err(e))) if e.is_transient() => Outcome::Retrying { reason: e.reason(), message: e.to_string() },
        Ok(Ok(Err(e))) => Outcome::Failed { reason: e.reason(), message: e.to_string() },
        Ok(Err(join)) => {
            Outcome::Retrying { reason: Reason::StoreFailed, message: format!("packaging task failed: {join}") }
        }
        Err(_) => Outcome::Retrying {
            reason: Reason::GitUnreachable,
            message: format!(
                "packaging did not finish within {}",
                humantime::format_duration(timeout + PACKAGING_GRACE)
            ),
        },
    };
    let (result, bytes) = match &outcome {
        Outcome::Packaged { artifact, .. } => ("packaged", u64::try_from(artifact.size).ok()),
        Outcome::Failed { .. } => ("failed", None),
        _ => ("retrying", None),
    };
    ctx.metrics.packaging(result, started.elapsed().as_secs_f64(), bytes);
    if let Outcome::Failed { reason, message } | Outcome::Retrying { reason, message } = &outcome {
        tracing::info!(%reason, %message, "packaging did not succeed");
    }
    outcome
}

/// How long reading and packaging may take beyond the git timeout.
const PACKAGING_GRACE: Duration = Duration::from_secs(120);

/// Credentials from the Secret `name`, or the outcome that explains why there are none.
async fn credentials(client: &kube::Client, ns: &str, name: &str) -> Result<Credentials, Outcome> {
    let api = kube::Api::<Secret>::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(secret)) => {
            let data = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            Credentials::from_secret(name, &data)
                .map_err(|message| Outcome::Failed { reason: Reason::InvalidSecret, message })
        }
        Ok(None) => Err(Outcome::Failed {
            reason: Reason::InvalidSecret,
            message: format!(
                "Secret `{name}` (spec.source.git.secretRef) does not exist in namespace {ns}; create it or fix the name"
            ),
        }),
        Err(e) => Err(Outcome::Retrying {
            reason: Reason::InvalidSecret,
            message: format!("cannot read Secret `{name}`: {e}"),
        }),
    }
}

/// The commit of the previous release of the same pipeline: the highest lower version packaged.
fn previous_commit(release: &Release, others: &[&Release]) -> Option<git2::Oid> {
    let mine = Version::parse(&release.spec.version).ok()?;
    others
        .iter()
        .filter(|o| o.spec.pipeline == release.spec.pipeline && o.metadata.name != release.metadata.name)
        .filter_map(|o| {
            let status = o.status.as_ref()?;
            let commit = status.commit.as_deref().and_then(|c| git2::Oid::from_str(c).ok())?;
            let version = Version::parse(&o.spec.version).ok()?;
            (status.phase == Some(ReleasePhase::Packaged) && version < mine).then_some((version, commit))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, commit)| commit)
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
