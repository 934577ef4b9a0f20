//! When `conveyor status --watch` stops: whether a Pipeline has settled, and how. Pure.
//!
//! A Pipeline has settled when the controller has reported on its current spec, no environment
//! has a deployment in flight, no Release is on its way into the first environment, and its
//! kstatus conditions say it is done (`Ready`) or cannot progress (`Stalled`). A release waiting
//! for `conveyor approve` is not settled: kstatus calls it `Reconciling`, and the watch shows
//! the command that lets it in.
//!
//! The conditions alone are not enough: between a Release being packaged and the Pipeline's
//! next reconcile, the Pipeline still reads `Ready` (or `Stalled` after a rollback) from before.
//! So the Releases are read too.

use std::collections::BTreeSet;

use kube::ResourceExt as _;

use crate::api::release::{Release, ReleasePhase};
use crate::api::{ConditionType, Pipeline, Reason};
use crate::core::conditions::{find, is_true};
use crate::core::environments::{paused, state_from_status};

/// Where a Pipeline stands for the watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still moving; what it waits for, in a few words.
    Waiting(String),
    /// Done: `Ready`.
    Ready,
    /// Cannot progress without a change from a person; why.
    Failed(String),
}

impl Verdict {
    /// Whether the watch may stop on this pipeline.
    pub fn settled(&self) -> bool {
        !matches!(self, Self::Waiting(_))
    }
}

/// The verdict on `pipeline`, given every Release of its namespace; `old_failures` are Releases
/// that had failed before the watch began (not its outcome).
pub fn verdict(pipeline: &Pipeline, releases: &[Release], old_failures: &BTreeSet<String>) -> Verdict {
    let Some(status) = &pipeline.status else {
        return Verdict::Waiting("the controller to report on the Pipeline (is it running?)".to_owned());
    };
    let generation = pipeline.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Verdict::Waiting(format!("the controller to act on generation {generation} of the spec"));
    }
    if let Some(env) = status.environments.iter().find(|e| state_from_status(e).in_flight()) {
        let release = env.current.as_ref().map_or(String::new(), |c| format!(" {}", c.release));
        return Verdict::Waiting(format!("{}: {:?}{release}", env.name, env.phase));
    }

    let first = pipeline.spec.environments.first().map(|e| e.name.as_str());
    let newest = first
        .and_then(|name| status.environments.iter().find(|e| e.name == name))
        .and_then(|e| state_from_status(e).newest);
    // A release can still start unless the Pipeline is stalled on something a new release does
    // not fix (an invalid spec, a namespace that did not opt in).
    let stalled = find(&status.conditions, ConditionType::Stalled).filter(|c| c.status == "True");
    let blocked = stalled.is_some_and(|c| {
        ![Reason::RolledBack, Reason::DeploymentFailed, Reason::Paused].iter().any(|r| r.as_str() == c.reason)
    });
    let is_paused = paused(pipeline.annotations());
    let mut problems = Vec::new();
    for release in releases_of(pipeline, releases) {
        let name = release.name_any();
        // Only releases newer than anything the first environment ran still matter.
        let version = semver::Version::parse(&release.spec.version).ok();
        if let (Some(version), Some(newest)) = (&version, &newest)
            && version <= newest
        {
            continue;
        }
        let status = release.status.as_ref();
        let phase = status.and_then(|s| s.phase).unwrap_or_default();
        let conditions = status.map_or(&[][..], |s| &s.conditions[..]);
        if phase == ReleasePhase::Failed || is_true(conditions, ConditionType::Stalled) {
            // A release that had failed before the watch began is not what this watch follows.
            if old_failures.contains(&name) {
                continue;
            }
            let why = find(conditions, ConditionType::Stalled)
                .filter(|c| c.status == "True")
                .or_else(|| find(conditions, ConditionType::Ready))
                .map_or("packaging failed".to_owned(), |c| format!("{}: {}", c.reason, c.message));
            problems.push(format!("{name} cannot be deployed: {why}"));
            continue;
        }
        match phase {
            ReleasePhase::Pending | ReleasePhase::Packaging => {
                return Verdict::Waiting(format!("{name} to be packaged ({phase:?})"));
            }
            ReleasePhase::Packaged if is_paused => {
                let env = first.unwrap_or("the first environment");
                let (p, ns) = (pipeline.name_any(), pipeline.namespace().unwrap_or_default());
                problems
                    .push(format!("paused: {name} waits to enter {env}; `conveyor resume {p} -n {ns}` lets it start"));
            }
            ReleasePhase::Packaged if !blocked && version.is_some() => {
                return Verdict::Waiting(format!("{name} to start in {}", first.unwrap_or("the first environment")));
            }
            ReleasePhase::Packaged | ReleasePhase::Failed => {}
        }
    }
    if let Some(c) = stalled {
        return Verdict::Failed(format!("Stalled {}: {}", c.reason, c.message));
    }
    let reconciling = find(&status.conditions, ConditionType::Reconciling).filter(|c| c.status == "True");
    // An approval wait goes on (someone is expected to act) whatever else is broken meanwhile.
    if let Some(c) = reconciling.filter(|c| c.reason == Reason::AwaitingApproval.as_str()) {
        return Verdict::Waiting(format!("approval: {}", c.message));
    }
    if !problems.is_empty() {
        return Verdict::Failed(problems.join("; "));
    }
    if is_true(&status.conditions, ConditionType::Ready) {
        return Verdict::Ready;
    }
    match reconciling {
        Some(c) => Verdict::Waiting(c.message.clone()),
        None => Verdict::Waiting("the controller to report on the Pipeline (is it running?)".to_owned()),
    }
}

