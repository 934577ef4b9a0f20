//! An application stand-in that checks probe: `/metrics` with gauges the test sets (for a real
//! Prometheus to scrape) and `/healthz` with a status the test sets. It runs on its own thread
//! and tokio runtime, so it keeps serving while a test blocks and outlives the test's runtime;
//! it stops on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;

/// An HTTP server on `127.0.0.1` whose `/metrics` and `/healthz` the test controls.
pub struct ProbeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    /// Metric family → sample name (with labels, if any) → value.
    metrics: Mutex<BTreeMap<String, BTreeMap<String, f64>>>,
    health: Mutex<Health>,
    health_requests: AtomicUsize,
}

struct Health {
    status: StatusCode,
    /// When the first non-2xx answer since the last `set_health` was served.
    first_failure: Option<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Self { status: StatusCode::OK, first_failure: None }
    }
}

impl ProbeServer {
    /// Starts serving on a free port: no metrics yet, `/healthz` answering 200 `ok`. The port
    /// is bound (and accepting) when this returns.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe server");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("probe server address");
        let app =
            Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(shared.clone());
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("probe-server-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("probe server runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let serve = std::future::IntoFuture::into_future(axum::serve(listener, app));
                    tokio::select! {
                        result = serve => result.expect("probe server"),
                        _ = stop => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(5));
            })
            .expect("spawn probe server thread");
        Self { addr, shared, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The address it listens on (a Prometheus scrape target).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets gauge `name` to `value`. `name` is the sample's whole name, labels included if
    /// wanted: `errors_ratio` or `errors_ratio{pod="a"}`.
    pub fn set_metric(&self, name: &str, value: f64) {
        let family = name.split('{').next().unwrap_or(name).trim();
        assert!(!family.is_empty(), "metric name {name:?} has no family name");
        let mut metrics = self.shared.metrics.lock().unwrap();
        metrics.entry(family.to_owned()).or_default().insert(name.to_owned(), value);
    }

    /// Stops exporting the sample `name` (as set with [`set_metric`](Self::set_metric)).
    pub fn remove_metric(&self, name: &str) {
        let mut metrics = self.shared.metrics.lock().unwrap();
        metrics.values_mut().for_each(|samples| {
            samples.remove(name);
        });
        metrics.retain(|_, samples| !samples.is_empty());
    }

    /// Sets the status `/healthz` answers (body `ok` for 2xx, else `failing`) and forgets when
    /// a failure was first served.
    pub fn set_health(&self, code: u16) {
        let status = StatusCode::from_u16(code).unwrap_or_else(|e| panic!("status {code}: {e}"));
        *self.shared.health.lock().unwrap() = Health { status, first_failure: None };
    }

    /// When the first non-2xx `/healthz` answer since the last [`set_health`](Self::set_health)
    /// was served (taken just before the answer is sent).
    pub fn first_failure_served(&self) -> Option<Instant> {
        self.shared.health.lock().unwrap().first_failure
    }

    /// `/healthz` requests answered so far.
    pub fn health_requests(&self) -> usize {
        self.shared.health_requests.load(Ordering::SeqCst)
    }
}

impl Drop for ProbeServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let metrics = shared.metrics.lock().unwrap();
    let mut text = String::new();
    for (family, samples) in metrics.iter() {
        text.push_str(&format!("# TYPE {family} gauge\n"));
        for (name, value) in samples {
            text.push_str(&format!("{name} {}\n", exposition_value(*value)));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// A value as the text format writes it (`NaN`, `+Inf`, `-Inf`, or the number).
fn exposition_value(value: f64) -> String {
    match value {
        v if v.is_nan() => "NaN".into(),
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v => v.to_string(),
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let status = {
        let mut health = shared.health.lock().unwrap();
        if !health.status.is_success() && health.first_failure.is_none() {
            health.first_failure = Some(Instant::now());
        }
        health.status
    };
    shared.health_requests.fetch_add(1, Ordering::SeqCst);
    let body = if status.is_success() { "ok" } else { "failing" };
    (status, body).into_response()
}
