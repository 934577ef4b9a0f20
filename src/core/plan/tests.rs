use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const MIN: Duration = Duration::from_secs(60);

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

fn env(name: &str, manual: bool, soak: Duration) -> EnvironmentSpec {
    EnvironmentSpec {
        name: name.into(),
        namespace: format!("app-{name}"),
        manual,
        soak,
        timeout: 5 * MIN,
        checks: Vec::new(),
    }
}

fn release(version: &str) -> Candidate {
    Candidate {
        name: format!("app-{version}"),
        version: Version::parse(version).unwrap(),
        digest: format!("sha256:{version}"),
    }
}

fn inventory(name: &str) -> Vec<ObjectRef> {
    vec![ObjectRef { api_version: "v1".into(), kind: "ConfigMap".into(), namespace: None, name: name.into() }]
}

/// A pipeline under test: its spec, releases, state, and the gates and time of the next round.
struct World {
    environments: Vec<EnvironmentSpec>,
    allowed: Vec<bool>,
    paused: bool,
    approvals: BTreeMap<String, String>,
    rollbacks: BTreeMap<String, RollbackRequest>,
    rollback: bool,
    releases: Vec<Candidate>,
    state: Vec<EnvironmentState>,
    history_limit: usize,
}

impl World {
    fn new(environments: Vec<EnvironmentSpec>, releases: &[&str]) -> Self {
        let n = environments.len();
        Self {
            environments,
            allowed: vec![true; n],
            paused: false,
            approvals: BTreeMap::new(),
            rollbacks: BTreeMap::new(),
            rollback: false,
            releases: releases.iter().map(|v| release(v)).collect(),
            state: vec![EnvironmentState::default(); n],
            history_limit: 10,
        }
    }

    fn three() -> Self {
        Self::new(
            vec![
                env("dev", false, Duration::ZERO),
                env("staging", false, Duration::ZERO),
                env("prod", false, Duration::ZERO),
            ],
            &["1.0.0"],
        )
    }

    /// Plans one round with these observations (by environment index) and keeps the new state.
    fn round(&mut self, now: Timestamp, observed: &[(usize, Observation)]) -> Plan {
        let mut all = vec![Observation::default(); self.environments.len()];
        for (i, o) in observed {
            all[*i] = o.clone();
        }
        let plan = plan(&Input {
            environments: &self.environments,
            allowed: &self.allowed,
            paused: self.paused,
            approvals: &self.approvals,
            rollbacks: &self.rollbacks,
            rollback: self.rollback,
            releases: &self.releases,
            state: &self.state,
            observed: &all,
            history_limit: self.history_limit,
            now,
        });
        self.state = plan.state.clone();
        plan
    }

    fn phases(&self) -> Vec<EnvironmentPhase> {
        self.state.iter().map(|s| s.phase).collect()
    }

    fn current(&self, i: usize) -> Option<&str> {
        self.state[i].current.as_ref().map(|c| c.release.as_str())
    }
}

fn applied(name: &str) -> Observation {
    Observation {
        deploy: Some(DeployOutcome::Applied { inventory: inventory(name) }),
        health: None,
        samples: Vec::new(),
    }
}

fn health(h: Health) -> Observation {
    Observation { deploy: None, health: Some(h), samples: Vec::new() }
}

fn deploys(plan: &Plan) -> Vec<(usize, &str)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Deploy { environment, release, .. } => Some((*environment, release.as_str())),
            Action::Event(_) => None,
        })
        .collect()
}

fn events(plan: &Plan) -> Vec<&'static str> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e.reason),
            Action::Deploy { .. } => None,
        })
        .collect()
}

use EnvironmentPhase::*;

#[test]
fn the_first_environment_takes_the_newest_packaged_release() {
    let mut w = World::three();
    w.releases = ["1.0.0", "1.2.0", "1.1.0"].iter().map(|v| release(v)).collect();
    let plan = w.round(t(0), &[]);
    assert_eq!(deploys(&plan), [(0, "app-1.2.0")]);
    assert_eq!(events(&plan), ["Deploying"]);
    assert_eq!(w.phases(), [Deploying, Idle, Idle]);
    let current = w.state[0].current.clone().unwrap();
    assert_eq!((current.id.as_str(), current.started_at), ("dev-1", t(0)));
    assert_eq!(plan.requeue, Some(Duration::ZERO));
}

#[test]
fn nothing_happens_without_releases() {
    let mut w = World::three();
    w.releases.clear();
    let plan = w.round(t(0), &[]);
    assert_eq!(plan.actions, []);
    assert_eq!(plan.requeue, None);
    assert_eq!(w.phases(), [Idle, Idle, Idle]);
}

