//! Leader election on a coordination.k8s.io Lease, so two replicas never reconcile at once.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running election: tells when this replica leads and when it stops leading.
pub struct Election {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Election {
    /// Joins the election for Lease `namespace/name` as `identity`.
    pub async fn join(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Result<Self, LeaseManagerError> {
        let secs = duration.as_secs().max(5);
        // Renew when a third of the lease is left, so a slow API call does not lose it.
        let grace = (secs / 3).max(1);
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(secs)
            .with_grace(grace)
            .with_field_manager(format!("conveyor-lease-{identity}"))
            .build()
            .await?;
        let (state, task) = manager.watch().await;
        Ok(Self { state, task })
    }

    /// Waits until this replica holds the Lease. Returns false if the election ended instead.
    pub async fn acquired(&mut self) -> bool {
        self.state.wait_for(|leading| *leading).await.is_ok()
    }

    /// Waits until this replica no longer holds the Lease (or the election task ended).
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|leading| !*leading).await;
    }

    /// Leaves the election, releasing the Lease if held, so a standby takes over at once.
    pub async fn release(self) {
        drop(self.state);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("lease released"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "could not release the lease; a standby takes over when it expires")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
            Err(_) => tracing::warn!("releasing the lease timed out; a standby takes over when it expires"),
        }
    }
}
