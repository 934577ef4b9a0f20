//! What `conveyor status --watch` shows. Pure: the watch's start and `now` are passed in.
//!
//! On a terminal, a *frame* is redrawn in place: per pipeline its condition, then one row per
//! environment (phase, version, elapsed time, checks) with a line under it for each check that
//! failed or is still pending, then a footer saying what the watch waits for. Elsewhere (a pipe,
//! a CI log), the watch prints one line per *fact* that changed: a pipeline's condition, or an
//! environment's phase, release and checks; elapsed times are left out so that nothing is
//! printed just because time passed.

use std::fmt::Write as _;

use jiff::Timestamp;
use kube::ResourceExt as _;

use super::settle::Verdict;
use super::{checks_summary_counts, environment_status, headline, note, shorten};
use crate::api::pipeline::{DeploymentResult, Environment, EnvironmentPhase, EnvironmentStatus};
use crate::api::release::{CheckResult, CheckVerdict, Release};
use crate::api::{ConditionType, Pipeline, Reason};
use crate::core::conditions::find;

/// Characters of a check's message in a frame or a line before it is cut short.
const MESSAGE_WIDTH: usize = 100;

/// What the watch sees at one moment.
pub struct Scene<'a> {
    /// The Pipelines watched, in the order shown.
    pub pipelines: &'a [Pipeline],
    /// Every Release of their namespaces.
    pub releases: &'a [Release],
    /// The verdict on each pipeline, in the same order.
    pub verdicts: &'a [Verdict],
    /// When the watch started.
    pub started: Timestamp,
    /// Now.
    pub now: Timestamp,
    /// Pipelines from several namespaces: name them `namespace/name`.
    pub all_namespaces: bool,
    /// The watch's last error, while it retries.
    pub trouble: Option<&'a str>,
}

/// How the watch ended, for the last frame's footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Every pipeline settled.
    Settled,
    /// `--timeout` passed.
    TimedOut,
    /// Ctrl-C.
    Interrupted,
}

// ---------------------------------------------------------------------------------------------
// Frames (terminal).

/// The frame of `scene`: lines without newlines, with ANSI colours when `color`. `end` makes it
/// the last frame.
pub fn frame(scene: &Scene, color: bool, end: Option<&End>) -> Vec<String> {
    let paint = |code: &str, text: &str| if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() };
    let mut lines = Vec::new();
    for (i, pipeline) in scene.pipelines.iter().enumerate() {
        if i > 0 {
            lines.push(String::new());
        }
        lines.push(paint("1", &headline(pipeline)));
        lines.extend(table(pipeline, scene.now, &paint));
    }
    if let Some(trouble) = scene.trouble {
        lines.push(paint("33", &format!("watch interrupted, retrying: {}", shorten(trouble, MESSAGE_WIDTH))));
    }
    let took = clock(secs(scene.started, scene.now));
    let waiting = scene.pipelines.iter().zip(scene.verdicts).find_map(|(p, v)| match v {
        Verdict::Waiting(what) => Some(format!("{}{what}", prefix(p, scene))),
        _ => None,
    });
    let failed: Vec<String> = scene
        .pipelines
        .iter()
        .zip(scene.verdicts)
        .filter_map(|(p, v)| match v {
            Verdict::Failed(why) => Some(format!("{}{why}", prefix(p, scene))),
            _ => None,
        })
        .collect();
    lines.push(String::new());
    lines.push(match (end, waiting) {
        (None, Some(what)) => format!("waiting for {what} · {took} · Ctrl-C to stop"),
        (None, None) => format!("{took} · Ctrl-C to stop"),
        (Some(End::Settled), _) if failed.is_empty() => paint("32", &format!("settled after {took}: Ready")),
        (Some(End::Settled), _) => paint("31", &format!("settled after {took}, not Ready: {}", failed.join("; "))),
        (Some(End::TimedOut), what) => paint(
            "31",
            &format!("timed out after {took}, still waiting for {}", what.unwrap_or_else(|| "nothing".to_owned())),
        ),
        (Some(End::Interrupted), _) => format!("interrupted after {took}"),
    });
    lines
}

