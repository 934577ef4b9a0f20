//! Per-environment gauges, computed from the Pipeline and Release caches when scraped: they say
//! what status says now, and go away with their Pipeline (no stale series to clean up). Only a
//! replica running the controllers (the leader) has caches, so only it exports them.

use std::sync::{Arc, Mutex, RwLock};

use kube::runtime::reflector::Store;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGaugeVec, Opts};

use crate::api::pipeline::EnvironmentPhase;
use crate::api::{Pipeline, Release};
use crate::core::metrics::readings;

use super::ENVIRONMENT;

/// The controllers' caches the gauges are read from.
type Caches = (Store<Pipeline>, Store<Release>);

/// The collector of `conveyor_environment_*`; cheap to clone (shared state).
#[derive(Clone)]
pub struct Environments {
    caches: Arc<RwLock<Option<Caches>>>,
    gauges: Arc<Mutex<Gauges>>,
    descs: Arc<Vec<Desc>>,
}

struct Gauges {
    healthy: IntGaugeVec,
    phase: IntGaugeVec,
    release: IntGaugeVec,
    pending_since: GaugeVec,
}

impl Default for Environments {
    fn default() -> Self {
        let gauges = Gauges {
            healthy: IntGaugeVec::new(
                Opts::new(
                    "conveyor_environment_healthy",
                    "0 while the environment is Failed or RollingBack (a release failed its checks there and it has \
                     not been healthy since), 1 otherwise.",
                ),
                &ENVIRONMENT,
            )
            .expect("static metric definition"),
            phase: IntGaugeVec::new(
                Opts::new("conveyor_environment_phase", "1 for the environment's current phase, 0 for the others."),
                &[ENVIRONMENT[0], ENVIRONMENT[1], ENVIRONMENT[2], "phase"],
            )
            .expect("static metric definition"),
            release: IntGaugeVec::new(
                Opts::new("conveyor_environment_release_info", "1 for the release running in the environment."),
                &[ENVIRONMENT[0], ENVIRONMENT[1], ENVIRONMENT[2], "release", "version"],
            )
            .expect("static metric definition"),
            pending_since: GaugeVec::new(
                Opts::new(
                    "conveyor_environment_pending_since_timestamp_seconds",
                    "Unix time since which a release has been waiting to enter the environment (healthy in the \
                     previous one, awaiting approval, or the pipeline paused); absent while none waits.",
                ),
                &ENVIRONMENT,
            )
            .expect("static metric definition"),
        };
        let descs = [&gauges.healthy as &dyn Collector, &gauges.phase, &gauges.release, &gauges.pending_since]
            .iter()
            .flat_map(|c| c.desc().into_iter().cloned())
            .collect();
        Self { caches: Arc::default(), gauges: Arc::new(Mutex::new(gauges)), descs: Arc::new(descs) }
    }
}

impl Environments {
    /// Starts reading the controllers' caches.
    pub fn watch(&self, pipelines: Store<Pipeline>, releases: Store<Release>) {
        *self.caches.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((pipelines, releases));
    }
}

impl Collector for Environments {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // One scrape at a time fills the shared vectors from scratch.
        let gauges = self.gauges.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gauges.healthy.reset();
        gauges.phase.reset();
        gauges.release.reset();
        gauges.pending_since.reset();
        let caches = self.caches.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some((pipelines, releases)) = caches {
            let releases = releases.state();
            for pipeline in pipelines.state() {
                let namespace = pipeline.metadata.namespace.as_deref().unwrap_or_default();
                let name = pipeline.metadata.name.as_deref().unwrap_or_default();
                let mine =
                    releases.iter().map(AsRef::as_ref).filter(|r| r.metadata.namespace.as_deref() == Some(namespace));
                for reading in readings(&pipeline, mine) {
                    let at = [namespace, name, reading.environment.as_str()];
                    gauges.healthy.with_label_values(&at).set(i64::from(reading.healthy));
                    for phase in EnvironmentPhase::ALL {
                        let labels = [at[0], at[1], at[2], phase.as_str()];
                        gauges.phase.with_label_values(&labels).set(i64::from(phase == reading.phase));
                    }
                    if let Some((release, version)) = &reading.release {
                        gauges.release.with_label_values(&[at[0], at[1], at[2], release, version]).set(1);
                    }
                    if let Some(since) = reading.pending_since {
                        gauges.pending_since.with_label_values(&at).set(since.as_second() as f64);
                    }
                }
            }
        }
        [&gauges.healthy as &dyn Collector, &gauges.phase, &gauges.release, &gauges.pending_since]
            .iter()
            .flat_map(|c| c.collect())
            .collect()
    }
}