#[test]
fn a_release_walks_every_environment_in_order() {
    let mut w = World::three();
    w.round(t(0), &[]);
    for i in 0..3 {
        assert_eq!(w.phases()[i], Deploying, "env {i}");
        let plan = w.round(t(10 * i as i64 + 1), &[(i, applied("web"))]);
        assert_eq!(w.phases()[i], Verifying);
        assert_eq!(w.state[i].inventory, inventory("web"));
        assert_eq!(deploys(&plan), []);
        let plan = w.round(t(10 * i as i64 + 2), &[(i, health(Health::Progressing("0/2 ready".into())))]);
        assert_eq!(w.phases()[i], Verifying);
        assert_eq!(plan.requeue, Some(VERIFY_POLL));
        let plan = w.round(t(10 * i as i64 + 5), &[(i, health(Health::Ready))]);
        assert_eq!(w.phases()[i], Healthy);
        let entry = &w.state[i].history[0];
        // Each environment started when the one before became healthy.
        let started = if i == 0 { t(0) } else { t(10 * (i as i64 - 1) + 5) };
        assert_eq!(
            (entry.result, entry.started_at, entry.finished_at),
            (DeploymentResult::Succeeded, started, t(10 * i as i64 + 5))
        );
        if i < 2 {
            // Promoted in the same round, once healthy.
            assert_eq!(deploys(&plan), [(i + 1, "app-1.0.0")]);
            assert_eq!(events(&plan), ["Healthy", "Promoting"]);
            assert_eq!(w.state[i + 1].current.as_ref().unwrap().started_at, t(10 * i as i64 + 5));
        } else {
            assert_eq!(deploys(&plan), []);
        }
    }
    assert_eq!(w.phases(), [Healthy, Healthy, Healthy]);
    // Settled: nothing more to do, and the release is never deployed again.
    let plan = w.round(t(100), &[]);
    assert_eq!((plan.actions.len(), plan.requeue), (0, None));
}

#[test]
fn soak_holds_promotion_until_it_has_passed_healthy() {
    let mut w = World::new(vec![env("dev", false, 10 * MIN), env("prod", false, Duration::ZERO)], &["1.0.0"]);
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("web"))]);
    let plan = w.round(t(2), &[(0, health(Health::Ready))]);
    assert_eq!(w.phases(), [Soaking, Idle]);
    assert_eq!(w.state[0].current.as_ref().unwrap().healthy_since, Some(t(2)));
    assert_eq!(plan.requeue, Some(10 * MIN));
    let plan = w.round(t(300), &[(0, health(Health::Ready))]);
    assert_eq!((w.phases(), deploys(&plan)), (vec![Soaking, Idle], vec![]));
    assert_eq!(plan.requeue, Some(VERIFY_POLL));
    let plan = w.round(t(602), &[(0, health(Health::Ready))]);
    assert_eq!(w.phases(), [Healthy, Deploying]);
    assert_eq!(deploys(&plan), [(1, "app-1.0.0")]);
}

#[test]
fn unhealthy_while_soaking_fails() {
    let mut w = World::new(vec![env("dev", false, 10 * MIN), env("prod", false, Duration::ZERO)], &["1.0.0"]);
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("web"))]);
    w.round(t(2), &[(0, health(Health::Ready))]);
    let plan = w.round(t(60), &[(0, health(Health::Progressing("1/2 ready".into())))]);
    assert_eq!(w.phases(), [Failed, Idle]);
    assert_eq!(
        w.state[0].reason.as_deref(),
        Some("became unhealthy while soaking: 1/2 ready; automatic rollback is off")
    );
    assert_eq!(events(&plan), ["DeploymentFailed"]);
    assert_eq!(w.state[0].history[0].result, DeploymentResult::Failed);
}

#[test]
fn verification_fails_at_the_timeout_or_at_once_on_a_hard_failure() {
    let mut w = World::three();
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("web"))]);
    let plan = w.round(t(299), &[(0, health(Health::Progressing("0/2 ready".into())))]);
    assert_eq!(plan.requeue, Some(Duration::from_secs(1)));
    w.round(t(300), &[(0, health(Health::Progressing("0/2 ready".into())))]);
    assert_eq!(w.phases(), [Failed, Idle, Idle]);
    assert_eq!(w.state[0].reason.as_deref(), Some("not healthy within 5m: 0/2 ready; automatic rollback is off"));

    let mut w = World::three();
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("web"))]);
    w.round(t(2), &[(0, health(Health::Failed("ProgressDeadlineExceeded".into())))]);
    assert_eq!(w.phases(), [Failed, Idle, Idle]);
    assert_eq!(w.state[0].reason.as_deref(), Some("ProgressDeadlineExceeded; automatic rollback is off"));
}

