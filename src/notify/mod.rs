//! Webhook notifications of deploys, promotions, failures and rollbacks.
//!
//! The reconciler hands each planner Event to [`Notifier::announce`], after the status that
//! holds it was written. Announcing never waits: every receiver has a bounded queue and one
//! task that delivers its notifications in order, retrying with backoff ([`retry::Policy`]).
//! A slow or dead receiver only fills its own queue; when full, new notifications for it are
//! dropped (logged, counted), so neither reconciles nor other receivers wait on it. At
//! shutdown [`Notifier::drain`] lets the tasks deliver what is queued, for a bounded time.

pub mod payload;
pub mod retry;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

pub use payload::{Kind, Notification, Subject};

use crate::api::{Pipeline, Release};
use crate::config::Webhook;
use crate::core::plan::{self, EnvironmentState};
use crate::telemetry::Metrics;
use retry::{Next, Outcome, Policy};

/// Notifications waiting per receiver: enough for a burst of every environment of many
/// pipelines moving at once, small enough that a dead receiver costs little memory.
pub const QUEUE_CAPACITY: usize = 100;

/// How long queued notifications may take to go out at shutdown, after the controllers have
/// stopped (the chart gives the pod 30 s in all).
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built (TLS set-up).
    #[error("building the HTTP client for webhooks: {0}")]
    Client(#[source] reqwest::Error),
}

impl Error {
    /// A bounded name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Client(_) => "WebhookClient",
        }
    }

    /// Whether retrying can help (building a client fails the same way every time).
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// This module's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Hands notifications to one delivery task per configured webhook.
pub struct Notifier {
    receivers: Vec<Receiver>,
    metrics: Arc<Metrics>,
    /// Tells the tasks to finish their queues and stop.
    closing: CancellationToken,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// The sending end of one webhook's queue.
struct Receiver {
    /// For logs: the URL's path is a secret.
    host: String,
    queue: mpsc::Sender<Arc<Notification>>,
}

impl Notifier {
    /// Starts one delivery task per webhook, each attempt bounded by `timeout`. Must run
    /// inside a tokio runtime (the tasks are spawned on it); without webhooks nothing starts.
    pub fn start(webhooks: &[Webhook], timeout: Duration, metrics: Arc<Metrics>) -> Result<Self> {
        Self::with(webhooks, timeout, Policy::default(), QUEUE_CAPACITY, metrics)
    }

    /// As [`start`](Self::start) with a retry policy and queue size of the caller's choosing.
    pub fn with(
        webhooks: &[Webhook],
        timeout: Duration,
        policy: Policy,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A webhook that redirects is misconfigured; following it would send the payload
            // somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("conveyor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Client)?;
        let closing = CancellationToken::new();
        let (receivers, tasks) = webhooks
            .iter()
            .map(|webhook| {
                let (queue, pending) = mpsc::channel(capacity.max(1));
                let worker =
                    Worker { webhook: webhook.clone(), client: client.clone(), policy, metrics: metrics.clone() };
                let task = tokio::spawn(worker.run(pending, closing.clone()));
                (Receiver { host: webhook.host(), queue }, task)
            })
            .unzip();
        Ok(Self { receivers, metrics, closing, tasks: std::sync::Mutex::new(tasks) })
    }

    /// At shutdown: stops taking notifications and lets every receiver's task deliver what is
    /// queued (retries included) for at most `grace`; what is left then is abandoned, logged.
    pub async fn drain(&self, grace: Duration) {
        self.closing.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if tasks.is_empty() {
            return;
        }
        if tokio::time::timeout(grace, futures::future::join_all(tasks)).await.is_err() {
            tracing::warn!(?grace, "shutdown: webhook notifications still queued or being retried were abandoned");
        }
    }

    /// Queues a notification of `event` (in environment `environment`, whose state after the
    /// plan is `state`) for every receiver, if the event is one that is announced. Never waits.
    pub fn announce(
        &self,
        pipeline: &Pipeline,
        environment: &str,
        state: &EnvironmentState,
        releases: &[Arc<Release>],
        event: &plan::Event,
    ) {
        if self.receivers.is_empty() {
            return;
        }
        let (namespace, name) = (pipeline.namespace().unwrap_or_default(), pipeline.name_any());
        let deployment = payload::deployment_of(state, &event.release);
        let version = deployment
            .map(|(_, v)| v.to_string())
            .or_else(|| releases.iter().find(|r| r.name_any() == event.release).map(|r| r.spec.version.clone()));
        let subject = Subject {
            namespace: &namespace,
            pipeline: &name,
            pipeline_uid: pipeline.metadata.uid.as_deref().unwrap_or_default(),
            environment,
            deployment_id: deployment.map(|(id, _)| id),
            version: version.as_deref(),
        };
        if let Some(notification) = Notification::new(&subject, event, jiff::Timestamp::now()) {
            self.send(notification);
        }
    }

