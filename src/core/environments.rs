//! Between the Pipeline's API objects and the planner: the spec and annotations as planner
//! input, the planner's state to and from `status.environments[]`, each Release's journey
//! through the environments, and the Pipeline's kstatus summary. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use semver::Version;

use crate::api::Reason;
use crate::api::pipeline::{
    APPROVE_ANNOTATION_PREFIX, Approval, DeployedRelease, DeploymentResult, EnvironmentPhase, EnvironmentStatus,
    HealthChecks, HistoryEntry, HttpCheck, InconclusivePolicy, InventoryEntry, PAUSED_ANNOTATION, PipelineSpec,
    ROLLBACK_ANNOTATION_PREFIX,
};
use crate::api::release::{CheckResult, CheckType, Release, ReleaseEnvironment, ReleasePhase};
use crate::core::checks::{CheckSpec, CheckState, Inconclusive};
use crate::core::conditions::Summary;
use crate::core::duration;
use crate::core::plan::{
    Candidate, Deployment, EnvironmentSpec, EnvironmentState, Finished, ObjectRef, RollbackRequest,
};

/// History entries kept per environment when `spec.historyLimit` is not set.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;

/// The environments as the planner reads them. Durations that do not parse (validation has
/// already refused such a spec) fall back to zero soak and `default_timeout`.
pub fn environment_specs(spec: &PipelineSpec, default_timeout: Duration) -> Vec<EnvironmentSpec> {
    spec.environments
        .iter()
        .map(|env| EnvironmentSpec {
            name: env.name.clone(),
            namespace: env.namespace.clone(),
            manual: env.approval == Some(Approval::Manual),
            soak: env.soak.as_deref().and_then(|s| duration::parse(s).ok()).unwrap_or(Duration::ZERO),
            timeout: env
                .health_checks
                .as_ref()
                .and_then(|c| c.timeout.as_deref())
                .and_then(|s| duration::parse(s).ok())
                .unwrap_or(default_timeout),
            checks: env.health_checks.as_ref().map(check_specs).unwrap_or_default(),
        })
        .collect()
}

/// Default time between HTTP probes.
pub const HTTP_INTERVAL: Duration = Duration::from_secs(5);
/// Default time between Prometheus queries.
pub const PROMETHEUS_INTERVAL: Duration = Duration::from_secs(10);
/// Default deadline of one probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// An environment's HTTP and Prometheus checks as the core counts them: HTTP checks first,
/// then Prometheus ones, each in spec order (the shell probes them by this index).
pub fn check_specs(checks: &HealthChecks) -> Vec<CheckSpec> {
    let count = |n: Option<i32>, default: u32| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(default);
    let every = |s: Option<&str>, default| s.and_then(|s| duration::parse(s).ok()).unwrap_or(default);
    let http = checks.http.iter().map(|c| CheckSpec {
        name: http_check_name(c),
        kind: CheckType::Http,
        interval: every(c.interval.as_deref(), HTTP_INTERVAL),
        success_threshold: count(c.success_threshold, 1),
        failure_limit: count(c.failure_limit, 0),
        // An HTTP probe has no inconclusive answers: an application that does not answer fails.
        on_no_data: Inconclusive::Fail,
        on_unreachable: Inconclusive::Fail,
    });
    let prometheus = checks.prometheus.iter().map(|c| CheckSpec {
        name: c.name.clone(),
        kind: CheckType::Prometheus,
        interval: every(c.interval.as_deref(), PROMETHEUS_INTERVAL),
        success_threshold: count(c.success_threshold, 1),
        failure_limit: count(c.failure_limit, 0),
        on_no_data: policy(c.on_no_data),
        on_unreachable: policy(c.on_unreachable),
    });
    http.chain(prometheus).collect()
}

/// The name an HTTP check is shown under: its `name`, else its URL.
pub fn http_check_name(check: &HttpCheck) -> String {
    check.name.clone().unwrap_or_else(|| check.url.clone())
}

fn policy(p: Option<InconclusivePolicy>) -> Inconclusive {
    match p.unwrap_or_default() {
        InconclusivePolicy::Fail => Inconclusive::Fail,
        InconclusivePolicy::Ignore => Inconclusive::Ignore,
        InconclusivePolicy::Pass => Inconclusive::Pass,
    }
}

/// Whether failed releases are rolled back automatically: the Pipeline's
/// `spec.rollback.automatic`, else the controller's `rollback_enabled`.
pub fn automatic_rollback(spec: &PipelineSpec, default: bool) -> bool {
    spec.rollback.as_ref().and_then(|r| r.automatic).unwrap_or(default)
}

