//! Workload readiness verdicts, read from the status that Kubernetes' own controllers write,
//! with the same rules as `kubectl rollout status`.
//!
//! Rules shared by every kind:
//! - A status is only a verdict on the spec it was computed from: until
//!   `status.observedGeneration` reaches `metadata.generation` the object is `Progressing`. A
//!   status no controller ever wrote (no `observedGeneration`) counts as not observed.
//! - Messages start with the object (`Deployment/web: …`) so a combined verdict says which one.
//! - `OnDelete` workloads (StatefulSet, DaemonSet) only replace a Pod when someone deletes it:
//!   they stay `Progressing` until every Pod runs the new template, as the release would
//!   otherwise be verified while the old one still runs.
//!
//! A paused Deployment is judged by its replica counts like any other: when the applied template
//! already runs everywhere it is `Ready`; otherwise it is `Progressing` and the message says the
//! rollout is paused (Kubernetes does not enforce the progress deadline while paused, so only
//! Conveyor's own timeout ends the wait).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::core::plan::Health;

/// The `Progressing` condition reason the deployment controller sets when the progress deadline
/// passes.
const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// The update strategy that replaces Pods only when someone deletes them.
const ON_DELETE: &str = "OnDelete";
/// Shown with an `OnDelete` workload whose Pods are not all updated.
const ON_DELETE_HINT: &str = " (OnDelete: old pods are replaced only when deleted)";

/// The health of a Deployment, as `kubectl rollout status` judges it.
pub fn deployment_health(d: &Deployment) -> Health {
    let label = label("Deployment", &d.metadata);
    let status = d.status.clone().unwrap_or_default();
    if !observed(&d.metadata, status.observed_generation) {
        return not_observed(&label);
    }
    let deadline = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED));
    if let Some(c) = deadline {
        let why = c.message.as_deref().unwrap_or("no message");
        return Health::Failed(format!("{label} exceeded its progress deadline: {why}"));
    }
    let spec = d.spec.as_ref();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1);
    let replicas = status.replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let missing = if updated < want {
        format!("{updated} of {want} replicas updated")
    } else if replicas > updated {
        format!("{} old replicas pending termination", replicas - updated)
    } else if available < updated {
        format!("{available} of {updated} updated replicas available")
    } else {
        return Health::Ready;
    };
    let paused = if spec.and_then(|s| s.paused) == Some(true) { " (rollout paused)" } else { "" };
    Health::Progressing(format!("{label}: {missing}{paused}"))
}

/// The health of a StatefulSet: every replica ready (1.20 reports no `availableReplicas`) and,
/// for a rolling update, every Pod above the partition on the new revision.
pub fn statefulset_health(s: &StatefulSet) -> Health {
    let label = label("StatefulSet", &s.metadata);
    let status = s.status.clone().unwrap_or_default();
    if !observed(&s.metadata, status.observed_generation) {
        return not_observed(&label);
    }
    let spec = s.spec.as_ref();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < want {
        return progressing(&label, format!("{ready} of {want} pods ready"));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|u| u.type_.as_deref()) == Some(ON_DELETE) {
        if updated < want {
            return progressing(&label, format!("{updated} of {want} pods updated{ON_DELETE_HINT}"));
        }
        return Health::Ready;
    }
    let partition = strategy.and_then(|u| u.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0).max(0);
    let target = (want - partition).max(0);
    if updated < target {
        let note = if partition > 0 { format!(" (partition {partition})") } else { String::new() };
        return progressing(&label, format!("{updated} of {target} pods updated{note}"));
    }
    if partition == 0
        && let (Some(current), Some(update)) = (&status.current_revision, &status.update_revision)
        && current != update
    {
        return progressing(&label, format!("rolling update to revision {update} not complete (current {current})"));
    }
    Health::Ready
}

