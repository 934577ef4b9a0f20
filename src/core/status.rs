//! Desired status of each kind, decided from validation results and the current status.

use jiff::Timestamp;

use crate::api::pipeline::{EnvironmentStatus, Pipeline, PipelineStatus};
use crate::api::release::{Release, ReleasePhase, ReleaseStatus};
use crate::api::Reason;
use crate::core::conditions::{Summary, conditions_for};
use crate::core::validate::{Problem, describe};

fn summary_for(problems: &[Problem], progressing: String) -> Summary {
    match problems.first() {
        Some(first) => Summary::Stalled { reason: first.reason, message: describe(problems) },
        None => Summary::Reconciling { reason: Reason::Progressing, message: progressing },
    }
}

/// The status a Release should have, given its validation problems.
pub fn release_status(release: &Release, problems: &[Problem], now: Timestamp) -> ReleaseStatus {
    let current = release.status.clone().unwrap_or_default();
    let generation = release.metadata.generation;
    let summary = summary_for(problems, "spec is valid; waiting to be packaged".to_owned());
    ReleaseStatus {
        observed_generation: generation,
        phase: Some(current.phase.unwrap_or(ReleasePhase::Pending)),
        conditions: conditions_for(&summary, &current.conditions, generation, now),
        ..current
    }
}

/// The status a Pipeline should have, given its validation problems.
pub fn pipeline_status(pipeline: &Pipeline, problems: &[Problem], now: Timestamp) -> PipelineStatus {
    let current = pipeline.status.clone().unwrap_or_default();
    let generation = pipeline.metadata.generation;
    // An invalid spec may have duplicate names: keep what was observed until it is fixed.
    let environments = if problems.is_empty() {
        pipeline
            .spec
            .environments
            .iter()
            .map(|env| {
                current
                    .environments
                    .iter()
                    .find(|s| s.name == env.name)
                    .cloned()
                    .unwrap_or_else(|| EnvironmentStatus { name: env.name.clone(), ..Default::default() })
            })
            .collect()
    } else {
        current.environments.clone()
    };
    let summary_line = environments.iter().map(|e| format!("{}={:?}", e.name, e.phase)).collect::<Vec<_>>().join(" ");
    let n = pipeline.spec.environments.len();
    let summary = summary_for(problems, format!("{n} environment(s) valid; waiting for releases"));
    PipelineStatus {
        observed_generation: generation,
        conditions: conditions_for(&summary, &current.conditions, generation, now),
        summary: (!summary_line.is_empty()).then_some(summary_line),
        environments,
    }
}
