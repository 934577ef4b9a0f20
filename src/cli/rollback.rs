//! `conveyor rollback`: asks the controller to put an earlier release back into an environment.
//!
//! Like the gates in [`super::control`], the command only records a request, as the annotation
//! `rollback.conveyor.dev/<environment>: <release>@<deployment id>` (one JSON merge patch, field
//! manager `conveyor-cli`); the controller carries it out. The deployment id is the one the
//! environment runs when the request is made: the controller acts only while it still runs it, so
//! a request is carried out once, and never after something newer was deployed (which also makes
//! a race between reading the Pipeline here and patching it harmless).
//!
//! The controller checks the request again and refuses what it cannot do; the command refuses
//! up front what it can see is wrong, with the fix, so that a person learns it at once instead of
//! from a Warning Event.

use kube::ResourceExt as _;
use kube::api::Api;
use serde_json::Value;

use super::control::{self, Options, annotation_patch, same_version};
use crate::api::pipeline::{EnvironmentPhase, ROLLBACK_ANNOTATION_PREFIX};
use crate::api::release::ReleasePhase;
use crate::api::{Pipeline, Release};
use crate::core::environments::state_from_status;
use crate::core::plan::{Deployment, EnvironmentState, RollbackRequest};

/// Arguments of `conveyor rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The Pipeline.
    #[arg(value_name = "PIPELINE")]
    pub pipeline: String,
    /// The environment to roll back.
    #[arg(value_name = "ENVIRONMENT")]
    pub environment: String,
    /// The release to put back, by version or Release name; it must have finished Healthy in
    /// ENVIRONMENT (default: the newest one that did, other than the one running, and not rolled
    /// back from since).
    #[arg(long, value_name = "VERSION|RELEASE")]
    pub to: Option<String>,
    #[command(flatten)]
    pub options: Options,
}

/// Runs `conveyor rollback`.
pub fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let (runtime, client) = super::connect("conveyor rollback")?;
    let line = runtime.block_on(rollback_on(client, &args))?;
    println!("{line}");
    Ok(())
}

async fn rollback_on(client: kube::Client, args: &RollbackArgs) -> anyhow::Result<String> {
    let namespace = args.options.namespace(&client);
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &namespace);
    let pipeline = control::get_pipeline(&pipelines, &args.pipeline, &namespace).await?;
    let releases = control::list_releases(client, &namespace).await?;
    let plan = plan_rollback(&pipeline, &args.environment, args.to.as_deref(), &releases)?;
    if !plan.is_recorded() {
        control::patch_pipeline(&pipelines, &args.pipeline, &namespace, &plan.patch(), args.options.dry_run).await?;
    }
    Ok(plan.report(args.options.dry_run))
}

