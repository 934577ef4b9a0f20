//! What the metrics say, derived from state alone: per-environment readings of a Pipeline (for
//! gauges read at scrape time) and the deployments that ended between two plan rounds (for
//! counters and the DORA histograms).

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::api::pipeline::{DeploymentResult, EnvironmentPhase};
use crate::api::{ConditionType, Pipeline, Release};
use crate::core::conditions::find;
use crate::core::environments::candidates;
use crate::core::plan::{EnvironmentState, Finished, waiting};
use crate::core::status::current_states;

/// One environment as the gauges show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// Environment name.
    pub environment: String,
    /// Its phase.
    pub phase: EnvironmentPhase,
    /// False while a release failed here and it has not been healthy since (`Failed`,
    /// `RollingBack`); true otherwise, including while a new release is being verified.
    pub healthy: bool,
    /// The release running here: (Release name, version).
    pub release: Option<(String, String)>,
    /// Since when a release has been waiting to enter (see [`waiting`]).
    pub pending_since: Option<Timestamp>,
}

/// Readings of every environment of `pipeline`; `releases` are those of its namespace.
///
/// A release waits since it became healthy in the environment before (for the first
/// environment: since it was packaged, its `Ready` condition's transition).
pub fn readings<'a>(pipeline: &Pipeline, releases: impl IntoIterator<Item = &'a Release> + Clone) -> Vec<Reading> {
    let name = pipeline.metadata.name.as_deref().unwrap_or_default();
    let states = current_states(pipeline);
    let candidates = candidates(name, releases.clone());
    let packaged_at: BTreeMap<&str, Timestamp> = releases
        .into_iter()
        .filter_map(|r| {
            let ready = find(&r.status.as_ref()?.conditions, ConditionType::Ready)?;
            Some((r.metadata.name.as_deref()?, ready.last_transition_time.0))
        })
        .collect();
    let waiting = waiting(&candidates, &states);
    pipeline
        .spec
        .environments
        .iter()
        .zip(&states)
        .enumerate()
        .map(|(i, (env, state))| {
            let pending_since = waiting[i].and_then(|next| match i.checked_sub(1) {
                None => packaged_at.get(next.name.as_str()).copied(),
                Some(up) => states[up]
                    .history
                    .iter()
                    .find(|h| h.release == next.name && h.result == DeploymentResult::Succeeded)
                    .map(|h| h.finished_at),
            });
            Reading {
                environment: env.name.clone(),
                phase: state.phase,
                healthy: !matches!(state.phase, EnvironmentPhase::Failed | EnvironmentPhase::RollingBack),
                release: state.current.as_ref().map(|c| (c.release.clone(), c.version.to_string())),
                pending_since,
            }
        })
        .collect()
}

/// How a deployment of a new release ended, as the deployment counters label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Result {
    /// It became healthy (and soaked).
    Succeeded,
    /// It failed and nothing was restored (rollback off, or no earlier healthy release).
    Failed,
    /// It failed and an automatic rollback to the last healthy release started.
    RolledBack,
}

impl Result {
    /// Every result.
    pub const ALL: [Self; 3] = [Self::Succeeded, Self::Failed, Self::RolledBack];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// A deployment that ended between two rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Ended {
    /// Index of the environment.
    pub environment: usize,
    /// The release deployed.
    pub release: String,
    /// `None` for a rollback (restoring a release is not a change; it counts toward time to
    /// restore only).
    pub result: Option<Result>,
    /// Start to end, seconds.
    pub seconds: f64,
    /// When it ended.
    pub finished_at: Timestamp,
    /// When it ended healthy after failures there: seconds since the first of those failures.
    pub restored_after: Option<f64>,
}

/// The deployments that ended going from `before` to `after` (aligned per environment), oldest
/// first per environment. An entry is new when its deployment id was not in `before`'s history.
pub fn ended(before: &[EnvironmentState], after: &[EnvironmentState]) -> Vec<Ended> {
    let mut out = Vec::new();
    for (i, next) in after.iter().enumerate() {
        let old: &[Finished] = before.get(i).map(|b| b.history.as_slice()).unwrap_or_default();
        let new: Vec<&Finished> = next.history.iter().take_while(|h| !old.iter().any(|o| o.id == h.id)).collect();
        // Everything known here, newest first: this round's entries, then the earlier ones (which
        // the history limit may have pushed out of `after`).
        let known: Vec<&Finished> = new.iter().copied().chain(old).collect();
        for (at, entry) in new.iter().enumerate().rev() {
            let result = match (entry.rollback_of.is_some(), entry.result) {
                (true, _) => None,
                (false, DeploymentResult::Succeeded) => Some(Result::Succeeded),
                (false, _) => {
                    let rolling_back = next.phase == EnvironmentPhase::RollingBack
                        && next.current.as_ref().and_then(|c| c.rollback_of.as_deref()) == Some(entry.release.as_str());
                    Some(if rolling_back { Result::RolledBack } else { Result::Failed })
                }
            };
            let restored_after = (entry.result == DeploymentResult::Succeeded)
                .then(|| {
                    known[at + 1..]
                        .iter()
                        .take_while(|h| h.result != DeploymentResult::Succeeded)
                        .last()
                        .map(|first| seconds(first.finished_at, entry.finished_at))
                })
                .flatten();
            out.push(Ended {
                environment: i,
                release: entry.release.clone(),
                result,
                seconds: seconds(entry.started_at, entry.finished_at),
                finished_at: entry.finished_at,
                restored_after,
            });
        }
    }
    out
}

