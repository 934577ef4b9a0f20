//! Automatic rollback latency: how soon the previous release is back after a health check fails
//! mid-soak, on the real control plane with the controller running as its own process (the
//! scenario of `tests/rollback.rs::an_http_check_failing_mid_soak_rolls_back`, timed).
//!
//! Each run builds its own world (namespaces, git repository, controller, test kubelet, an HTTP
//! stand-in for the application): release 1.0.0 goes Healthy, release 1.1.0 starts a 60 s soak
//! under an HTTP check probed every second, then the stand-in's `/healthz` starts answering 503.
//! Four moments are taken on the bench's monotonic clock:
//!
//! - T0, fault: just before `/healthz` turns to 503;
//! - T1, failing result: when the stand-in served its first 503 (taken just before the answer is
//!   sent; the controller holds the result a few milliseconds later). `/healthz` answers 200 again
//!   right after it: one failing answer fails the check, and the old version is healthy, so the
//!   rollback's verification can pass (see [`heal_after_first_failure`] for why not later);
//! - T2, previous release applied: when a watch on the environment's ConfigMap `web-config`,
//!   started and synced before the fault, delivers `BUILD: 1.0.0`. It includes the API server's
//!   watch delivery, so it is an upper bound on when the apply happened;
//! - T3, rollback complete: when a watch on the Pipeline, also synced before the fault, delivers
//!   the environment `Healthy` again with 1.0.0 current and `rollbackOf` naming 1.1.0.
//!
//! Figures:
//! - `failing → applied` = T2 − T1: the controller's reaction (the decision, the RollingBack
//!   status write, the artifact read, a dry-run of every object, then server-side apply in order,
//!   configuration first: `web-config` comes back before the Deployment, which 1.0.0 and 1.1.0
//!   share, so no watch could see it change) plus watch delivery. Target from the issue: previous
//!   release re-applied within 1 s of the failing result, judged here on the slowest run;
//! - `fault → failing` = T1 − T0: when the next probe happens to fall, bounded by the check
//!   interval (1 s) plus the time to serve one request. The fault lands at about the same point
//!   of the probe cycle every run (the set-up between Soaking and the fault takes about as long
//!   each time), so the runs do not sample the spread over the interval;
//! - `fault → complete` = T3 − T0: the above, then the rollback's verification: one passing probe
//!   of the restored release, which the controller sends as soon as its workloads are ready (here
//!   at once: 1.0.0's Deployment is 1.1.0's), then the Healthy status write and its watch delivery;
//! - the anchor, `watch`: a ConfigMap change the bench itself makes, from the call to its watch
//!   event, in the same run: what one write and its delivery cost here, so the share of T2 that
//!   is the controller's own is about T2 − T1 minus this;
//! - from the controller's log (RFC 3339 µs timestamps on the same machine's clock): T1 → the
//!   `deploying` line of the rollback (decision and status write done, apply starting) and T1 →
//!   its `applied` line (every object applied, the prune not yet), free of watch delivery. This
//!   `applied` can come after T2: the Deployment is applied after `web-config`.
//!
//! Run with `cargo bench --bench rollback` (or `make bench`). It uses the control plane named by
//! `CONVEYOR_TEST_KUBECONFIG`, else starts one for the run (`tests/control-plane.sh`). `BENCH_RUNS`
//! sets the runs (default 5); `--emit-json FILE` or `BENCH_JSON=FILE` also writes the figures as
//! JSON. Figures are printed with PASS/MISS against the target, never asserted: this is a
//! measurement, not a test. Only correctness is checked (the rollback happens and is recorded).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::{Options, mark, median};

use std::fmt::{Debug, Write as _};
use std::pin::pin;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use conveyor::api::Pipeline;
use conveyor::api::pipeline::{DeploymentResult, EnvironmentPhase};
use futures::StreamExt as _;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::kubelet::Kubelet;
use support::probe_server::ProbeServer;
use support::world::{LONG, World, app, environment, history};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The only environment.
const DEV: &str = "development";
/// The target: previous release re-applied within this long of the failing result.
const TARGET: Duration = Duration::from_secs(1);
/// The HTTP check's interval: bounds `fault → failing` and the verification after the rollback.
const INTERVAL: &str = "1s";
/// Long enough that the fault always lands inside 1.1.0's soak.
const SOAK: &str = "60s";

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench targets too (`test = false` does not stop it), in a
    // debug build and without the `--bench` argument that `cargo bench` always passes.
    if !std::env::args_os().any(|a| a == "--bench") {
        println!("rollback bench: skipped, run it with `cargo bench --bench rollback`");
        return Ok(());
    }
    let options = Options::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(bench(options))
}

