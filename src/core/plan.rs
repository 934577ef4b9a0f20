//! The pipeline planner: from what is known about a pipeline's environments, its releases and
//! what the shell observed this round, to the next state of every environment and the actions
//! that get there. No I/O and no clock: `now` is an argument, so every decision can be replayed.
//!
//! The rules, per environment in promotion order:
//! - An environment runs one release at a time. A deployment in flight (`Deploying`,
//!   `Verifying`, `Soaking`) settles first, whatever else arrived meanwhile.
//! - A settled environment takes the newest *candidate*: for the first environment, a packaged
//!   release it has not run; for the others, a release that finished `Healthy` (checked and
//!   soaked) in the environment before. Candidates are always newer than what the environment
//!   runs, so releases enter every environment in version order and a newer release never
//!   overtakes an older one; an older candidate left behind by a newer one is superseded.
//! - A `Manual` environment waits in `AwaitingApproval` until the candidate is approved.
//! - Nothing starts while the pipeline is paused, nor in a namespace the pipeline may not use.
//!
//! Events: `Deploying` (into the first environment), `Promoting` (into a later one), `Healthy`,
//! `AwaitingApproval`, `DeploymentFailed`, `DeployFailed` (refused by the dry-run),
//! `NamespaceNotAllowed`.
//!
//! Everything needed to continue is in [`EnvironmentState`], which the shell keeps in
//! `Pipeline.status`; a restarted controller plans from it and carries on where it was.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use semver::Version;

use crate::api::pipeline::{DeploymentResult, EnvironmentPhase};
use crate::core::checks::{self, CheckSpec, CheckState, Sample, Verdict};

/// Part of a history reason saying the server-side dry run refused the deployment, so nothing
/// was applied (events `DeployFailed`, `RollbackFailed`); `conveyor status` reads it back.
pub const NOT_APPLIED: &str = " was not applied: ";

/// How often an environment being verified is looked at again.
pub const VERIFY_POLL: Duration = Duration::from_secs(5);

/// One environment as the planner needs it (parsed from the Pipeline spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentSpec {
    /// Environment name.
    pub name: String,
    /// Namespace its objects go to.
    pub namespace: String,
    /// Whether a person must approve each release entering it.
    pub manual: bool,
    /// How long a release must stay healthy here before it counts as Healthy.
    pub soak: Duration,
    /// Deadline for a release to become healthy here.
    pub timeout: Duration,
    /// HTTP and Prometheus checks, HTTP first, in spec order.
    pub checks: Vec<CheckSpec>,
}

/// A packaged release of the pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Release object name.
    pub name: String,
    /// Its version.
    pub version: Version,
    /// Its artifact digest.
    pub digest: String,
}

/// A release deployed into an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// Unique id of this deployment (`<environment>-<n>`).
    pub id: String,
    /// Release object name.
    pub release: String,
    /// Release version.
    pub version: Version,
    /// Artifact digest.
    pub digest: String,
    /// When the deployment started.
    pub started_at: Timestamp,
    /// When it was first seen healthy (the soak started).
    pub healthy_since: Option<Timestamp>,
    /// When its objects were applied.
    pub applied_at: Option<Timestamp>,
    /// On a rollback: the release it replaces.
    pub rollback_of: Option<String>,
}

/// One finished deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// The deployment's id.
    pub id: String,
    /// Release object name.
    pub release: String,
    /// Release version.
    pub version: Version,
    /// How it ended.
    pub result: DeploymentResult,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
    /// Why it ended so (for failures).
    pub reason: Option<String>,
    /// On a rollback: the release it replaced.
    pub rollback_of: Option<String>,
    /// Its health checks as they stood when it finished.
    pub checks: Vec<CheckState>,
}

