//! Release packaging decisions: what to do next, spec immutability once packaged, and the
//! status that follows from an outcome. Pure: the shell fetches, packages and writes.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::Reason;
use crate::api::release::{Artifact, Release, ReleasePhase, ReleaseSpec, ReleaseStatus};
use crate::core::conditions::{Summary, conditions_for, find};
use crate::core::validate::{Problem, describe};

/// What the release controller does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The spec has problems: report them and wait for a change.
    Stall,
    /// Record `Packaging` first (this claims the version), then come back to package.
    Begin,
    /// Fetch the source and package it.
    Package,
    /// Check that the stored artifact is still there; rebuild it at `commit` if not.
    Verify {
        /// The commit recorded when packaging.
        commit: String,
        /// The digest recorded when packaging.
        digest: String,
    },
    /// Nothing to do until the spec changes.
    Wait,
}

/// The result of the shell's work in this pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// `Packaging` recorded.
    Begun,
    /// The artifact is stored.
    Packaged {
        /// The exact commit packaged.
        commit: String,
        /// When that commit was made (committer time).
        committed_at: Option<Timestamp>,
        /// The artifact.
        artifact: Artifact,
        /// Release notes (given in the spec or generated).
        notes: String,
    },
    /// The stored artifact is present (or was rebuilt with the same digest).
    Verified,
    /// Failed in a way that trying again unchanged will not fix.
    Failed {
        /// Why.
        reason: Reason,
        /// What went wrong and how to fix it.
        message: String,
    },
    /// Failed in a way that may pass later (network, store); retried with backoff.
    Retrying {
        /// Why.
        reason: Reason,
        /// What went wrong.
        message: String,
    },
}

/// Decides the next step from the release and its validation problems.
pub fn next_step(release: &Release, problems: &[Problem]) -> Step {
    if !problems.is_empty() {
        return Step::Stall;
    }
    let Some(status) = release.status.as_ref() else { return Step::Begin };
    let current_generation =
        status.observed_generation.is_some() && status.observed_generation == release.metadata.generation;
    match status.phase {
        Some(ReleasePhase::Packaged) => match (&status.commit, &status.artifact) {
            (Some(commit), Some(artifact)) => Step::Verify { commit: commit.clone(), digest: artifact.digest.clone() },
            // A status edited by hand: package again.
            _ => Step::Begin,
        },
        Some(ReleasePhase::Packaging) if current_generation => Step::Package,
        Some(ReleasePhase::Failed) if current_generation => {
            // Credentials may be fixed in the Secret without a change to the Release.
            let retry = find(&status.conditions, crate::api::ConditionType::Stalled)
                .filter(|c| c.status == "True")
                .and_then(|c| reason_from_str(&c.reason))
                .is_some_and(Reason::depends_on_others);
            if retry { Step::Package } else { Step::Wait }
        }
        _ => Step::Begin,
    }
}

fn reason_from_str(s: &str) -> Option<Reason> {
    [Reason::GitAuthFailed, Reason::InvalidSecret].into_iter().find(|r| r.as_str() == s)
}

/// The spec a packaged release must keep: once packaged, the spec is frozen.
pub fn packaged_spec(release: &Release) -> Option<&ReleaseSpec> {
    let status = release.status.as_ref()?;
    (status.phase == Some(ReleasePhase::Packaged)).then_some(status.packaged_spec.as_ref()).flatten()
}

/// A `SpecImmutable` problem for each spec field changed since packaging.
pub fn immutability_problems(release: &Release) -> Vec<Problem> {
    let Some(packaged) = packaged_spec(release) else { return Vec::new() };
    let spec = &release.spec;
    let fields: [(&str, String, String); 4] = [
        ("spec.pipeline", show(&packaged.pipeline), show(&spec.pipeline)),
        ("spec.version", show(&packaged.version), show(&spec.version)),
        ("spec.source", show(&packaged.source), show(&spec.source)),
        ("spec.notes", show(&packaged.notes), show(&spec.notes)),
    ];
    fields
        .into_iter()
        .filter(|(_, before, after)| before != after)
        .map(|(field, before, after)| Problem {
            reason: Reason::SpecImmutable,
            field: field.to_owned(),
            message: format!(
                "changed from {before} to {after} after the release was packaged; a Release is immutable once \
                 packaged: revert the change, or create a new Release with a new version"
            ),
        })
        .collect()
}

/// Compact JSON of a spec field, for messages.
fn show<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "?".to_owned())
}