    /// Queues `notification` for every receiver; a receiver whose queue is full misses it
    /// (logged and counted as dropped). Never waits.
    pub fn send(&self, notification: Notification) {
        let notification = Arc::new(notification);
        for receiver in &self.receivers {
            let why = match receiver.queue.try_send(notification.clone()) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => "the receiver's queue is full (it is slow or down)",
                Err(mpsc::error::TrySendError::Closed(_)) => "shutting down",
            };
            tracing::warn!(
                receiver = %receiver.host, id = %notification.id, r#type = %notification.kind.as_str(),
                capacity = receiver.queue.max_capacity(), "webhook notification dropped: {why}"
            );
            count(&self.metrics, "dropped");
        }
    }
}

/// Delivers one webhook's notifications, in order.
struct Worker {
    webhook: Webhook,
    client: reqwest::Client,
    policy: Policy,
    metrics: Arc<Metrics>,
}

impl Worker {
    /// Delivers until `closing`, then delivers what is queued and stops.
    async fn run(self, mut pending: mpsc::Receiver<Arc<Notification>>, closing: CancellationToken) {
        loop {
            let notification = tokio::select! {
                biased;
                () = closing.cancelled() => {
                    pending.close();
                    while let Some(notification) = pending.recv().await {
                        let result = self.deliver(&notification).await;
                        count(&self.metrics, result);
                    }
                    return;
                }
                notification = pending.recv() => notification,
            };
            let Some(notification) = notification else { return };
            let result = self.deliver(&notification).await;
            count(&self.metrics, result);
        }
    }

    /// Attempts until delivered or given up; returns `delivered` or `failed`.
    #[instrument(skip_all, fields(receiver = %self.webhook.host(), id = %notification.id, r#type = %notification.kind.as_str()))]
    async fn deliver(&self, notification: &Notification) -> &'static str {
        let body = notification.body(self.webhook.format);
        let mut attempt = 1;
        loop {
            let (outcome, what) = self.attempt(body.clone()).await;
            match self.policy.next(attempt, &outcome) {
                Next::Delivered => {
                    tracing::debug!(attempt, "webhook notification delivered");
                    return "delivered";
                }
                Next::RetryAfter(wait) => {
                    tracing::debug!(attempt, outcome = %what, ?wait, "webhook notification not delivered; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Next::GiveUp => {
                    tracing::warn!(attempt, outcome = %what, "webhook notification not delivered; giving up");
                    return "failed";
                }
            }
        }
    }

    /// One POST: how it went, and in words for logs (never the URL; never the answer's body,
    /// which may repeat it).
    async fn attempt(&self, body: Vec<u8>) -> (Outcome, String) {
        let request = self.client.post(self.webhook.url.clone()).header(CONTENT_TYPE, "application/json").body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok());
                let retry_after = retry_after.and_then(|v| retry::parse_retry_after(v, std::time::SystemTime::now()));
                (Outcome::Answered { status: status.as_u16(), retry_after }, format!("answered HTTP {status}"))
            }
            Err(e) if e.is_timeout() => (Outcome::TimedOut, format!("no answer in time: {}", describe(e))),
            Err(e) => (Outcome::Unreachable, format!("unreachable: {}", describe(e))),
        }
    }
}