/// An object applied into an environment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `group/version` or `version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// What an environment is doing, as kept in status between rounds.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EnvironmentState {
    /// Phase.
    pub phase: EnvironmentPhase,
    /// The release running here (in flight, or settled).
    pub current: Option<Deployment>,
    /// The release that ran here before `current`.
    pub previous: Option<Deployment>,
    /// The release waiting for approval (phase `AwaitingApproval`).
    pub awaiting: Option<String>,
    /// Why the environment is `Failed`, or why nothing can start here.
    pub reason: Option<String>,
    /// Objects applied here by the current release.
    pub inventory: Vec<ObjectRef>,
    /// Deployments started here so far (the next id's number).
    pub deployments: u64,
    /// The newest version ever started here: only newer ones may start (even when that one
    /// was rejected and the environment went back to what it ran before).
    pub newest: Option<Version>,
    /// Finished deployments, newest first, bounded by the history limit.
    pub history: Vec<Finished>,
    /// The health checks of the current deployment (aligned with the environment's checks).
    pub checks: Vec<CheckState>,
    /// The last rollback request refused, so it is reported once.
    pub refused_rollback: Option<String>,
}

impl EnvironmentState {
    /// Whether a deployment is in flight here.
    pub fn in_flight(&self) -> bool {
        matches!(
            self.phase,
            EnvironmentPhase::Deploying
                | EnvironmentPhase::Verifying
                | EnvironmentPhase::Soaking
                | EnvironmentPhase::RollingBack
        )
    }

    /// Whether `release` was ever started here (as far as the history reaches).
    pub fn has_run(&self, release: &str) -> bool {
        self.current.as_ref().is_some_and(|c| c.release == release) || self.history.iter().any(|h| h.release == release)
    }

    /// Whether `release` finished Healthy here (checked, soaked) and was not rolled back from
    /// since: only such a release may be promoted on.
    pub fn passed(&self, release: &str) -> bool {
        self.was_healthy(release) && !self.rolled_back_from(release)
    }

    /// Whether `release` ever finished Healthy here (as far as the history reaches).
    pub fn was_healthy(&self, release: &str) -> bool {
        self.history.iter().any(|h| h.release == release && h.result == DeploymentResult::Succeeded)
    }

    /// Whether a rollback replaced `release` here.
    fn rolled_back_from(&self, release: &str) -> bool {
        let replaced = |of: &Option<String>| of.as_deref() == Some(release);
        self.current.as_ref().is_some_and(|c| replaced(&c.rollback_of))
            || self.history.iter().any(|h| replaced(&h.rollback_of))
    }

    /// Whether the current deployment's objects are applied and its health is being verified
    /// (`Verifying`, `Soaking`, or a rollback past its apply): the shell reads health then.
    pub fn verifying(&self) -> bool {
        match self.phase {
            EnvironmentPhase::Verifying | EnvironmentPhase::Soaking => true,
            EnvironmentPhase::RollingBack => self.current.as_ref().is_some_and(|c| c.applied_at.is_some()),
            _ => false,
        }
    }

    /// The release an automatic rollback restores: the newest one that finished Healthy here,
    /// other than the current one, and not rolled back from since.
    pub fn rollback_target(&self) -> Option<&Finished> {
        let current = self.current.as_ref().map(|c| c.release.as_str());
        self.history
            .iter()
            .filter(|h| h.result == DeploymentResult::Succeeded && Some(h.release.as_str()) != current)
            .find(|h| !self.rolled_back_from(&h.release))
    }
}

/// Which checks of environment `env` to probe now: the due ones, once the workloads are ready
/// (a check against an application still rolling out would only measure the rollout).
pub fn checks_to_probe(
    env: &EnvironmentSpec,
    state: &EnvironmentState,
    workloads: &Health,
    now: Timestamp,
) -> Vec<usize> {
    if !state.verifying() || *workloads != Health::Ready {
        return Vec::new();
    }
    let states = checks::aligned(&env.checks, &state.checks);
    env.checks
        .iter()
        .zip(&states)
        .enumerate()
        .filter(|(_, (spec, state))| checks::due_in(spec, state, now) == Some(Duration::ZERO))
        .map(|(i, _)| i)
        .collect()
}