#[test]
fn a_failed_release_is_never_retried_nor_promoted_but_a_newer_one_goes() {
    let mut w = World::three();
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("web"))]);
    w.round(t(2), &[(0, health(Health::Failed("crash".into())))]);
    let plan = w.round(t(3), &[]);
    assert_eq!(plan.actions, []);
    assert_eq!(w.phases(), [Failed, Idle, Idle]);
    w.releases.push(release("1.0.1"));
    let plan = w.round(t(4), &[]);
    assert_eq!(deploys(&plan), [(0, "app-1.0.1")]);
    assert_eq!(w.state[0].previous.as_ref().unwrap().release, "app-1.0.0");
}

#[test]
fn a_rejected_deployment_leaves_the_environment_on_what_it_ran() {
    let mut w = World::three();
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("v1"))]);
    w.round(t(2), &[(0, health(Health::Ready))]);
    w.releases.push(release("1.1.0"));
    w.round(t(3), &[]);
    assert_eq!(w.current(0), Some("app-1.1.0"));
    let rejected = Observation {
        deploy: Some(DeployOutcome::Rejected { reason: "ConfigMap/bad: invalid name".into() }),
        health: None,
        samples: Vec::new(),
    };
    let plan = w.round(t(4), &[(0, rejected)]);
    assert_eq!(w.phases()[0], Failed);
    assert_eq!(w.current(0), Some("app-1.0.0"));
    assert_eq!(w.state[0].inventory, inventory("v1"));
    assert_eq!(w.state[0].reason.as_deref(), Some("app-1.1.0 was not applied: ConfigMap/bad: invalid name"));
    assert_eq!(events(&plan), ["DeployFailed"]);
    // 1.0.0 had already gone on to staging; 1.1.0 does not follow.
    assert_eq!(w.current(1), Some("app-1.0.0"));
    assert!(!deploys(&plan).iter().any(|(_, r)| *r == "app-1.1.0"));
}

#[test]
fn a_restart_mid_deploy_applies_the_same_deployment_again() {
    let mut w = World::three();
    w.round(t(0), &[]);
    let plan = w.round(t(5), &[]);
    assert_eq!(plan.actions, [Action::Deploy { environment: 0, release: "app-1.0.0".into(), id: "dev-1".into() }]);
    assert_eq!(w.state[0].deployments, 1);
}

#[test]
fn a_manual_environment_waits_for_approval_of_that_release() {
    let mut w = World::new(vec![env("dev", false, Duration::ZERO), env("prod", true, Duration::ZERO)], &["1.0.0"]);
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("web"))]);
    let plan = w.round(t(2), &[(0, health(Health::Ready))]);
    assert_eq!(w.phases(), [Healthy, AwaitingApproval]);
    assert_eq!(w.state[1].awaiting.as_deref(), Some("app-1.0.0"));
    assert_eq!(events(&plan), ["Healthy", "AwaitingApproval"]);
    // Waiting is announced once.
    assert_eq!(w.round(t(3), &[]).actions, []);
    // Approving another release does not let this one in.
    w.approvals.insert("prod".into(), "app-0.9.0".into());
    assert_eq!(deploys(&w.round(t(4), &[])), []);
    w.approvals.insert("prod".into(), "app-1.0.0".into());
    assert_eq!(deploys(&w.round(t(5), &[])), [(1, "app-1.0.0")]);
    assert_eq!(w.state[1].awaiting, None);
}

#[test]
fn paused_pipelines_start_nothing_but_finish_what_is_in_flight() {
    let mut w = World::three();
    w.round(t(0), &[]);
    w.paused = true;
    w.round(t(1), &[(0, applied("web"))]);
    let plan = w.round(t(2), &[(0, health(Health::Ready))]);
    assert_eq!(w.phases(), [Healthy, Idle, Idle]);
    assert_eq!(deploys(&plan), []);
    assert_eq!(plan.held, [(1, "app-1.0.0".to_owned())], "the plan says what the pause holds");
    w.paused = false;
    let plan = w.round(t(3), &[]);
    assert_eq!(deploys(&plan), [(1, "app-1.0.0")]);
    assert_eq!(plan.held, []);
}

#[test]
fn a_namespace_without_the_opt_in_is_never_deployed_to() {
    let mut w = World::three();
    w.allowed[1] = false;
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("web"))]);
    let plan = w.round(t(2), &[(0, health(Health::Ready))]);
    assert_eq!(deploys(&plan), []);
    assert_eq!(events(&plan), ["Healthy", "NamespaceNotAllowed"]);
    assert!(w.state[1].reason.as_deref().unwrap().contains("namespace app-staging does not allow this pipeline"));
    assert_eq!(w.round(t(3), &[]).actions, []);
}