/// `name: ` when several pipelines are watched, else nothing.
fn prefix(pipeline: &Pipeline, scene: &Scene) -> String {
    if scene.pipelines.len() > 1 { format!("{}: ", label(pipeline, scene.all_namespaces)) } else { String::new() }
}

/// The environment table of `pipeline`, with a line under a row for each check to look at.
fn table(pipeline: &Pipeline, now: Timestamp, paint: &impl Fn(&str, &str) -> String) -> Vec<String> {
    let header = ["ENVIRONMENT", "PHASE", "VERSION", "ELAPSED", "CHECKS", "NOTE"].map(str::to_owned);
    let mut rows = vec![(header, None, Vec::new())];
    for env in &pipeline.spec.environments {
        let status = environment_status(pipeline, &env.name);
        let phase = status.map(|s| s.phase).unwrap_or_default();
        let cells = [
            env.name.clone(),
            format!("{phase:?}"),
            status.and_then(|s| s.current.as_ref()).map_or("-".to_owned(), |c| c.version.clone()),
            elapsed(env, status, now),
            status.map_or("-".to_owned(), |s| checks_cell(&s.checks)),
            status.map_or("-".to_owned(), note),
        ];
        let details = status.map(|s| details(s, now)).unwrap_or_default();
        rows.push((cells, Some(phase), details));
    }
    let mut widths = [0; 6];
    for (cells, _, _) in &rows {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut lines = Vec::new();
    for (cells, phase, details) in rows {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let padded = format!("{cell:<width$}  ", width = if i == 5 { 0 } else { widths[i] });
            // Colour after padding: escape codes take no room on screen.
            match phase.filter(|_| i == 1).and_then(phase_colour) {
                Some(code) => {
                    let _ = write!(line, "{}{}", paint(code, cell), &padded[cell.len()..]);
                }
                None => line.push_str(&padded),
            }
        }
        lines.push(line.trim_end().to_owned());
        for (failed, text) in details {
            lines.push(if failed { paint("31", &text) } else { text });
        }
    }
    lines
}

/// The ANSI colour of a phase: green when healthy, yellow while moving, red when failing.
fn phase_colour(phase: EnvironmentPhase) -> Option<&'static str> {
    use EnvironmentPhase::*;
    match phase {
        Healthy => Some("32"),
        Deploying | Verifying | Soaking => Some("33"),
        AwaitingApproval => Some("36"),
        RollingBack | Failed => Some("31"),
        Idle => None,
    }
}

/// `1/2 passed`, with the failed ones named: `1/3 passed, error-rate failed`; `-` without checks.
pub fn checks_cell(checks: &[CheckResult]) -> String {
    if checks.is_empty() {
        return "-".to_owned();
    }
    let (passed, failed) = checks_summary_counts(checks);
    let mut cell = format!("{passed}/{} passed", checks.len());
    if !failed.is_empty() {
        let _ = write!(cell, ", {} failed", failed.join(", "));
    }
    cell
}

/// Lines to look at under an environment's row, `(failed, text)`: why the release being rolled
/// back failed, each failed check, and each pending check while a deployment is in flight.
fn details(status: &EnvironmentStatus, now: Timestamp) -> Vec<(bool, String)> {
    let moving = matches!(
        status.phase,
        EnvironmentPhase::Deploying | EnvironmentPhase::Verifying | EnvironmentPhase::RollingBack
    );
    let failure = rollback_reason(status).map(|why| (true, format!("  └ {}", shorten(&why, MESSAGE_WIDTH))));
    let checks = status
        .checks
        .iter()
        .filter(|c| c.result == CheckVerdict::Failed || (moving && c.result == CheckVerdict::Pending))
        .map(|c| {
            let failed = c.result == CheckVerdict::Failed;
            let verdict = match c.failures.unwrap_or(0) {
                _ if failed => "failed".to_owned(),
                0 => "pending".to_owned(),
                1 => "pending, 1 failure".to_owned(),
                n => format!("pending, {n} failures"),
            };
            let when = c.at.as_ref().map_or(String::new(), |t| format!(" ({} ago)", clock(secs(t.0, now))));
            let message = c.message.as_deref().map_or(String::new(), |m| format!(": {}", shorten(m, MESSAGE_WIDTH)));
            (failed, format!("  └ {} {verdict}{when}{message}", c.name))
        });
    failure.into_iter().chain(checks).collect()
}

