//! Desired Pipeline status, decided from validation results and the current status (the
//! Release's is in [`crate::core::release`]).

use jiff::Timestamp;

use crate::api::pipeline::{EnvironmentStatus, Pipeline, PipelineStatus};
use crate::core::conditions::{Summary, conditions_for};
use crate::core::environments::{self, state_from_status, status_from_state};
use crate::core::plan::{EnvironmentState, Plan};
use crate::core::validate::{Problem, describe};

/// The planner state of every environment in the spec, read from the current status by name;
/// an environment new to the spec starts idle.
pub fn current_states(pipeline: &Pipeline) -> Vec<EnvironmentState> {
    let current = pipeline.status.as_ref().map(|s| s.environments.as_slice()).unwrap_or_default();
    pipeline
        .spec
        .environments
        .iter()
        .map(|env| current.iter().find(|s| s.name == env.name).map(state_from_status).unwrap_or_default())
        .collect()
}

/// The status a Pipeline should have. With validation problems it is Stalled and keeps the
/// environments it had (an invalid spec may have duplicate names). Otherwise its environments
/// hold the state `planned` (the planner's answer, aligned with the spec; by default what the
/// status holds now) and its conditions say what the pipeline is doing.
pub fn pipeline_status(
    pipeline: &Pipeline,
    problems: &[Problem],
    planned: Option<&Plan>,
    now: Timestamp,
) -> PipelineStatus {
    let current = pipeline.status.clone().unwrap_or_default();
    let generation = pipeline.metadata.generation;
    let (environments, summary) = match problems.first() {
        Some(first) => {
            (current.environments.clone(), Summary::Stalled { reason: first.reason, message: describe(problems) })
        }
        None => {
            let read;
            let (states, held) = match planned {
                Some(plan) => (plan.state.as_slice(), plan.held.as_slice()),
                None => {
                    read = current_states(pipeline);
                    (read.as_slice(), [].as_slice())
                }
            };
            let names: Vec<&str> = pipeline.spec.environments.iter().map(|e| e.name.as_str()).collect();
            let annotations = pipeline.metadata.annotations.clone().unwrap_or_default();
            let pipeline_ref = (
                pipeline.metadata.name.as_deref().unwrap_or_default(),
                pipeline.metadata.namespace.as_deref().unwrap_or_default(),
            );
            let summary = environments::summary(pipeline_ref, &names, states, environments::paused(&annotations), held);
            let statuses: Vec<EnvironmentStatus> =
                names.iter().zip(states).map(|(name, state)| status_from_state(name, state)).collect();
            (statuses, summary)
        }
    };
    let summary_line = environments.iter().map(|e| format!("{}={:?}", e.name, e.phase)).collect::<Vec<_>>().join(" ");
    PipelineStatus {
        observed_generation: generation,
        conditions: conditions_for(&summary, &current.conditions, generation, now),
        summary: (!summary_line.is_empty()).then_some(summary_line),
        environments,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::api::pipeline::{DeployedRelease, EnvironmentPhase};
    use crate::api::release::{Artifact, Release, ReleasePhase, ReleaseStatus};
    use crate::api::{ConditionType, Reason};
    use crate::core::conditions::find;
    use crate::core::fixtures::{self, pipeline_spec, release_spec, t};
    use crate::core::release::release_status;
    use crate::core::validate::{ReleaseNeighbours, validate_pipeline, validate_release};

    // ---- builders -------------------------------------------------------------------------

    /// A Pipeline `shop` at `generation` with environments from `(name, namespace)` pairs.
    fn pipeline(envs: &[(&str, &str)], generation: i64) -> Pipeline {
        let mut p = Pipeline::new("shop", pipeline_spec(envs));
        p.metadata.namespace = Some("shop".to_owned());
        p.metadata.creation_timestamp = Some(Time(t(1)));
        p.metadata.generation = Some(generation);
        p
    }

    /// The same pipeline with `status` as its current status.
    fn with_status(mut p: Pipeline, status: PipelineStatus) -> Pipeline {
        p.status = Some(status);
        p
    }

    /// An environment status with `phase` and, optionally, the release running there.
    fn env(name: &str, phase: EnvironmentPhase, current: Option<(&str, &str)>) -> EnvironmentStatus {
        EnvironmentStatus {
            name: name.to_owned(),
            phase,
            current: current.map(|(release, version)| DeployedRelease {
                release: release.to_owned(),
                version: version.to_owned(),
                digest: Some("sha256:0123".to_owned()),
                since: Some(Time(t(50))),
                deployment_id: None,
                healthy_since: None,
                applied_at: None,
                rollback_of: None,
            }),
            ..Default::default()
        }
    }

    fn envs(envs: Vec<EnvironmentStatus>) -> PipelineStatus {
        PipelineStatus { environments: envs, ..Default::default() }
    }

    /// A Release of pipeline `shop` as a user writes it, at `generation`.
    fn release(version: &str, generation: i64) -> Release {
        let mut r = fixtures::release("shop-2-4-1", release_spec(version), 1);
        r.metadata.generation = Some(generation);
        r
    }

    fn problem(reason: Reason, field: &str) -> Problem {
        Problem { reason, field: field.to_owned(), message: format!("{field} is wrong; fix it") }
    }

    fn cond(conditions: &[Condition], type_: ConditionType) -> &Condition {
        find(conditions, type_).unwrap_or_else(|| panic!("no {type_:?} condition in {conditions:#?}"))
    }

    /// `(Ready, Reconciling, Stalled)` statuses.
    fn triplet(conditions: &[Condition]) -> (&str, &str, &str) {
        (
            cond(conditions, ConditionType::Ready).status.as_str(),
            cond(conditions, ConditionType::Reconciling).status.as_str(),
            cond(conditions, ConditionType::Stalled).status.as_str(),
        )
    }

    fn names(status: &PipelineStatus) -> Vec<&str> {
        status.environments.iter().map(|e| e.name.as_str()).collect()
    }

    // ---- release_status -------------------------------------------------------------------

    #[test]
    fn valid_release_is_pending_and_reconciling() {
        let r = release("2.4.1", 3);
        let s = release_status(&r, &[], None, t(100));
        assert_eq!(s.phase, Some(ReleasePhase::Pending));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions.len(), 3);
        assert_eq!(triplet(&s.conditions), ("False", "True", "False"));
        for c in &s.conditions {
            assert_eq!(c.reason, "Progressing", "{}", c.type_);
            assert_eq!(c.observed_generation, Some(3), "{}", c.type_);
            assert_eq!(c.last_transition_time, Time(t(100)), "{}", c.type_);
        }
    }

    #[test]
    fn invalid_release_is_stalled_on_its_first_problem() {
        let problems = [problem(Reason::InvalidVersion, "spec.version"), problem(Reason::MissingSource, "spec.source")];
        let r = release("v1.0", 7);
        let s = release_status(&r, &problems, None, t(100));
        assert_eq!(s.phase, Some(ReleasePhase::Pending));
        assert_eq!(s.observed_generation, Some(7));
        assert_eq!(triplet(&s.conditions), ("False", "False", "True"));
        let stalled = cond(&s.conditions, ConditionType::Stalled);
        assert_eq!(stalled.reason, "InvalidVersion");
        for p in &problems {
            assert!(stalled.message.contains(&p.field), "{} should name {}", stalled.message, p.field);
            assert!(stalled.message.contains(&p.message), "{} should contain {}", stalled.message, p.message);
        }
        assert!(s.conditions.iter().all(|c| c.observed_generation == Some(7)));
    }

    #[test]
    fn release_status_from_real_validation() {
        let r = release("v1.0", 1);
        let problems = validate_release(&r, &ReleaseNeighbours { pipeline_exists: false, others: &[] });
        let s = release_status(&r, &problems, None, t(100));
        let stalled = cond(&s.conditions, ConditionType::Stalled);
        assert_eq!(stalled.status, "True");
        assert_eq!(stalled.reason, "InvalidVersion");
        assert!(stalled.message.contains("spec.version: `v1.0`"), "{}", stalled.message);
        assert!(stalled.message.contains("spec.pipeline: no Pipeline `shop`"), "{}", stalled.message);
    }

    #[test]
    fn release_status_keeps_what_it_does_not_own() {
        let mut r = release("2.4.1", 2);
        r.status = Some(ReleaseStatus {
            phase: Some(ReleasePhase::Packaged),
            commit: Some("3f786850e387550fdab836ed7e6dc881de23001b".to_owned()),
            artifact: Some(Artifact {
                digest: "sha256:abcd".to_owned(),
                size: 2048,
                files: 3,
                objects: 5,
                environments: Vec::new(),
            }),
            notes: Some("Fixes checkout".to_owned()),
            environment: Some("staging".to_owned()),
            ..Default::default()
        });
        let s = release_status(&r, &[], None, t(100));
        let before = r.status.clone().unwrap();
        assert_eq!(s.phase, Some(ReleasePhase::Packaged));
        assert_eq!(s.commit, before.commit);
        assert_eq!(s.artifact, before.artifact);
        assert_eq!(s.notes, before.notes);
        assert_eq!(s.environment, None, "the journey belongs to the Pipeline controller's field manager");
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn release_status_is_stable_when_fed_back() {
        // (case, problems)
        let cases: &[(&str, Vec<Problem>)] = &[
            ("valid", vec![]),
            ("stalled", vec![problem(Reason::PipelineNotFound, "spec.pipeline")]),
            (
                "stalled twice over",
                vec![
                    problem(Reason::InvalidVersion, "spec.version"),
                    problem(Reason::InvalidSource, "spec.source.path"),
                ],
            ),
        ];
        for (case, problems) in cases {
            let mut r = release("2.4.1", 4);
            let first = release_status(&r, problems, None, t(100));
            r.status = Some(first.clone());
            let second = release_status(&r, problems, None, t(200));
            assert_eq!(second, first, "{case}");
            // As the controller sees it: the status read back from the API server.
            r.status = Some(serde_json::from_value(serde_json::to_value(&second).unwrap()).unwrap());
            let third = release_status(&r, problems, None, t(300));
            assert_eq!(third, first, "{case}");
        }
    }

    #[test]
    fn release_transition_times_move_only_on_flips() {
        let bad = [problem(Reason::InvalidVersion, "spec.version")];
        let mut r = release("v1.0", 1);
        let stalled = release_status(&r, &bad, None, t(100));
        r.status = Some(stalled);
        // The user fixes the version: generation moves on, Stalled and Reconciling flip.
        r.spec.version = "1.0.0".to_owned();
        r.metadata.generation = Some(2);
        let fixed = release_status(&r, &[], None, t(200));
        assert_eq!(fixed.observed_generation, Some(2));
        assert_eq!(triplet(&fixed.conditions), ("False", "True", "False"));
        assert_eq!(cond(&fixed.conditions, ConditionType::Ready).last_transition_time, Time(t(100)));
        assert_eq!(cond(&fixed.conditions, ConditionType::Reconciling).last_transition_time, Time(t(200)));
        assert_eq!(cond(&fixed.conditions, ConditionType::Stalled).last_transition_time, Time(t(200)));
        assert!(fixed.conditions.iter().all(|c| c.observed_generation == Some(2) && c.reason == "Progressing"));
    }

    // ---- pipeline_status ------------------------------------------------------------------

    #[test]
    fn pipeline_environments_follow_the_spec() {
        use EnvironmentPhase::{Healthy, Idle, Soaking};
        // (case, spec environments, existing environment statuses, expected (name, phase, current release))
        type Expected = (&'static str, EnvironmentPhase, Option<&'static str>);
        type Case =
            (&'static str, Vec<(&'static str, &'static str)>, Vec<EnvironmentStatus>, Vec<Expected>, &'static str);
        let cases: Vec<Case> = vec![
            (
                "new pipeline",
                vec![("development", "shop-dev"), ("staging", "shop-staging")],
                vec![],
                vec![("development", Idle, None), ("staging", Idle, None)],
                "development=Idle staging=Idle",
            ),
            (
                "environment added at the end",
                vec![("development", "shop-dev"), ("staging", "shop-staging"), ("production", "shop-prod")],
                vec![
                    env("development", Healthy, Some(("r2", "2.0.0"))),
                    env("staging", Soaking, Some(("r1", "1.0.0"))),
                ],
                vec![
                    ("development", Healthy, Some("r2")),
                    ("staging", Soaking, Some("r1")),
                    ("production", Idle, None),
                ],
                "development=Healthy staging=Soaking production=Idle",
            ),
            (
                "environment inserted in the middle",
                vec![("development", "shop-dev"), ("qa", "shop-qa"), ("staging", "shop-staging")],
                vec![
                    env("development", Healthy, Some(("r2", "2.0.0"))),
                    env("staging", Healthy, Some(("r1", "1.0.0"))),
                ],
                vec![("development", Healthy, Some("r2")), ("qa", Idle, None), ("staging", Healthy, Some("r1"))],
                "development=Healthy qa=Idle staging=Healthy",
            ),
            (
                "environment removed",
                vec![("staging", "shop-staging")],
                vec![
                    env("development", Healthy, Some(("r2", "2.0.0"))),
                    env("staging", Healthy, Some(("r1", "1.0.0"))),
                ],
                vec![("staging", Healthy, Some("r1"))],
                "staging=Healthy",
            ),
            (
                "environments reordered",
                vec![("staging", "shop-staging"), ("development", "shop-dev")],
                vec![env("development", Healthy, Some(("r2", "2.0.0"))), env("staging", Idle, None)],
                vec![("staging", Idle, None), ("development", Healthy, Some("r2"))],
                "staging=Idle development=Healthy",
            ),
            (
                "namespace changed, name kept",
                vec![("development", "shop-dev-2")],
                vec![env("development", Healthy, Some(("r2", "2.0.0")))],
                vec![("development", Healthy, Some("r2"))],
                "development=Healthy",
            ),
        ];
        for (case, spec_envs, existing, expected, summary) in cases {
            let p = with_status(pipeline(&spec_envs, 2), envs(existing.clone()));
            assert_eq!(validate_pipeline(&p.spec), vec![], "{case}: fixture must be valid");
            let s = pipeline_status(&p, &[], None, t(100));
            let got: Vec<(&str, EnvironmentPhase, Option<&str>)> = s
                .environments
                .iter()
                .map(|e| (e.name.as_str(), e.phase, e.current.as_ref().map(|c| c.release.as_str())))
                .collect();
            assert_eq!(got, expected, "{case}");
            assert_eq!(s.summary.as_deref(), Some(summary), "{case}");
            // Kept entries are kept whole, not rebuilt.
            for e in &s.environments {
                if let Some(old) = existing.iter().find(|o| o.name == e.name) {
                    assert_eq!(e, old, "{case}: {} changed", e.name);
                }
            }
            assert_eq!(s.observed_generation, Some(2), "{case}");
            // Settled environments make a Ready pipeline; one in flight keeps it Reconciling.
            let in_flight = expected.iter().any(|(_, phase, _)| *phase == Soaking);
            let want = if in_flight { ("False", "True", "False") } else { ("True", "False", "False") };
            assert_eq!(triplet(&s.conditions), want, "{case}");
            let reason = if in_flight { "Deploying" } else { "Succeeded" };
            assert_eq!(cond(&s.conditions, ConditionType::Ready).reason, reason, "{case}");
            assert!(s.conditions.iter().all(|c| c.observed_generation == Some(2)), "{case}");
        }
    }

    #[test]
    fn invalid_pipeline_keeps_observed_environments() {
        use EnvironmentPhase::{Healthy, Verifying};
        let existing = vec![env("development", Healthy, Some(("r2", "2.0.0"))), env("staging", Verifying, None)];
        // The user lists `development` twice and drops staging: nothing observed may be lost.
        let p = with_status(
            pipeline(&[("development", "shop-dev"), ("development", "shop-dev2"), ("production", "shop-prod")], 5),
            envs(existing.clone()),
        );
        let problems = validate_pipeline(&p.spec);
        assert_eq!(problems.iter().map(|p| p.reason).collect::<Vec<_>>(), [Reason::DuplicateEnvironment]);
        let s = pipeline_status(&p, &problems, None, t(100));
        assert_eq!(s.environments, existing);
        assert_eq!(s.summary.as_deref(), Some("development=Healthy staging=Verifying"));
        assert_eq!(s.observed_generation, Some(5));
        assert_eq!(triplet(&s.conditions), ("False", "False", "True"));
        let stalled = cond(&s.conditions, ConditionType::Stalled);
        assert_eq!(stalled.reason, "DuplicateEnvironment");
        assert!(stalled.message.contains("spec.environments[1].name"), "{}", stalled.message);
        assert!(s.conditions.iter().all(|c| c.observed_generation == Some(5)));
    }

    #[test]
    fn invalid_new_pipeline_has_no_environments_or_summary() {
        let p = pipeline(&[], 1);
        let problems = validate_pipeline(&p.spec);
        let s = pipeline_status(&p, &problems, None, t(100));
        assert_eq!(s.environments, vec![]);
        assert_eq!(s.summary, None);
        assert_eq!(cond(&s.conditions, ConditionType::Stalled).reason, "NoEnvironments");
    }

    #[test]
    fn pipeline_stall_names_every_field() {
        let problems = [
            problem(Reason::InvalidNamespace, "spec.environments[1].namespace"),
            problem(Reason::InvalidDuration, "spec.environments[2].soak"),
            problem(Reason::InvalidHistoryLimit, "spec.historyLimit"),
        ];
        let p = pipeline(&[("development", "shop-dev")], 1);
        let s = pipeline_status(&p, &problems, None, t(100));
        let stalled = cond(&s.conditions, ConditionType::Stalled);
        assert_eq!(stalled.reason, "InvalidNamespace");
        for p in &problems {
            assert!(stalled.message.contains(&p.field), "{} should name {}", stalled.message, p.field);
        }
        // All three conditions carry the same reason and message.
        assert!(s.conditions.iter().all(|c| c.reason == stalled.reason && c.message == stalled.message));
    }

    #[test]
    fn pipeline_status_is_stable_when_fed_back() {
        use EnvironmentPhase::Healthy;
        // (case, spec environments, existing environments)
        type Case = (&'static str, Vec<(&'static str, &'static str)>, Vec<EnvironmentStatus>);
        let cases: Vec<Case> = vec![
            ("new valid", vec![("development", "shop-dev"), ("staging", "shop-staging")], vec![]),
            (
                "valid with history",
                vec![("development", "shop-dev"), ("staging", "shop-staging")],
                vec![env("staging", Healthy, Some(("r1", "1.0.0"))), env("gone", Healthy, None)],
            ),
            ("invalid", vec![("Development", "shop-dev")], vec![env("development", Healthy, None)]),
            ("empty", vec![], vec![]),
        ];
        for (case, spec_envs, existing) in cases {
            let mut p = with_status(pipeline(&spec_envs, 3), envs(existing));
            let problems = validate_pipeline(&p.spec);
            let first = pipeline_status(&p, &problems, None, t(100));
            p.status = Some(first.clone());
            let second = pipeline_status(&p, &problems, None, t(200));
            assert_eq!(second, first, "{case}");
            // As the controller sees it: the status read back from the API server.
            let json = serde_json::to_value(&second).unwrap();
            p.status = Some(serde_json::from_value(json).unwrap());
            let third = pipeline_status(&p, &problems, None, t(300));
            assert_eq!(third, first, "{case}");
            assert!(third.conditions.iter().all(|c| c.last_transition_time == Time(t(100))), "{case}");
        }
    }

    #[test]
    fn pipeline_fix_flips_conditions_and_rebuilds_environments() {
        use EnvironmentPhase::{Healthy, Idle};
        let mut p = with_status(
            pipeline(&[("development", "shop-dev"), ("development", "shop-dev2")], 1),
            envs(vec![env("development", Healthy, Some(("r1", "1.0.0")))]),
        );
        let stalled = pipeline_status(&p, &validate_pipeline(&p.spec), None, t(100));
        assert_eq!(triplet(&stalled.conditions), ("False", "False", "True"));
        p.status = Some(stalled);
        p.spec.environments[1].name = "staging".to_owned();
        p.metadata.generation = Some(2);
        let problems = validate_pipeline(&p.spec);
        assert_eq!(problems, vec![]);
        let fixed = pipeline_status(&p, &problems, None, t(200));
        assert_eq!(triplet(&fixed.conditions), ("True", "False", "False"));
        assert_eq!(names(&fixed), ["development", "staging"]);
        assert_eq!(fixed.environments[0], env("development", Healthy, Some(("r1", "1.0.0"))));
        assert_eq!(fixed.environments[1].phase, Idle);
        assert_eq!(fixed.summary.as_deref(), Some("development=Healthy staging=Idle"));
        assert_eq!(cond(&fixed.conditions, ConditionType::Ready).last_transition_time, Time(t(200)));
        assert_eq!(cond(&fixed.conditions, ConditionType::Reconciling).last_transition_time, Time(t(100)));
        assert_eq!(cond(&fixed.conditions, ConditionType::Stalled).last_transition_time, Time(t(200)));
        assert!(fixed.conditions.iter().all(|c| c.observed_generation == Some(2)));
    }
}