async fn bench(options: Options) -> anyhow::Result<()> {
    let machine = Machine::probe();
    print!("{}", machine.text(options.runs));
    println!("{}", Run::header());
    let mut runs = Vec::with_capacity(options.runs);
    let mut namespaces = Vec::new();
    for index in 1..=options.runs {
        let run = measure(&mut namespaces).await.with_context(|| format!("run {index}"))?;
        println!("{}", run.row(index));
        runs.push(run);
    }
    let report = Report::new(runs);
    print!("{}", report.text());
    if let Some(path) = &options.json {
        let json = serde_json::to_string_pretty(&report.json(&machine)).context("figures serialize")?;
        std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    // Namespaces go only once every run is measured, so their deletion never loads a measurement.
    let client = support::client().await;
    let api = Api::<Namespace>::all(client);
    for ns in &namespaces {
        let _ = api.delete(ns, &DeleteParams::background()).await;
    }
    Ok(())
}

/// Facts that make figures from two machines comparable (or not).
struct Machine {
    nproc: usize,
    cpu: String,
    control_plane: String,
}

impl Machine {
    fn probe() -> Self {
        let (nproc, cpu) = common::cpu();
        let control_plane = match std::env::var("CONVEYOR_TEST_KUBECONFIG") {
            Ok(path) => format!("CONVEYOR_TEST_KUBECONFIG={path}"),
            Err(_) => "started for this run (tests/control-plane.sh)".to_owned(),
        };
        Self { nproc, cpu, control_plane }
    }

    fn text(&self, runs: usize) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "automatic rollback latency: an HTTP check failing mid-soak (interval {INTERVAL})");
        let _ = writeln!(t, "machine: nproc {}, {}", self.nproc, self.cpu);
        let _ = writeln!(t, "control plane: {}", self.control_plane);
        let _ = writeln!(t, "runs: {runs}, each with its own namespaces, controller process and git repository\n");
        t
    }
}

/// One run's figures, in milliseconds.
struct Run {
    /// T1 − T0.
    fault_to_failing: f64,
    /// T2 − T1.
    failing_to_applied: f64,
    /// T3 − T0.
    fault_to_complete: f64,
    /// The anchor: a ConfigMap change the bench makes, from the call to its watch event.
    watch: f64,
    /// From the controller's log: T1 → `deploying`, T1 → `applied` (absent if not found).
    log: Option<(f64, f64)>,
}

impl Run {
    /// The table's columns: title and width.
    const COLUMNS: [(&str, usize); 8] = [
        ("run", 3),
        ("fault→failing", 13),
        ("failing→applied", 15),
        ("fault→complete", 14),
        ("watch", 6),
        ("log: →deploying", 15),
        ("log: →applied", 13),
        ("target", 6),
    ];

    fn header() -> String {
        Self::line(Self::COLUMNS.map(|(title, _)| title.to_owned()))
            + "\n(milliseconds; the log columns count from the failing result, T1)"
    }

    fn row(&self, index: usize) -> String {
        let log = |pick: fn((f64, f64)) -> f64| self.log.map_or_else(|| "-".to_owned(), |l| format!("{:.1}", pick(l)));
        Self::line([
            index.to_string(),
            format!("{:.1}", self.fault_to_failing),
            format!("{:.1}", self.failing_to_applied),
            format!("{:.1}", self.fault_to_complete),
            format!("{:.1}", self.watch),
            log(|l| l.0),
            log(|l| l.1),
            mark(self.failing_to_applied <= ms(TARGET)).to_owned(),
        ])
    }

    /// `cells` right-aligned in the columns' widths.
    fn line(cells: [String; 8]) -> String {
        let cells: Vec<String> =
            cells.iter().zip(Self::COLUMNS).map(|(c, (_, width))| format!("{c:>width$}")).collect();
        cells.join("  ")
    }
}