#[test]
fn a_newer_release_follows_an_older_one_and_never_overtakes_it() {
    let mut w = World::three();
    w.round(t(0), &[]);
    w.releases.push(release("1.1.0"));
    // dev is busy with 1.0.0: 1.1.0 waits.
    assert_eq!(deploys(&w.round(t(1), &[(0, applied("web"))])), []);
    // 1.0.0 healthy in dev: it goes to staging, and dev takes 1.1.0.
    let plan = w.round(t(2), &[(0, health(Health::Ready))]);
    assert_eq!(deploys(&plan), [(0, "app-1.1.0"), (1, "app-1.0.0")]);
    w.round(t(3), &[(0, applied("web")), (1, applied("web"))]);
    // 1.1.0 healthy in dev first; staging is still verifying 1.0.0, so 1.1.0 waits.
    let plan = w.round(t(4), &[(0, health(Health::Ready))]);
    assert_eq!(deploys(&plan), []);
    assert_eq!(w.current(1), Some("app-1.0.0"));
    let plan = w.round(t(5), &[(1, health(Health::Ready))]);
    assert_eq!(deploys(&plan), [(1, "app-1.1.0"), (2, "app-1.0.0")]);
}

#[test]
fn history_is_bounded_newest_first() {
    let mut w = World::new(vec![env("dev", false, Duration::ZERO)], &[]);
    w.history_limit = 3;
    for minor in 0..5 {
        w.releases.push(release(&format!("1.{minor}.0")));
        let at = 10 * minor as i64;
        w.round(t(at), &[]);
        w.round(t(at + 1), &[(0, applied("web"))]);
        w.round(t(at + 2), &[(0, health(Health::Ready))]);
    }
    let versions: Vec<String> = w.state[0].history.iter().map(|h| h.version.to_string()).collect();
    assert_eq!(versions, ["1.4.0", "1.3.0", "1.2.0"]);
    let ids: Vec<&str> = w.state[0].history.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["dev-5", "dev-4", "dev-3"]);
}

#[test]
fn an_older_release_arriving_late_is_not_deployed() {
    let mut w = World::new(vec![env("dev", false, Duration::ZERO)], &["2.0.0"]);
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("web"))]);
    w.round(t(2), &[(0, health(Health::Ready))]);
    w.releases.push(release("1.9.0"));
    assert_eq!(w.round(t(3), &[]).actions, []);
}

#[test]
fn after_a_rejected_release_an_older_one_does_not_start() {
    // Found by the property test: the environment went back to nothing, and 1.0.0 looked new.
    let mut w = World::new(vec![env("dev", false, Duration::ZERO)], &["1.0.0", "1.1.0"]);
    w.round(t(0), &[]);
    let rejected = Observation {
        deploy: Some(DeployOutcome::Rejected { reason: "refused".into() }),
        health: None,
        samples: Vec::new(),
    };
    let plan = w.round(t(1), &[(0, rejected)]);
    assert_eq!(deploys(&plan), []);
    assert_eq!((w.phases(), w.current(0)), (vec![Failed], None));
}

#[test]
fn namespaces_opt_in_by_label() {
    let labels = |from: &str| BTreeMap::from([(ALLOW_FROM_LABEL.to_owned(), from.to_owned())]);
    assert!(namespace_allowed("shop", "shop", None));
    assert!(namespace_allowed("shop", "shop-prod", Some(&labels("shop"))));
    assert!(!namespace_allowed("shop", "shop-prod", Some(&labels("other"))));
    assert!(!namespace_allowed("shop", "shop-prod", Some(&BTreeMap::new())));
    assert!(!namespace_allowed("shop", "shop-prod", None));
}

// Health checks and rollback.

fn check(name: &str, interval: u64, failure_limit: u32) -> CheckSpec {
    CheckSpec {
        name: name.into(),
        kind: crate::api::release::CheckType::Http,
        interval: Duration::from_secs(interval),
        success_threshold: 1,
        failure_limit,
        on_no_data: checks::Inconclusive::Fail,
        on_unreachable: checks::Inconclusive::Fail,
    }
}

/// Workloads ready and these check samples.
fn probed(samples: Vec<(usize, Sample)>) -> Observation {
    Observation { deploy: None, health: Some(Health::Ready), samples }
}

fn pass() -> Sample {
    Sample::Pass("GET /healthz: 200".into())
}

fn fail() -> Sample {
    Sample::Fail("GET /healthz: 503, expected 200".into())
}