/// A request to roll an environment back to an earlier release (from the Pipeline's annotations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackRequest {
    /// The release to restore.
    pub release: String,
    /// The deployment the environment ran when the request was made: the request holds only
    /// while it still does.
    pub after: String,
}

impl std::fmt::Display for RollbackRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.release, self.after)
    }
}

/// How the shell's apply of a deployment went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeployOutcome {
    /// Every object was applied (and the previous inventory's leftovers pruned).
    Applied {
        /// What is now applied.
        inventory: Vec<ObjectRef>,
    },
    /// The server-side dry-run refused an object: nothing was applied.
    Rejected {
        /// Which object and why.
        reason: String,
    },
}

/// The health of the current release in an environment, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Every check passes.
    Ready,
    /// Not there yet; the message says what is missing.
    Progressing(String),
    /// Failed for good (for example `ProgressDeadlineExceeded`).
    Failed(String),
}

/// What the shell observed in one environment this round.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Observation {
    /// The result of applying the deployment in `Deploying`, once done.
    pub deploy: Option<DeployOutcome>,
    /// The health of the current release's workloads, when it was looked at.
    pub health: Option<Health>,
    /// Check results probed this round: (index into the environment's checks, sample).
    pub samples: Vec<(usize, Sample)>,
}

/// Everything the planner decides from.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// The environments, in promotion order.
    pub environments: &'a [EnvironmentSpec],
    /// Per environment: whether the pipeline may deploy into its namespace.
    pub allowed: &'a [bool],
    /// Whether the pipeline is paused (nothing new starts).
    pub paused: bool,
    /// Approvals: environment name → the release approved to enter it.
    pub approvals: &'a BTreeMap<String, String>,
    /// Rollback requests: environment name → what to restore.
    pub rollbacks: &'a BTreeMap<String, RollbackRequest>,
    /// Whether a failed release is rolled back automatically.
    pub rollback: bool,
    /// The pipeline's packaged releases.
    pub releases: &'a [Candidate],
    /// Per environment: the state kept in status (default when new).
    pub state: &'a [EnvironmentState],
    /// Per environment: what was observed this round.
    pub observed: &'a [Observation],
    /// History entries kept per environment.
    pub history_limit: usize,
    /// The time of this round.
    pub now: Timestamp,
}

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Render and apply `release` into environment `environment` (dry-run first, then apply,
    /// then prune what the environment's inventory has and the release no longer has).
    Deploy {
        /// Index of the environment.
        environment: usize,
        /// The release.
        release: String,
        /// The deployment's id.
        id: String,
    },
    /// Record an Event on the Pipeline.
    Event(Event),
}

/// An Event the shell records on the Pipeline, about one release in one environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Warning rather than Normal.
    pub warning: bool,
    /// Reason, PascalCase.
    pub reason: &'static str,
    /// Message.
    pub message: String,
    /// Index of the environment.
    pub environment: usize,
    /// The release it is about.
    pub release: String,
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The next state of every environment.
    pub state: Vec<EnvironmentState>,
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// When to plan again without news (`None`: only on change).
    pub requeue: Option<Duration>,
    /// Releases that would start now but for the pause: `(environment index, release)`.
    pub held: Vec<(usize, String)>,
}

/// The label a namespace carries to let pipelines of another namespace deploy into it.
pub const ALLOW_FROM_LABEL: &str = "conveyor.dev/allow-from";

/// Whether a pipeline in `pipeline_namespace` may deploy into `target`, which carries `labels`:
/// its own namespace always; another only when that one opts in with
/// `conveyor.dev/allow-from: <pipeline namespace>`.
pub fn namespace_allowed(pipeline_namespace: &str, target: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
    target == pipeline_namespace
        || labels.and_then(|l| l.get(ALLOW_FROM_LABEL)).is_some_and(|from| from == pipeline_namespace)
}