/// Seconds from `from` to `to`, never negative (clocks of different replicas may disagree).
pub fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_millisecond() - from.as_millisecond()).max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::api::Pipeline;
    use crate::api::pipeline::{DeployedRelease, EnvironmentStatus, HistoryEntry, PipelineStatus};
    use crate::api::release::{Artifact, ReleasePhase, ReleaseStatus};
    use crate::core::fixtures::{condition, pipeline_spec, release, release_spec, t};
    use crate::core::plan::Deployment;

    fn finished(id: &str, release: &str, result: DeploymentResult, started: i64, ended: i64) -> Finished {
        Finished {
            id: id.into(),
            release: release.into(),
            version: "1.0.0".parse().unwrap(),
            result,
            started_at: t(started),
            finished_at: t(ended),
            reason: None,
            rollback_of: None,
            checks: vec![],
        }
    }

    fn state(phase: EnvironmentPhase, history: Vec<Finished>) -> EnvironmentState {
        EnvironmentState { phase, history, ..EnvironmentState::default() }
    }

    #[test]
    fn a_success_is_counted_once_with_its_duration() {
        let before = vec![state(EnvironmentPhase::Verifying, vec![])];
        let after =
            vec![state(EnvironmentPhase::Healthy, vec![finished("dev-1", "a", DeploymentResult::Succeeded, 10, 40)])];
        let ended = ended(&before, &after);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].result, Some(Result::Succeeded));
        assert_eq!(ended[0].seconds, 30.0);
        assert_eq!(ended[0].restored_after, None);
        // The next round sees it in `before` already.
        assert!(super::ended(&after, &after).is_empty());
    }

    #[test]
    fn a_failure_with_a_rollback_under_way_is_rolled_back_and_the_restore_measures_time_to_restore() {
        let healthy = finished("dev-1", "a", DeploymentResult::Succeeded, 0, 10);
        let before = vec![state(EnvironmentPhase::Verifying, vec![healthy.clone()])];
        let failed = finished("dev-2", "b", DeploymentResult::Failed, 20, 50);
        let mut rolling = state(EnvironmentPhase::RollingBack, vec![failed.clone(), healthy.clone()]);
        rolling.current = Some(Deployment {
            id: "dev-3".into(),
            release: "a".into(),
            version: "1.0.0".parse().unwrap(),
            digest: String::new(),
            started_at: t(50),
            healthy_since: None,
            applied_at: None,
            rollback_of: Some("b".into()),
        });
        let ended1 = ended(&before, std::slice::from_ref(&rolling));
        assert_eq!(ended1.len(), 1);
        assert_eq!(ended1[0].result, Some(Result::RolledBack));

        let mut restore = finished("dev-3", "a", DeploymentResult::Succeeded, 50, 65);
        restore.rollback_of = Some("b".into());
        let mut rolled = failed.clone();
        rolled.result = DeploymentResult::RolledBack;
        let after = vec![state(EnvironmentPhase::Healthy, vec![restore, rolled, healthy])];
        let ended2 = ended(&[rolling], &after);
        assert_eq!(ended2.len(), 1);
        assert_eq!(ended2[0].result, None, "a rollback is not a change");
        assert_eq!(ended2[0].restored_after, Some(15.0), "from the failure at 50 to healthy at 65");
    }

    #[test]
    fn time_to_restore_starts_at_the_first_of_several_failures_even_beyond_the_history_limit() {
        let before = vec![state(
            EnvironmentPhase::Failed,
            vec![
                finished("dev-3", "c", DeploymentResult::Failed, 200, 300),
                finished("dev-2", "b", DeploymentResult::Failed, 100, 120),
                finished("dev-1", "a", DeploymentResult::Succeeded, 0, 10),
            ],
        )];
        // History limit 1: only the newest entry is left after the round.
        let after =
            vec![state(EnvironmentPhase::Healthy, vec![finished("dev-4", "d", DeploymentResult::Succeeded, 400, 500)])];
        let ended = ended(&before, &after);
        assert_eq!(ended[0].result, Some(Result::Succeeded));
        assert_eq!(ended[0].restored_after, Some(380.0));
    }

    #[test]
    fn a_failure_with_nothing_to_restore_is_failed() {
        let before = vec![state(EnvironmentPhase::Verifying, vec![])];
        let after =
            vec![state(EnvironmentPhase::Failed, vec![finished("dev-1", "a", DeploymentResult::Failed, 0, 10)])];
        assert_eq!(ended(&before, &after)[0].result, Some(Result::Failed));
    }

    fn packaged(name: &str, version: &str, at: i64) -> Release {
        let mut r = release(name, release_spec(version), 1);
        r.status = Some(ReleaseStatus {
            phase: Some(ReleasePhase::Packaged),
            artifact: Some(Artifact {
                digest: format!("sha256:{}", "ab".repeat(32)),
                size: 1,
                files: 1,
                objects: 1,
                environments: vec![],
            }),
            conditions: vec![Condition {
                last_transition_time: Time(t(at)),
                ..condition("Ready", "True", "Packaged", "")
            }],
            ..ReleaseStatus::default()
        });
        r
    }

    fn entry(id: &str, release: &str, version: &str, result: DeploymentResult, ended: i64) -> HistoryEntry {
        HistoryEntry {
            deployment_id: id.into(),
            release: release.into(),
            version: version.into(),
            result,
            started_at: Time(t(ended - 5)),
            finished_at: Some(Time(t(ended))),
            reason: None,
            rollback_of: None,
            checks: vec![],
        }
    }

    fn running(release: &str, version: &str) -> DeployedRelease {
        DeployedRelease {
            release: release.into(),
            version: version.into(),
            digest: Some(format!("sha256:{}", "ab".repeat(32))),
            since: Some(Time(t(1))),
            deployment_id: Some("x-1".into()),
            healthy_since: None,
            applied_at: None,
            rollback_of: None,
        }
    }

    #[test]
    fn readings_show_health_release_and_what_waits_since_when() {
        let mut p = Pipeline::new("shop", pipeline_spec(&[("development", "dev"), ("staging", "stg")]));
        p.metadata.namespace = Some("shop".into());
        let dev = EnvironmentStatus {
            name: "development".into(),
            phase: EnvironmentPhase::Healthy,
            current: Some(running("shop-1.1.0", "1.1.0")),
            newest_version: Some("1.1.0".into()),
            history: vec![
                entry("development-2", "shop-1.1.0", "1.1.0", DeploymentResult::Succeeded, 500),
                entry("development-1", "shop-1.0.0", "1.0.0", DeploymentResult::Succeeded, 100),
            ],
            ..EnvironmentStatus::default()
        };
        let stg = EnvironmentStatus {
            name: "staging".into(),
            phase: EnvironmentPhase::AwaitingApproval,
            current: Some(running("shop-1.0.0", "1.0.0")),
            newest_version: Some("1.0.0".into()),
            history: vec![entry("staging-1", "shop-1.0.0", "1.0.0", DeploymentResult::Succeeded, 200)],
            ..EnvironmentStatus::default()
        };
        p.status = Some(PipelineStatus { environments: vec![dev, stg], ..PipelineStatus::default() });
        let releases = [packaged("shop-1.0.0", "1.0.0", 50), packaged("shop-1.1.0", "1.1.0", 400)];
        let r = readings(&p, releases.iter());
        assert_eq!(r[0].environment, "development");
        assert!(r[0].healthy);
        assert_eq!(r[0].release, Some(("shop-1.1.0".into(), "1.1.0".into())));
        assert_eq!(r[0].pending_since, None, "nothing newer than 1.1.0 waits for development");
        assert_eq!(r[1].phase, EnvironmentPhase::AwaitingApproval);
        assert_eq!(r[1].pending_since, Some(t(500)), "1.1.0 waits since it became healthy in development");

        // A third, newer release waits for development since it was packaged; a failed staging
        // reads unhealthy.
        let releases = [releases[0].clone(), releases[1].clone(), packaged("shop-1.2.0", "1.2.0", 600)];
        p.status.as_mut().unwrap().environments[1].phase = EnvironmentPhase::Failed;
        let r = readings(&p, releases.iter());
        assert_eq!(r[0].pending_since, Some(t(600)));
        assert!(!r[1].healthy);
    }
}