/// Two environments (`dev` checked by one HTTP check every 5 s), rollback on, 1.0.0 healthy
/// everywhere and 1.1.0 applied in dev, its workloads ready, its check not probed yet.
fn second_release_verifying() -> World {
    let mut w = World::new(vec![env("dev", false, Duration::ZERO), env("prod", false, Duration::ZERO)], &["1.0.0"]);
    w.environments[0].checks = vec![check("healthz", 5, 0)];
    w.rollback = true;
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("v1"))]);
    w.round(t(2), &[(0, probed(vec![(0, pass())]))]);
    w.round(t(3), &[(1, applied("v1"))]);
    w.round(t(4), &[(1, health(Health::Ready))]);
    assert_eq!(w.phases(), [Healthy, Healthy]);
    w.releases.push(release("1.1.0"));
    w.round(t(10), &[]);
    w.round(t(11), &[(0, applied("v2"))]);
    w
}

#[test]
fn checks_must_pass_before_an_environment_is_healthy_and_keep_their_pace() {
    let mut w = second_release_verifying();
    assert_eq!(w.state[0].checks[0].result, crate::api::release::CheckVerdict::Pending);
    // Workloads ready, check not probed: still verifying, and looked at again when it is due.
    let plan = w.round(t(12), &[(0, health(Health::Ready))]);
    assert_eq!(w.phases(), [Verifying, Healthy]);
    assert_eq!(plan.requeue, Some(Duration::ZERO));
    assert_eq!(checks_to_probe(&w.environments[0], &w.state[0], &Health::Ready, t(12)), [0]);
    assert_eq!(
        checks_to_probe(&w.environments[0], &w.state[0], &Health::Progressing("0/1".into()), t(12)),
        Vec::<usize>::new()
    );
    let plan = w.round(t(13), &[(0, probed(vec![(0, pass())]))]);
    assert_eq!(w.phases(), [Healthy, Deploying]);
    assert_eq!(deploys(&plan), [(1, "app-1.1.0")]);
    let state = &w.state[0].checks[0];
    assert_eq!((state.successes, state.at), (1, Some(t(13))));
}

#[test]
fn a_failing_check_rolls_back_to_the_last_healthy_release() {
    let mut w = second_release_verifying();
    let plan = w.round(t(12), &[(0, probed(vec![(0, fail())]))]);
    assert_eq!(w.phases(), [RollingBack, Healthy]);
    assert_eq!(deploys(&plan), [(0, "app-1.0.0")]);
    assert_eq!(events(&plan), ["RollingBack"]);
    let Action::Event(e) = &plan.actions[0] else { panic!() };
    assert!(e.warning && e.message.contains("HTTP check healthz failed") && e.message.contains("dev-3"), "{e:?}");
    let current = w.state[0].current.clone().unwrap();
    assert_eq!((current.id.as_str(), current.release.as_str()), ("dev-3", "app-1.0.0"));
    assert_eq!(current.rollback_of.as_deref(), Some("app-1.1.0"));
    assert_eq!(w.state[0].previous.as_ref().unwrap().release, "app-1.1.0");
    // The failed release: Failed in history, and the newest version here, so never retried.
    assert_eq!(
        (w.state[0].history[0].release.as_str(), w.state[0].history[0].result),
        ("app-1.1.0", DeploymentResult::Failed)
    );
    assert_eq!(w.state[0].newest, Some(Version::parse("1.1.0").unwrap()));
    // Its checks are kept as they stood; the rollback's start afresh.
    assert_eq!(w.state[0].history[0].checks[0].result, crate::api::release::CheckVerdict::Failed);
    assert_eq!(w.state[0].checks[0].result, crate::api::release::CheckVerdict::Pending);

    // A restart before the apply applies the same rollback again.
    let plan = w.round(t(13), &[]);
    assert_eq!(deploys(&plan), [(0, "app-1.0.0")]);
    assert_eq!(w.state[0].current.as_ref().unwrap().id, "dev-3");
    // Applied (the deploy prunes what 1.1.0 added): the rollback is verified, tolerantly.
    w.round(t(14), &[(0, applied("v1"))]);
    assert_eq!(w.state[0].current.as_ref().unwrap().applied_at, Some(t(14)));
    assert_eq!(w.state[0].inventory, inventory("v1"));
    w.round(t(15), &[(0, probed(vec![(0, fail())]))]);
    assert_eq!(w.phases(), [RollingBack, Healthy], "signals of the failed release may linger");
    let plan = w.round(t(20), &[(0, probed(vec![(0, pass())]))]);
    assert_eq!(w.phases(), [Healthy, Healthy]);
    assert_eq!(events(&plan), ["RolledBack"]);
    let history = &w.state[0].history;
    assert_eq!((history[0].id.as_str(), history[0].result), ("dev-3", DeploymentResult::Succeeded));
    assert_eq!(history[0].rollback_of.as_deref(), Some("app-1.1.0"));
    assert_eq!((history[1].release.as_str(), history[1].result), ("app-1.1.0", DeploymentResult::RolledBack));
    let reason = w.state[0].reason.clone().unwrap();
    assert!(
        reason.starts_with("app-1.1.0 failed: HTTP check healthz failed")
            && reason.ends_with("rolled back to app-1.0.0"),
        "{reason}"
    );
    // The failed release never advances; nothing more happens.
    let plan = w.round(t(30), &[]);
    assert_eq!((deploys(&plan), w.current(1)), (vec![], Some("app-1.0.0")));
    // A later release still goes, and clears the rollback's reason.
    w.releases.push(release("1.2.0"));
    let plan = w.round(t(40), &[]);
    assert_eq!(deploys(&plan), [(0, "app-1.2.0")]);
    assert_eq!(w.state[0].reason, None);
}