/// Plans one round. `state`, `observed` and `allowed` are aligned with `environments`
/// (missing entries count as default / not allowed).
pub fn plan(input: &Input<'_>) -> Plan {
    let mut state: Vec<EnvironmentState> =
        (0..input.environments.len()).map(|i| input.state.get(i).cloned().unwrap_or_default()).collect();
    let mut actions = Vec::new();
    let mut held = Vec::new();
    let mut requeue: Option<Duration> = None;
    let mut wake = |after: Duration| requeue = Some(requeue.map_or(after, |r| r.min(after)));
    let nothing = Observation::default();

    for (i, env) in input.environments.iter().enumerate() {
        let observed = input.observed.get(i).unwrap_or(&nothing);
        let (before, rest) = state.split_at_mut(i);
        let here = &mut rest[0];
        let upstream = before.last();
        settle(i, env, here, observed, input, &mut actions, &mut wake);
        if here.in_flight() {
            continue;
        }
        let allowed = input.allowed.get(i).copied().unwrap_or(false);
        if let Some(request) = input.rollbacks.get(&env.name)
            && roll_back_on_request(i, env, here, request, allowed, input, &mut actions)
        {
            wake(Duration::ZERO);
            continue;
        }
        let Some(next) = candidate(input.releases, here, upstream) else {
            // Nothing to take: an approval wait for a candidate that went away ends.
            if here.awaiting.take().is_some() {
                here.phase = settled_phase(here);
            }
            continue;
        };
        if !allowed {
            let reason = not_allowed(env);
            if here.reason.as_deref() != Some(reason.as_str()) {
                actions.push(warning(i, &next.name, "NamespaceNotAllowed", format!("{}: {reason}", env.name)));
            }
            here.reason = Some(reason);
            continue;
        }
        if input.paused {
            held.push((i, next.name.clone()));
            continue;
        }
        let approved = input.approvals.get(&env.name).is_some_and(|r| *r == next.name);
        if env.manual && !approved {
            if here.awaiting.as_deref() != Some(next.name.as_str()) {
                let message = format!("{} waits for approval to enter {}", next.name, env.name);
                actions.push(normal(i, &next.name, "AwaitingApproval", message));
            }
            here.awaiting = Some(next.name.clone());
            here.phase = EnvironmentPhase::AwaitingApproval;
            continue;
        }
        let from = i.checked_sub(1).map(|up| input.environments[up].name.as_str());
        start(i, env, from, here, next, input.now, &mut actions);
        wake(Duration::ZERO);
    }
    Plan { state, actions, requeue, held }
}

fn not_allowed(env: &EnvironmentSpec) -> String {
    format!(
        "namespace {} does not allow this pipeline: label it conveyor.dev/allow-from=<pipeline namespace>",
        env.namespace
    )
}