/// The part of a Release's status the Release controller writes: all but the journey through
/// the environments, which the Pipeline controller writes under its own field manager (a
/// server-side apply from a stale copy would otherwise overwrite the newer journey).
pub fn own_part(status: &ReleaseStatus) -> ReleaseStatus {
    ReleaseStatus { environment: None, environments: Vec::new(), ..status.clone() }
}

/// The status a Release should have after this pass, the part the Release controller writes
/// (see [`own_part`]).
pub fn release_status(
    release: &Release,
    problems: &[Problem],
    outcome: Option<&Outcome>,
    now: Timestamp,
) -> ReleaseStatus {
    let current = release.status.clone().unwrap_or_default();
    let generation = release.metadata.generation;
    let phase = current.phase.unwrap_or(ReleasePhase::Pending);
    let mut next = ReleaseStatus { observed_generation: generation, phase: Some(phase), ..own_part(&current) };
    let summary = if let Some(first) = problems.first() {
        Summary::Stalled { reason: first.reason, message: describe(problems) }
    } else {
        match outcome {
            Some(Outcome::Begun) => {
                next.phase = Some(ReleasePhase::Packaging);
                Summary::Reconciling { reason: Reason::Packaging, message: packaging_message(&release.spec) }
            }
            Some(Outcome::Packaged { commit, committed_at, artifact, notes }) => {
                next.phase = Some(ReleasePhase::Packaged);
                next.commit = Some(commit.clone());
                next.committed_at = committed_at.map(Time);
                next.artifact = Some(artifact.clone());
                next.notes = Some(notes.clone());
                next.packaged_spec = Some(release.spec.clone());
                packaged_summary(artifact)
            }
            Some(Outcome::Failed { reason, message }) => {
                // A packaged release keeps its phase: what was packaged stays true.
                if phase != ReleasePhase::Packaged {
                    next.phase = Some(ReleasePhase::Failed);
                }
                Summary::Stalled { reason: *reason, message: message.clone() }
            }
            Some(Outcome::Retrying { reason, message }) => {
                Summary::Reconciling { reason: *reason, message: format!("{message}; retrying") }
            }
            Some(Outcome::Verified) | None => match (phase, &current.artifact) {
                (ReleasePhase::Packaged, Some(artifact)) => packaged_summary(artifact),
                (ReleasePhase::Packaging, _) => {
                    Summary::Reconciling { reason: Reason::Packaging, message: packaging_message(&release.spec) }
                }
                _ => Summary::Reconciling {
                    reason: Reason::Progressing,
                    message: "spec is valid; waiting to be packaged".to_owned(),
                },
            },
        }
    };
    next.conditions = conditions_for(&summary, &current.conditions, generation, now);
    next
}

fn packaged_summary(artifact: &Artifact) -> Summary {
    let mut message = format!(
        "packaged {} file(s), {} object(s), {} bytes as {}",
        artifact.files, artifact.objects, artifact.size, artifact.digest
    );
    if !artifact.environments.is_empty() {
        let each: Vec<String> = artifact.environments.iter().map(|e| format!("{} {}", e.name, e.objects)).collect();
        message.push_str(&format!(", rendered per environment ({})", each.join(", ")));
    }
    Summary::Ready { reason: Reason::Packaged, message }
}