#[test]
fn a_timeout_or_a_failure_while_soaking_rolls_back_too() {
    let mut w = second_release_verifying();
    w.round(t(311), &[(0, health(Health::Progressing("0/1 ready".into())))]);
    assert_eq!(w.phases()[0], RollingBack);
    assert!(w.state[0].history[0].reason.as_deref().unwrap().starts_with("not healthy within 5m"));

    let mut w = second_release_verifying();
    w.environments[0].soak = 10 * MIN;
    w.round(t(12), &[(0, probed(vec![(0, pass())]))]);
    assert_eq!(w.phases()[0], Soaking);
    // Checks keep running through the soak.
    let plan = w.round(t(13), &[(0, health(Health::Ready))]);
    assert_eq!(plan.requeue, Some(Duration::from_secs(4)));
    w.round(t(17), &[(0, probed(vec![(0, fail())]))]);
    assert_eq!(w.phases()[0], RollingBack);
    assert!(w.state[0].history[0].reason.as_deref().unwrap().starts_with("became unhealthy while soaking"));
}

#[test]
fn without_an_earlier_healthy_release_nothing_can_be_restored() {
    let mut w = World::three();
    w.rollback = true;
    w.round(t(0), &[]);
    w.round(t(1), &[(0, applied("v1"))]);
    let plan = w.round(t(2), &[(0, health(Health::Failed("crash".into())))]);
    assert_eq!(w.phases(), [Failed, Idle, Idle]);
    assert_eq!(deploys(&plan), []);
    assert_eq!(
        w.state[0].reason.as_deref(),
        Some("crash; nothing could be restored: no earlier release was healthy in dev")
    );
}

#[test]
fn a_rollback_that_does_not_become_healthy_leaves_the_environment_failed() {
    let mut w = second_release_verifying();
    w.round(t(12), &[(0, probed(vec![(0, fail())]))]);
    w.round(t(13), &[(0, applied("v1"))]);
    let plan = w.round(t(14), &[(0, health(Health::Failed("Deployment/web exceeded its progress deadline".into())))]);
    assert_eq!(w.phases()[0], Failed);
    assert_eq!(events(&plan), ["RollbackFailed"]);
    let reason = w.state[0].reason.clone().unwrap();
    assert!(reason.contains("rollback to app-1.0.0 failed: Deployment/web exceeded"), "{reason}");
    // No rollback of a rollback.
    assert_eq!(w.round(t(15), &[]).actions, []);

    let mut w = second_release_verifying();
    w.round(t(12), &[(0, probed(vec![(0, fail())]))]);
    w.round(t(13), &[(0, applied("v1"))]);
    w.round(t(12 + 300), &[(0, probed(vec![(0, fail())]))]);
    assert_eq!(w.phases()[0], Failed);
    assert!(w.state[0].reason.as_deref().unwrap().contains("rollback to app-1.0.0 failed: not healthy within 5m"));
}

#[test]
fn a_requested_rollback_runs_once_and_only_to_a_release_healthy_there() {
    let mut w = second_release_verifying();
    w.round(t(12), &[(0, probed(vec![(0, pass())]))]);
    w.round(t(13), &[(1, applied("v2"))]);
    assert_eq!(w.phases(), [Healthy, Verifying]);
    // Asking for a release that never ran in dev: refused, once.
    let request = |release: &str, after: &str| RollbackRequest { release: release.into(), after: after.into() };
    w.rollbacks.insert("dev".into(), request("app-0.9.0", "dev-2"));
    let plan = w.round(t(14), &[]);
    assert_eq!(events(&plan), ["RollbackRefused"]);
    assert_eq!(w.state[0].refused_rollback.as_deref(), Some("app-0.9.0@dev-2"));
    assert_eq!(w.round(t(15), &[]).actions, []);
    // A request made before the current deployment started no longer holds.
    w.rollbacks.insert("dev".into(), request("app-1.0.0", "dev-1"));
    assert_eq!(w.round(t(16), &[]).actions, []);
    // A valid one rolls back; the release rolled back from is no longer promoted on.
    w.rollbacks.insert("dev".into(), request("app-1.0.0", "dev-2"));
    let plan = w.round(t(17), &[]);
    assert_eq!(deploys(&plan), [(0, "app-1.0.0")]);
    assert_eq!(events(&plan), ["RollingBack"]);
    assert!(!w.state[0].passed("app-1.1.0"));
    w.round(t(18), &[(0, applied("v1"))]);
    let plan = w.round(t(19), &[(0, probed(vec![(0, pass())]))]);
    assert_eq!(events(&plan), ["RolledBack"]);
    assert_eq!(w.phases()[0], Healthy);
    assert_eq!(w.state[0].reason, None, "a requested rollback is no failure");
    let history = &w.state[0].history;
    assert_eq!((history[0].release.as_str(), history[0].result), ("app-1.0.0", DeploymentResult::Succeeded));
    assert_eq!((history[1].release.as_str(), history[1].result), ("app-1.1.0", DeploymentResult::Succeeded));
    // The request is spent: the environment runs another deployment now.
    assert_eq!(w.round(t(20), &[]).actions, []);
}