/// The health of a DaemonSet: every scheduled Pod updated and available; a DaemonSet with no
/// node to run on (desired 0) is `Ready`.
pub fn daemonset_health(d: &DaemonSet) -> Health {
    let label = label("DaemonSet", &d.metadata);
    let status = d.status.clone().unwrap_or_default();
    if !observed(&d.metadata, status.observed_generation) {
        return not_observed(&label);
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    if updated < desired {
        let on_delete = d.spec.as_ref().and_then(|s| s.update_strategy.as_ref()).and_then(|u| u.type_.as_deref())
            == Some(ON_DELETE);
        let hint = if on_delete { ON_DELETE_HINT } else { "" };
        return progressing(&label, format!("{updated} of {desired} pods updated{hint}"));
    }
    let available = status.number_available.unwrap_or(0);
    if available < desired {
        return progressing(&label, format!("{available} of {desired} pods available"));
    }
    Health::Ready
}

/// Combines per-object verdicts, each with its object's label (`Deployment/web`): the first
/// `Failed` if any; else, if any is `Progressing`, the first one's message (prefixed with a count
/// when there are several workloads, and naming the other objects not ready); else `Ready`.
/// No verdicts at all is `Ready`: there is nothing to wait for.
pub fn combine(verdicts: impl IntoIterator<Item = (String, Health)>) -> Health {
    /// How many other objects not ready are named in the message.
    const NAMED: usize = 3;
    let mut total = 0usize;
    let mut first: Option<String> = None;
    let mut others: Vec<String> = Vec::new();
    for (label, health) in verdicts {
        total += 1;
        match health {
            Health::Failed(message) => return Health::Failed(message),
            Health::Progressing(message) if first.is_none() => first = Some(message),
            Health::Progressing(_) => others.push(label),
            Health::Ready => {}
        }
    }
    let Some(first) = first else { return Health::Ready };
    if total == 1 {
        return Health::Progressing(first);
    }
    let mut message = format!("{} of {total} workloads not ready: {first}", others.len() + 1);
    if !others.is_empty() {
        message.push_str(&format!("; also {}", others.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ")));
        if others.len() > NAMED {
            message.push_str(&format!(" and {} more", others.len() - NAMED));
        }
    }
    Health::Progressing(message)
}

fn label(kind: &str, meta: &ObjectMeta) -> String {
    format!("{kind}/{}", meta.name.as_deref().unwrap_or("<unnamed>"))
}

/// Whether the status was computed from the current spec.
fn observed(meta: &ObjectMeta, observed_generation: Option<i64>) -> bool {
    observed_generation.is_some_and(|o| o >= meta.generation.unwrap_or(0))
}

fn not_observed(label: &str) -> Health {
    progressing(label, "waiting for the new spec to be observed".to_owned())
}

fn progressing(label: &str, missing: String) -> Health {
    Health::Progressing(format!("{label}: {missing}"))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{
        DaemonSetSpec, DaemonSetStatus, DaemonSetUpdateStrategy, DeploymentCondition, DeploymentSpec, DeploymentStatus,
        RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
    };

    use super::*;

    fn meta(name: &str, generation: i64) -> ObjectMeta {
        ObjectMeta { name: Some(name.to_owned()), generation: Some(generation), ..Default::default() }
    }

    fn progressing(message: &str) -> Health {
        Health::Progressing(message.to_owned())
    }

    /// A case: its name, a change to a healthy object, the verdict expected after the change.
    type Case<T> = (&'static str, fn(&mut T), Health);

    /// Runs each case on a fresh copy of `healthy`, naming the case that fails.
    fn table<T: Clone>(healthy: T, health: fn(&T) -> Health, cases: Vec<Case<T>>) {
        for (case, change, expected) in cases {
            let mut object = healthy.clone();
            change(&mut object);
            assert_eq!(health(&object), expected, "case: {case}");
        }
    }

    /// 3 replicas, all updated and available, generation 2 observed.
    fn deployment() -> Deployment {
        Deployment {
            metadata: meta("web", 2),
            spec: Some(DeploymentSpec { replicas: Some(3), ..Default::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(3),
                updated_replicas: Some(3),
                ready_replicas: Some(3),
                available_replicas: Some(3),
                conditions: Some(vec![condition(
                    "NewReplicaSetAvailable",
                    "ReplicaSet \"web-1\" has successfully progressed.",
                )]),
                ..Default::default()
            }),
        }
    }

    fn condition(reason: &str, message: &str) -> DeploymentCondition {
        DeploymentCondition {
            type_: "Progressing".to_owned(),
            status: if reason == PROGRESS_DEADLINE_EXCEEDED { "False" } else { "True" }.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            ..Default::default()
        }
    }

    fn deployment_status(d: &mut Deployment) -> &mut DeploymentStatus {
        d.status.as_mut().expect("the fixture has a status")
    }

    fn deployment_spec(d: &mut Deployment) -> &mut DeploymentSpec {
        d.spec.as_mut().expect("the fixture has a spec")
    }

    fn timed_out(d: &mut Deployment) {
        deployment_status(d).conditions =
            Some(vec![condition(PROGRESS_DEADLINE_EXCEEDED, "ReplicaSet \"web-2\" has timed out progressing.")]);
    }

    #[test]
    fn deployment_verdicts() {
        let cases: Vec<Case<Deployment>> = vec![
            ("all replicas updated and available", |_| {}, Health::Ready),
            (
                "new spec not observed yet",
                |d| deployment_status(d).observed_generation = Some(1),
                progressing("Deployment/web: waiting for the new spec to be observed"),
            ),
            (
                "no status yet",
                |d| d.status = None,
                progressing("Deployment/web: waiting for the new spec to be observed"),
            ),
            (
                "a deadline exceeded for an older spec is not this spec's verdict",
                |d| {
                    timed_out(d);
                    deployment_status(d).observed_generation = Some(1);
                },
                progressing("Deployment/web: waiting for the new spec to be observed"),
            ),
            (
                "progress deadline exceeded",
                timed_out,
                Health::Failed(
                    "Deployment/web exceeded its progress deadline: ReplicaSet \"web-2\" has timed out progressing."
                        .to_owned(),
                ),
            ),
            (
                "progress deadline exceeded wins over counts",
                |d| {
                    timed_out(d);
                    deployment_status(d).available_replicas = Some(0);
                },
                Health::Failed(
                    "Deployment/web exceeded its progress deadline: ReplicaSet \"web-2\" has timed out progressing."
                        .to_owned(),
                ),
            ),
            (
                "not all replicas updated",
                |d| deployment_status(d).updated_replicas = Some(1),
                progressing("Deployment/web: 1 of 3 replicas updated"),
            ),
            (
                "spec.replicas defaults to 1",
                |d| {
                    deployment_spec(d).replicas = None;
                    let s = deployment_status(d);
                    (s.replicas, s.updated_replicas, s.available_replicas) = (None, None, None);
                },
                progressing("Deployment/web: 0 of 1 replicas updated"),
            ),
            (
                "old replicas still running",
                |d| deployment_status(d).replicas = Some(4),
                progressing("Deployment/web: 1 old replicas pending termination"),
            ),
            (
                "updated replicas not all available",
                |d| deployment_status(d).available_replicas = Some(2),
                progressing("Deployment/web: 2 of 3 updated replicas available"),
            ),
            (
                "scaled to zero",
                |d| {
                    deployment_spec(d).replicas = Some(0);
                    let s = deployment_status(d);
                    (s.replicas, s.updated_replicas, s.available_replicas) = (None, None, None);
                },
                Health::Ready,
            ),
            ("paused with the template rolled out", |d| deployment_spec(d).paused = Some(true), Health::Ready),
            (
                "paused before the template rolled out",
                |d| {
                    deployment_spec(d).paused = Some(true);
                    deployment_status(d).updated_replicas = Some(0);
                },
                progressing("Deployment/web: 0 of 3 replicas updated (rollout paused)"),
            ),
        ];
        table(deployment(), deployment_health, cases);
    }

    /// 2 replicas, all ready and on the current revision, generation 3 observed.
    fn statefulset() -> StatefulSet {
        StatefulSet {
            metadata: meta("db", 3),
            spec: Some(StatefulSetSpec { replicas: Some(2), ..Default::default() }),
            status: Some(StatefulSetStatus {
                observed_generation: Some(3),
                replicas: 2,
                ready_replicas: Some(2),
                current_replicas: Some(2),
                updated_replicas: Some(2),
                current_revision: Some("db-7".to_owned()),
                update_revision: Some("db-7".to_owned()),
                ..Default::default()
            }),
        }
    }

    fn sts_status(s: &mut StatefulSet) -> &mut StatefulSetStatus {
        s.status.as_mut().expect("the fixture has a status")
    }

    fn sts_strategy(s: &mut StatefulSet, type_: &str, partition: Option<i32>) {
        s.spec.as_mut().expect("the fixture has a spec").update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some(type_.to_owned()),
            rolling_update: partition
                .map(|p| RollingUpdateStatefulSetStrategy { partition: Some(p), ..Default::default() }),
        });
    }

    /// A rolling update to `db-8` that has updated `updated` Pods.
    fn sts_updating(s: &mut StatefulSet, updated: i32) {
        let status = sts_status(s);
        status.update_revision = Some("db-8".to_owned());
        status.updated_replicas = Some(updated);
    }

    #[test]
    fn statefulset_verdicts() {
        let cases: Vec<Case<StatefulSet>> = vec![
            ("all replicas ready on one revision", |_| {}, Health::Ready),
            (
                "new spec not observed yet",
                |s| sts_status(s).observed_generation = Some(2),
                progressing("StatefulSet/db: waiting for the new spec to be observed"),
            ),
            (
                "never observed",
                |s| sts_status(s).observed_generation = None,
                progressing("StatefulSet/db: waiting for the new spec to be observed"),
            ),
            (
                "not all replicas ready",
                |s| sts_status(s).ready_replicas = Some(1),
                progressing("StatefulSet/db: 1 of 2 pods ready"),
            ),
            (
                "available replicas are not used (1.20 does not report them)",
                |s| sts_status(s).available_replicas = Some(0),
                Health::Ready,
            ),
            (
                "rolling update with pods left to update",
                |s| sts_updating(s, 1),
                progressing("StatefulSet/db: 1 of 2 pods updated"),
            ),
            (
                "explicit RollingUpdate strategy without partition",
                |s| {
                    sts_strategy(s, "RollingUpdate", None);
                    sts_updating(s, 0);
                },
                progressing("StatefulSet/db: 0 of 2 pods updated"),
            ),
            (
                "all pods updated but the current revision not moved yet",
                |s| sts_updating(s, 2),
                progressing("StatefulSet/db: rolling update to revision db-8 not complete (current db-7)"),
            ),
            (
                "partitioned update: pods above the partition updated",
                |s| {
                    sts_strategy(s, "RollingUpdate", Some(1));
                    sts_updating(s, 1);
                },
                Health::Ready,
            ),
            (
                "partitioned update: pods above the partition not updated",
                |s| {
                    sts_strategy(s, "RollingUpdate", Some(1));
                    sts_updating(s, 0);
                },
                progressing("StatefulSet/db: 0 of 1 pods updated (partition 1)"),
            ),
            (
                "revisions unknown",
                |s| {
                    let status = sts_status(s);
                    (status.current_revision, status.update_revision) = (None, Some("db-8".to_owned()));
                },
                Health::Ready,
            ),
            (
                "OnDelete with old pods left",
                |s| {
                    sts_strategy(s, "OnDelete", None);
                    sts_updating(s, 1);
                },
                progressing("StatefulSet/db: 1 of 2 pods updated (OnDelete: old pods are replaced only when deleted)"),
            ),
            (
                "OnDelete with every pod replaced (the current revision never moves)",
                |s| {
                    sts_strategy(s, "OnDelete", None);
                    sts_updating(s, 2);
                },
                Health::Ready,
            ),
        ];
        table(statefulset(), statefulset_health, cases);
    }

    /// 3 nodes, all running the updated Pod, generation 1 observed.
    fn daemonset() -> DaemonSet {
        DaemonSet {
            metadata: meta("agent", 1),
            spec: Some(DaemonSetSpec::default()),
            status: Some(DaemonSetStatus {
                observed_generation: Some(1),
                desired_number_scheduled: 3,
                current_number_scheduled: 3,
                updated_number_scheduled: Some(3),
                number_ready: 3,
                number_available: Some(3),
                ..Default::default()
            }),
        }
    }

    fn ds_status(d: &mut DaemonSet) -> &mut DaemonSetStatus {
        d.status.as_mut().expect("the fixture has a status")
    }

    #[test]
    fn daemonset_verdicts() {
        let cases: Vec<Case<DaemonSet>> = vec![
            ("every node runs an available updated pod", |_| {}, Health::Ready),
            (
                "new spec not observed yet",
                |d| ds_status(d).observed_generation = Some(0),
                progressing("DaemonSet/agent: waiting for the new spec to be observed"),
            ),
            (
                "no status yet",
                |d| d.status = None,
                progressing("DaemonSet/agent: waiting for the new spec to be observed"),
            ),
            (
                "a status no controller wrote, on an object without a generation",
                |d| {
                    d.metadata.generation = None;
                    ds_status(d).observed_generation = None;
                },
                progressing("DaemonSet/agent: waiting for the new spec to be observed"),
            ),
            (
                "pods left to update",
                |d| ds_status(d).updated_number_scheduled = Some(2),
                progressing("DaemonSet/agent: 2 of 3 pods updated"),
            ),
            (
                "OnDelete pods left to update",
                |d| {
                    d.spec.as_mut().expect("the fixture has a spec").update_strategy =
                        Some(DaemonSetUpdateStrategy { type_: Some("OnDelete".to_owned()), rolling_update: None });
                    ds_status(d).updated_number_scheduled = None;
                },
                progressing("DaemonSet/agent: 0 of 3 pods updated (OnDelete: old pods are replaced only when deleted)"),
            ),
            (
                "pods not available",
                |d| ds_status(d).number_available = Some(1),
                progressing("DaemonSet/agent: 1 of 3 pods available"),
            ),
            (
                "no node to run on",
                |d| {
                    *ds_status(d) = DaemonSetStatus { observed_generation: Some(1), ..Default::default() };
                },
                Health::Ready,
            ),
        ];
        table(daemonset(), daemonset_health, cases);
    }

    fn named(verdicts: &[(&str, Health)]) -> Vec<(String, Health)> {
        verdicts.iter().map(|(label, health)| ((*label).to_owned(), health.clone())).collect()
    }

    #[test]
    fn combined_verdicts() {
        let failed = |m: &str| Health::Failed(m.to_owned());
        let cases: Vec<(&str, Vec<_>, Health)> = vec![
            ("nothing to wait for", vec![], Health::Ready),
            ("all ready", named(&[("Deployment/a", Health::Ready), ("DaemonSet/b", Health::Ready)]), Health::Ready),
            (
                "one workload: its message as is",
                named(&[("Deployment/a", progressing("Deployment/a: 0 of 1 replicas updated"))]),
                progressing("Deployment/a: 0 of 1 replicas updated"),
            ),
            (
                "one of several not ready",
                named(&[
                    ("Deployment/a", Health::Ready),
                    ("StatefulSet/b", progressing("StatefulSet/b: 1 of 2 pods ready")),
                    ("DaemonSet/c", Health::Ready),
                ]),
                progressing("1 of 3 workloads not ready: StatefulSet/b: 1 of 2 pods ready"),
            ),
            (
                "several not ready: the first message, the others named",
                named(&[
                    ("Deployment/a", progressing("Deployment/a: 0 of 1 replicas updated")),
                    ("StatefulSet/b", progressing("StatefulSet/b: 1 of 2 pods ready")),
                    ("DaemonSet/c", Health::Ready),
                ]),
                progressing("2 of 3 workloads not ready: Deployment/a: 0 of 1 replicas updated; also StatefulSet/b"),
            ),
            (
                "many not ready: a bounded list",
                named(&[
                    ("Deployment/a", progressing("Deployment/a: waiting for the new spec to be observed")),
                    ("Deployment/b", progressing("b")),
                    ("Deployment/c", progressing("c")),
                    ("Deployment/d", progressing("d")),
                    ("Deployment/e", progressing("e")),
                ]),
                progressing(
                    "5 of 5 workloads not ready: Deployment/a: waiting for the new spec to be observed; \
                     also Deployment/b, Deployment/c, Deployment/d and 1 more",
                ),
            ),
            (
                "a failure wins over progress, the first failure is kept",
                named(&[
                    ("Deployment/a", progressing("Deployment/a: 0 of 1 replicas updated")),
                    ("Deployment/b", failed("Deployment/b exceeded its progress deadline: x")),
                    ("Deployment/c", failed("Deployment/c exceeded its progress deadline: y")),
                ]),
                failed("Deployment/b exceeded its progress deadline: x"),
            ),
        ];
        for (case, verdicts, expected) in cases {
            assert_eq!(combine(verdicts), expected, "case: {case}");
        }
    }
}