/// Why `conveyor rollback` refuses; each message names the fix.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A refusal shared with the gate commands (unknown environment).
    #[error(transparent)]
    Gate(#[from] control::Refusal),
    /// No release has run in the environment.
    #[error(
        "nothing has run in environment {environment} of pipeline {pipeline} yet, so there is nothing to roll back (`kubectl get pipeline {pipeline} -n {namespace}` shows what runs where)"
    )]
    NothingDeployed {
        /// Pipeline name.
        pipeline: String,
        /// Pipeline namespace.
        namespace: String,
        /// Environment given.
        environment: String,
    },
    /// A deployment or rollback is under way in the environment.
    #[error(
        "environment {environment} of pipeline {pipeline} is {} (deployment {deployment}); wait until it settles (`kubectl get pipeline {pipeline} -n {namespace} -w`) and run this again{}",
        doing(*.phase, .release), on_failure(*.phase, *.automatic)
    )]
    InFlight {
        /// Pipeline name.
        pipeline: String,
        /// Pipeline namespace.
        namespace: String,
        /// Environment given.
        environment: String,
        /// Its phase (one in flight).
        phase: EnvironmentPhase,
        /// The release being deployed (or restored).
        release: String,
        /// The deployment's id.
        deployment: String,
        /// The Pipeline's `spec.rollback.automatic`.
        automatic: Option<bool>,
    },
    /// The target is the release running in the environment.
    #[error("{release} is what environment {environment} of pipeline {pipeline} runs now; {}", healthy_hint(.healthy))]
    AlreadyRunning {
        /// Pipeline name.
        pipeline: String,
        /// Environment given.
        environment: String,
        /// The release running there.
        release: String,
        /// Other releases that finished Healthy there, `name (version)`, newest first.
        healthy: Vec<String>,
    },
    /// `--to` names a release that never finished Healthy in the environment.
    #[error(
        "{requested} never finished Healthy in environment {environment} of pipeline {pipeline} (as far as its history reaches), so it cannot be rolled back to; {}",
        healthy_hint(.healthy)
    )]
    NeverHealthy {
        /// Pipeline name.
        pipeline: String,
        /// Environment given.
        environment: String,
        /// `--to` as given.
        requested: String,
        /// Releases that finished Healthy there, other than the one running, `name (version)`, newest first.
        healthy: Vec<String>,
    },
    /// `--to` matches several releases that ran in the environment (a duplicate version).
    #[error("version {requested} matches several releases that ran in environment {environment} ({}); pass the Release name to --to", .matches.join(", "))]
    AmbiguousTarget {
        /// Environment given.
        environment: String,
        /// `--to` as given.
        requested: String,
        /// Names of the matching releases.
        matches: Vec<String>,
    },
    /// No `--to`, and no release to go back to by default.
    #[error("nothing to roll back to in environment {environment} of pipeline {pipeline}: {}", no_default_hint(.current, .healthy))]
    NothingToRollBackTo {
        /// Pipeline name.
        pipeline: String,
        /// Environment given.
        environment: String,
        /// The release running there.
        current: String,
        /// Releases that finished Healthy there and were rolled back from since, `name (version)`.
        healthy: Vec<String>,
    },
    /// The target's Release object was deleted.
    #[error(
        "Release {release} no longer exists in namespace {namespace}, so its artifact cannot be re-applied; re-create it from the same source and version (packaging is reproducible: it gets the same digest), or pass another release to --to"
    )]
    ReleaseGone {
        /// The target release.
        release: String,
        /// Namespace looked in.
        namespace: String,
    },
    /// The target's Release is not packaged.
    #[error(
        "Release {release} is {phase:?}, not Packaged, so it has no artifact to re-apply; see why with `kubectl describe release {release} -n {namespace}`, or pass another release to --to"
    )]
    NotPackaged {
        /// The target release.
        release: String,
        /// Its namespace.
        namespace: String,
        /// Its `status.phase` (`Pending` when it has none).
        phase: ReleasePhase,
    },
    /// The target's Release is packaged but records no artifact.
    #[error(
        "Release {release} is Packaged but records no artifact (status.artifact), so there is nothing to re-apply; see `kubectl describe release {release} -n {namespace}`, or pass another release to --to"
    )]
    NoArtifact {
        /// The target release.
        release: String,
        /// Its namespace.
        namespace: String,
    },
    /// The target's artifact is not the one that ran in the environment.
    #[error(
        "the artifact of Release {release} changed since it ran in environment {environment}: it ran there as {ran}, the Release now holds {packaged}, so a rollback would apply something that never ran there; re-create the Release from the commit that ran (packaging is reproducible), or pass another release to --to"
    )]
    ArtifactChanged {
        /// The target release.
        release: String,
        /// Environment given.
        environment: String,
        /// The digest the environment recorded for it.
        ran: String,
        /// The digest its Release holds now.
        packaged: String,
    },
    /// The controller refused this very request already; it does not look at it again.
    #[error(
        "the controller already refused this request ({key}={request}) and does not retry it while environment {environment} runs the same deployment; the reason is in the Warning Event RollbackRefused (`kubectl describe pipeline {pipeline} -n {namespace}`): fix that, or pass another release to --to"
    )]
    AlreadyRefused {
        /// Pipeline name.
        pipeline: String,
        /// Pipeline namespace.
        namespace: String,
        /// Environment given.
        environment: String,
        /// The annotation key.
        key: String,
        /// The request, `<release>@<deployment id>`.
        request: String,
    },
}

fn doing(phase: EnvironmentPhase, release: &str) -> String {
    match phase {
        EnvironmentPhase::Deploying => format!("deploying {release}"),
        EnvironmentPhase::Verifying => format!("verifying {release}"),
        EnvironmentPhase::Soaking => format!("soaking {release}"),
        EnvironmentPhase::RollingBack => format!("rolling back to {release}"),
        other => format!("{other:?} with {release}"),
    }
}

/// What becomes of a release in flight that fails: the reason not to hurry a manual rollback.
fn on_failure(phase: EnvironmentPhase, automatic: Option<bool>) -> &'static str {
    match (phase, automatic) {
        (EnvironmentPhase::RollingBack, _) => "",
        (_, Some(false)) => {
            "; automatic rollback is off for this pipeline, so if the release fails its checks it stays Failed until you roll it back"
        }
        (_, Some(true)) => "; if the release fails its checks it rolls back by itself (automatic rollback is on)",
        (_, None) => {
            "; if the release fails its checks it rolls back by itself (automatic rollback is on unless the controller's rollback_enabled is false)"
        }
    }
}

