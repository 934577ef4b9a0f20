//! Health-check bookkeeping: what one probe result does to a check's state, when a check is due
//! again, and the verdict of an environment's checks. Pure; probes live in `crate::checks`.
//!
//! Counting rules (the same for HTTP and Prometheus checks):
//! - A check **passes** once it has seen `successThreshold` consecutive successes. It stays
//!   passed while failures stay within `failureLimit`: checks keep running through the soak,
//!   and a tolerated blip does not un-pass it.
//! - A check **fails** once its failures exceed `failureLimit` (counted over the deployment, not
//!   consecutively, as Argo Rollouts does). A failed check stays failed.
//! - **No data** (a query with no series, or NaN) and **unreachable** (Prometheus down, a
//!   timeout, an error answer) are inconclusive. Each follows its policy: `Fail` counts it as a
//!   failure (the default: fail closed), `Ignore` counts nothing (the check waits; the
//!   environment's timeout decides), `Pass` counts it as a success (for no data only).
//! - While a rollback is verified, checks are *tolerant*: a failure only resets the consecutive
//!   successes, since signals of the failed release (a rate over the last minute) take a while
//!   to fade. The environment's timeout bounds the wait.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::release::{CheckType, CheckVerdict};

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sample {
    /// The check's condition holds; the message says what was seen.
    Pass(String),
    /// The condition does not hold (wrong status, body, value; connection refused for HTTP).
    Fail(String),
    /// The query returned no value (no series, or NaN).
    NoData(String),
    /// The check could not be evaluated (Prometheus unreachable, timeout, error answer).
    Unreachable(String),
}

/// What an inconclusive sample counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Inconclusive {
    /// Counts as a failure (fail closed).
    #[default]
    Fail,
    /// Counts as nothing; the check keeps waiting.
    Ignore,
    /// Counts as a success.
    Pass,
}

/// One check of an environment, as the core needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    /// Name, unique within the environment.
    pub name: String,
    /// HTTP or Prometheus.
    pub kind: CheckType,
    /// Time between probes.
    pub interval: Duration,
    /// Consecutive successes needed to pass.
    pub success_threshold: u32,
    /// Failures tolerated.
    pub failure_limit: u32,
    /// What a sample with no data counts as.
    pub on_no_data: Inconclusive,
    /// What an unreachable sample counts as.
    pub on_unreachable: Inconclusive,
}

/// The state of one check for the deployment being verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckState {
    /// The check's name.
    pub name: String,
    /// HTTP or Prometheus.
    pub kind: CheckType,
    /// Pending, Passed or Failed.
    pub result: CheckVerdict,
    /// Consecutive successes.
    pub successes: u32,
    /// Failures counted so far.
    pub failures: u32,
    /// What the last probe saw.
    pub message: Option<String>,
    /// When it was last probed.
    pub at: Option<Timestamp>,
}

impl CheckState {
    /// A check not probed yet.
    pub fn new(spec: &CheckSpec) -> Self {
        Self {
            name: spec.name.clone(),
            kind: spec.kind,
            result: CheckVerdict::Pending,
            successes: 0,
            failures: 0,
            message: None,
            at: None,
        }
    }
}

/// The states of `specs` carried over from `states` by name, fresh where a check is new
/// (the spec may have changed since the states were written).
pub fn aligned(specs: &[CheckSpec], states: &[CheckState]) -> Vec<CheckState> {
    specs
        .iter()
        .map(|spec| {
            states
                .iter()
                .find(|s| s.name == spec.name && s.kind == spec.kind)
                .cloned()
                .unwrap_or_else(|| CheckState::new(spec))
        })
        .collect()
}

/// Records one probe result; `tolerant` while a rollback is verified (see the module doc).
pub fn record(spec: &CheckSpec, state: &mut CheckState, sample: Sample, now: Timestamp, tolerant: bool) {
    enum Counts {
        Success,
        Failure,
        Nothing,
    }
    let (counts, message) = match sample {
        Sample::Pass(m) => (Counts::Success, m),
        Sample::Fail(m) => (Counts::Failure, m),
        Sample::NoData(m) => (policy(spec.on_no_data), m),
        Sample::Unreachable(m) => (policy(spec.on_unreachable), m),
    };
    fn policy(p: Inconclusive) -> Counts {
        match p {
            Inconclusive::Fail => Counts::Failure,
            Inconclusive::Ignore => Counts::Nothing,
            Inconclusive::Pass => Counts::Success,
        }
    }
    state.message = Some(message);
    state.at = Some(now);
    if state.result == CheckVerdict::Failed {
        return;
    }
    match counts {
        Counts::Success => {
            state.successes = state.successes.saturating_add(1);
            if state.successes >= spec.success_threshold.max(1) {
                state.result = CheckVerdict::Passed;
            }
        }
        Counts::Failure if tolerant => {
            state.successes = 0;
            state.result = CheckVerdict::Pending;
        }
        Counts::Failure => {
            state.successes = 0;
            state.failures = state.failures.saturating_add(1);
            if state.failures > spec.failure_limit {
                state.result = CheckVerdict::Failed;
            }
        }
        Counts::Nothing => {}
    }
}