/// Rollback requests recorded in annotations (`rollback.conveyor.dev/<env>: <release>@<deployment id>`):
/// environment name → request. Values not of that form are ignored.
pub fn rollback_requests(annotations: &BTreeMap<String, String>) -> BTreeMap<String, RollbackRequest> {
    annotations
        .iter()
        .filter_map(|(k, v)| {
            let env = k.strip_prefix(ROLLBACK_ANNOTATION_PREFIX)?;
            let (release, after) = v.trim().split_once('@')?;
            Some((env.to_owned(), RollbackRequest { release: release.to_owned(), after: after.to_owned() }))
        })
        .collect()
}

/// History entries to keep per environment.
pub fn history_limit(spec: &PipelineSpec) -> usize {
    spec.history_limit.and_then(|l| usize::try_from(l).ok()).filter(|l| *l > 0).unwrap_or(DEFAULT_HISTORY_LIMIT)
}

/// Whether the Pipeline's annotations pause it (`conveyor.dev/paused: "true"`).
pub fn paused(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(PAUSED_ANNOTATION).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Approvals recorded in annotations: environment name → release name.
pub fn approvals(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(APPROVE_ANNOTATION_PREFIX)?.to_owned(), v.trim().to_owned())))
        .collect()
}

/// The pipeline's releases that are packaged, with a SemVer version and an artifact, in any order.
pub fn candidates<'a>(pipeline: &str, releases: impl IntoIterator<Item = &'a Release>) -> Vec<Candidate> {
    releases
        .into_iter()
        .filter(|r| r.spec.pipeline == pipeline)
        .filter_map(|r| {
            let status = r.status.as_ref()?;
            if status.phase != Some(ReleasePhase::Packaged) {
                return None;
            }
            Some(Candidate {
                name: r.metadata.name.clone()?,
                version: Version::parse(&r.spec.version).ok()?,
                digest: status.artifact.as_ref()?.digest.clone(),
            })
        })
        .collect()
}

/// The planner's state of one environment, read back from its status.
///
/// Entries with a version that is not SemVer (status edited by hand) are dropped: the planner
/// cannot order them.
pub fn state_from_status(status: &EnvironmentStatus) -> EnvironmentState {
    EnvironmentState {
        phase: status.phase,
        current: status.current.as_ref().and_then(deployment_from_status),
        previous: status.previous.as_ref().and_then(deployment_from_status),
        awaiting: status.awaiting_approval.clone(),
        reason: status.reason.clone(),
        inventory: status.inventory.iter().map(object_from_status).collect(),
        deployments: status.deployments.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        newest: status.newest_version.as_deref().and_then(|v| Version::parse(v).ok()),
        history: status.history.iter().filter_map(finished_from_status).collect(),
        checks: status.checks.iter().map(check_from_status).collect(),
        refused_rollback: status.refused_rollback.clone(),
    }
}

/// The status of environment `name` holding the planner's `state`.
pub fn status_from_state(name: &str, state: &EnvironmentState) -> EnvironmentStatus {
    EnvironmentStatus {
        name: name.to_owned(),
        phase: state.phase,
        current: state.current.as_ref().map(deployment_to_status),
        previous: state.previous.as_ref().map(deployment_to_status),
        awaiting_approval: state.awaiting.clone(),
        reason: state.reason.clone(),
        deployments: (state.deployments > 0).then(|| i64::try_from(state.deployments).unwrap_or(i64::MAX)),
        newest_version: state.newest.as_ref().map(Version::to_string),
        inventory: state.inventory.iter().map(object_to_status).collect(),
        history: state.history.iter().map(finished_to_status).collect(),
        checks: state.checks.iter().map(check_to_status).collect(),
        refused_rollback: state.refused_rollback.clone(),
    }
}

fn check_from_status(c: &CheckResult) -> CheckState {
    let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    CheckState {
        name: c.name.clone(),
        kind: c.type_,
        result: c.result,
        successes: count(c.successes),
        failures: count(c.failures),
        message: c.message.clone(),
        at: c.at.as_ref().map(|t| t.0),
    }
}

/// A check's state as shown in status.
pub fn check_to_status(c: &CheckState) -> CheckResult {
    let count = |n: u32| Some(i32::try_from(n).unwrap_or(i32::MAX));
    CheckResult {
        name: c.name.clone(),
        type_: c.kind,
        result: c.result,
        message: c.message.clone(),
        successes: count(c.successes),
        failures: count(c.failures),
        at: c.at.map(Time),
    }
}