/// While (or after) a failed release is rolled back here: `<release> failed: <why>`.
fn rollback_reason(status: &EnvironmentStatus) -> Option<String> {
    let failed = status.current.as_ref()?.rollback_of.as_deref()?;
    let entry = status.history.iter().find(|h| h.release == failed && h.result != DeploymentResult::Succeeded)?;
    Some(format!("{failed} failed: {}", entry.reason.as_deref().unwrap_or("its checks failed")))
}

/// Time in the current phase or deployment: from the deployment's start while it deploys,
/// verifies or rolls back; from the soak's start while soaking (`12s of 30s`); from the end of
/// the deployment once it finished; `-` when nothing runs.
pub fn elapsed(env: &Environment, status: Option<&EnvironmentStatus>, now: Timestamp) -> String {
    let Some(status) = status else { return "-".to_owned() };
    let Some(current) = &status.current else { return "-".to_owned() };
    let since = current.since.as_ref().map(|t| t.0);
    let from = match status.phase {
        EnvironmentPhase::Idle => return "-".to_owned(),
        EnvironmentPhase::Deploying | EnvironmentPhase::Verifying | EnvironmentPhase::RollingBack => since,
        EnvironmentPhase::Soaking => {
            let soaked = current.healthy_since.as_ref().map(|t| t.0).or(since).map(|t| clock(secs(t, now)));
            let soak = env.soak.as_deref().and_then(|s| crate::core::duration::parse(s).ok());
            return match (soaked, soak) {
                (Some(soaked), Some(soak)) => format!("{soaked} of {}", clock(soak.as_secs())),
                (soaked, _) => soaked.unwrap_or_else(|| "-".to_owned()),
            };
        }
        EnvironmentPhase::Healthy | EnvironmentPhase::AwaitingApproval | EnvironmentPhase::Failed => status
            .history
            .iter()
            .find(|h| Some(&h.deployment_id) == current.deployment_id.as_ref())
            .and_then(|h| h.finished_at.as_ref())
            .map(|t| t.0)
            .or(since),
    };
    from.map_or("-".to_owned(), |t| clock(secs(t, now)))
}

fn secs(from: Timestamp, now: Timestamp) -> u64 {
    u64::try_from(now.duration_since(from).as_secs()).unwrap_or(0)
}

/// A duration as a watch shows it: `42s`, `5m03s`, `2h05m`, `3d4h`.
pub fn clock(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 2 * 86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

// ---------------------------------------------------------------------------------------------
// Lines (not a terminal).

/// The facts of `scene`: `(key, text)`, one per pipeline condition and per environment, in the
/// order shown. The watch prints a fact's text when it differs from what it printed last.
pub fn facts(scene: &Scene) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    for pipeline in scene.pipelines {
        let name = label(pipeline, scene.all_namespaces);
        facts.push((name.clone(), condition_fact(pipeline, &name)));
        for env in &pipeline.spec.environments {
            let key = format!("{name}/{}", env.name);
            let status = environment_status(pipeline, &env.name);
            let Some(status) = status else {
                facts.push((key.clone(), format!("{key}: Idle")));
                continue;
            };
            let mut text = format!("{key}: {:?}", status.phase);
            if let Some(current) = &status.current {
                let _ = write!(text, " {}", current.release);
            }
            if !status.checks.is_empty() {
                let _ = write!(text, " · checks {}", checks_cell(&status.checks));
            }
            for check in status.checks.iter().filter(|c| c.result == CheckVerdict::Failed) {
                let why =
                    check.message.as_deref().map_or(String::new(), |m| format!(": {}", shorten(m, MESSAGE_WIDTH)));
                let _ = write!(text, " · {} failed{why}", check.name);
            }
            let note = note(status);
            if note != "-" {
                let _ = write!(text, " · {note}");
            }
            if let Some(why) = rollback_reason(status).filter(|_| status.phase == EnvironmentPhase::RollingBack) {
                let _ = write!(text, " · {}", shorten(&why, MESSAGE_WIDTH));
            }
            facts.push((key, text));
        }
    }
    if let Some(trouble) = scene.trouble {
        facts.push(("watch".to_owned(), format!("watch interrupted, retrying: {}", shorten(trouble, MESSAGE_WIDTH))));
    }
    facts
}