fn packaging_message(spec: &ReleaseSpec) -> String {
    let Some(git) = spec.source.as_ref().and_then(|s| s.git.as_ref()) else { return "packaging".to_owned() };
    let r = &git.reference;
    let what = match (&r.tag, &r.branch, &r.commit) {
        (Some(t), _, _) => format!("tag {t}"),
        (_, Some(b), _) => format!("branch {b}"),
        (_, _, Some(c)) => format!("commit {c}"),
        _ => "ref".to_owned(),
    };
    let path = spec.source.as_ref().and_then(|s| s.path.as_deref()).filter(|p| !p.is_empty()).unwrap_or(".");
    format!("packaging {what} of {}, path {path}", git.url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConditionType;
    use crate::core::conditions::is_true;
    use crate::core::fixtures::{release, release_spec, t};

    fn artifact() -> Artifact {
        Artifact {
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 2048,
            files: 3,
            objects: 5,
            environments: Vec::new(),
        }
    }

    fn packaged_outcome() -> Outcome {
        Outcome::Packaged {
            commit: "c0ffee".repeat(6) + "c0ff",
            committed_at: Some(t(100)),
            artifact: artifact(),
            notes: "## 1.0.0".into(),
        }
    }

    /// A release at `generation` whose status went through `outcomes`, one pass each.
    fn after(generation: i64, outcomes: &[Outcome]) -> Release {
        let mut r = release("shop-1.0.0", release_spec("1.0.0"), 1);
        r.metadata.generation = Some(generation);
        for (i, o) in outcomes.iter().enumerate() {
            r.status = Some(release_status(&r, &[], Some(o), t(100 + i as i64)));
        }
        r
    }

    fn problem(reason: Reason) -> Problem {
        Problem { reason, field: "spec.version".into(), message: "is wrong".into() }
    }

    #[test]
    fn next_step_walks_pending_packaging_packaged() {
        let failed = |reason| Outcome::Failed { reason, message: "no".into() };
        let retrying = Outcome::Retrying { reason: Reason::GitUnreachable, message: "timeout".into() };
        let verify = Step::Verify { commit: "c0ffee".repeat(6) + "c0ff", digest: artifact().digest };
        // (case, release, problems, expected step)
        let cases: Vec<(&str, Release, Vec<Problem>, Step)> = vec![
            ("new", after(1, &[]), vec![], Step::Begin),
            ("invalid", after(1, &[]), vec![problem(Reason::InvalidVersion)], Step::Stall),
            ("begun", after(1, &[Outcome::Begun]), vec![], Step::Package),
            ("retrying", after(1, &[Outcome::Begun, retrying.clone()]), vec![], Step::Package),
            ("packaged", after(1, &[Outcome::Begun, packaged_outcome()]), vec![], verify.clone()),
            ("verified", after(1, &[Outcome::Begun, packaged_outcome(), Outcome::Verified]), vec![], verify),
            ("failed for good", after(1, &[Outcome::Begun, failed(Reason::InvalidYaml)]), vec![], Step::Wait),
            (
                "failed on credentials",
                after(1, &[Outcome::Begun, failed(Reason::GitAuthFailed)]),
                vec![],
                Step::Package,
            ),
            (
                "immutable",
                after(1, &[Outcome::Begun, packaged_outcome()]),
                vec![problem(Reason::SpecImmutable)],
                Step::Stall,
            ),
        ];
        for (case, r, problems, expected) in cases {
            assert_eq!(next_step(&r, &problems), expected, "{case}");
        }
    }

    #[test]
    fn a_spec_change_restarts_packaging_until_packaged() {
        // (case, outcomes at generation 1, expected step once generation is 2)
        let failed = Outcome::Failed { reason: Reason::InvalidYaml, message: "bad".into() };
        let cases = [("failed", vec![Outcome::Begun, failed]), ("packaging", vec![Outcome::Begun])];
        for (case, outcomes) in cases {
            let mut r = after(1, &outcomes);
            r.metadata.generation = Some(2);
            assert_eq!(next_step(&r, &[]), Step::Begin, "{case}");
        }
    }

    #[test]
    fn outcomes_set_phase_fields_and_conditions() {
        use ReleasePhase::{Failed, Packaged, Packaging};
        let retrying = Outcome::Retrying { reason: Reason::GitUnreachable, message: "cannot fetch".into() };
        let failed = Outcome::Failed { reason: Reason::InvalidYaml, message: "deploy/a.yaml, document 2: bad".into() };
        let mismatch = Outcome::Failed { reason: Reason::DigestMismatch, message: "rebuilt differs".into() };
        // (case, outcomes, phase, (Ready, Reconciling, Stalled), reason, has artifact)
        type Case = (&'static str, Vec<Outcome>, ReleasePhase, (bool, bool, bool), Reason, bool);
        let cases: Vec<Case> = vec![
            ("begun", vec![Outcome::Begun], Packaging, (false, true, false), Reason::Packaging, false),
            (
                "retrying",
                vec![Outcome::Begun, retrying.clone()],
                Packaging,
                (false, true, false),
                Reason::GitUnreachable,
                false,
            ),
            (
                "packaged",
                vec![Outcome::Begun, packaged_outcome()],
                Packaged,
                (true, false, false),
                Reason::Packaged,
                true,
            ),
            ("failed", vec![Outcome::Begun, failed], Failed, (false, false, true), Reason::InvalidYaml, false),
            (
                "verified",
                vec![Outcome::Begun, packaged_outcome(), Outcome::Verified],
                Packaged,
                (true, false, false),
                Reason::Packaged,
                true,
            ),
            (
                "lost artifact, bad rebuild",
                vec![Outcome::Begun, packaged_outcome(), mismatch],
                Packaged,
                (false, false, true),
                Reason::DigestMismatch,
                true,
            ),
            (
                "store trouble after packaging",
                vec![Outcome::Begun, packaged_outcome(), retrying],
                Packaged,
                (false, true, false),
                Reason::GitUnreachable,
                true,
            ),
        ];
        for (case, outcomes, phase, (ready, reconciling, stalled), reason, has_artifact) in cases {
            let r = after(3, &outcomes);
            let s = r.status.as_ref().unwrap();
            assert_eq!(s.phase, Some(phase), "{case}");
            assert_eq!(is_true(&s.conditions, ConditionType::Ready), ready, "{case}");
            assert_eq!(is_true(&s.conditions, ConditionType::Reconciling), reconciling, "{case}");
            assert_eq!(is_true(&s.conditions, ConditionType::Stalled), stalled, "{case}");
            assert!(s.conditions.iter().all(|c| c.reason == reason.as_str()), "{case}: {:#?}", s.conditions);
            assert!(s.conditions.iter().all(|c| c.observed_generation == Some(3)), "{case}");
            assert_eq!(s.artifact.is_some(), has_artifact, "{case}");
            assert_eq!(s.packaged_spec.is_some(), has_artifact, "{case}");
        }
    }

    #[test]
    fn packaged_status_records_what_was_packaged_and_is_stable() {
        let r = after(1, &[Outcome::Begun, packaged_outcome()]);
        let s = r.status.clone().unwrap();
        assert_eq!(s.commit.as_deref(), Some(("c0ffee".repeat(6) + "c0ff").as_str()));
        assert_eq!(s.committed_at, Some(Time(t(100))));
        assert_eq!(s.artifact, Some(artifact()));
        assert_eq!(s.notes.as_deref(), Some("## 1.0.0"));
        assert_eq!(s.packaged_spec.as_ref(), Some(&r.spec));
        let ready = find(&s.conditions, ConditionType::Ready).unwrap();
        assert!(
            ready.message.contains(&artifact().digest) && ready.message.contains("5 object(s)"),
            "{}",
            ready.message
        );
        // Verifying later changes nothing, not even transition times.
        let again = release_status(&r, &[], Some(&Outcome::Verified), t(999));
        assert_eq!(again, s);
        let idle = release_status(&r, &[], None, t(999));
        assert_eq!(idle, s);
        assert_eq!(find(&again.conditions, ConditionType::Ready).unwrap().last_transition_time, Time(t(101)));
    }

    #[test]
    fn each_changed_field_after_packaging_is_named() {
        let base = after(1, &[Outcome::Begun, packaged_outcome()]);
        // (case, edit, field, fragment of the message)
        type Edit = fn(&mut ReleaseSpec);
        let cases: [(&str, Edit, &str, &str); 4] = [
            ("version", |s| s.version = "1.0.1".into(), "spec.version", "\"1.0.0\" to \"1.0.1\""),
            ("pipeline", |s| s.pipeline = "other".into(), "spec.pipeline", "\"other\""),
            (
                "ref",
                |s| s.source.as_mut().unwrap().git.as_mut().unwrap().reference.tag = Some("v9".into()),
                "spec.source",
                "v9",
            ),
            ("notes", |s| s.notes = Some("hand written".into()), "spec.notes", "hand written"),
        ];
        for (case, edit, field, fragment) in cases {
            let mut r = base.clone();
            edit(&mut r.spec);
            r.metadata.generation = Some(2);
            let problems = immutability_problems(&r);
            assert_eq!(problems.len(), 1, "{case}: {problems:#?}");
            assert_eq!(problems[0].reason, Reason::SpecImmutable, "{case}");
            assert_eq!(problems[0].field, field, "{case}");
            assert!(
                problems[0].message.contains(fragment) && problems[0].message.contains("new Release"),
                "{case}: {}",
                problems[0].message
            );
            // Refused: the status keeps everything that was packaged.
            let s = release_status(&r, &problems, None, t(500));
            assert_eq!(s.phase, Some(ReleasePhase::Packaged), "{case}");
            assert_eq!(s.artifact, Some(artifact()), "{case}");
            assert_eq!(s.packaged_spec.as_ref(), Some(&base.spec), "{case}");
            assert!(is_true(&s.conditions, ConditionType::Stalled), "{case}");
        }
        assert_eq!(immutability_problems(&base), vec![], "unchanged spec");
        assert_eq!(immutability_problems(&after(1, &[Outcome::Begun])), vec![], "not packaged yet: spec may change");
    }
}