/// One world, one rollback, timed.
async fn measure(namespaces: &mut Vec<String>) -> anyhow::Result<Run> {
    // Declared first, dropped last: it keeps answering until the controller is gone.
    let stand_in = ProbeServer::start().await;
    let w = World::new("bench-rb", &[DEV], &[]).await;
    namespaces.push(w.ns.clone());
    namespaces.extend(w.namespaces());
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    let url = stand_in.url("/healthz");
    let spec = |soak: &str| {
        json!({"soak": soak, "healthChecks": {"http": [
            {"name": "healthz", "url": url, "interval": INTERVAL, "failureLimit": 0}
        ]}})
    };

    // 1.0.0 becomes the healthy release to go back to; without a soak, so runs stay short.
    w.pipeline(|_| spec("0s")).await;
    let good = w.release("1.0.0", &app("1.0.0")).await;
    w.settled(DEV, EnvironmentPhase::Healthy, &good).await;
    // The long soak must be in force before 1.1.0 is seen, or 1.1.0 could finish without one.
    w.pipeline(|_| spec(SOAK)).await;
    let generation = w.pipelines.get("shop").await?.metadata.generation;
    w.until("the Pipeline with the long soak observed", move |p| {
        p.status.as_ref().and_then(|s| s.observed_generation) == generation
    })
    .await;
    let bad = w.release("1.1.0", &app("1.1.0")).await;
    w.settled(DEV, EnvironmentPhase::Soaking, &bad).await;

    let watch = anchor(Api::namespaced(w.client.clone(), &w.ns)).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(w.client.clone(), w.namespace(DEV));
    let (mut config_map, listed) = Watch::start(config_maps, "web-config", "web-config").await?;
    ensure!(listed.as_ref().and_then(build) == Some("1.1.0"), "web-config does not carry 1.1.0 before the fault");
    let (mut pipeline, _) = Watch::start(w.pipelines.clone(), "shop", "the Pipeline").await?;

    // The wall clock beside the monotonic one, to place T1 among the controller's log lines.
    let fault_wall = Timestamp::now();
    let fault = Instant::now();
    stand_in.set_health(503);
    let restored = config_map.until(|cm| build(cm) == Some("1.0.0"));
    let (failing, applied) = tokio::join!(heal_after_first_failure(&stand_in), restored);
    let (failing, applied) = (failing?, applied?);
    let completed = pipeline.until(|p| rolled_back(p, &good, &bad)).await?;

    // Correctness, not timing: the rollback is recorded as such.
    let p = w.pipelines.get("shop").await?;
    let h = history(&p, DEV);
    let last = h.first().context("no history in development")?;
    ensure!(
        last.release == good && last.result == DeploymentResult::Succeeded && last.rollback_of.as_deref() == Some(&bad),
        "the newest history entry is not the succeeded rollback to {good}: {last:#?}"
    );
    let failed = h.iter().find(|e| e.release == bad).context("1.1.0 is not in the history")?;
    ensure!(failed.result == DeploymentResult::RolledBack, "1.1.0 ended {:?}, not RolledBack", failed.result);

    let failing_wall = fault_wall + failing.duration_since(fault);
    let log = controller_marks(&w.controller.logs(), &good, failing_wall);
    Ok(Run {
        fault_to_failing: ms(failing.duration_since(fault)),
        failing_to_applied: ms(applied.duration_since(failing)),
        fault_to_complete: ms(completed.duration_since(fault)),
        watch,
        log,
    })
}