/// Moves an in-flight deployment on from what was observed.
fn settle(
    index: usize,
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    observed: &Observation,
    input: &Input<'_>,
    actions: &mut Vec<Action>,
    wake: &mut impl FnMut(Duration),
) {
    let now = input.now;
    let Some(current) = here.current.clone() else { return };
    if here.phase == EnvironmentPhase::Deploying
        || (here.phase == EnvironmentPhase::RollingBack && current.applied_at.is_none())
    {
        match &observed.deploy {
            None => {
                // Not applied yet (or the controller restarted mid-apply): apply again; it is idempotent.
                actions.push(Action::Deploy {
                    environment: index,
                    release: current.release.clone(),
                    id: current.id.clone(),
                });
                wake(Duration::ZERO);
            }
            Some(DeployOutcome::Applied { inventory }) => {
                here.inventory = inventory.clone();
                here.current = Some(Deployment { applied_at: Some(now), ..current });
                here.checks = checks::aligned(&env.checks, &[]);
                if here.phase == EnvironmentPhase::Deploying {
                    here.phase = EnvironmentPhase::Verifying;
                }
                wake(Duration::ZERO);
            }
            Some(DeployOutcome::Rejected { reason }) => {
                // Nothing was applied: the environment still runs what it ran before.
                here.current = here.previous.take();
                let (event, reason) = match &current.rollback_of {
                    None => ("DeployFailed", format!("{}{NOT_APPLIED}{reason}", current.release)),
                    Some(_) => (
                        "RollbackFailed",
                        format!("{}rollback to {}{NOT_APPLIED}{reason}", prefix(here), current.release),
                    ),
                };
                finish(here, &current, DeploymentResult::Failed, Some(reason.clone()), now, input.history_limit);
                here.phase = EnvironmentPhase::Failed;
                here.reason = Some(reason.clone());
                actions.push(warning(index, &current.release, event, format!("{}: {reason}", env.name)));
            }
        }
        return;
    }
    if !here.verifying() {
        return;
    }
    let tolerant = here.phase == EnvironmentPhase::RollingBack;
    here.checks = checks::aligned(&env.checks, &here.checks);
    for (check, sample) in &observed.samples {
        if let (Some(spec), Some(state)) = (env.checks.get(*check), here.checks.get_mut(*check)) {
            checks::record(spec, state, sample.clone(), now, tolerant);
        }
    }
    let health = combined(observed.health.as_ref(), checks::verdict(&here.checks));
    // Checks keep their own pace; workloads are watched, and looked at every VERIFY_POLL too.
    let next_check = checks::next_due(&env.checks, &here.checks, now);
    let poll = next_check.map_or(VERIFY_POLL, |due| due.min(VERIFY_POLL));
    let timeout = humantime::format_duration(env.timeout);
    match here.phase {
        EnvironmentPhase::Verifying => match health {
            Some(Health::Ready) if env.soak.is_zero() => healthy(index, env, here, &current, input, actions),
            Some(Health::Ready) => {
                here.current = Some(Deployment { healthy_since: Some(now), ..current });
                here.phase = EnvironmentPhase::Soaking;
                wake(next_check.map_or(env.soak, |due| due.min(env.soak)));
            }
            Some(Health::Failed(why)) => fail(index, env, here, &current, why, input, actions, wake),
            Some(Health::Progressing(why)) if past(current.started_at, env.timeout, now) => {
                let why = format!("not healthy within {timeout}: {why}");
                fail(index, env, here, &current, why, input, actions, wake);
            }
            None if past(current.started_at, env.timeout, now) => {
                let why = format!("not healthy within {timeout}");
                fail(index, env, here, &current, why, input, actions, wake);
            }
            _ => wake(poll.min(remaining(current.started_at, env.timeout, now))),
        },
        EnvironmentPhase::Soaking => {
            let since = current.healthy_since.unwrap_or(now);
            match health {
                Some(Health::Failed(why) | Health::Progressing(why)) => {
                    let why = format!("became unhealthy while soaking: {why}");
                    fail(index, env, here, &current, why, input, actions, wake);
                }
                _ if past(since, env.soak, now) => healthy(index, env, here, &current, input, actions),
                _ => wake(poll.min(remaining(since, env.soak, now))),
            }
        }
        EnvironmentPhase::RollingBack => match health {
            Some(Health::Ready) => restored(index, env, here, &current, input, actions),
            Some(Health::Failed(why)) => rollback_failed(index, env, here, &current, why, input, actions),
            Some(Health::Progressing(why)) if past(current.started_at, env.timeout, now) => {
                let why = format!("not healthy within {timeout}: {why}");
                rollback_failed(index, env, here, &current, why, input, actions);
            }
            None if past(current.started_at, env.timeout, now) => {
                let why = format!("not healthy within {timeout}");
                rollback_failed(index, env, here, &current, why, input, actions);
            }
            _ => wake(poll.min(remaining(current.started_at, env.timeout, now))),
        },
        _ => {}
    }
}

