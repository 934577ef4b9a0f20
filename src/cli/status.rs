//! `conveyor status`: where each release stands in each environment of a Pipeline, as a table
//! for people or as the deployment report (JSON or YAML) for tools.
//!
//! The command reads the Pipelines and their Releases; the pure functions below turn them into
//! table rows and report entries, with `now` passed in for the ages; the command prints them.
//! With `--watch` it follows them live until they settle (the `watch` module).

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt as _;
use kube::api::{Api, ListParams};

use super::control::{Refusal, get_pipeline, list_releases};
use crate::api::pipeline::{EnvironmentPhase, EnvironmentStatus};
use crate::api::release::{CheckResult, CheckVerdict, Release};
use crate::api::{ConditionType, Pipeline};

mod frame;
mod report;
mod settle;
mod watch;
pub use frame::{End, Scene, checks_cell, clock, elapsed, facts, frame};
pub use report::{
    DeploymentInfo, DeploymentReport, HealthCheck, ReleaseInfo, RollbackCapability, Validation, ValidationResults,
    report,
};
pub use settle::{Verdict, verdict};
pub use watch::{Screen, redraw};

/// Deadline for each Kubernetes API call.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Characters of the NOTE column before it is cut short.
const NOTE_WIDTH: usize = 60;

/// Characters of a pipeline's header line before it is cut short.
const HEADER_WIDTH: usize = 120;

/// Arguments of `conveyor status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The Pipeline (default: every Pipeline in the namespace).
    #[arg(value_name = "PIPELINE")]
    pub pipeline: Option<String>,
    /// Namespace of the Pipeline (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Every Pipeline in every namespace.
    #[arg(short = 'A', long, conflicts_with_all = ["namespace", "pipeline"])]
    pub all_namespaces: bool,
    /// Output format: a table per pipeline, or the deployment report as JSON or YAML.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Keep watching: redraw live progress until every pipeline settles; exit 0 when Ready,
    /// 1 when Stalled or failed (a release awaiting approval is still in progress).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With --watch: give up after this long (for example 10m), exit 1.
    #[arg(long, value_name = "DURATION", requires = "watch", value_parser = crate::core::duration::parse)]
    pub timeout: Option<Duration>,
}

/// Output format of `conveyor status`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One table per pipeline.
    Table,
    /// The deployment report, a JSON array.
    Json,
    /// The deployment report as YAML.
    Yaml,
}

/// Runs `conveyor status`.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    if args.watch {
        if args.output != Output::Table {
            anyhow::bail!(
                "--watch draws a live table and cannot be combined with -o {}: drop --watch for the report, or -o for the watch",
                format!("{:?}", args.output).to_lowercase()
            );
        }
        return watch::watch(&args);
    }
    let (runtime, client) = super::connect("conveyor status")?;
    let (pipelines, releases, scope) = runtime.block_on(fetch(client, &args))?;
    if pipelines.is_empty() && args.output == Output::Table {
        // Like kubectl: an empty answer is not an error, and stdout stays empty.
        eprintln!("no Pipelines in {scope}");
        return Ok(());
    }
    print!("{}", render(&pipelines, &releases, args.output, Timestamp::now())?);
    Ok(())
}

/// The Pipelines asked for and every Release of their namespaces; and the scope, for messages.
async fn fetch(client: kube::Client, args: &StatusArgs) -> anyhow::Result<(Vec<Pipeline>, Vec<Release>, String)> {
    if args.all_namespaces {
        let pipelines = list(Api::<Pipeline>::all(client.clone()), "the Pipelines of all namespaces").await?;
        let releases = list(Api::<Release>::all(client), "the Releases of all namespaces").await?;
        return Ok((pipelines, releases, "any namespace".to_owned()));
    }
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let api: Api<Pipeline> = Api::namespaced(client.clone(), &namespace);
    let pipelines = match &args.pipeline {
        Some(name) => vec![get_pipeline(&api, name, &namespace).await?],
        None => list(api, &format!("the Pipelines in namespace {namespace}")).await?,
    };
    let releases = if pipelines.is_empty() { Vec::new() } else { list_releases(client, &namespace).await? };
    Ok((pipelines, releases, format!("namespace {namespace}")))
}

/// Every object `api` lists; a 404 means the CRDs are not installed.
async fn list<K>(api: Api<K>, what: &str) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match deadline(api.list(&ListParams::default())).await? {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(Refusal::CrdsMissing.into()),
        Err(e) => Err(e).with_context(|| format!("cannot list {what}")),
    }
}

/// Awaits one API call, giving up after [`API_TIMEOUT`].
async fn deadline<F: Future>(call: F) -> anyhow::Result<F::Output> {
    tokio::time::timeout(API_TIMEOUT, call)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from the Kubernetes API within {}s", API_TIMEOUT.as_secs()))
}

/// What `conveyor status -o <output>` prints for `pipelines`.
pub fn render(pipelines: &[Pipeline], releases: &[Release], output: Output, now: Timestamp) -> anyhow::Result<String> {
    let report = || pipelines.iter().flat_map(|p| report(p, releases)).collect::<Vec<_>>();
    Ok(match output {
        Output::Table => pipelines.iter().map(|p| table(p, now)).collect::<Vec<_>>().join("\n"),
        Output::Json => serde_json::to_string_pretty(&report()).context("cannot write the report as JSON")? + "\n",
        Output::Yaml => serde_norway::to_string(&report()).context("cannot write the report as YAML")?,
    })
}

// ---------------------------------------------------------------------------------------------
// The table.