/// A request error with its causes, without the URL (reqwest's own message repeats it).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Counts a notification's outcome for one receiver in `conveyor_notifications_total{result}`
/// (`delivered`, `failed`, `dropped`).
fn count(metrics: &Metrics, result: &'static str) {
    metrics.notification(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebhookFormat;
    use axum::extract::State;
    use axum::http::StatusCode;
    use std::sync::Mutex;

    fn notification(id: &str) -> Notification {
        let event = plan::Event {
            warning: false,
            reason: "Healthy",
            message: "shop-1.0.0 is healthy in staging".into(),
            environment: 0,
            release: "shop-1.0.0".into(),
        };
        let subject = Subject {
            namespace: "checkout",
            pipeline: "shop",
            pipeline_uid: id,
            environment: "staging",
            deployment_id: None,
            version: None,
        };
        let mut n = Notification::new(&subject, &event, jiff::Timestamp::UNIX_EPOCH).expect("Healthy is announced");
        n.id = id.to_owned();
        n
    }

    fn webhook(addr: std::net::SocketAddr) -> Webhook {
        Webhook { url: format!("http://{addr}/hook").parse().unwrap(), format: WebhookFormat::Json }
    }

    fn counted(metrics: &Metrics, result: &str) -> bool {
        metrics.encode().contains(&format!("conveyor_notifications_total{{result=\"{result}\"}}"))
    }

    /// Ids received by a server that answers 500 to its first `failures` requests, then 200.
    async fn flaky_server(failures: usize) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
        type Shared = (Arc<Mutex<Vec<String>>>, usize);
        async fn hook(State((seen, failures)): State<Shared>, body: axum::body::Bytes) -> StatusCode {
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let mut seen = seen.lock().unwrap();
            seen.push(body["id"].as_str().unwrap().to_owned());
            if seen.len() <= failures { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state((seen.clone(), failures));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, seen)
    }

    /// A server that accepts connections and never answers; each connection is handed over
    /// (and so kept open) through the receiver.
    async fn hanging_server() -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<tokio::net::TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, held) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = accepted.send(stream).await;
            }
        });
        (addr, held)
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_failed_attempt_is_retried_before_the_next_notification_goes() {
        let (addr, seen) = flaky_server(2).await;
        let metrics = Arc::new(Metrics::new());
        let policy =
            Policy { attempts: 5, first_delay: Duration::from_millis(10), max_delay: Duration::from_millis(50) };
        let notifier = Notifier::with(&[webhook(addr)], Duration::from_secs(5), policy, 10, metrics.clone()).unwrap();
        notifier.send(notification("first"));
        notifier.send(notification("second"));
        until("both delivered", || seen.lock().unwrap().len() == 4).await;
        assert_eq!(*seen.lock().unwrap(), ["first", "first", "first", "second"]);
        until("both counted", || metrics.encode().contains("conveyor_notifications_total{result=\"delivered\"} 2"))
            .await;
        assert!(!counted(&metrics, "failed") && !counted(&metrics, "dropped"), "{}", metrics.encode());
    }

    #[tokio::test]
    async fn a_receiver_failing_for_good_is_given_up_after_the_attempts() {
        let (addr, seen) = flaky_server(usize::MAX).await;
        let metrics = Arc::new(Metrics::new());
        let policy =
            Policy { attempts: 3, first_delay: Duration::from_millis(10), max_delay: Duration::from_millis(50) };
        let notifier = Notifier::with(&[webhook(addr)], Duration::from_secs(5), policy, 10, metrics.clone()).unwrap();
        notifier.send(notification("doomed"));
        notifier.send(notification("next"));
        until("both given up", || metrics.encode().contains("conveyor_notifications_total{result=\"failed\"} 2")).await;
        assert_eq!(*seen.lock().unwrap(), ["doomed", "doomed", "doomed", "next", "next", "next"]);
    }

    #[tokio::test]
    async fn drain_delivers_what_is_queued_before_it_returns() {
        let (addr, seen) = flaky_server(1).await;
        let metrics = Arc::new(Metrics::new());
        let policy =
            Policy { attempts: 5, first_delay: Duration::from_millis(50), max_delay: Duration::from_millis(50) };
        let notifier = Notifier::with(&[webhook(addr)], Duration::from_secs(5), policy, 10, metrics.clone()).unwrap();
        for id in ["a", "b", "c"] {
            notifier.send(notification(id));
        }
        // The first attempt fails, so "a" is being retried while "b" and "c" wait in the queue.
        notifier.drain(Duration::from_secs(10)).await;
        assert_eq!(*seen.lock().unwrap(), ["a", "a", "b", "c"]);
        assert!(
            metrics.encode().contains("conveyor_notifications_total{result=\"delivered\"} 3"),
            "{}",
            metrics.encode()
        );
        // After draining nothing more is taken: a late notification is dropped, not sent.
        notifier.send(notification("late"));
        assert!(counted(&metrics, "dropped"), "{}", metrics.encode());
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn drain_gives_up_on_a_receiver_that_hangs_after_the_grace() {
        let (addr, mut held) = hanging_server().await;
        let notifier = Notifier::with(
            &[webhook(addr)],
            Duration::from_secs(3600),
            Policy::default(),
            10,
            Arc::new(Metrics::new()),
        )
        .unwrap();
        notifier.send(notification("stuck"));
        let _connection = held.recv().await.expect("the notification's connection");
        let drained = tokio::time::timeout(Duration::from_secs(5), notifier.drain(Duration::from_millis(200))).await;
        assert!(drained.is_ok(), "drain did not return after its grace");
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        // Its task stays on the first notification.
        let (addr, mut held) = hanging_server().await;
        let metrics = Arc::new(Metrics::new());
        let notifier =
            Notifier::with(&[webhook(addr)], Duration::from_secs(3600), Policy::default(), 1, metrics.clone()).unwrap();

        notifier.send(notification("taken"));
        let _first = held.recv().await.expect("the first notification's connection");
        notifier.send(notification("queued"));
        assert!(!counted(&metrics, "dropped"), "{}", metrics.encode());
        notifier.send(notification("dropped"));
        assert!(
            metrics.encode().contains("conveyor_notifications_total{result=\"dropped\"} 1"),
            "{}",
            metrics.encode()
        );
    }
}