/// The health of a deployment from its workloads (when read) and its checks.
fn combined(workloads: Option<&Health>, checks: Verdict) -> Option<Health> {
    match (workloads, checks) {
        (_, Verdict::Failed(why)) => Some(Health::Failed(why)),
        (None, _) => None,
        (Some(Health::Ready), Verdict::Passed) => Some(Health::Ready),
        (Some(Health::Ready), Verdict::Pending(why)) => Some(Health::Progressing(why)),
        (Some(other), _) => Some(other.clone()),
    }
}

/// The newest release that may enter this environment now.
/// Per environment, the release waiting to enter it: one that would start now if nothing held it
/// (an approval, the pause, a namespace that does not opt in). `None` while a deployment is in
/// flight there (that one ends by itself) or when nothing is newer than what ran.
pub fn waiting<'a>(releases: &'a [Candidate], state: &[EnvironmentState]) -> Vec<Option<&'a Candidate>> {
    state
        .iter()
        .enumerate()
        .map(|(i, here)| {
            let upstream = i.checked_sub(1).map(|up| &state[up]);
            if here.in_flight() { None } else { candidate(releases, here, upstream) }
        })
        .collect()
}

fn candidate<'a>(
    releases: &'a [Candidate],
    here: &EnvironmentState,
    upstream: Option<&EnvironmentState>,
) -> Option<&'a Candidate> {
    releases
        .iter()
        .filter(|r| here.newest.as_ref().is_none_or(|newest| r.version > *newest))
        .filter(|r| !here.has_run(&r.name))
        .filter(|r| upstream.is_none_or(|up| up.passed(&r.name)))
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// Starts deploying `next` here; `from` is the environment it is promoted from, if any.
fn start(
    index: usize,
    env: &EnvironmentSpec,
    from: Option<&str>,
    here: &mut EnvironmentState,
    next: &Candidate,
    now: Timestamp,
    actions: &mut Vec<Action>,
) {
    let id = begin(env, here, next, now, None);
    here.newest = Some(next.version.clone());
    here.phase = EnvironmentPhase::Deploying;
    here.awaiting = None;
    here.reason = None;
    actions.push(match from {
        None => {
            normal(index, &next.name, "Deploying", format!("deploying {} to {} (deployment {id})", next.name, env.name))
        }
        Some(from) => normal(
            index,
            &next.name,
            "Promoting",
            format!("promoting {} from {from} to {} (deployment {id})", next.name, env.name),
        ),
    });
    actions.push(Action::Deploy { environment: index, release: next.name.clone(), id });
}

/// Makes `release` the current deployment here (what ran before becomes `previous`); returns its id.
fn begin(
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    release: &Candidate,
    now: Timestamp,
    rollback_of: Option<String>,
) -> String {
    here.deployments += 1;
    let id = format!("{}-{}", env.name, here.deployments);
    let deployment = Deployment {
        id: id.clone(),
        release: release.name.clone(),
        version: release.version.clone(),
        digest: release.digest.clone(),
        started_at: now,
        healthy_since: None,
        applied_at: None,
        rollback_of,
    };
    here.previous = here.current.replace(deployment);
    here.checks = checks::aligned(&env.checks, &[]);
    id
}

/// Starts re-applying `target` here in place of the current release.
/// `announce` makes the Event that says so from the rollback's deployment id.
fn start_rollback(
    index: usize,
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    target: &Candidate,
    now: Timestamp,
    actions: &mut Vec<Action>,
    announce: impl FnOnce(&str) -> Action,
) {
    let from = here.current.as_ref().map(|c| c.release.clone());
    let id = begin(env, here, target, now, from);
    here.phase = EnvironmentPhase::RollingBack;
    here.awaiting = None;
    actions.push(announce(&id));
    actions.push(Action::Deploy { environment: index, release: target.name.clone(), id });
}