/// One environment's line of the table.
#[derive(Debug, PartialEq, Eq)]
pub struct Row {
    /// Environment name.
    pub environment: String,
    /// Its phase.
    pub phase: String,
    /// Version running there, `-` when none.
    pub version: String,
    /// How long it has been running there (`5m`), `-` when nothing runs.
    pub since: String,
    /// The current deployment's checks: `2/3 passed`, `error-rate failed`, `-` when none.
    pub checks: String,
    /// Awaited approval, rollback, or why it failed; `-` when nothing to say.
    pub note: String,
}

/// The table of one pipeline: a header line with its kstatus condition, then one aligned row
/// per environment, in spec order.
pub fn table(pipeline: &Pipeline, now: Timestamp) -> String {
    let header = ["ENVIRONMENT", "PHASE", "VERSION", "SINCE", "CHECKS", "NOTE"].map(str::to_owned);
    let lines: Vec<[String; 6]> = std::iter::once(header)
        .chain(rows(pipeline, now).into_iter().map(|r| [r.environment, r.phase, r.version, r.since, r.checks, r.note]))
        .collect();
    let mut widths = [0; 6];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = headline(pipeline) + "\n";
    for line in &lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            let _ = write!(text, "{cell:<width$}  ", width = if i == 5 { 0 } else { widths[i] });
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// `NAME (namespace NS): <condition> <reason>: <message>`, on one line, cut short when long.
/// The condition shown is the one that holds: Stalled, else Ready, else Reconciling.
pub fn headline(pipeline: &Pipeline) -> String {
    let name = format!("{} (namespace {})", pipeline.name_any(), pipeline.namespace().unwrap_or_default());
    let conditions = pipeline.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
    let find = |t: ConditionType| conditions.iter().find(|c| c.type_ == t.as_str());
    let holding = [ConditionType::Stalled, ConditionType::Ready, ConditionType::Reconciling]
        .into_iter()
        .find_map(|t| find(t).filter(|c| c.status == "True"));
    let line = match (holding, find(ConditionType::Ready)) {
        (Some(c), _) => format!("{name}: {} {}: {}", c.type_, c.reason, one_line(c)),
        (None, Some(c)) => format!("{name}: Ready={} {}: {}", c.status, c.reason, one_line(c)),
        (None, None) => format!("{name}: no status yet (is the controller running?)"),
    };
    shorten(&line, HEADER_WIDTH)
}

fn one_line(c: &Condition) -> String {
    c.message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One row per environment of the spec, from its status (an environment without one is Idle).
pub fn rows(pipeline: &Pipeline, now: Timestamp) -> Vec<Row> {
    pipeline
        .spec
        .environments
        .iter()
        .map(|env| {
            let status = environment_status(pipeline, &env.name);
            let current = status.and_then(|s| s.current.as_ref());
            Row {
                environment: env.name.clone(),
                phase: format!("{:?}", status.map(|s| s.phase).unwrap_or_default()),
                version: current.map_or("-".to_owned(), |c| c.version.clone()),
                since: current.and_then(|c| c.since.as_ref()).map_or("-".to_owned(), |t| age(t.0, now)),
                checks: status.map_or("-".to_owned(), |s| checks_summary(&s.checks)),
                note: status.map_or("-".to_owned(), note),
            }
        })
        .collect()
}

/// The status of environment `name`, if the controller wrote one.
fn environment_status<'a>(pipeline: &'a Pipeline, name: &str) -> Option<&'a EnvironmentStatus> {
    pipeline.status.as_ref()?.environments.iter().find(|e| e.name == name)
}

/// Time since `since`, in the largest unit that keeps two significant figures or fewer, like
/// `kubectl get` ages: `45s`, `5m`, `3h`, `2d`.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(since).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `error-rate failed` when checks failed, else `<passed>/<all> passed`; `-` without checks.
pub fn checks_summary(checks: &[CheckResult]) -> String {
    if checks.is_empty() {
        return "-".to_owned();
    }
    let (passed, failed) = checks_summary_counts(checks);
    if failed.is_empty() {
        format!("{passed}/{} passed", checks.len())
    } else {
        format!("{} failed", failed.join(", "))
    }
}

/// How many of `checks` passed, and the names of those that failed.
fn checks_summary_counts(checks: &[CheckResult]) -> (usize, Vec<&str>) {
    let passed = checks.iter().filter(|c| c.result == CheckVerdict::Passed).count();
    let failed = checks.iter().filter(|c| c.result == CheckVerdict::Failed).map(|c| c.name.as_str()).collect();
    (passed, failed)
}

/// What a person should know about an environment beyond its phase, kept short.
pub fn note(status: &EnvironmentStatus) -> String {
    let mut parts = Vec::new();
    let replaced = status.current.as_ref().and_then(|c| c.rollback_of.as_deref());
    match (status.phase, replaced) {
        (EnvironmentPhase::RollingBack, Some(from)) => parts.push(format!("rolling back from {from}")),
        (_, Some(from)) => parts.push(format!("rolled back from {from}")),
        // The reason of a rolled-back environment repeats what the part above says.
        (_, None) => parts.extend(status.reason.clone()),
    }
    if let Some(release) = &status.awaiting_approval {
        parts.push(format!("awaiting approval: {release}"));
    }
    if parts.is_empty() { "-".to_owned() } else { shorten(&parts.join("; "), NOTE_WIDTH) }
}

/// `text` on one line, at most `max` characters, ending in `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    text.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
}

#[cfg(test)]
mod tests;
