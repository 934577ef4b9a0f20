//! `conveyor approve`, `conveyor pause`, `conveyor resume`: gates recorded as annotations on
//! the Pipeline, for the controller to read.
//!
//! Each command reads the Pipeline (and, for `approve --release`, its Releases), decides with
//! the pure functions below what to record, and writes it with one JSON merge patch of
//! `metadata.annotations`. A merge patch, not server-side apply: a second apply by the same
//! field manager would drop an annotation the first one set (another environment's approval,
//! or the pause).

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use kube::ResourceExt as _;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::Status;
use serde_json::{Value, json};

use crate::api::pipeline::{APPROVE_ANNOTATION_PREFIX, Approval, PAUSED_ANNOTATION};
use crate::api::{Pipeline, Release};
use crate::core::environments::{approvals, paused};

/// Field manager of the annotations the command line writes.
const FIELD_MANAGER: &str = "conveyor-cli";

/// Deadline for each Kubernetes API call.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Releases listed in an "unknown release" error before the rest are only counted.
const KNOWN_RELEASES_SHOWN: usize = 5;

/// Arguments of `conveyor approve`.
#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The Pipeline.
    #[arg(value_name = "PIPELINE")]
    pub pipeline: String,
    /// The environment to let the release into (one with `approval: Manual`).
    #[arg(value_name = "ENV")]
    pub environment: String,
    /// The Release to approve, by name or version (default: the one ENV is awaiting approval for).
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<String>,
    #[command(flatten)]
    pub options: Options,
}

/// Arguments of `conveyor pause` and `conveyor resume`.
#[derive(clap::Args, Debug)]
pub struct PipelineArgs {
    /// The Pipeline.
    #[arg(value_name = "PIPELINE")]
    pub pipeline: String,
    #[command(flatten)]
    pub options: Options,
}

/// Options every gate command takes.
#[derive(clap::Args, Debug)]
pub struct Options {
    /// Namespace of the Pipeline (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Print what would be recorded and change nothing (the API server still checks the change).
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `conveyor approve`.
pub fn approve(args: ApproveArgs) -> anyhow::Result<()> {
    let (runtime, client) = super::connect("conveyor approve")?;
    let line = runtime.block_on(approve_on(client, &args))?;
    println!("{line}");
    Ok(())
}

/// Runs `conveyor pause`.
pub fn pause(args: PipelineArgs) -> anyhow::Result<()> {
    let (runtime, client) = super::connect("conveyor pause")?;
    let line = runtime.block_on(set_gate(client, &args, Gate::Pause))?;
    println!("{line}");
    Ok(())
}

/// Runs `conveyor resume`.
pub fn resume(args: PipelineArgs) -> anyhow::Result<()> {
    let (runtime, client) = super::connect("conveyor resume")?;
    let line = runtime.block_on(set_gate(client, &args, Gate::Resume))?;
    println!("{line}");
    Ok(())
}

async fn approve_on(client: kube::Client, args: &ApproveArgs) -> anyhow::Result<String> {
    let namespace = args.options.namespace(&client);
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &namespace);
    let pipeline = get_pipeline(&pipelines, &args.pipeline, &namespace).await?;
    // Releases matter only when one is named; the awaited one comes from the Pipeline's status.
    let releases = match args.release {
        Some(_) => list_releases(client, &namespace).await?,
        None => Vec::new(),
    };
    let plan = plan_approval(&pipeline, &args.environment, args.release.as_deref(), &releases)?;
    if !plan.is_recorded() {
        patch_pipeline(&pipelines, &args.pipeline, &namespace, &plan.patch(), args.options.dry_run).await?;
    }
    Ok(plan.report(args.options.dry_run))
}

async fn set_gate(client: kube::Client, args: &PipelineArgs, gate: Gate) -> anyhow::Result<String> {
    let namespace = args.options.namespace(&client);
    let pipelines: Api<Pipeline> = Api::namespaced(client, &namespace);
    let pipeline = get_pipeline(&pipelines, &args.pipeline, &namespace).await?;
    let changes = gate.changes(&pipeline);
    if changes {
        patch_pipeline(&pipelines, &args.pipeline, &namespace, &gate.patch(), args.options.dry_run).await?;
    }
    Ok(gate.report(&args.pipeline, &namespace, changes, args.options.dry_run))
}