fn healthy_hint(healthy: &[String]) -> String {
    if healthy.is_empty() {
        "no other release finished Healthy there, so there is nothing to roll back to".to_owned()
    } else {
        format!("pass one that finished Healthy there to --to: {}", healthy.join(", "))
    }
}

fn no_default_hint(current: &str, rolled_back_from: &[String]) -> String {
    if rolled_back_from.is_empty() {
        format!(
            "no release other than {current}, which runs there now, finished Healthy there (as far as its history reaches); to replace it, release a fixed version"
        )
    } else {
        format!(
            "every release that finished Healthy there was rolled back from since ({}); to restore one anyway, pass it to --to",
            rolled_back_from.join(", ")
        )
    }
}

/// What `conveyor rollback` records, decided from the Pipeline and its Releases.
#[derive(Debug, PartialEq, Eq)]
pub struct RollbackPlan {
    /// Pipeline name.
    pub pipeline: String,
    /// Pipeline namespace.
    pub namespace: String,
    /// The environment rolled back.
    pub environment: String,
    /// The release running there now.
    pub from: String,
    /// What the controller is asked to do.
    pub request: RollbackRequest,
    /// The request already recorded for the environment (the annotation's value), if any.
    pub recorded: Option<String>,
}

/// Decides what `conveyor rollback PIPELINE ENVIRONMENT [--to R]` asks for: to put back `to`
/// (a release name or version that finished Healthy in `environment`) or, without it, the
/// release an automatic rollback would restore.
pub fn plan_rollback(
    pipeline: &Pipeline,
    environment: &str,
    to: Option<&str>,
    releases: &[Release],
) -> Result<RollbackPlan, Refusal> {
    let name = pipeline.name_any();
    let namespace = pipeline.namespace().unwrap_or_default();
    let environments = &pipeline.spec.environments;
    if !environments.iter().any(|e| e.name == environment) {
        return Err(control::Refusal::UnknownEnvironment {
            pipeline: name,
            environment: environment.to_owned(),
            valid: environments.iter().map(|e| e.name.clone()).collect(),
        }
        .into());
    }
    // Read the status as the controller reads it.
    let state = pipeline
        .status
        .as_ref()
        .and_then(|s| s.environments.iter().find(|e| e.name == environment))
        .map(state_from_status)
        .unwrap_or_default();
    let Some(current) = &state.current else {
        return Err(Refusal::NothingDeployed { pipeline: name, namespace, environment: environment.to_owned() });
    };
    if state.in_flight() {
        return Err(Refusal::InFlight {
            environment: environment.to_owned(),
            phase: state.phase,
            release: current.release.clone(),
            deployment: current.id.clone(),
            automatic: pipeline.spec.rollback.as_ref().and_then(|r| r.automatic),
            pipeline: name,
            namespace,
        });
    }
    let target = match to {
        Some(requested) => chosen_target(&state, current, requested, &name, environment)?,
        None => match state.rollback_target() {
            Some(target) => target.release.clone(),
            None => {
                return Err(Refusal::NothingToRollBackTo {
                    pipeline: name,
                    environment: environment.to_owned(),
                    current: current.release.clone(),
                    // With no default target, every release healthy here was rolled back from since.
                    healthy: healthy_here(&state),
                });
            }
        },
    };
    check_artifact(&state, &target, &name, &namespace, environment, releases)?;

    let request = RollbackRequest { release: target, after: current.id.clone() };
    let key = rollback_annotation(environment);
    let asked = request.to_string();
    if state.refused_rollback.as_deref() == Some(asked.as_str()) {
        return Err(Refusal::AlreadyRefused {
            pipeline: name,
            namespace,
            environment: environment.to_owned(),
            key,
            request: asked,
        });
    }
    Ok(RollbackPlan {
        recorded: pipeline.annotations().get(&key).map(|v| v.trim().to_owned()),
        from: current.release.clone(),
        environment: environment.to_owned(),
        pipeline: name,
        namespace,
        request,
    })
}

