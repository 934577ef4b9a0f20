//! The deployment report of `conveyor status -o json|yaml` (DESIGN.md section 5): one entry per
//! deployment, mapped from the Pipeline's status and its Releases. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;
use serde::Serialize;

use super::environment_status;
use crate::api::Pipeline;
use crate::api::pipeline::{DeployedRelease, DeploymentResult, EnvironmentPhase, EnvironmentStatus, HistoryEntry};
use crate::api::release::{CheckResult, CheckType, CheckVerdict, Release, ReleasePhase};
use crate::core::environments::state_from_status;
use crate::core::plan::{Deployment, EnvironmentState, NOT_APPLIED};

/// One deployment of a release into an environment, as `conveyor status -o json` reports it.
#[derive(Serialize, Debug, PartialEq)]
pub struct DeploymentReport {
    /// The deployment itself.
    pub deployment: DeploymentInfo,
    /// The release deployed.
    pub release_info: ReleaseInfo,
    /// What was checked before and after the apply.
    pub validation_results: ValidationResults,
    /// What a rollback of this deployment restores.
    pub rollback_capability: RollbackCapability,
}

/// `deployment` of the report.
#[derive(Serialize, Debug, PartialEq)]
pub struct DeploymentInfo {
    /// `<environment>-<n>`.
    pub deployment_id: String,
    /// Version deployed.
    pub version: String,
    /// Environment name.
    pub environment: String,
    /// `Succeeded`, `Failed`, `RolledBack` once finished; the phase (`Deploying`, `Verifying`,
    /// `Soaking`, `RollingBack`) while in flight.
    pub status: String,
    /// RFC 3339.
    pub start_time: Option<String>,
    /// RFC 3339; null while in flight.
    pub end_time: Option<String>,
    /// Whole seconds from start to end; null while in flight.
    pub duration_seconds: Option<i64>,
}

/// `release_info` of the report, from the Release object (only `version` when it is gone).
#[derive(Serialize, Debug, PartialEq)]
pub struct ReleaseInfo {
    /// `spec.version`.
    pub version: String,
    /// `spec.source.git.ref.tag`, when the release was made from a tag.
    pub tag: Option<String>,
    /// `status.commit`: the commit packaged.
    pub commit_hash: Option<String>,
    /// `status.notes`, else `spec.notes`.
    pub release_notes: Option<String>,
    /// Always null: Releases record no author.
    pub released_by: Option<String>,
}

/// `validation_results` of the report.
#[derive(Serialize, Debug, PartialEq)]
pub struct ValidationResults {
    /// The server-side dry run before the apply: Passed once applied, Failed when it refused the
    /// deployment (nothing was applied), Pending before it ran.
    pub pre_deployment: Validation,
    /// Whether the workloads became ready after the apply; null when nothing was applied.
    pub post_deployment: Option<Validation>,
    /// The deployment's HTTP and Prometheus checks.
    pub health_checks: Vec<HealthCheck>,
    /// Always null: Conveyor runs no functional tests.
    pub functional_tests: (),
}

/// A validation step's outcome.
#[derive(Serialize, Debug, PartialEq)]
pub struct Validation {
    /// `Passed`, `Failed`, or `Pending` while it runs.
    pub result: CheckVerdict,
    /// Why it failed.
    pub message: Option<String>,
}

/// One health check's result.
#[derive(Serialize, Debug, PartialEq)]
pub struct HealthCheck {
    /// Check name.
    pub name: String,
    /// `Http` or `Prometheus`.
    #[serde(rename = "type")]
    pub type_: CheckType,
    /// `Passed`, `Failed` or `Pending`.
    pub result: CheckVerdict,
    /// What was last seen.
    pub message: Option<String>,
    /// When it was last probed, RFC 3339.
    pub at: Option<String>,
}

/// `rollback_capability` of the report.
#[derive(Serialize, Debug, PartialEq)]
pub struct RollbackCapability {
    /// An earlier release finished healthy in the environment (and was not rolled back from since).
    pub available: bool,
    /// That release's version: what an automatic rollback of this deployment restores.
    pub previous_version: Option<String>,
    /// `available`, and its Release is still Packaged with an artifact, so it can be re-applied now.
    pub rollback_possible: bool,
}

/// The report of every deployment of `pipeline`: environments in spec order, each one's
/// deployment in flight first, then its history, newest first.
pub fn report(pipeline: &Pipeline, releases: &[Release]) -> Vec<DeploymentReport> {
    let mut out = Vec::new();
    for env in &pipeline.spec.environments {
        let Some(status) = environment_status(pipeline, &env.name) else { continue };
        let state = state_from_status(status);
        let ctx = Ctx { pipeline, releases, environment: &env.name };
        if let Some(current) = status.current.as_ref().filter(|_| state.in_flight()) {
            let finished = status.history.iter().any(|h| Some(&h.deployment_id) == current.deployment_id.as_ref());
            if !finished {
                out.push(ctx.in_flight(status, current, &state));
            }
        }
        for entry in &status.history {
            let at_the_time = state_at(&state, &entry.deployment_id);
            out.push(ctx.finished(entry, at_the_time.as_ref()));
        }
    }
    out
}

/// What every entry of one environment shares.
struct Ctx<'a> {
    pipeline: &'a Pipeline,
    releases: &'a [Release],
    environment: &'a str,
}