// Property tests: random pipelines driven by random observations, gates and arrivals.

/// One random event of the world between two rounds.
#[derive(Clone, Debug)]
enum Step {
    Apply { env: usize, reject: bool },
    Health { env: usize, health: u8 },
    Approve { env: usize },
    Pause(bool),
    NewRelease,
    Wait(u64),
    Probe { env: usize, pass: bool },
    RequestRollback { env: usize, valid: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..4usize, prop::bool::weighted(0.1)).prop_map(|(env, reject)| Step::Apply { env, reject }),
        4 => (0..4usize, 0..3u8).prop_map(|(env, health)| Step::Health { env, health }),
        1 => (0..4usize).prop_map(|env| Step::Approve { env }),
        1 => any::<bool>().prop_map(Step::Pause),
        1 => Just(Step::NewRelease),
        2 => (1..400u64).prop_map(Step::Wait),
        3 => (0..4usize, prop::bool::weighted(0.7)).prop_map(|(env, pass)| Step::Probe { env, pass }),
        1 => (0..4usize, any::<bool>()).prop_map(|(env, valid)| Step::RequestRollback { env, valid }),
    ]
}

fn pipeline() -> impl Strategy<Value = (Vec<EnvironmentSpec>, Vec<bool>)> {
    prop::collection::vec((any::<bool>(), 0..3u64, prop::bool::weighted(0.9), any::<bool>()), 1..=4).prop_map(|envs| {
        let specs = envs
            .iter()
            .enumerate()
            .map(|(i, (manual, soak, _, checked))| EnvironmentSpec {
                checks: if *checked { vec![check("healthz", 10, 1)] } else { Vec::new() },
                ..env(&format!("e{i}"), *manual, Duration::from_secs(soak * 60))
            })
            .collect();
        (specs, envs.iter().map(|e| e.2).collect())
    })
}