/// A pipeline's condition, as a fact. While it deploys, the message only repeats what the
/// environments' facts say, and changes with each of them: it is left out.
fn condition_fact(pipeline: &Pipeline, name: &str) -> String {
    let conditions = pipeline.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
    match find(conditions, ConditionType::Reconciling).filter(|c| c.status == "True") {
        Some(c) if c.reason == Reason::Deploying.as_str() => format!("{name}: Reconciling {}", c.reason),
        _ => headline(pipeline).replacen(&format!("{} (namespace {})", pipeline.name_any(), ns(pipeline)), name, 1),
    }
}

/// `name`, or `namespace/name` when pipelines of several namespaces are shown.
fn label(pipeline: &Pipeline, all_namespaces: bool) -> String {
    if all_namespaces { format!("{}/{}", ns(pipeline), pipeline.name_any()) } else { pipeline.name_any() }
}

fn ns(pipeline: &Pipeline) -> String {
    pipeline.namespace().unwrap_or_default()
}

/// `[1m05s] text`: a fact as printed, stamped with the time since the watch started.
pub fn stamped(text: &str, started: Timestamp, now: Timestamp) -> String {
    format!("[{}] {text}", clock(secs(started, now)))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::pipeline::{DeployedRelease, HistoryEntry, PipelineStatus};
    use crate::api::release::CheckType;
    use crate::core::fixtures::{pipeline_spec, t};

    const T0: i64 = 1_700_000_000;

    fn deployed(version: &str, id: &str, since: i64) -> DeployedRelease {
        DeployedRelease {
            release: format!("shop-{version}"),
            version: version.into(),
            digest: None,
            since: Some(Time(t(T0 + since))),
            deployment_id: Some(id.into()),
            healthy_since: None,
            applied_at: None,
            rollback_of: None,
        }
    }

    /// development Verifying 1.1.0 (one check passed, one pending with 2 failures), staging
    /// rolling back from 1.1.0 to 1.0.0 (soak 30s).
    fn shop() -> Pipeline {
        let mut spec = pipeline_spec(&[("development", "dev"), ("staging", "stg")]);
        spec.environments[1].soak = Some("30s".into());
        let mut p = Pipeline::new("shop", spec);
        p.metadata.namespace = Some("shop".into());
        let check = |name: &str, result, failures, message: &str| CheckResult {
            name: name.into(),
            type_: CheckType::Http,
            result,
            message: Some(message.into()),
            successes: None,
            failures: Some(failures),
            at: Some(Time(t(T0 + 100))),
        };
        let development = EnvironmentStatus {
            name: "development".into(),
            phase: EnvironmentPhase::Verifying,
            current: Some(deployed("1.1.0", "development-2", 90)),
            checks: vec![
                check("home", CheckVerdict::Passed, 0, "200"),
                check("healthz", CheckVerdict::Pending, 2, "503, expected 200"),
            ],
            ..Default::default()
        };
        let staging = EnvironmentStatus {
            name: "staging".into(),
            phase: EnvironmentPhase::RollingBack,
            current: Some(DeployedRelease {
                rollback_of: Some("shop-1.1.0".into()),
                ..deployed("1.0.0", "staging-3", 80)
            }),
            history: vec![HistoryEntry {
                deployment_id: "staging-2".into(),
                release: "shop-1.1.0".into(),
                version: "1.1.0".into(),
                result: DeploymentResult::Failed,
                started_at: Time(t(T0 + 50)),
                finished_at: Some(Time(t(T0 + 80))),
                reason: Some("HTTP check healthz failed (1 failure): 503, expected 200".into()),
                rollback_of: None,
                checks: vec![],
            }],
            ..Default::default()
        };
        p.status = Some(PipelineStatus { environments: vec![development, staging], ..Default::default() });
        p
    }

    fn scene<'a>(pipelines: &'a [Pipeline], verdicts: &'a [Verdict], now: i64) -> Scene<'a> {
        Scene {
            pipelines,
            releases: &[],
            verdicts,
            started: t(T0 + 95),
            now: t(T0 + now),
            all_namespaces: false,
            trouble: None,
        }
    }

    #[test]
    fn a_frame_shows_phases_times_checks_and_what_it_waits_for() {
        let pipelines = [shop()];
        let verdicts = [Verdict::Waiting("development: Verifying shop-1.1.0".into())];
        let lines = frame(&scene(&pipelines, &verdicts, 105), false, None);
        let text = lines.join("\n");
        assert!(!text.contains('\x1b'), "no colour asked: {text}");
        let expected = [
            "shop (namespace shop): no status yet (is the controller running?)",
            "ENVIRONMENT  PHASE        VERSION  ELAPSED  CHECKS      NOTE",
            "development  Verifying    1.1.0    15s      1/2 passed  -",
            "  └ healthz pending, 2 failures (5s ago): 503, expected 200",
            "staging      RollingBack  1.0.0    25s      -           rolling back from shop-1.1.0",
            "  └ shop-1.1.0 failed: HTTP check healthz failed (1 failure): 503, expected 200",
            "",
            "waiting for development: Verifying shop-1.1.0 · 10s · Ctrl-C to stop",
        ];
        assert_eq!(lines, expected, "\n{text}");

        // With colours, the same columns on screen: escape codes take no room.
        let coloured = frame(&scene(&pipelines, &verdicts, 105), true, None);
        assert!(coloured[2].contains("\x1b[33mVerifying\x1b[0m"), "{:?}", coloured[2]);
        let plain =
            |s: &str| s.replace("\x1b[33m", "").replace("\x1b[31m", "").replace("\x1b[1m", "").replace("\x1b[0m", "");
        assert_eq!(coloured.iter().map(|l| plain(l)).collect::<Vec<_>>(), lines);

        let end = frame(
            &scene(&pipelines, &[Verdict::Failed("Stalled RolledBack: x".into())], 200),
            false,
            Some(&End::Settled),
        );
        assert_eq!(end.last().unwrap(), "settled after 1m45s, not Ready: Stalled RolledBack: x");
    }

    #[test]
    fn facts_leave_time_out() {
        let pipelines = [shop()];
        let verdicts = [Verdict::Waiting("x".into())];
        let early = facts(&scene(&pipelines, &verdicts, 100));
        assert_eq!(early, facts(&scene(&pipelines, &verdicts, 160)), "time passing is no change");
        let texts: Vec<&str> = early.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts[1..],
            [
                "shop/development: Verifying shop-1.1.0 · checks 1/2 passed",
                "shop/staging: RollingBack shop-1.0.0 · rolling back from shop-1.1.0 · shop-1.1.0 failed: HTTP check healthz failed (1 failure): 503, expected 200",
            ]
        );
    }

    #[test]
    fn elapsed_soaking_counts_toward_the_soak() {
        let p = shop();
        let mut staging = p.status.as_ref().unwrap().environments[1].clone();
        staging.phase = EnvironmentPhase::Soaking;
        staging.current.as_mut().unwrap().healthy_since = Some(Time(t(T0 + 88)));
        assert_eq!(elapsed(&p.spec.environments[1], Some(&staging), t(T0 + 100)), "12s of 30s");
        assert_eq!(elapsed(&p.spec.environments[1], None, t(T0 + 100)), "-");
    }

    #[test]
    fn clock_reads_like_a_stopwatch() {
        for (secs, text) in [(0, "0s"), (59, "59s"), (65, "1m05s"), (3600, "1h00m"), (7322, "2h02m"), (200_000, "2d7h")]
        {
            assert_eq!(clock(secs), text, "{secs}");
        }
    }
}