/// Carries out a rollback request if it still holds; returns whether a rollback started.
fn roll_back_on_request(
    index: usize,
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    request: &RollbackRequest,
    allowed: bool,
    input: &Input<'_>,
    actions: &mut Vec<Action>,
) -> bool {
    let Some(current) = here.current.clone() else { return false };
    let asked = request.to_string();
    // Made before the current deployment started (or already refused): it no longer holds.
    if current.id != request.after || here.refused_rollback.as_deref() == Some(asked.as_str()) {
        return false;
    }
    let target = input.releases.iter().find(|r| r.name == request.release);
    let refusal = if current.release == request.release {
        Some(format!("{} already runs {}", env.name, request.release))
    } else if !here.was_healthy(&request.release) {
        Some(format!("{} was never healthy in {} (as far as its history reaches)", request.release, env.name))
    } else if target.is_none() {
        Some(format!("Release {} is not packaged (or no longer exists)", request.release))
    } else if !allowed {
        Some(not_allowed(env))
    } else {
        None
    };
    let (Some(target), None) = (target, &refusal) else {
        let why = refusal.unwrap_or_default();
        here.refused_rollback = Some(asked);
        actions.push(warning(
            index,
            &request.release,
            "RollbackRefused",
            format!("rollback of {} to {} refused: {why}", env.name, request.release),
        ));
        return false;
    };
    here.reason = None;
    start_rollback(index, env, here, target, input.now, actions, |id| {
        let message = format!(
            "rolling {} back from {} to {} on request (deployment {id})",
            env.name, current.release, target.name
        );
        normal(index, &target.name, "RollingBack", message)
    });
    true
}

fn healthy(
    index: usize,
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    current: &Deployment,
    input: &Input<'_>,
    actions: &mut Vec<Action>,
) {
    finish(here, current, DeploymentResult::Succeeded, None, input.now, input.history_limit);
    here.phase = EnvironmentPhase::Healthy;
    actions.push(normal(index, &current.release, "Healthy", format!("{} is healthy in {}", current.release, env.name)));
}

/// The current deployment failed: roll back to the last healthy release when the pipeline
/// says so and there is one, else the environment is `Failed`.
#[allow(clippy::too_many_arguments)]
fn fail(
    index: usize,
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    current: &Deployment,
    why: String,
    input: &Input<'_>,
    actions: &mut Vec<Action>,
    wake: &mut impl FnMut(Duration),
) {
    let reason = format!("{} failed: {why}", current.release);
    if !input.rollback {
        return failed(index, env, here, current, format!("{why}; automatic rollback is off"), input, actions);
    }
    let Some(last) = here.rollback_target().map(|h| h.release.clone()) else {
        let why = format!("{why}; nothing could be restored: no earlier release was healthy in {}", env.name);
        return failed(index, env, here, current, why, input, actions);
    };
    let Some(target) = input.releases.iter().find(|r| r.name == last) else {
        let why = format!("{why}; nothing could be restored: {last}, the last release healthy here, is gone");
        return failed(index, env, here, current, why, input, actions);
    };
    finish(here, current, DeploymentResult::Failed, Some(why.clone()), input.now, input.history_limit);
    here.reason = Some(reason);
    start_rollback(index, env, here, target, input.now, actions, |id| {
        let message =
            format!("{} failed in {}: {why}; rolling back to {last} (deployment {id})", current.release, env.name);
        warning(index, &current.release, "RollingBack", message)
    });
    wake(Duration::ZERO);
}

fn failed(
    index: usize,
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    current: &Deployment,
    reason: String,
    input: &Input<'_>,
    actions: &mut Vec<Action>,
) {
    finish(here, current, DeploymentResult::Failed, Some(reason.clone()), input.now, input.history_limit);
    here.phase = EnvironmentPhase::Failed;
    here.reason = Some(reason.clone());
    actions.push(warning(
        index,
        &current.release,
        "DeploymentFailed",
        format!("{} failed in {}: {reason}", current.release, env.name),
    ));
}

/// "<release> failed: <why>; " when an automatic rollback is under way, else "".
fn prefix(here: &EnvironmentState) -> String {
    here.reason.as_deref().map_or(String::new(), |r| format!("{r}; "))
}