/// Waits until the stand-in has served its first 503 and turns `/healthz` back to 200 at once;
/// returns when that 503 was served (T1).
///
/// The fault lasts one failing answer, which is enough: the first failure fails the check
/// (`failureLimit: 0`), and the next probe of 1.1.0 would be a whole interval later. Healing
/// later, once the watch shows 1.0.0 applied, would race the controller, which probes the
/// restored release within milliseconds of applying it, sooner than the watch reports the apply;
/// a 503 there would fail the rollback's verification. The stand-in has no notification, so its
/// record is polled every millisecond (it is in memory; the API server is never polled).
async fn heal_after_first_failure(stand_in: &ProbeServer) -> anyhow::Result<Instant> {
    let heal = async {
        loop {
            if let Some(at) = stand_in.first_failure_served() {
                stand_in.set_health(200);
                return at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(LONG, heal).await.with_context(|| format!("no probe of /healthz within {LONG:?}"))
}

/// The anchor: milliseconds from a change of a ConfigMap in `api`, made by the bench itself, to
/// its event on a synced watch. The ConfigMap is created and seen first, so that the timed change
/// finds the watch connected, as the rollback's apply does.
async fn anchor(api: Api<ConfigMap>) -> anyhow::Result<f64> {
    const NAME: &str = "bench-watch-anchor";
    let round = |cm: &ConfigMap, n: &str| cm.data.as_ref().and_then(|d| d.get("round")).is_some_and(|r| r == n);
    let (mut watch, _) = Watch::start(api.clone(), NAME, "the anchor ConfigMap").await?;
    let created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME}, "data": {"round": "0"}});
    let created: ConfigMap = serde_json::from_value(created).context("the anchor ConfigMap")?;
    api.create(&PostParams::default(), &created).await.context("create the anchor ConfigMap")?;
    watch.until(|cm| round(cm, "0")).await?;
    let changed = Instant::now();
    let patch = json!({"data": {"round": "1"}});
    api.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch)).await.context("change the anchor ConfigMap")?;
    Ok(ms(watch.until(|cm| round(cm, "1")).await?.duration_since(changed)))
}

fn build(cm: &ConfigMap) -> Option<&str> {
    cm.data.as_ref()?.get("BUILD").map(String::as_str)
}

/// Whether `development` is Healthy again on `good`, as the rollback of `bad`.
fn rolled_back(p: &Pipeline, good: &str, bad: &str) -> bool {
    environment(p, DEV).is_some_and(|e| {
        e.phase == EnvironmentPhase::Healthy
            && e.current.as_ref().is_some_and(|c| c.release == good && c.rollback_of.as_deref() == Some(bad))
    })
}

/// A watch on one object, started and synced before the moment it times: every later version of
/// the object comes with the instant the bench received it (a watch event, not a poll).
struct Watch<K> {
    what: &'static str,
    events: mpsc::UnboundedReceiver<(Instant, K)>,
    task: JoinHandle<()>,
}

impl<K> Watch<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    /// Starts watching `name` and returns once the initial list is through, with the object as
    /// listed (`None` if it does not exist yet).
    async fn start(api: Api<K>, name: &str, what: &'static str) -> anyhow::Result<(Self, Option<K>)> {
        let (synced_tx, synced) = oneshot::channel::<Option<K>>();
        let (tx, events) = mpsc::unbounded_channel();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let task = tokio::spawn(async move {
            let mut stream = pin!(watcher::watcher(api, config).default_backoff());
            let (mut synced_tx, mut listed) = (Some(synced_tx), None);
            while let Some(event) = stream.next().await {
                let at = Instant::now();
                let object = match event {
                    Ok(Event::InitApply(o)) if synced_tx.is_some() => {
                        listed = Some(o);
                        continue;
                    }
                    Ok(Event::InitDone) => {
                        if let Some(tx) = synced_tx.take() {
                            let _ = tx.send(listed.take());
                        }
                        continue;
                    }
                    // After a watch error the stream lists again: late, but when the bench saw it.
                    Ok(Event::Apply(o) | Event::InitApply(o)) => o,
                    // Errors are retried with backoff by the stream itself.
                    Ok(Event::Init | Event::Delete(_)) | Err(_) => continue,
                };
                if tx.send((at, object)).is_err() {
                    return;
                }
            }
        });
        let watch = Self { what, events, task };
        let listed = tokio::time::timeout(LONG, synced)
            .await
            .with_context(|| format!("the watch on {what} did not sync within {LONG:?}"))?
            .with_context(|| format!("the watch on {what} ended"))?;
        Ok((watch, listed))
    }

    /// When the bench first received a version satisfying `cond` (deadline [`LONG`]).
    async fn until(&mut self, cond: impl Fn(&K) -> bool) -> anyhow::Result<Instant> {
        let what = self.what;
        let found = async {
            while let Some((at, object)) = self.events.recv().await {
                if cond(&object) {
                    return Some(at);
                }
            }
            None
        };
        tokio::time::timeout(LONG, found)
            .await
            .with_context(|| format!("{what} not as awaited within {LONG:?}"))?
            .with_context(|| format!("the watch on {what} ended"))
    }
}