impl Options {
    /// `--namespace`, else the kubeconfig context's namespace, like kubectl.
    pub(crate) fn namespace(&self, client: &kube::Client) -> String {
        self.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned())
    }
}

/// Reads Pipeline `name`; a missing one (or missing CRDs) is a [`Refusal`].
pub(crate) async fn get_pipeline(api: &Api<Pipeline>, name: &str, namespace: &str) -> anyhow::Result<Pipeline> {
    match deadline(api.get(name)).await? {
        Ok(pipeline) => Ok(pipeline),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(not_found(&status, name, namespace).into()),
        Err(e) => Err(e).with_context(|| format!("cannot read Pipeline {name} in namespace {namespace}")),
    }
}

/// Merge-patches Pipeline `name` with field manager `conveyor-cli` (server-side dry run with `dry_run`).
pub(crate) async fn patch_pipeline(
    api: &Api<Pipeline>,
    name: &str,
    namespace: &str,
    patch: &Value,
    dry_run: bool,
) -> anyhow::Result<()> {
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), dry_run, ..Default::default() };
    match deadline(api.patch(name, &params, &Patch::Merge(patch))).await? {
        Ok(_) => Ok(()),
        // Deleted since it was read.
        Err(kube::Error::Api(status)) if status.code == 404 => Err(not_found(&status, name, namespace).into()),
        Err(e) => Err(e).with_context(|| format!("cannot annotate Pipeline {name} in namespace {namespace}")),
    }
}

/// Every Release in `namespace` (of any pipeline).
pub(crate) async fn list_releases(client: kube::Client, namespace: &str) -> anyhow::Result<Vec<Release>> {
    let api: Api<Release> = Api::namespaced(client, namespace);
    let list = deadline(api.list(&ListParams::default()))
        .await?
        .with_context(|| format!("cannot list the Releases in namespace {namespace}"))?;
    Ok(list.items)
}

/// Awaits one API call, giving up after [`API_TIMEOUT`].
async fn deadline<F: Future>(call: F) -> anyhow::Result<F::Output> {
    tokio::time::timeout(API_TIMEOUT, call)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from the Kubernetes API within {}s", API_TIMEOUT.as_secs()))
}

/// Why a gate command refuses; each message names the fix.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No Pipeline of that name in the namespace.
    #[error(
        "no Pipeline `{pipeline}` in namespace {namespace}; check the name, or pass -n/--namespace (`kubectl get pipelines -A` lists them all)"
    )]
    PipelineNotFound {
        /// Pipeline name given.
        pipeline: String,
        /// Namespace looked in.
        namespace: String,
    },
    /// The API server does not serve Pipelines at all.
    #[error(
        "the cluster does not serve Pipelines: the Conveyor CRDs are not installed; install them with `conveyor crds | kubectl apply --server-side -f -`"
    )]
    CrdsMissing,
    /// ENV is not one of the Pipeline's environments.
    #[error("pipeline {pipeline} has no environment `{environment}`; its environments are: {}", .valid.join(", "))]
    UnknownEnvironment {
        /// Pipeline name.
        pipeline: String,
        /// Environment given.
        environment: String,
        /// `spec.environments[].name`, in order.
        valid: Vec<String>,
    },
    /// ENV promotes automatically.
    #[error(
        "environment {environment} of pipeline {pipeline} has approval Automatic: releases enter it without approval, so there is nothing to approve (to gate it, set `approval: Manual` on it in the Pipeline)"
    )]
    NotManual {
        /// Pipeline name.
        pipeline: String,
        /// Environment given.
        environment: String,
    },
    /// No `--release` and nothing awaits approval.
    #[error(
        "no release is awaiting approval in environment {environment} of pipeline {pipeline}; to approve one ahead of time, pass --release NAME or --release VERSION"
    )]
    NothingAwaiting {
        /// Pipeline name.
        pipeline: String,
        /// Environment given.
        environment: String,
    },
    /// `--release` names a Release of another pipeline.
    #[error(
        "Release `{release}` belongs to pipeline {owner}, not {pipeline}; pass a Release of pipeline {pipeline} to --release"
    )]
    OtherPipeline {
        /// Release given.
        release: String,
        /// Its `spec.pipeline`.
        owner: String,
        /// Pipeline name given.
        pipeline: String,
    },
    /// `--release` matches no Release of the pipeline.
    #[error("no Release `{release}` of pipeline {pipeline} in namespace {namespace} (by name or version); {}", known_hint(.known, .namespace))]
    UnknownRelease {
        /// Release given.
        release: String,
        /// Pipeline name.
        pipeline: String,
        /// Namespace looked in.
        namespace: String,
        /// The pipeline's Releases, `name (version)`, newest first.
        known: Vec<String>,
    },
    /// `--release VERSION` matches several Releases (a duplicate version).
    #[error("version {release} matches several Releases of pipeline {pipeline} ({}); pass the Release name to --release", .matches.join(", "))]
    AmbiguousRelease {
        /// Version given.
        release: String,
        /// Pipeline name.
        pipeline: String,
        /// Names of the matching Releases.
        matches: Vec<String>,
    },
}