/// How long until the check is due again (zero: due now). A failed check is never due.
pub fn due_in(spec: &CheckSpec, state: &CheckState, now: Timestamp) -> Option<Duration> {
    if state.result == CheckVerdict::Failed {
        return None;
    }
    let Some(at) = state.at else { return Some(Duration::ZERO) };
    let elapsed = Duration::try_from(now.duration_since(at)).unwrap_or(Duration::ZERO);
    Some(spec.interval.saturating_sub(elapsed))
}

/// The soonest any check of `specs` is due (`None` when none will be).
pub fn next_due(specs: &[CheckSpec], states: &[CheckState], now: Timestamp) -> Option<Duration> {
    specs.iter().zip(states).filter_map(|(spec, state)| due_in(spec, state, now)).min()
}

/// The verdict of an environment's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed (or there are none).
    Passed,
    /// Some check has not passed yet: the message names them.
    Pending(String),
    /// A check failed: the message names it and what it saw.
    Failed(String),
}

/// The verdict of `states` (aligned with their specs).
pub fn verdict(states: &[CheckState]) -> Verdict {
    if let Some(failed) = states.iter().find(|s| s.result == CheckVerdict::Failed) {
        let seen = failed.message.as_deref().unwrap_or("no result");
        let failures = match failed.failures {
            1 => "1 failure".to_owned(),
            n => format!("{n} failures"),
        };
        return Verdict::Failed(format!("{} check {} failed ({failures}): {seen}", kind(failed.kind), failed.name));
    }
    let pending: Vec<String> = states
        .iter()
        .filter(|s| s.result != CheckVerdict::Passed)
        .map(|s| match &s.message {
            Some(seen) => format!("{} check {}: {seen}", kind(s.kind), s.name),
            None => format!("{} check {} not probed yet", kind(s.kind), s.name),
        })
        .collect();
    if pending.is_empty() { Verdict::Passed } else { Verdict::Pending(pending.join("; ")) }
}