proptest! {
    // Failures found are kept as unit tests above, not in a regressions file.
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_whatever_happens((environments, allowed) in pipeline(), rollback in any::<bool>(), steps in prop::collection::vec(step(), 1..120)) {
        let n = environments.len();
        let mut w = World::new(environments, &["1.0.0"]);
        w.allowed = allowed;
        w.rollback = rollback;
        let mut now = 0i64;
        let mut next_minor = 1;
        // Per environment, the versions started there, in order.
        let mut started: Vec<Vec<Version>> = vec![Vec::new(); n];
        let mut pending = Vec::new();
        for step in steps {
            match step {
                Step::Apply { env, reject } if env < n => {
                    let deploy = if reject {
                        DeployOutcome::Rejected { reason: "refused".into() }
                    } else {
                        DeployOutcome::Applied { inventory: inventory("web") }
                    };
                    pending.push((env, Observation { deploy: Some(deploy), health: None, samples: Vec::new() }));
                }
                Step::Health { env, health } if env < n => {
                    let health = match health { 0 => Health::Ready, 1 => Health::Progressing("starting".into()), _ => Health::Failed("crash".into()) };
                    pending.push((env, Observation { deploy: None, health: Some(health), samples: Vec::new() }));
                }
                Step::Approve { env } if env < n => {
                    if let Some(r) = w.state[env].awaiting.clone() {
                        w.approvals.insert(w.environments[env].name.clone(), r);
                    }
                }
                Step::Pause(p) => w.paused = p,
                Step::NewRelease => {
                    w.releases.push(release(&format!("1.{next_minor}.0")));
                    next_minor += 1;
                }
                Step::Wait(s) => now += s as i64,
                Step::Probe { env, pass } if env < n && !w.environments[env].checks.is_empty() => {
                    let sample = if pass { Sample::Pass("200".into()) } else { Sample::Fail("503".into()) };
                    pending.push((env, Observation { deploy: None, health: Some(Health::Ready), samples: vec![(0, sample)] }));
                }
                Step::RequestRollback { env, valid } if env < n => {
                    let Some(current) = w.state[env].current.clone() else { continue };
                    let release = match (valid, w.state[env].rollback_target()) {
                        (true, Some(target)) => target.release.clone(),
                        _ => "app-0.0.1".to_owned(),
                    };
                    w.rollbacks.insert(w.environments[env].name.clone(), RollbackRequest { release, after: current.id });
                }
                _ => continue,
            }
            // Only one observation per environment per round: the last one wins.
            let mut observed: BTreeMap<usize, Observation> = BTreeMap::new();
            for (env, o) in pending.drain(..) {
                observed.insert(env, o);
            }
            let observed: Vec<(usize, Observation)> = observed.into_iter().collect();
            let before = w.state.clone();
            let plan = w.round(t(now), &observed);
            let mut new_here = vec![false; n];
            for action in &plan.actions {
                let Action::Deploy { environment: i, release, id } = action else { continue };
                let i = *i;
                let is_new = before[i].current.as_ref().is_none_or(|c| c.id != *id);
                if !is_new {
                    // A repeated apply is of the deployment already in flight.
                    prop_assert!(matches!(before[i].phase, Deploying | RollingBack), "{:?}", before[i].phase);
                    continue;
                }
                prop_assert!(!new_here[i], "two deployments started at once in {}", i);
                new_here[i] = true;
                let now_current = plan.state[i].current.as_ref().unwrap();
                prop_assert_eq!(&now_current.id, id);
                if let Some(from) = &now_current.rollback_of {
                    // A rollback restores the last release healthy here (what the request named,
                    // when asked for), in place of the one that ran, and never a rollback of a rollback.
                    let ran = plan.state[i].previous.as_ref().unwrap();
                    prop_assert_eq!(from, &ran.release);
                    let ran_healthy = plan.state[i].history.iter().any(|h| h.id == ran.id && h.result == DeploymentResult::Succeeded);
                    prop_assert!(ran.rollback_of.is_none() || ran_healthy, "automatic rollback of a rollback in {}", i);
                    let ran_failed = plan.state[i].history.iter().any(|h| h.id == ran.id && h.result == DeploymentResult::Failed);
                    let automatic = w.rollback && ran_failed && before[i].rollback_target().map(|h| &h.release) == Some(release);
                    let requested = w
                        .rollbacks
                        .get(&w.environments[i].name)
                        .is_some_and(|r| r.release == *release && r.after == ran.id);
                    prop_assert!(automatic || requested, "{} restored in {} neither as the last healthy release nor on request", release, i);
                    prop_assert!(before[i].was_healthy(release), "{} restored in {} where it never was healthy", release, i);
                    prop_assert!(w.allowed[i]);
                    continue;
                }
                // Never into a namespace the pipeline may not use, never while paused.
                prop_assert!(w.allowed[i], "deployed into a forbidden namespace {}", i);
                prop_assert!(!w.paused);
                // One at a time: what ran here before has finished (this round or earlier).
                if let Some(previous) = &before[i].current {
                    prop_assert!(
                        plan.state[i].history.iter().any(|h| h.id == previous.id) || before[i].history.iter().any(|h| h.id == previous.id),
                        "env {} started {} while {} was unfinished", i, release, previous.release
                    );
                }
                // Nothing skipped: healthy (and soaked) in the environment before, as of this round.
                if i > 0 {
                    prop_assert!(plan.state[i - 1].passed(release), "{} entered env {} without passing env {}", release, i, i - 1);
                }
                // Approved when manual.
                if w.environments[i].manual {
                    prop_assert_eq!(w.approvals.get(&w.environments[i].name), Some(release));
                }
                let version = w.releases.iter().find(|r| r.name == *release).unwrap().version.clone();
                // In version order: a newer release never goes before an older one.
                if let Some(last) = started[i].last() {
                    prop_assert!(version > *last, "{} after {} in env {}", version, last, i);
                }
                started[i].push(version);
            }
            for (i, s) in plan.state.iter().enumerate() {
                prop_assert!(s.history.len() <= w.history_limit);
                // A current release in flight is the one last started (or one it restores).
                match s.current.as_ref().filter(|_| s.in_flight()) {
                    Some(c) if c.rollback_of.is_some() => prop_assert!(started[i].contains(&c.version)),
                    Some(c) => prop_assert_eq!(Some(&c.version), started[i].last()),
                    None => {}
                }
                if s.phase == AwaitingApproval {
                    prop_assert!(w.environments[i].manual && s.awaiting.is_some());
                }
            }
        }
    }
}