impl<K> Drop for Watch<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// From the controller's log: milliseconds from `failing` (wall clock) to the last `deploying`
/// line of `release` (the rollback's) and to the `applied` line that follows it.
fn controller_marks(log: &str, release: &str, failing: Timestamp) -> Option<(f64, f64)> {
    // `deploying` logs the release with Display (bare), the `deploy` span as a string (quoted).
    let (bare, quoted) = (format!(" release={release} "), format!(" release=\"{release}\""));
    let names = |l: &str| l.contains(&bare) || l.contains(&quoted);
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.iter().rposition(|l| l.contains(": deploying ") && names(l))?;
    let end = lines[start..].iter().find(|l| l.contains(": applied ") && names(l))?;
    let at = |line: &str| line.split_whitespace().next()?.parse::<Timestamp>().ok();
    let since = |t: Timestamp| t.duration_since(failing);
    Some((signed_ms(since(at(lines[start])?)), signed_ms(since(at(end)?))))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn signed_ms(d: SignedDuration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median and maximum of one figure over the runs.
struct Figure {
    name: &'static str,
    /// Its name in the JSON figures.
    key: &'static str,
    values: Vec<f64>,
    median: f64,
    max: f64,
}

impl Figure {
    fn new(name: &'static str, key: &'static str, values: Vec<f64>) -> Self {
        let mut sorted = values.clone();
        let median = if sorted.is_empty() { f64::NAN } else { median(&mut sorted) };
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self { name, key, values, median, max }
    }
}

/// Every run's figures and their summary.
struct Report {
    runs: usize,
    figures: Vec<Figure>,
    /// Runs whose rollback `deploying`/`applied` lines were found in the controller's log.
    logged: usize,
}

impl Report {
    /// Index of `failing → applied` in `figures`: the one with a target.
    const TARGETED: usize = 0;

    fn new(runs: Vec<Run>) -> Self {
        let column = |f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<_>>();
        let logged: Vec<(f64, f64)> = runs.iter().filter_map(|r| r.log).collect();
        let figures = vec![
            Figure::new("failing → applied (watch)", "failing_to_applied", column(|r| r.failing_to_applied)),
            Figure::new("fault → failing", "fault_to_failing", column(|r| r.fault_to_failing)),
            Figure::new("fault → complete", "fault_to_complete", column(|r| r.fault_to_complete)),
            Figure::new("anchor: watch delivery", "anchor_watch_delivery", column(|r| r.watch)),
            Figure::new("log: failing → deploying", "log_failing_to_deploying", logged.iter().map(|l| l.0).collect()),
            Figure::new("log: failing → applied", "log_failing_to_applied", logged.iter().map(|l| l.1).collect()),
        ];
        Self { runs: runs.len(), figures, logged: logged.len() }
    }

    fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "\n{:<28} {:>10} {:>10}", "figure", "median ms", "max ms");
        for f in self.figures.iter().filter(|f| !f.values.is_empty()) {
            let _ = writeln!(t, "{:<28} {:>10.1} {:>10.1}", f.name, f.median, f.max);
        }
        if self.logged < self.runs {
            let _ =
                writeln!(t, "(log figures from {} of {} runs: lines not found in the others)", self.logged, self.runs);
        }
        let targeted = &self.figures[Self::TARGETED];
        let _ = writeln!(
            t,
            "\ntarget: previous release re-applied within {} ms of the failing result, every run: {} (max {:.1} ms)",
            ms(TARGET),
            mark(targeted.max <= ms(TARGET)),
            targeted.max
        );
        t
    }

    fn json(&self, machine: &Machine) -> Value {
        let figures: serde_json::Map<String, Value> = self
            .figures
            .iter()
            .map(|f| (f.key.to_owned(), json!({"median_ms": f.median, "max_ms": f.max, "runs_ms": f.values})))
            .collect();
        let targeted = &self.figures[Self::TARGETED];
        json!({
            "machine": {"nproc": machine.nproc, "cpu": machine.cpu, "control_plane": machine.control_plane},
            "runs": self.runs,
            "check_interval": INTERVAL,
            "figures": figures,
            "targets": {"failing_to_applied_within_1s": targeted.max <= ms(TARGET)},
        })
    }
}
