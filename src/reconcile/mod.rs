//! The shell around the core: observes objects, calls the pure core, writes status, emits Events.

pub mod backoff;
mod environment;
pub mod pipeline;
pub mod release;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;

use kube::api::{Api, ListParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Resource};
use tokio_util::sync::CancellationToken;

use crate::api::{Pipeline, Release};
use crate::artifact::Store;
use crate::config::Config;
use crate::source::Mirrors;
use crate::telemetry::Metrics;

/// Errors of the reconcile shell.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// An object lacks a field the API server always sets.
    #[error("object has no {0}")]
    MissingField(&'static str),
    /// Applying a release into an environment failed after its dry-run passed.
    #[error("deploy failed: {0}")]
    Deploy(#[from] crate::deploy::Error),
    /// A release's artifact could not be read or rebuilt for now.
    #[error("artifact unavailable: {0}")]
    Artifact(String),
}

/// Result with a reconcile [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bounded name for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(_)) => "api",
            Self::Kube(_) => "client",
            Self::MissingField(_) => "malformed_object",
            Self::Deploy(_) => "deploy",
            Self::Artifact(_) => "artifact",
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(kube::Error::Api(status)) => status.code == 429 || status.code == 409 || status.code >= 500,
            Self::Kube(_) => true,
            Self::MissingField(_) => false,
            // A deployment in flight must finish: retry with backoff whatever the cause, so the
            // environment never stays half-applied silently.
            Self::Deploy(_) | Self::Artifact(_) => true,
        }
    }
}

/// The current time, whole seconds: Kubernetes stores times with second precision, so a finer
/// value would differ from the stored one and rewrite status on every pass.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("the current second is a valid timestamp")
}

/// What every reconciler shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The configuration `client` was built from (for impersonating ServiceAccounts).
    pub kube_config: kube::Config,
    /// Event recorder (one per process; Events carry the controller name).
    pub recorder: Recorder,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Controller configuration.
    pub config: Arc<Config>,
    /// Per-object retry backoff.
    pub backoff: backoff::Backoff,
    /// The content-addressed artifact store.
    pub store: Arc<Store>,
    /// Git mirrors, one per repository URL.
    pub mirrors: Arc<Mirrors>,
    /// The HTTP client of health checks (HTTP and Prometheus).
    pub prober: crate::checks::http::Prober,
    /// Webhook notifications (one delivery task per configured webhook).
    pub notifier: crate::notify::Notifier,
}

impl Context {
    /// Builds the shared context; `instance` identifies this replica in Events. Fails when the
    /// artifact directory cannot be used.
    pub fn new(
        client: Client,
        kube_config: kube::Config,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        instance: String,
    ) -> std::io::Result<Self> {
        let reporter = Reporter { controller: "conveyor".into(), instance: Some(instance) };
        let store = Arc::new(Store::open(&config.artifact_dir)?);
        let mirrors = Arc::new(Mirrors::new(config.artifact_dir.join("git")));
        let prober = crate::checks::http::Prober::new(config.allow_link_local_checks).map_err(std::io::Error::other)?;
        let notifier =
            crate::notify::Notifier::start(&config.notification_webhooks, config.notification_timeout, metrics.clone())
                .map_err(std::io::Error::other)?;
        Ok(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            kube_config,
            metrics,
            config,
            backoff: backoff::Backoff::default(),
            store,
            mirrors,
            prober,
            notifier,
        })
    }

    /// An `Api` over all namespaces, or only `watch_namespace` when set.
    pub fn watched_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        if self.config.watch_namespace.is_empty() {
            Api::all(self.client.clone())
        } else {
            Api::namespaced(self.client.clone(), &self.config.watch_namespace)
        }
    }
}

/// Checks that the CRDs are installed, with a message saying how to install them if not.
pub async fn check_crds(ctx: &Context) -> std::result::Result<(), String> {
    let params = ListParams::default().limit(1);
    let pipelines = ctx.watched_api::<Pipeline>().list_metadata(&params).await;
    let releases = ctx.watched_api::<Release>().list_metadata(&params).await;
    match (pipelines, releases) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(kube::Error::Api(s)), _) | (_, Err(kube::Error::Api(s))) if s.code == 404 => {
            Err("the Conveyor CRDs (pipelines.conveyor.dev, releases.conveyor.dev) are not installed; \
             install them with `conveyor crds | kubectl apply --server-side -f -` (or `kubectl apply -f crds/`)"
                .to_owned())
        }
        (Err(e), _) | (_, Err(e)) => Err(format!("cannot list Conveyor resources: {e}")),
    }
}

/// Runs both controllers until `shutdown` is cancelled; sets `ready` once their caches have synced.
pub async fn run(ctx: Arc<Context>, ready: Arc<AtomicBool>, shutdown: CancellationToken) {
    let (release_controller, releases, mut pipelines_synced) = release::controller(ctx.clone(), shutdown.clone());
    let (pipeline_controller, pipelines) = pipeline::controller(ctx.clone(), shutdown.clone());
    ctx.metrics.environments.watch(pipelines.clone(), releases.clone());
    let started = ready.clone();
    let stop_readiness = shutdown.clone();
    let readiness = async move {
        let synced = async {
            let _ = pipelines_synced.wait_for(|synced| *synced).await;
            // The controllers' own appliers also wait on these stores, and kube-runtime wakes only
            // the last of several waiters: look again every 100 ms instead of parking on them.
            for store in [releases.wait_until_ready().boxed(), pipelines.wait_until_ready().boxed()] {
                let mut store = store;
                while tokio::time::timeout(Duration::from_millis(100), &mut store).await.is_err() {}
            }
        };
        tokio::select! {
            () = synced => {
                tracing::info!("caches synced; ready");
                ready.store(true, Ordering::Release);
            }
            () = stop_readiness.cancelled() => {}
        }
    };
    let controllers = async {
        tokio::join!(release_controller, pipeline_controller, readiness);
    };
    // Graceful shutdown lets in-flight reconciles finish, but kube-runtime waits for a store
    // that will never sync if shutdown comes before the first sync: bound the wait.
    let deadline = async {
        shutdown.cancelled().await;
        let grace = if started.load(Ordering::Acquire) { SHUTDOWN_GRACE } else { Duration::ZERO };
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = controllers => {}
        () = deadline => tracing::warn!(grace = ?SHUTDOWN_GRACE, "controllers did not stop in time; exiting anyway"),
    }
}

/// How long in-flight reconciles may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
