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

/// The controller's metrics, in a registry of their own.
pub struct Metrics {
    registry: Registry,
    reconcile_duration: HistogramVec,
    reconcile_errors: IntCounterVec,
    packaging_duration: HistogramVec,
    artifact_bytes: prometheus::Histogram,
    rollbacks: IntCounterVec,
    check_failures: IntCounterVec,
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
            Opts::new("conveyor_rollbacks_total", "Rollbacks started, by trigger (automatic, requested)."),
            &["trigger"],
        )
        .expect("static metric definition");
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

    /// Counts a rollback started; `trigger` is `automatic` or `requested`.
    pub fn rollback(&self, trigger: &'static str) {
        self.rollbacks.with_label_values(&[trigger]).inc();
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