fn kind(kind: CheckType) -> &'static str {
    match kind {
        CheckType::Workloads => "workloads",
        CheckType::Http => "HTTP",
        CheckType::Prometheus => "Prometheus",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(threshold: u32, limit: u32) -> CheckSpec {
        CheckSpec {
            name: "error-rate".into(),
            kind: CheckType::Prometheus,
            interval: Duration::from_secs(10),
            success_threshold: threshold,
            failure_limit: limit,
            on_no_data: Inconclusive::Fail,
            on_unreachable: Inconclusive::Fail,
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn run(spec: &CheckSpec, samples: Vec<Sample>, tolerant: bool) -> CheckState {
        let mut state = CheckState::new(spec);
        for (i, sample) in samples.into_iter().enumerate() {
            record(spec, &mut state, sample, t(i as i64 * 10), tolerant);
        }
        state
    }

    fn pass() -> Sample {
        Sample::Pass("0.01 < 0.05".into())
    }

    fn fail() -> Sample {
        Sample::Fail("0.2 is not < 0.05".into())
    }

    #[test]
    fn passes_after_the_success_threshold_of_consecutive_successes() {
        let s = spec(3, 0);
        assert_eq!(run(&s, vec![pass(), pass()], false).result, CheckVerdict::Pending);
        assert_eq!(run(&s, vec![pass(), pass(), pass()], false).result, CheckVerdict::Passed);
    }

    #[test]
    fn a_failure_resets_consecutive_successes() {
        let s = spec(2, 5);
        let state = run(&s, vec![pass(), fail(), pass()], false);
        assert_eq!((state.result, state.successes, state.failures), (CheckVerdict::Pending, 1, 1));
    }

    #[test]
    fn fails_once_failures_exceed_the_limit_and_stays_failed() {
        let s = spec(1, 2);
        assert_eq!(run(&s, vec![fail(), fail()], false).result, CheckVerdict::Pending);
        let state = run(&s, vec![fail(), pass(), fail(), fail(), pass()], false);
        assert_eq!((state.result, state.failures), (CheckVerdict::Failed, 3));
    }

    #[test]
    fn the_default_limit_fails_on_the_first_failure() {
        assert_eq!(run(&spec(1, 0), vec![fail()], false).result, CheckVerdict::Failed);
    }

    #[test]
    fn a_tolerated_failure_after_passing_keeps_the_check_passed() {
        let state = run(&spec(1, 1), vec![pass(), fail()], false);
        assert_eq!((state.result, state.failures), (CheckVerdict::Passed, 1));
    }

    #[test]
    fn inconclusive_samples_follow_their_policy() {
        let no_data = || Sample::NoData("no series".into());
        let down = || Sample::Unreachable("connection refused".into());
        let mut s = spec(1, 0);
        assert_eq!(run(&s, vec![no_data()], false).result, CheckVerdict::Failed, "fail closed by default");
        assert_eq!(run(&s, vec![down()], false).result, CheckVerdict::Failed, "fail closed by default");
        s.on_no_data = Inconclusive::Ignore;
        s.on_unreachable = Inconclusive::Ignore;
        let waiting = run(&s, vec![no_data(), down()], false);
        assert_eq!((waiting.result, waiting.failures, waiting.successes), (CheckVerdict::Pending, 0, 0));
        assert_eq!(waiting.message.as_deref(), Some("connection refused"));
        s.on_no_data = Inconclusive::Pass;
        assert_eq!(run(&s, vec![no_data()], false).result, CheckVerdict::Passed);
    }

    #[test]
    fn a_limit_of_failures_from_an_unreachable_prometheus_fails_the_check() {
        let mut s = spec(1, 2);
        s.on_unreachable = Inconclusive::Fail;
        let down = || Sample::Unreachable("connection refused".into());
        assert_eq!(run(&s, vec![down(), down()], false).result, CheckVerdict::Pending);
        assert_eq!(run(&s, vec![down(), down(), down()], false).result, CheckVerdict::Failed);
    }

    #[test]
    fn tolerant_checks_never_fail_and_need_fresh_successes() {
        let s = spec(2, 0);
        let state = run(&s, vec![fail(), fail(), pass(), fail(), pass()], true);
        assert_eq!((state.result, state.failures, state.successes), (CheckVerdict::Pending, 0, 1));
        assert_eq!(run(&s, vec![fail(), pass(), pass()], true).result, CheckVerdict::Passed);
    }

    #[test]
    fn a_check_is_due_after_its_interval_and_never_once_failed() {
        let s = spec(1, 0);
        let mut state = CheckState::new(&s);
        assert_eq!(due_in(&s, &state, t(0)), Some(Duration::ZERO));
        record(&s, &mut state, pass(), t(0), false);
        assert_eq!(due_in(&s, &state, t(4)), Some(Duration::from_secs(6)));
        assert_eq!(due_in(&s, &state, t(12)), Some(Duration::ZERO));
        record(&s, &mut state, fail(), t(12), false);
        assert_eq!(due_in(&s, &state, t(30)), None);
    }

    #[test]
    fn the_verdict_names_the_failed_or_pending_checks() {
        let s = spec(1, 0);
        let passed = run(&s, vec![pass()], false);
        let failed = run(&s, vec![fail()], false);
        let fresh = CheckState { name: "healthz".into(), kind: CheckType::Http, ..CheckState::new(&s) };
        assert_eq!(verdict(&[]), Verdict::Passed);
        assert_eq!(verdict(std::slice::from_ref(&passed)), Verdict::Passed);
        assert_eq!(
            verdict(&[passed.clone(), failed]),
            Verdict::Failed("Prometheus check error-rate failed (1 failure): 0.2 is not < 0.05".into())
        );
        assert_eq!(verdict(&[passed, fresh]), Verdict::Pending("HTTP check healthz not probed yet".into()));
    }

    #[test]
    fn states_follow_the_spec_by_name() {
        let a = spec(1, 0);
        let b = CheckSpec { name: "latency".into(), ..spec(1, 0) };
        let old = vec![run(&a, vec![pass()], false)];
        let states = aligned(&[b.clone(), a.clone()], &old);
        assert_eq!(states[0], CheckState::new(&b));
        assert_eq!(states[1], old[0]);
    }
}