/// The release `--to` names among those that ran in the environment: by name, else by version.
fn chosen_target(
    state: &EnvironmentState,
    current: &Deployment,
    requested: &str,
    pipeline: &str,
    environment: &str,
) -> Result<String, Refusal> {
    let ran = || {
        std::iter::once((current.release.as_str(), &current.version))
            .chain(state.history.iter().map(|h| (h.release.as_str(), &h.version)))
    };
    let mut matches: Vec<&str> = Vec::new();
    if ran().any(|(release, _)| release == requested) {
        matches.push(requested);
    } else {
        for (release, version) in ran() {
            if same_version(requested, &version.to_string()) && !matches.contains(&release) {
                matches.push(release);
            }
        }
    }
    let target = match matches.as_slice() {
        [one] => (*one).to_owned(),
        [] => requested.to_owned(),
        _ => {
            return Err(Refusal::AmbiguousTarget {
                environment: environment.to_owned(),
                requested: requested.to_owned(),
                matches: matches.iter().map(|m| (*m).to_owned()).collect(),
            });
        }
    };
    if target == current.release {
        return Err(Refusal::AlreadyRunning {
            pipeline: pipeline.to_owned(),
            environment: environment.to_owned(),
            release: target,
            healthy: healthy_here(state),
        });
    }
    if !state.was_healthy(&target) {
        return Err(Refusal::NeverHealthy {
            pipeline: pipeline.to_owned(),
            environment: environment.to_owned(),
            requested: requested.to_owned(),
            healthy: healthy_here(state),
        });
    }
    Ok(target)
}

/// Releases other than the current one that finished Healthy here, `name (version)`, newest first.
fn healthy_here(state: &EnvironmentState) -> Vec<String> {
    let current = state.current.as_ref().map(|c| c.release.as_str());
    let mut healthy: Vec<String> = Vec::new();
    for h in &state.history {
        let entry = format!("{} ({})", h.release, h.version);
        if state.was_healthy(&h.release) && Some(h.release.as_str()) != current && !healthy.contains(&entry) {
            healthy.push(entry);
        }
    }
    healthy
}

/// Refuses a target whose Release cannot be re-applied as it ran: gone, not packaged, or with
/// another artifact than the one the environment recorded for it.
fn check_artifact(
    state: &EnvironmentState,
    target: &str,
    pipeline: &str,
    namespace: &str,
    environment: &str,
    releases: &[Release],
) -> Result<(), Refusal> {
    let Some(release) =
        releases.iter().find(|r| r.metadata.name.as_deref() == Some(target) && r.spec.pipeline == pipeline)
    else {
        return Err(Refusal::ReleaseGone { release: target.to_owned(), namespace: namespace.to_owned() });
    };
    let status = release.status.as_ref();
    let phase = status.and_then(|s| s.phase).unwrap_or_default();
    if phase != ReleasePhase::Packaged {
        return Err(Refusal::NotPackaged { release: target.to_owned(), namespace: namespace.to_owned(), phase });
    }
    let Some(artifact) = status.and_then(|s| s.artifact.as_ref()) else {
        return Err(Refusal::NoArtifact { release: target.to_owned(), namespace: namespace.to_owned() });
    };
    // The history keeps no digests; `current` and `previous` do.
    let ran = [&state.current, &state.previous]
        .into_iter()
        .flatten()
        .find(|d| d.release == target && !d.digest.is_empty())
        .map(|d| d.digest.as_str());
    match ran {
        Some(ran) if ran != artifact.digest => Err(Refusal::ArtifactChanged {
            release: target.to_owned(),
            environment: environment.to_owned(),
            ran: ran.to_owned(),
            packaged: artifact.digest.clone(),
        }),
        _ => Ok(()),
    }
}

/// `rollback.conveyor.dev/<environment>`.
pub fn rollback_annotation(environment: &str) -> String {
    format!("{ROLLBACK_ANNOTATION_PREFIX}{environment}")
}

impl RollbackPlan {
    /// Whether this exact request is already recorded (then nothing is written).
    pub fn is_recorded(&self) -> bool {
        self.recorded.as_deref() == Some(self.request.to_string().as_str())
    }

    /// The merge patch recording the request (replacing an earlier one for the environment).
    pub fn patch(&self) -> Value {
        annotation_patch(&rollback_annotation(&self.environment), Some(&self.request.to_string()))
    }

    /// The line printed: what was requested (or would be, or already was) and what happens next.
    pub fn report(&self, dry_run: bool) -> String {
        let env = &self.environment;
        let RollbackRequest { release, after } = &self.request;
        let change = format!("{} → {release} (replaces deployment {after})", self.from);
        let follow = format!("follow it with: kubectl get pipeline {} -n {} -w", self.pipeline, self.namespace);
        if self.is_recorded() {
            return format!("rollback of {env} already requested: {change}; nothing changed; {follow}");
        }
        if dry_run {
            return format!(
                "dry run: would request rollback of {env}: {change} by setting {}={}; nothing changed",
                rollback_annotation(env),
                self.request
            );
        }
        let replacing = match &self.recorded {
            Some(old) => format!(", replacing the earlier request {old}"),
            None => String::new(),
        };
        format!(
            "rollback of {env} requested: {change}{replacing}; the controller re-applies {release} to {env} and verifies it; {follow}"
        )
    }
}

#[cfg(test)]
mod tests;