impl Ctx<'_> {
    fn in_flight(
        &self,
        status: &EnvironmentStatus,
        current: &DeployedRelease,
        state: &EnvironmentState,
    ) -> DeploymentReport {
        let applied = current.applied_at.is_some();
        let ready =
            current.healthy_since.is_some() || status.phase == EnvironmentPhase::Soaking || probed(&status.checks);
        let post = match (applied, ready) {
            (false, _) => None,
            (true, true) => Some(passed()),
            (true, false) => Some(Validation { result: CheckVerdict::Pending, message: None }),
        };
        DeploymentReport {
            deployment: DeploymentInfo {
                deployment_id: current.deployment_id.clone().unwrap_or_default(),
                version: current.version.clone(),
                environment: self.environment.to_owned(),
                status: format!("{:?}", status.phase),
                start_time: current.since.as_ref().map(rfc3339),
                end_time: None,
                duration_seconds: None,
            },
            release_info: self.release_info(&current.release, &current.version),
            validation_results: ValidationResults {
                pre_deployment: if applied {
                    passed()
                } else {
                    Validation { result: CheckVerdict::Pending, message: None }
                },
                post_deployment: post,
                health_checks: status.checks.iter().map(health_check).collect(),
                functional_tests: (),
            },
            rollback_capability: self.capability(Some(state)),
        }
    }

    fn finished(&self, entry: &HistoryEntry, state: Option<&EnvironmentState>) -> DeploymentReport {
        let reason = entry.reason.clone();
        let applied = !entry.reason.as_deref().is_some_and(|r| r.contains(NOT_APPLIED));
        let failed = |message| Validation { result: CheckVerdict::Failed, message };
        // Checks are probed only once the workloads are ready: a probed check shows they were.
        let post = match entry.result {
            _ if !applied => None,
            DeploymentResult::Succeeded => Some(passed()),
            _ if probed(&entry.checks) => Some(passed()),
            _ => Some(failed(reason.clone())),
        };
        let end = entry.finished_at.as_ref();
        DeploymentReport {
            deployment: DeploymentInfo {
                deployment_id: entry.deployment_id.clone(),
                version: entry.version.clone(),
                environment: self.environment.to_owned(),
                status: format!("{:?}", entry.result),
                start_time: Some(rfc3339(&entry.started_at)),
                end_time: end.map(rfc3339),
                duration_seconds: end.map(|end| end.0.duration_since(entry.started_at.0).as_secs().max(0)),
            },
            release_info: self.release_info(&entry.release, &entry.version),
            validation_results: ValidationResults {
                pre_deployment: if applied { passed() } else { failed(reason) },
                post_deployment: post,
                health_checks: entry.checks.iter().map(health_check).collect(),
                functional_tests: (),
            },
            rollback_capability: self.capability(state),
        }
    }

    /// Release `name` of this pipeline, if it still exists.
    fn release(&self, name: &str) -> Option<&Release> {
        self.releases.iter().find(|r| {
            r.metadata.name.as_deref() == Some(name)
                && r.namespace() == self.pipeline.namespace()
                && r.spec.pipeline == self.pipeline.name_any()
        })
    }

    fn release_info(&self, name: &str, version: &str) -> ReleaseInfo {
        let release = self.release(name);
        let status = release.and_then(|r| r.status.as_ref());
        ReleaseInfo {
            version: release.map_or(version, |r| &r.spec.version).to_owned(),
            tag: release.and_then(|r| r.spec.source.as_ref()?.git.as_ref()?.reference.tag.clone()),
            commit_hash: status.and_then(|s| s.commit.clone()),
            release_notes: status.and_then(|s| s.notes.clone()).or_else(|| release.and_then(|r| r.spec.notes.clone())),
            released_by: None,
        }
    }

    /// The release an automatic rollback restores from `state`, and whether it can be re-applied.
    fn capability(&self, state: Option<&EnvironmentState>) -> RollbackCapability {
        let target = state.and_then(EnvironmentState::rollback_target);
        let reapplicable = |name: &str| {
            self.release(name)
                .and_then(|r| r.status.as_ref())
                .is_some_and(|s| s.phase == Some(ReleasePhase::Packaged) && s.artifact.is_some())
        };
        RollbackCapability {
            available: target.is_some(),
            previous_version: target.map(|t| t.version.to_string()),
            rollback_possible: target.is_some_and(|t| reapplicable(&t.release)),
        }
    }
}

/// The environment as it stood when deployment `id` ran: it current, the older history behind
/// it. `None` when the history no longer holds it in a form the planner reads.
fn state_at(state: &EnvironmentState, id: &str) -> Option<EnvironmentState> {
    let i = state.history.iter().position(|h| h.id == id)?;
    let entry = &state.history[i];
    let current = Deployment {
        id: entry.id.clone(),
        release: entry.release.clone(),
        version: entry.version.clone(),
        digest: String::new(),
        started_at: entry.started_at,
        healthy_since: None,
        applied_at: None,
        rollback_of: entry.rollback_of.clone(),
    };
    Some(EnvironmentState { current: Some(current), history: state.history[i + 1..].to_vec(), ..Default::default() })
}

/// Whether any check was probed.
fn probed(checks: &[CheckResult]) -> bool {
    checks.iter().any(|c| c.at.is_some() || c.result != CheckVerdict::Pending)
}

fn passed() -> Validation {
    Validation { result: CheckVerdict::Passed, message: None }
}

fn health_check(c: &CheckResult) -> HealthCheck {
    HealthCheck {
        name: c.name.clone(),
        type_: c.type_,
        result: c.result,
        message: c.message.clone(),
        at: c.at.as_ref().map(rfc3339),
    }
}

fn rfc3339(t: &Time) -> String {
    t.0.to_string()
}
