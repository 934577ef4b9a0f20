//! Two controller instances: exactly one holds the Lease and reconciles; when it stops (crash
//! or SIGTERM) the other takes over within the lease duration.

mod support;

use std::time::{Duration, Instant};

use conveyor::api::Pipeline;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::ControllerProcess;

const LEASE: &str = "conveyor-controller";
/// The tests run controllers with a 5 s lease.
const LEASE_DURATION: Duration = Duration::from_secs(5);
const RECONCILES: &str = "conveyor_reconcile_duration_seconds_count{controller=\"pipeline\"}";

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt(LEASE).await.ok().flatten()?.spec?.holder_identity.filter(|h| !h.is_empty())
}

async fn wait_leader(leases: &Api<Lease>, deadline: Duration) -> String {
    support::poll("a Lease holder", deadline, || holder(leases)).await
}

async fn apply_pipeline(api: &Api<Pipeline>, name: &str) {
    let obj = json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": name},
                     "spec": {"environments": [{"name": "dev", "namespace": format!("{name}-dev")}]}});
    api.patch(name, &PatchParams::apply("tests"), &Patch::Apply(&obj)).await.unwrap();
}

async fn reconciled(api: &Api<Pipeline>, name: &str) {
    support::wait_for(api, name, &format!("Pipeline {name} reconciled"), |p: &Pipeline| {
        p.status.as_ref().is_some_and(|s| s.observed_generation.is_some())
    })
    .await;
}

async fn pair(ns: &str) -> (ControllerProcess, ControllerProcess) {
    let a = ControllerProcess::start(ns, "replica-a");
    let b = ControllerProcess::start(ns, "replica-b");
    // Both are up and serving before anything is judged.
    for c in [&a, &b] {
        support::poll("controller /healthz", support::DEADLINE, || async {
            c.get("/healthz").await.filter(|(code, _)| *code == 200)
        })
        .await;
    }
    (a, b)
}

#[tokio::test]
async fn exactly_one_replica_leads_and_a_standby_takes_over_after_a_crash() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "leader").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let (a, b) = pair(&ns).await;

    let first = wait_leader(&leases, support::DEADLINE).await;
    let (mut leader, standby) = if first == a.identity { (a, b) } else { (b, a) };
    assert_eq!(first, leader.identity);

    apply_pipeline(&pipelines, "one").await;
    reconciled(&pipelines, "one").await;
    // Exactly one reconciles: the leader counted reconciles, the standby none.
    assert_eq!(leader.metric("conveyor_leader").await, Some(1.0));
    assert!(leader.metric(RECONCILES).await.unwrap_or(0.0) >= 1.0);
    assert_eq!(standby.metric("conveyor_leader").await, Some(0.0));
    assert_eq!(standby.metric(RECONCILES).await, None, "the standby reconciled");
    assert_eq!(holder(&leases).await.as_deref(), Some(leader.identity.as_str()));

    // A crash: no release of the Lease. The standby takes over once it expires.
    let crashed_at = Instant::now();
    leader.kill();
    let next = support::poll("the standby to take the Lease", LEASE_DURATION * 3, || async {
        holder(&leases).await.filter(|h| *h == standby.identity)
    })
    .await;
    let takeover = crashed_at.elapsed();
    eprintln!("takeover after a crash: {takeover:?} (lease duration {LEASE_DURATION:?})");
    assert_eq!(next, standby.identity);
    // Within the lease duration plus the renewal grace the standby needs to notice the expiry.
    assert!(takeover <= LEASE_DURATION + Duration::from_secs(3), "takeover took {takeover:?}");

    apply_pipeline(&pipelines, "two").await;
    reconciled(&pipelines, "two").await;
    assert_eq!(standby.metric("conveyor_leader").await, Some(1.0));
}

#[tokio::test]
async fn sigterm_stops_reconciling_releases_the_lease_and_exits_cleanly() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "handover").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let (a, b) = pair(&ns).await;

    let first = wait_leader(&leases, support::DEADLINE).await;
    let (mut leader, standby) = if first == a.identity { (a, b) } else { (b, a) };

    let stopped_at = Instant::now();
    assert_eq!(leader.terminate(), Some(0), "graceful shutdown exits 0:\n{}", leader.logs());
    // Released on the way out: nobody holds the Lease until the standby claims it.
    let after_exit = holder(&leases).await;
    assert!(after_exit.as_deref() != Some(leader.identity.as_str()), "the Lease is still held by the stopped leader");
    let next = support::poll("the standby to take the released Lease", LEASE_DURATION * 3, || async {
        holder(&leases).await.filter(|h| *h == standby.identity)
    })
    .await;
    eprintln!("handover after SIGTERM: {:?}", stopped_at.elapsed());
    assert_eq!(next, standby.identity);
    apply_pipeline(&pipelines, "after").await;
    reconciled(&pipelines, "after").await;
}

#[tokio::test]
async fn sigterm_right_after_start_exits_cleanly() {
    // Shutdown can arrive before the caches have synced; the process must still exit at once.
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "early-stop").await;
    let mut c = ControllerProcess::start(&ns, "early");
    support::poll("controller /healthz", support::DEADLINE, || async {
        c.get("/healthz").await.filter(|(code, _)| *code == 200)
    })
    .await;
    assert_eq!(c.terminate(), Some(0), "{}", c.logs());
}