fn deployment_from_status(d: &DeployedRelease) -> Option<Deployment> {
    Some(Deployment {
        id: d.deployment_id.clone().unwrap_or_default(),
        release: d.release.clone(),
        version: Version::parse(&d.version).ok()?,
        digest: d.digest.clone().unwrap_or_default(),
        started_at: d.since.as_ref()?.0,
        healthy_since: d.healthy_since.as_ref().map(|t| t.0),
        applied_at: d.applied_at.as_ref().map(|t| t.0),
        rollback_of: d.rollback_of.clone(),
    })
}

fn deployment_to_status(d: &Deployment) -> DeployedRelease {
    DeployedRelease {
        release: d.release.clone(),
        version: d.version.to_string(),
        digest: (!d.digest.is_empty()).then(|| d.digest.clone()),
        since: Some(Time(d.started_at)),
        deployment_id: (!d.id.is_empty()).then(|| d.id.clone()),
        healthy_since: d.healthy_since.map(Time),
        applied_at: d.applied_at.map(Time),
        rollback_of: d.rollback_of.clone(),
    }
}

fn finished_from_status(h: &HistoryEntry) -> Option<Finished> {
    Some(Finished {
        id: h.deployment_id.clone(),
        release: h.release.clone(),
        version: Version::parse(&h.version).ok()?,
        result: h.result,
        started_at: h.started_at.0,
        finished_at: h.finished_at.as_ref().map_or(h.started_at.0, |t| t.0),
        reason: h.reason.clone(),
        rollback_of: h.rollback_of.clone(),
        checks: h.checks.iter().map(check_from_status).collect(),
    })
}

fn finished_to_status(f: &Finished) -> HistoryEntry {
    HistoryEntry {
        deployment_id: f.id.clone(),
        release: f.release.clone(),
        version: f.version.to_string(),
        result: f.result,
        started_at: Time(f.started_at),
        finished_at: Some(Time(f.finished_at)),
        reason: f.reason.clone(),
        rollback_of: f.rollback_of.clone(),
        checks: f.checks.iter().map(check_to_status).collect(),
    }
}

fn object_from_status(o: &InventoryEntry) -> ObjectRef {
    ObjectRef {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        namespace: o.namespace.clone(),
        name: o.name.clone(),
    }
}

fn object_to_status(o: &ObjectRef) -> InventoryEntry {
    InventoryEntry {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        namespace: o.namespace.clone(),
        name: o.name.clone(),
    }
}

/// Release `release`'s journey: one entry per environment it reached (or waits for), in
/// promotion order, built from the environments' state. `recorded` is what its status holds
/// now: an environment whose history no longer reaches back to this release keeps its entry.
pub fn journey(
    release: &str,
    environments: &[EnvironmentSpec],
    states: &[EnvironmentState],
    recorded: &[ReleaseEnvironment],
) -> Vec<ReleaseEnvironment> {
    environments
        .iter()
        .zip(states)
        .filter_map(|(env, state)| {
            let before = recorded.iter().find(|r| r.name == env.name);
            step(release, &env.name, state, before).or_else(|| before.cloned())
        })
        .collect()
}

/// Where release `release` stands in one environment, if it got there. Check results come from
/// the environment while this release is its current deployment, else from what was `recorded`.
fn step(
    release: &str,
    environment: &str,
    state: &EnvironmentState,
    recorded: Option<&ReleaseEnvironment>,
) -> Option<ReleaseEnvironment> {
    // The checks of the deployment in flight, of a finished one as it finished, else as recorded.
    let checks = |id: &str| {
        if let Some(done) = state.history.iter().find(|h| h.id == id && !h.checks.is_empty()) {
            done.checks.iter().map(check_to_status).collect()
        } else if state.current.as_ref().is_some_and(|c| c.id == id) {
            state.checks.iter().map(check_to_status).collect()
        } else {
            recorded.filter(|r| r.deployment_id.as_deref() == Some(id)).map(|r| r.checks.clone()).unwrap_or_default()
        }
    };
    let entry = |phase,
                 id: &str,
                 started: Option<jiff::Timestamp>,
                 finished: Option<jiff::Timestamp>,
                 reason: Option<&String>| {
        Some(ReleaseEnvironment {
            name: environment.to_owned(),
            phase,
            deployment_id: (!id.is_empty()).then(|| id.to_owned()),
            started_at: started.map(Time),
            finished_at: finished.map(Time),
            reason: reason.cloned(),
            checks: checks(id),
        })
    };
    if let Some(current) = state.current.as_ref().filter(|c| c.release == release && state.in_flight()) {
        return entry(state.phase, &current.id, Some(current.started_at), None, None);
    }
    if state.awaiting.as_deref() == Some(release) {
        return entry(EnvironmentPhase::AwaitingApproval, "", None, None, None);
    }
    let done = state.history.iter().find(|h| h.release == release)?;
    let phase = match done.result {
        DeploymentResult::Succeeded => EnvironmentPhase::Healthy,
        DeploymentResult::Failed | DeploymentResult::RolledBack => EnvironmentPhase::Failed,
    };
    entry(phase, &done.id, Some(done.started_at), Some(done.finished_at), done.reason.as_ref())
}