/// The releases of `pipelines` that have already failed (packaging failed, or stalled): failures
/// from before a watch starts, which it does not report as its outcome.
pub fn failed_releases(pipelines: &[Pipeline], releases: &[Release]) -> BTreeSet<String> {
    pipelines
        .iter()
        .flat_map(|p| releases_of(p, releases))
        .filter(|r| {
            let status = r.status.as_ref();
            status.and_then(|s| s.phase) == Some(ReleasePhase::Failed)
                || is_true(status.map_or(&[][..], |s| &s.conditions[..]), ConditionType::Stalled)
        })
        .map(|r| r.name_any())
        .collect()
}

/// The Releases of `pipeline` (same namespace, `spec.pipeline` naming it), not being deleted.
pub fn releases_of<'a>(pipeline: &'a Pipeline, releases: &'a [Release]) -> impl Iterator<Item = &'a Release> + 'a {
    releases.iter().filter(move |r| {
        r.spec.pipeline == pipeline.name_any()
            && r.namespace() == pipeline.namespace()
            && r.metadata.deletion_timestamp.is_none()
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::api::pipeline::{DeployedRelease, EnvironmentPhase, EnvironmentStatus, PipelineStatus};
    use crate::api::release::ReleaseStatus;
    use crate::core::fixtures::{condition, pipeline_spec, release, release_spec, t};

    /// The kstatus triplet with `holding` True and the others False, all with `reason`.
    fn conditions(holding: &str, reason: &str, message: &str) -> Vec<Condition> {
        ["Ready", "Reconciling", "Stalled"]
            .map(|c| condition(c, if c == holding { "True" } else { "False" }, reason, message))
            .to_vec()
    }

    /// Pipeline `shop` (development, staging) at generation 1; development ran `newest` (if
    /// any) and is in `phase`.
    fn shop(phase: EnvironmentPhase, newest: Option<&str>, conditions: Vec<Condition>) -> Pipeline {
        let mut p = Pipeline::new("shop", pipeline_spec(&[("development", "dev"), ("staging", "stg")]));
        p.metadata.namespace = Some("shop".into());
        p.metadata.generation = Some(1);
        let current = newest.map(|v| DeployedRelease {
            release: format!("shop-{v}"),
            version: v.into(),
            digest: None,
            since: Some(Time(t(10))),
            deployment_id: Some("development-1".into()),
            healthy_since: None,
            applied_at: None,
            rollback_of: None,
        });
        let development = EnvironmentStatus {
            name: "development".into(),
            phase,
            current,
            newest_version: newest.map(Into::into),
            ..Default::default()
        };
        p.status = Some(PipelineStatus {
            observed_generation: Some(1),
            conditions,
            summary: None,
            environments: vec![development],
        });
        p
    }

    fn rel(version: &str, phase: Option<ReleasePhase>, conditions: Vec<Condition>) -> Release {
        let mut r = release(&format!("shop-{version}"), release_spec(version), 1);
        r.status = Some(ReleaseStatus { phase, conditions, ..Default::default() });
        r
    }

    fn ready() -> Vec<Condition> {
        conditions("Ready", "Succeeded", "development=1.0.0")
    }

    #[test]
    fn verdicts() {
        use EnvironmentPhase::*;
        let packaged = |v| rel(v, Some(ReleasePhase::Packaged), conditions("Ready", "Packaged", "ok"));
        let mut behind = shop(Healthy, Some("1.0.0"), ready());
        behind.metadata.generation = Some(2);
        let mut no_status = shop(Healthy, None, ready());
        no_status.status = None;
        let mut paused = shop(Healthy, Some("1.0.0"), ready());
        paused.metadata.annotations = Some([("conveyor.dev/paused".to_owned(), "true".to_owned())].into());
        let waiting = |s: &str| Verdict::Waiting(s.to_owned());
        // (case, pipeline, releases, verdict)
        let cases: Vec<(&str, Pipeline, Vec<Release>, Verdict)> = vec![
            ("settled Ready", shop(Healthy, Some("1.0.0"), ready()), vec![packaged("1.0.0")], Verdict::Ready),
            ("no status yet", no_status, vec![], waiting("the controller to report on the Pipeline (is it running?)")),
            ("spec not observed", behind, vec![], waiting("the controller to act on generation 2 of the spec")),
            (
                "in flight",
                shop(Verifying, Some("1.0.0"), conditions("Reconciling", "Deploying", "…")),
                vec![],
                waiting("development: Verifying shop-1.0.0"),
            ),
            (
                "a release being packaged, the pipeline still Ready from before",
                shop(Healthy, Some("1.0.0"), ready()),
                vec![rel("1.1.0", Some(ReleasePhase::Packaging), vec![])],
                waiting("shop-1.1.0 to be packaged (Packaging)"),
            ),
            (
                "a release just created, no status",
                shop(Healthy, Some("1.0.0"), ready()),
                vec![rel("1.1.0", None, vec![])],
                waiting("shop-1.1.0 to be packaged (Pending)"),
            ),
            (
                "packaged, not started yet",
                shop(Healthy, Some("1.0.0"), ready()),
                vec![packaged("1.1.0")],
                waiting("shop-1.1.0 to start in development"),
            ),
            (
                "packaged after a rollback: the Stalled condition is from before",
                shop(Healthy, Some("1.0.0"), conditions("Stalled", "RolledBack", "development: rolled back")),
                vec![packaged("1.1.0")],
                waiting("shop-1.1.0 to start in development"),
            ),
            (
                "stalled on something a release does not fix",
                shop(Idle, None, conditions("Stalled", "NamespaceNotAllowed", "development: dev did not opt in")),
                vec![packaged("1.1.0")],
                Verdict::Failed("Stalled NamespaceNotAllowed: development: dev did not opt in".into()),
            ),
            (
                "an older release is not waiting",
                shop(Healthy, Some("1.1.0"), ready()),
                vec![packaged("1.0.0"), rel("1.0.1", Some(ReleasePhase::Failed), vec![])],
                Verdict::Ready,
            ),
            (
                "a newer release that cannot be packaged",
                shop(Healthy, Some("1.0.0"), ready()),
                vec![rel("1.1.0", Some(ReleasePhase::Pending), conditions("Stalled", "RefNotFound", "no tag v1.1.0"))],
                Verdict::Failed("shop-1.1.0 cannot be deployed: RefNotFound: no tag v1.1.0".into()),
            ),
            (
                "awaiting approval is still in progress",
                shop(Healthy, Some("1.0.0"), conditions("Reconciling", "AwaitingApproval", "conveyor approve …")),
                vec![],
                waiting("approval: conveyor approve …"),
            ),
            (
                "paused with a release held",
                paused,
                vec![packaged("1.1.0")],
                Verdict::Failed(
                    "paused: shop-1.1.0 waits to enter development; `conveyor resume shop -n shop` lets it start"
                        .into(),
                ),
            ),
            (
                "failed",
                shop(Failed, Some("1.0.0"), conditions("Stalled", "DeploymentFailed", "development: boom")),
                vec![packaged("1.0.0")],
                Verdict::Failed("Stalled DeploymentFailed: development: boom".into()),
            ),
        ];
        for (case, pipeline, releases, expected) in cases {
            assert_eq!(verdict(&pipeline, &releases, &BTreeSet::new()), expected, "{case}");
        }
    }

    #[test]
    fn releases_of_other_pipelines_do_not_count() {
        let pipeline = shop(EnvironmentPhase::Healthy, Some("1.0.0"), ready());
        let mut other = rel("2.0.0", None, vec![]);
        other.spec.pipeline = "cart".into();
        assert_eq!(verdict(&pipeline, &[other], &BTreeSet::new()), Verdict::Ready);
    }

    #[test]
    fn a_failure_from_before_the_watch_is_not_its_outcome_and_an_approval_wait_goes_on() {
        let broken = rel("1.1.0", Some(ReleasePhase::Failed), conditions("Stalled", "RefNotFound", "no tag v1.1.0"));
        let ready = shop(EnvironmentPhase::Healthy, Some("1.0.0"), ready());
        let old = failed_releases(std::slice::from_ref(&ready), std::slice::from_ref(&broken));
        assert_eq!(old, BTreeSet::from(["shop-1.1.0".to_owned()]));
        assert_eq!(verdict(&ready, std::slice::from_ref(&broken), &old), Verdict::Ready);
        let awaiting = shop(
            EnvironmentPhase::Healthy,
            Some("1.0.0"),
            conditions("Reconciling", "AwaitingApproval", "conveyor approve …"),
        );
        let news = BTreeSet::new();
        assert_eq!(
            verdict(&awaiting, std::slice::from_ref(&broken), &news),
            Verdict::Waiting("approval: conveyor approve …".into())
        );
    }
}