fn known_hint(known: &[String], namespace: &str) -> String {
    match known.len() {
        0 => "the pipeline has no Releases yet; create one (`conveyor release --apply`) and approve it by name or version"
            .to_owned(),
        n if n <= KNOWN_RELEASES_SHOWN => format!("pass one of: {}", known.join(", ")),
        n => format!(
            "pass one of: {}, … ({} more: `kubectl get releases -n {namespace}`)",
            known[..KNOWN_RELEASES_SHOWN].join(", "),
            n - KNOWN_RELEASES_SHOWN
        ),
    }
}

/// A 404 names the object when the object is missing; when the API server does not know the
/// resource at all (CRDs not installed) it is a plain-text "404 page not found" with no details.
fn not_found(status: &Status, pipeline: &str, namespace: &str) -> Refusal {
    if status.details.as_ref().is_some_and(|d| !d.name.is_empty()) {
        Refusal::PipelineNotFound { pipeline: pipeline.to_owned(), namespace: namespace.to_owned() }
    } else {
        Refusal::CrdsMissing
    }
}

/// What `conveyor approve` records, decided from the Pipeline and its Releases.
#[derive(Debug, PartialEq, Eq)]
pub struct ApprovalPlan {
    /// Pipeline name.
    pub pipeline: String,
    /// Pipeline namespace.
    pub namespace: String,
    /// The environment the release may enter.
    pub environment: String,
    /// The Release approved (object name).
    pub release: String,
    /// The release the environment awaits approval for now, if any.
    pub awaiting: Option<String>,
    /// The approval already recorded for the environment, if any.
    pub recorded: Option<String>,
    /// The recorded approval this one replaces while it still matters: for another release,
    /// which has not entered the environment yet (an approval once used is not mentioned).
    pub replaces: Option<String>,
    /// The environment before it in promotion order.
    pub previous_environment: Option<String>,
    /// Whether the pipeline is paused.
    pub paused: bool,
}