/// A rollback became healthy: the environment runs the restored release again.
fn restored(
    index: usize,
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    current: &Deployment,
    input: &Input<'_>,
    actions: &mut Vec<Action>,
) {
    let from = current.rollback_of.clone().unwrap_or_default();
    // The replaced release's entry: Failed for an automatic rollback (it becomes RolledBack),
    // Succeeded for a requested one (it stays so: it was healthy).
    let automatic =
        here.history.iter().find(|h| h.release == from).is_some_and(|h| h.result == DeploymentResult::Failed);
    let note = if automatic {
        format!("restored after {from} failed")
    } else {
        format!("restored on request in place of {from}")
    };
    finish(here, current, DeploymentResult::Succeeded, Some(note), input.now, input.history_limit);
    here.phase = EnvironmentPhase::Healthy;
    if automatic {
        if let Some(entry) = here.history.iter_mut().find(|h| h.release == from) {
            entry.result = DeploymentResult::RolledBack;
        }
        let message = format!("{}: {}rolled back to {}", env.name, prefix(here), current.release);
        here.reason = Some(format!("{}rolled back to {}", prefix(here), current.release));
        actions.push(warning(index, &from, "RolledBack", message));
    } else {
        here.reason = None;
        let message = format!("{} runs {} again in place of {from}", env.name, current.release);
        actions.push(normal(index, &current.release, "RolledBack", message));
    }
}

/// A rollback did not become healthy: the environment is `Failed`.
fn rollback_failed(
    index: usize,
    env: &EnvironmentSpec,
    here: &mut EnvironmentState,
    current: &Deployment,
    why: String,
    input: &Input<'_>,
    actions: &mut Vec<Action>,
) {
    let reason = format!("{}rollback to {} failed: {why}", prefix(here), current.release);
    finish(here, current, DeploymentResult::Failed, Some(why), input.now, input.history_limit);
    here.phase = EnvironmentPhase::Failed;
    here.reason = Some(reason.clone());
    actions.push(warning(index, &current.release, "RollbackFailed", format!("{}: {reason}", env.name)));
}

fn finish(
    here: &mut EnvironmentState,
    deployment: &Deployment,
    result: DeploymentResult,
    reason: Option<String>,
    now: Timestamp,
    limit: usize,
) {
    here.history.insert(
        0,
        Finished {
            id: deployment.id.clone(),
            release: deployment.release.clone(),
            version: deployment.version.clone(),
            result,
            started_at: deployment.started_at,
            finished_at: now,
            reason,
            rollback_of: deployment.rollback_of.clone(),
            checks: here.checks.clone(),
        },
    );
    here.history.truncate(limit.max(1));
}

/// The phase of a settled environment: how its current deployment ended.
fn settled_phase(here: &EnvironmentState) -> EnvironmentPhase {
    let Some(current) = &here.current else { return EnvironmentPhase::Idle };
    match here.history.iter().find(|h| h.id == current.id).map(|h| h.result) {
        Some(DeploymentResult::Succeeded) => EnvironmentPhase::Healthy,
        Some(_) => EnvironmentPhase::Failed,
        None => EnvironmentPhase::Idle,
    }
}

fn past(since: Timestamp, span: Duration, now: Timestamp) -> bool {
    remaining(since, span, now).is_zero()
}

fn remaining(since: Timestamp, span: Duration, now: Timestamp) -> Duration {
    let elapsed = now.duration_since(since);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    span.saturating_sub(elapsed)
}

fn normal(environment: usize, release: &str, reason: &'static str, message: String) -> Action {
    Action::Event(Event { warning: false, reason, message, environment, release: release.to_owned() })
}

fn warning(environment: usize, release: &str, reason: &'static str, message: String) -> Action {
    Action::Event(Event { warning: true, reason, message, environment, release: release.to_owned() })
}

#[cfg(test)]
mod tests;
