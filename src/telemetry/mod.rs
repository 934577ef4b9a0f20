//! Metrics registry, tracing setup and the HTTP server for `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::config::LogFormat;

mod environments;

pub use environments::Environments;

/// Labels naming one environment of one Pipeline: bounded by configuration, not by history.
const ENVIRONMENT: [&str; 3] = ["namespace", "pipeline", "environment"];

/// The controller's metrics, in a registry of their own.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramVec,
    reconcile_errors: IntCounterVec,
    packaging_duration: HistogramVec,
    artifact_bytes: prometheus::Histogram,
    rollbacks: IntCounterVec,
    check_failures: IntCounterVec,
    deployments: IntCounterVec,
    deployment_duration: HistogramVec,
    lead_time: HistogramVec,
    time_to_restore: HistogramVec,
    notifications: IntCounterVec,
    /// Per-environment gauges, read from the Pipeline cache at scrape time.
    pub environments: Environments,
    /// 1 while this replica holds the leader Lease.
    pub leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("conveyor_reconcile_duration_seconds", "Time spent in one reconcile, by controller.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["controller"],
        )
        .expect("static metric definition");
        let reconcile_errors = IntCounterVec::new(
            Opts::new("conveyor_reconcile_errors_total", "Failed reconciles, by controller and error kind."),
            &["controller", "error"],
        )
        .expect("static metric definition");
        let packaging_duration = HistogramVec::new(
            HistogramOpts::new(
                "conveyor_packaging_duration_seconds",
                "Time to fetch, validate and store one release's artifact, by result (packaged, failed, retrying).",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            &["result"],
        )
        .expect("static metric definition");
        let artifact_bytes = prometheus::Histogram::with_opts(
            HistogramOpts::new("conveyor_artifact_bytes", "Size of packaged artifacts (gzip'd tar).")
                .buckets(prometheus::exponential_buckets(1024.0, 4.0, 10).expect("static buckets")),
        )
        .expect("static metric definition");
        let rollbacks = IntCounterVec::new(
            Opts::new(
                "conveyor_rollbacks_total",
                "Rollbacks started, by environment and trigger (automatic, requested).",
            ),
            &[ENVIRONMENT[0], ENVIRONMENT[1], ENVIRONMENT[2], "trigger"],
        )
        .expect("static metric definition");
        let deployments = IntCounterVec::new(
            Opts::new(
                "conveyor_deployments_total",
                "Deployments of new releases that ended, by environment and result (succeeded; failed; rolled_back: \
                 failed and an automatic rollback started). Rollbacks are not counted here.",
            ),
            &[ENVIRONMENT[0], ENVIRONMENT[1], ENVIRONMENT[2], "result"],
        )
        .expect("static metric definition");
        let deployment_duration = HistogramVec::new(
            HistogramOpts::new(
                "conveyor_deployment_duration_seconds",
                "Deployment start to end (apply, verification, soak), by environment and result.",
            )
            .buckets(vec![5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0]),
            &[ENVIRONMENT[0], ENVIRONMENT[1], ENVIRONMENT[2], "result"],
        )
        .expect("static metric definition");
        let lead_time = HistogramVec::new(
            HistogramOpts::new(
                "conveyor_lead_time_seconds",
                "Lead time for changes: the release's commit to healthy in the environment.",
            )
            .buckets(vec![
                60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0, 604800.0, 2592000.0,
            ]),
            &ENVIRONMENT,
        )
        .expect("static metric definition");
        let time_to_restore = HistogramVec::new(
            HistogramOpts::new(
                "conveyor_time_to_restore_seconds",
                "Time to restore: a deployment failing in the environment to the environment healthy again.",
            )
            .buckets(vec![10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0, 604800.0]),
            &ENVIRONMENT,
        )
        .expect("static metric definition");
        let notifications = IntCounterVec::new(
            Opts::new("conveyor_notifications_total", "Webhook notifications, by result (delivered, failed, dropped)."),
            &["result"],
        )
        .expect("static metric definition");
        let environments = Environments::default();
        let check_failures = IntCounterVec::new(
            Opts::new(
                "conveyor_check_failures_total",
                "Health-check probes that failed or could not be evaluated, by check type (http, prometheus) and outcome (failed, no_data, unreachable).",
            ),
            &["type", "outcome"],
        )
        .expect("static metric definition");
        let leader = IntGauge::new("conveyor_leader", "1 while this replica holds the leader Lease, else 0.")
            .expect("static metric definition");
        for m in [
            Box::new(reconcile_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(packaging_duration.clone()),
            Box::new(artifact_bytes.clone()),
            Box::new(rollbacks.clone()),
            Box::new(check_failures.clone()),
            Box::new(deployments.clone()),
            Box::new(deployment_duration.clone()),
            Box::new(lead_time.clone()),
            Box::new(time_to_restore.clone()),
            Box::new(notifications.clone()),
            Box::new(environments.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Self {
            registry,
            reconcile_duration,
            reconcile_errors,
            packaging_duration,
            artifact_bytes,
            rollbacks,
            check_failures,
            deployments,
            deployment_duration,
            lead_time,
            time_to_restore,
            notifications,
            environments,
            leader,
        }
    }

    /// A timer that observes the reconcile duration when dropped.
    pub fn reconcile_timer(&self, controller: &'static str) -> prometheus::HistogramTimer {
        self.reconcile_duration.with_label_values(&[controller]).start_timer()
    }

    /// Counts a failed reconcile; `kind` is a bounded error kind, never error text.
    pub fn reconcile_error(&self, controller: &'static str, kind: &'static str) {
        self.reconcile_errors.with_label_values(&[controller, kind]).inc();
    }

    /// Records one packaging attempt; `result` is `packaged`, `failed` or `retrying`.
    pub fn packaging(&self, result: &'static str, seconds: f64, artifact_bytes: Option<u64>) {
        self.packaging_duration.with_label_values(&[result]).observe(seconds);
        if let Some(bytes) = artifact_bytes {
            self.artifact_bytes.observe(bytes as f64);
        }
    }

    /// Counts a rollback started in `at` (namespace, pipeline, environment); `trigger` is
    /// `automatic` or `requested`.
    pub fn rollback(&self, at: [&str; 3], trigger: &'static str) {
        self.rollbacks.with_label_values(&[at[0], at[1], at[2], trigger]).inc();
    }

    /// Makes the per-environment counters of `at` (namespace, pipeline, environment) exist at 0,
    /// so that the first deployment or rollback there is an increase `rate()` and `increase()` see.
    pub fn environment_known(&self, at: [&str; 3]) {
        for result in crate::core::metrics::Result::ALL {
            let labels = [at[0], at[1], at[2], result.as_str()];
            self.deployments.with_label_values(&labels);
            self.deployment_duration.with_label_values(&labels);
        }
        for trigger in ["automatic", "requested"] {
            self.rollbacks.with_label_values(&[at[0], at[1], at[2], trigger]);
        }
        self.lead_time.with_label_values(&at);
        self.time_to_restore.with_label_values(&at);
    }

    /// Records a deployment that ended in `at` (namespace, pipeline, environment): counted and
    /// timed when it deployed a new release (`result`), time to restore when it made the
    /// environment healthy again after failures, lead time when given (commit to healthy).
    pub fn deployment_ended(&self, at: [&str; 3], ended: &crate::core::metrics::Ended, lead_time: Option<f64>) {
        if let Some(result) = ended.result {
            let labels = [at[0], at[1], at[2], result.as_str()];
            self.deployments.with_label_values(&labels).inc();
            self.deployment_duration.with_label_values(&labels).observe(ended.seconds);
        }
        if let Some(seconds) = ended.restored_after {
            self.time_to_restore.with_label_values(&at).observe(seconds);
        }
        if let Some(seconds) = lead_time {
            self.lead_time.with_label_values(&at).observe(seconds);
        }
    }

    /// Counts a webhook notification; `result` is `delivered`, `failed` or `dropped`.
    pub fn notification(&self, result: &'static str) {
        self.notifications.with_label_values(&[result]).inc();
    }

    /// Counts a probe that did not pass; `type_` is `http` or `prometheus`, `outcome` is
    /// `failed`, `no_data` or `unreachable`.
    pub fn check_failure(&self, type_: &'static str, outcome: &'static str) {
        self.check_failures.with_label_values(&[type_, outcome]).inc();
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding into memory cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

/// Sets up the global tracing subscriber (level from `RUST_LOG`, default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: a log file or collector would get escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// Binds the HTTP server; returns the bound address and the serving future.
pub async fn bind(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>>)> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz_handler))
        .with_state(AppState { metrics, ready });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await }))
}

async fn metrics_handler(State(state): State<AppState>) -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.encode())
}

async fn readyz_handler(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