/// Decides which release `conveyor approve PIPELINE ENV [--release R]` lets into `environment`:
/// `requested` (a Release name or version of this pipeline) or, without it, the release the
/// environment awaits approval for.
pub fn plan_approval(
    pipeline: &Pipeline,
    environment: &str,
    requested: Option<&str>,
    releases: &[Release],
) -> Result<ApprovalPlan, Refusal> {
    let name = pipeline.name_any();
    let namespace = pipeline.namespace().unwrap_or_default();
    let environments = &pipeline.spec.environments;
    let Some(index) = environments.iter().position(|e| e.name == environment) else {
        return Err(Refusal::UnknownEnvironment {
            pipeline: name,
            environment: environment.to_owned(),
            valid: environments.iter().map(|e| e.name.clone()).collect(),
        });
    };
    if environments[index].approval.unwrap_or_default() != Approval::Manual {
        return Err(Refusal::NotManual { pipeline: name, environment: environment.to_owned() });
    }
    let status = pipeline.status.as_ref().and_then(|s| s.environments.iter().find(|e| e.name == environment));
    let awaiting = status.and_then(|e| e.awaiting_approval.clone());
    let release = match (requested, &awaiting) {
        (Some(requested), _) => resolve_release(requested, &name, &namespace, releases)?,
        (None, Some(awaiting)) => awaiting.clone(),
        (None, None) => {
            return Err(Refusal::NothingAwaiting { pipeline: name, environment: environment.to_owned() });
        }
    };
    // Read the annotations as the controller reads them.
    let annotations = pipeline.annotations();
    let recorded = approvals(annotations).remove(environment);
    // Only versions newer than the newest ever started in an environment may enter it.
    let newest = status.and_then(|e| e.newest_version.as_deref()).and_then(|v| semver::Version::parse(v).ok());
    let may_still_enter = |old: &String| {
        let version =
            releases.iter().find(|r| r.spec.pipeline == name && r.name_any() == *old).map(|r| &r.spec.version);
        match (version.map(|v| semver::Version::parse(v)), &newest) {
            // A deleted Release cannot enter.
            (None, _) => false,
            (Some(Ok(version)), Some(newest)) => version > *newest,
            _ => true,
        }
    };
    Ok(ApprovalPlan {
        replaces: recorded.clone().filter(|old| *old != release && may_still_enter(old)),
        recorded,
        paused: paused(annotations),
        previous_environment: index.checked_sub(1).map(|i| environments[i].name.clone()),
        environment: environment.to_owned(),
        pipeline: name,
        namespace,
        release,
        awaiting,
    })
}

/// The Release of `pipeline` that `requested` names: its object name, else its `spec.version`
/// (a leading `v`, as in tags, is accepted; build metadata is ignored, as in SemVer precedence).
fn resolve_release(requested: &str, pipeline: &str, namespace: &str, releases: &[Release]) -> Result<String, Refusal> {
    let by_name = releases.iter().find(|r| r.metadata.name.as_deref() == Some(requested));
    if by_name.is_some_and(|r| r.spec.pipeline == pipeline) {
        return Ok(requested.to_owned());
    }
    let mut own: Vec<&Release> = releases.iter().filter(|r| r.spec.pipeline == pipeline).collect();
    let matches: Vec<String> =
        own.iter().filter(|r| same_version(requested, &r.spec.version)).map(|r| r.name_any()).collect();
    match matches.as_slice() {
        [one] => return Ok(one.clone()),
        [] => {}
        _ => {
            return Err(Refusal::AmbiguousRelease {
                release: requested.to_owned(),
                pipeline: pipeline.to_owned(),
                matches,
            });
        }
    }
    if let Some(other) = by_name {
        return Err(Refusal::OtherPipeline {
            release: requested.to_owned(),
            owner: other.spec.pipeline.clone(),
            pipeline: pipeline.to_owned(),
        });
    }
    // Newest first, so the list starts with the releases someone most likely meant.
    own.sort_by_key(|r| std::cmp::Reverse(semver::Version::parse(&r.spec.version).ok()));
    Err(Refusal::UnknownRelease {
        release: requested.to_owned(),
        pipeline: pipeline.to_owned(),
        namespace: namespace.to_owned(),
        known: own.iter().map(|r| format!("{} ({})", r.name_any(), r.spec.version)).collect(),
    })
}

/// Whether `requested` (as typed: a leading `v` is accepted) names `version`, build metadata ignored.
pub(crate) fn same_version(requested: &str, version: &str) -> bool {
    let requested = requested.strip_prefix('v').unwrap_or(requested);
    if requested == version {
        return true;
    }
    match (semver::Version::parse(requested), semver::Version::parse(version)) {
        (Ok(a), Ok(b)) => a.cmp_precedence(&b).is_eq(),
        _ => false,
    }
}

/// `approve.conveyor.dev/<environment>`.
pub fn approve_annotation(environment: &str) -> String {
    format!("{APPROVE_ANNOTATION_PREFIX}{environment}")
}

/// A JSON merge patch setting (or, with `None`, removing) one annotation and nothing else.
pub fn annotation_patch(key: &str, value: Option<&str>) -> Value {
    json!({ "metadata": { "annotations": { key: value } } })
}

impl ApprovalPlan {
    /// Whether this exact approval is already recorded (then nothing is written).
    pub fn is_recorded(&self) -> bool {
        self.recorded.as_deref() == Some(self.release.as_str())
    }