/// The furthest environment a journey reached with a deployment.
pub fn furthest(journey: &[ReleaseEnvironment]) -> Option<String> {
    journey.iter().rev().find(|e| e.deployment_id.is_some()).map(|e| e.name.clone())
}

/// The Pipeline's kstatus summary from its environments (`names` aligned with `states`):
/// working while a deployment is in flight or a release waits for approval; stalled while an
/// environment is Failed or refuses the pipeline (a new release, a rollback or a label is
/// needed) or while the pause holds a release back; else ready.
///
/// `pipeline` is the Pipeline's `(name, namespace)`, for the command a message suggests;
/// `held` lists the releases the pause keeps from starting, `(environment index, release)`.
pub fn summary(
    pipeline: (&str, &str),
    names: &[&str],
    states: &[EnvironmentState],
    paused: bool,
    held: &[(usize, String)],
) -> Summary {
    let pairs = || names.iter().copied().zip(states);
    if let Some((env, state)) = pairs().find(|(_, s)| s.in_flight()) {
        let current = state.current.as_ref().map_or(String::new(), |c| format!(" {} ({})", c.release, c.id));
        return Summary::Reconciling {
            reason: Reason::Deploying,
            message: format!("{env}: {:?}{current}", state.phase),
        };
    }
    if let Some((env, state)) = pairs().find(|(_, s)| s.phase == EnvironmentPhase::Failed) {
        let why = state.reason.as_deref().unwrap_or("failed");
        return Summary::Stalled { reason: Reason::DeploymentFailed, message: format!("{env}: {why}") };
    }
    // A failure, a rollback or a refused namespace needs someone whatever else waits: they come
    // before an approval, which would otherwise hide them (kstatus: Stalled, not Reconciling).
    let rolled_back = |s: &EnvironmentState| s.current.as_ref().is_some_and(|c| c.rollback_of.is_some());
    // After an automatic rollback the environment runs the restored release, healthy, and keeps
    // the reason until a newer release starts: the pipeline needs one to move on.
    if let Some((env, why)) = pairs().find_map(|(env, s)| Some((env, s.reason.as_deref().filter(|_| rolled_back(s))?)))
    {
        return Summary::Stalled { reason: Reason::RolledBack, message: format!("{env}: {why}") };
    }
    if let Some((env, why)) = pairs().find_map(|(env, s)| Some((env, s.reason.as_deref().filter(|_| !rolled_back(s))?)))
    {
        return Summary::Stalled { reason: Reason::NamespaceNotAllowed, message: format!("{env}: {why}") };
    }
    if let Some((env, state)) = pairs().find(|(_, s)| s.phase == EnvironmentPhase::AwaitingApproval) {
        let release = state.awaiting.as_deref().unwrap_or("a release");
        return Summary::Reconciling {
            reason: Reason::AwaitingApproval,
            message: format!(
                "{release} waits for approval to enter {env}: conveyor approve {} {env} -n {}",
                pipeline.0, pipeline.1
            ),
        };
    }
    if let Some((env, release)) = held.first().filter(|_| paused) {
        let env = names.get(*env).copied().unwrap_or_default();
        return Summary::Stalled {
            reason: Reason::Paused,
            message: format!(
                "paused: {release} waits to enter {env}; conveyor resume {} -n {} lets it start",
                pipeline.0, pipeline.1
            ),
        };
    }
    let settled = pairs()
        .map(|(env, s)| match &s.current {
            Some(c) => format!("{env}={}", c.version),
            None => format!("{env}=none"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    if paused {
        return Summary::Ready { reason: Reason::Paused, message: format!("paused; {settled}") };
    }
    Summary::Ready { reason: Reason::Succeeded, message: settled }
}

#[cfg(test)]
mod tests;