    /// The merge patch recording the approval.
    pub fn patch(&self) -> Value {
        annotation_patch(&approve_annotation(&self.environment), Some(&self.release))
    }

    /// The line printed: what was recorded (or would be) and what happens next.
    pub fn report(&self, dry_run: bool) -> String {
        let (release, env) = (&self.release, &self.environment);
        let target = format!("{env} of pipeline {} (namespace {})", self.pipeline, self.namespace);
        if self.is_recorded() {
            return format!("{release} was already approved to enter {target}; nothing changed");
        }
        if dry_run {
            return format!(
                "dry run: would approve {release} to enter {target} by setting {}={release}; nothing changed",
                approve_annotation(env)
            );
        }
        let mut line = format!("approved {release} to enter {target}");
        if let Some(old) = &self.replaces {
            line.push_str(&format!(", replacing the approval of {old}"));
        }
        let next = if self.paused {
            format!(
                "the pipeline is paused: nothing enters {env} until 'conveyor resume {} -n {}'",
                self.pipeline, self.namespace
            )
        } else if self.awaiting.as_deref() == Some(release.as_str()) {
            format!("the controller deploys it to {env} next")
        } else {
            let when = match &self.previous_environment {
                Some(previous) => format!("it enters {env} once it is healthy in {previous}"),
                None => format!("it may enter {env} from now on"),
            };
            match &self.awaiting {
                Some(waiting) => format!("{when}; {waiting}, waiting there now, stays unapproved"),
                None => when,
            }
        };
        format!("{line}; {next}")
    }
}

/// `pause` or `resume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Set the paused annotation.
    Pause,
    /// Remove it.
    Resume,
}

impl Gate {
    /// Whether the command changes the Pipeline: pausing one the controller does not read as
    /// paused, resuming one that carries the annotation at all.
    pub fn changes(self, pipeline: &Pipeline) -> bool {
        let annotations = pipeline.annotations();
        match self {
            Self::Pause => !paused(annotations),
            Self::Resume => annotations.contains_key(PAUSED_ANNOTATION),
        }
    }

    /// The merge patch: the annotation set to `"true"`, or to null (removed).
    pub fn patch(self) -> Value {
        match self {
            Self::Pause => annotation_patch(PAUSED_ANNOTATION, Some("true")),
            Self::Resume => annotation_patch(PAUSED_ANNOTATION, None),
        }
    }

    /// The line printed: what was recorded (or would be, or already was) and what happens next.
    pub fn report(self, pipeline: &str, namespace: &str, changes: bool, dry_run: bool) -> String {
        let target = format!("pipeline {pipeline} (namespace {namespace})");
        let resume = format!("'conveyor resume {pipeline} -n {namespace}'");
        match (self, changes, dry_run) {
            (Self::Pause, false, _) => {
                format!("{target} was already paused; nothing changed (resume it with {resume})")
            }
            (Self::Resume, false, _) => format!("{target} was not paused; nothing changed"),
            (Self::Pause, true, true) => {
                format!("dry run: would pause {target} by setting {PAUSED_ANNOTATION}=true; nothing changed")
            }
            (Self::Resume, true, true) => {
                format!("dry run: would resume {target} by removing {PAUSED_ANNOTATION}; nothing changed")
            }
            (Self::Pause, true, false) => {
                format!("paused {target}: no new deployment starts until {resume}; deployments in flight finish")
            }
            (Self::Resume, true, false) => format!("resumed {target}: new deployments may start again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pipeline::{EnvironmentPhase, EnvironmentStatus, PipelineStatus};
    use crate::core::fixtures::{pipeline_spec, release, release_spec};

    /// Pipeline `shop` in namespace `shop`: dev (Automatic), staging (default), prod (Manual),
    /// with `awaiting` in prod's status and the given annotations.
    fn shop(awaiting: Option<&str>, annotations: &[(&str, &str)]) -> Pipeline {
        let mut spec = pipeline_spec(&[("dev", "shop-dev"), ("staging", "shop-staging"), ("prod", "shop-prod")]);
        spec.environments[0].approval = Some(Approval::Automatic);
        spec.environments[2].approval = Some(Approval::Manual);
        let mut p = Pipeline::new("shop", spec);
        p.metadata.namespace = Some("shop".into());
        p.metadata.annotations = Some(annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        p.status = awaiting.map(|r| PipelineStatus {
            environments: vec![EnvironmentStatus {
                name: "prod".into(),
                phase: EnvironmentPhase::AwaitingApproval,
                awaiting_approval: Some(r.into()),
                ..EnvironmentStatus::default()
            }],
            ..PipelineStatus::default()
        });
        p
    }

    /// Releases of `shop` 2.4.0 and 2.4.1, and `cart-1.0.0` of pipeline cart.
    fn releases() -> Vec<Release> {
        let mut cart = release_spec("1.0.0");
        cart.pipeline = "cart".into();
        vec![
            release("shop-2.4.0", release_spec("2.4.0"), 10),
            release("shop-2.4.1", release_spec("2.4.1"), 20),
            release("cart-1.0.0", cart, 30),
        ]
    }

    fn chosen(pipeline: &Pipeline, env: &str, requested: Option<&str>) -> Result<String, Refusal> {
        plan_approval(pipeline, env, requested, &releases()).map(|p| p.release)
    }

    #[test]
    fn the_release_to_approve_is_the_requested_one_else_the_awaited_one() {
        let awaiting = shop(Some("shop-2.4.0"), &[]);
        let idle = shop(None, &[]);
        // (case, pipeline, requested, chosen)
        let cases = [
            ("awaited", &awaiting, None, "shop-2.4.0"),
            ("by name", &idle, Some("shop-2.4.1"), "shop-2.4.1"),
            ("by version", &idle, Some("2.4.1"), "shop-2.4.1"),
            ("by tag-like version", &idle, Some("v2.4.1"), "shop-2.4.1"),
            ("by version with build metadata", &idle, Some("2.4.1+build.9"), "shop-2.4.1"),
            ("requested beats awaited", &awaiting, Some("2.4.1"), "shop-2.4.1"),
        ];
        for (case, pipeline, requested, want) in cases {
            assert_eq!(chosen(pipeline, "prod", requested), Ok(want.to_owned()), "{case}");
        }
    }

    #[test]
    fn refusals_name_the_fix() {
        let idle = shop(None, &[]);
        // (case, env, requested, refusal, text the message must contain)
        let cases: [(&str, &str, Option<&str>, Refusal, &str); 6] = [
            (
                "unknown environment",
                "production",
                None,
                Refusal::UnknownEnvironment {
                    pipeline: "shop".into(),
                    environment: "production".into(),
                    valid: vec!["dev".into(), "staging".into(), "prod".into()],
                },
                "its environments are: dev, staging, prod",
            ),
            (
                "explicitly automatic",
                "dev",
                Some("2.4.1"),
                Refusal::NotManual { pipeline: "shop".into(), environment: "dev".into() },
                "approval Automatic",
            ),
            (
                "automatic by default",
                "staging",
                None,
                Refusal::NotManual { pipeline: "shop".into(), environment: "staging".into() },
                "nothing to approve",
            ),
            (
                "nothing awaiting",
                "prod",
                None,
                Refusal::NothingAwaiting { pipeline: "shop".into(), environment: "prod".into() },
                "pass --release",
            ),
            (
                "another pipeline's release",
                "prod",
                Some("cart-1.0.0"),
                Refusal::OtherPipeline { release: "cart-1.0.0".into(), owner: "cart".into(), pipeline: "shop".into() },
                "belongs to pipeline cart",
            ),
            (
                "unknown release",
                "prod",
                Some("9.9.9"),
                Refusal::UnknownRelease {
                    release: "9.9.9".into(),
                    pipeline: "shop".into(),
                    namespace: "shop".into(),
                    known: vec!["shop-2.4.1 (2.4.1)".into(), "shop-2.4.0 (2.4.0)".into()],
                },
                "pass one of: shop-2.4.1 (2.4.1), shop-2.4.0 (2.4.0)",
            ),
        ];
        for (case, env, requested, want, text) in cases {
            let got = plan_approval(&idle, env, requested, &releases()).expect_err(case);
            assert!(got.to_string().contains(text), "{case}: {got}");
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_duplicate_version_must_be_named() {
        let mut all = releases();
        all.push(release("shop-2.4.1-again", release_spec("2.4.1"), 40));
        let got = plan_approval(&shop(None, &[]), "prod", Some("2.4.1"), &all).expect_err("ambiguous");
        assert!(got.to_string().contains("shop-2.4.1, shop-2.4.1-again"), "{got}");
        // The name still works.
        let plan = plan_approval(&shop(None, &[]), "prod", Some("shop-2.4.1-again"), &all).expect("by name");
        assert_eq!(plan.release, "shop-2.4.1-again");
    }

    #[test]
    fn unknown_release_lists_a_few_and_counts_the_rest() {
        let many: Vec<Release> =
            (0..8).map(|i| release(&format!("shop-1.{i}.0"), release_spec(&format!("1.{i}.0")), i)).collect();
        let got = plan_approval(&shop(None, &[]), "prod", Some("2.0.0"), &many).expect_err("unknown");
        let text = got.to_string();
        assert!(text.contains("pass one of: shop-1.7.0 (1.7.0), shop-1.6.0 (1.6.0)"), "{text}");
        assert!(text.contains("(3 more: `kubectl get releases -n shop`)"), "{text}");
        let none = plan_approval(&shop(None, &[]), "prod", Some("2.0.0"), &[]).expect_err("unknown");
        assert!(none.to_string().contains("has no Releases yet"), "{none}");
    }

    #[test]
    fn approval_patch_sets_one_annotation() {
        let plan = plan_approval(&shop(Some("shop-2.4.0"), &[]), "prod", None, &[]).expect("plan");
        assert_eq!(plan.patch(), json!({"metadata": {"annotations": {"approve.conveyor.dev/prod": "shop-2.4.0"}}}));
    }

    #[test]
    fn gate_patches_set_and_remove_the_pause() {
        assert_eq!(Gate::Pause.patch(), json!({"metadata": {"annotations": {"conveyor.dev/paused": "true"}}}));
        assert_eq!(Gate::Resume.patch(), json!({"metadata": {"annotations": {"conveyor.dev/paused": null}}}));
    }

    #[test]
    fn gates_change_only_what_differs() {
        type Annotations = &'static [(&'static str, &'static str)];
        // (annotations, pause changes, resume changes)
        let cases: [(Annotations, bool, bool); 5] = [
            (&[], true, false),
            (&[(PAUSED_ANNOTATION, "true")], false, true),
            (&[(PAUSED_ANNOTATION, "yes")], true, true),
            (&[(PAUSED_ANNOTATION, "True")], false, true),
            (&[("approve.conveyor.dev/prod", "shop-2.4.1")], true, false),
        ];
        for (annotations, pause, resume) in cases {
            let p = shop(None, annotations);
            assert_eq!(Gate::Pause.changes(&p), pause, "pause with {annotations:?}");
            assert_eq!(Gate::Resume.changes(&p), resume, "resume with {annotations:?}");
        }
    }

    #[test]
    fn a_used_approval_is_not_said_to_be_replaced() {
        let rels = releases();
        let with_newest = |newest: Option<&str>| {
            let mut p = shop(Some("shop-2.4.1"), &[("approve.conveyor.dev/prod", "shop-2.4.0")]);
            p.status.as_mut().expect("status").environments[0].newest_version = newest.map(str::to_owned);
            p
        };
        // (newest version started in prod, what the line says of shop-2.4.0's approval)
        for (newest, replacing) in [(None, true), (Some("2.3.0"), true), (Some("2.4.0"), false), (Some("2.4.1"), false)]
        {
            let plan = plan_approval(&with_newest(newest), "prod", None, &rels).expect("plan");
            assert_eq!(plan.recorded.as_deref(), Some("shop-2.4.0"));
            let line = plan.report(false);
            assert_eq!(line.contains("replacing the approval of shop-2.4.0"), replacing, "newest {newest:?}: {line}");
        }
        // An approval of a Release since deleted is not mentioned either.
        let plan = plan_approval(&with_newest(None), "prod", None, &rels[1..]).expect("plan");
        assert_eq!(plan.replaces, None);
    }

    #[test]
    fn approval_reports_say_what_happens_next() {
        let rels = releases();
        let plan = |awaiting, annotations: &[(&str, &str)], requested| {
            plan_approval(&shop(awaiting, annotations), "prod", requested, &rels).expect("plan")
        };
        // (case, plan, dry run, line)
        let cases = [
            (
                "awaited",
                plan(Some("shop-2.4.0"), &[], None),
                false,
                "approved shop-2.4.0 to enter prod of pipeline shop (namespace shop); the controller deploys it to prod next",
            ),
            (
                "ahead of time",
                plan(None, &[], Some("2.4.1")),
                false,
                "approved shop-2.4.1 to enter prod of pipeline shop (namespace shop); it enters prod once it is healthy in staging",
            ),
            (
                "ahead of an awaited one",
                plan(Some("shop-2.4.0"), &[], Some("2.4.1")),
                false,
                "approved shop-2.4.1 to enter prod of pipeline shop (namespace shop); it enters prod once it is healthy in staging; shop-2.4.0, waiting there now, stays unapproved",
            ),
            (
                "replacing, while paused",
                plan(
                    Some("shop-2.4.1"),
                    &[("approve.conveyor.dev/prod", "shop-2.4.0"), (PAUSED_ANNOTATION, "true")],
                    None,
                ),
                false,
                "approved shop-2.4.1 to enter prod of pipeline shop (namespace shop), replacing the approval of shop-2.4.0; the pipeline is paused: nothing enters prod until 'conveyor resume shop -n shop'",
            ),
            (
                "already approved",
                plan(Some("shop-2.4.1"), &[("approve.conveyor.dev/prod", "shop-2.4.1")], None),
                true,
                "shop-2.4.1 was already approved to enter prod of pipeline shop (namespace shop); nothing changed",
            ),
            (
                "dry run",
                plan(Some("shop-2.4.1"), &[], None),
                true,
                "dry run: would approve shop-2.4.1 to enter prod of pipeline shop (namespace shop) by setting approve.conveyor.dev/prod=shop-2.4.1; nothing changed",
            ),
        ];
        for (case, plan, dry_run, want) in cases {
            assert_eq!(plan.report(dry_run), want, "{case}");
        }
    }

    #[test]
    fn gate_reports() {
        // (gate, changes, dry run, line)
        let cases = [
            (
                Gate::Pause,
                true,
                false,
                "paused pipeline shop (namespace shop): no new deployment starts until 'conveyor resume shop -n shop'; deployments in flight finish",
            ),
            (
                Gate::Pause,
                false,
                false,
                "pipeline shop (namespace shop) was already paused; nothing changed (resume it with 'conveyor resume shop -n shop')",
            ),
            (
                Gate::Pause,
                true,
                true,
                "dry run: would pause pipeline shop (namespace shop) by setting conveyor.dev/paused=true; nothing changed",
            ),
            (Gate::Resume, true, false, "resumed pipeline shop (namespace shop): new deployments may start again"),
            (Gate::Resume, false, true, "pipeline shop (namespace shop) was not paused; nothing changed"),
            (
                Gate::Resume,
                true,
                true,
                "dry run: would resume pipeline shop (namespace shop) by removing conveyor.dev/paused; nothing changed",
            ),
        ];
        for (gate, changes, dry_run, want) in cases {
            assert_eq!(gate.report("shop", "shop", changes, dry_run), want, "{gate:?} {changes} {dry_run}");
        }
    }

    #[test]
    fn a_missing_object_is_told_apart_from_missing_crds() {
        // As kube-apiserver 1.20 answers, and as kube builds a Status from a plain-text 404.
        let object: Status = serde_json::from_value(json!({
            "status": "Failure", "code": 404, "reason": "NotFound",
            "message": "pipelines.conveyor.dev \"shop\" not found",
            "details": {"name": "shop", "group": "conveyor.dev", "kind": "pipelines"}
        }))
        .expect("status parses");
        let resource: Status = serde_json::from_value(json!({
            "status": "Failure", "code": 404,
            "message": "404 page not found", "reason": "Failed to parse error data"
        }))
        .expect("status parses");
        assert_eq!(
            not_found(&object, "shop", "shop"),
            Refusal::PipelineNotFound { pipeline: "shop".into(), namespace: "shop".into() }
        );
        assert_eq!(not_found(&resource, "shop", "shop"), Refusal::CrdsMissing);
    }
}
