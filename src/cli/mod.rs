//! Human commands. Glue around the library; errors are `anyhow` here.

pub mod control;
pub mod package;
pub mod release;
pub mod rollback;
pub mod status;

use anyhow::Context as _;

/// A Kubernetes client (kubeconfig or in-cluster) on a runtime of its own: the commands are
/// blocking. `purpose` names what needs the cluster in the error (`--apply`, `conveyor pause`).
pub(crate) fn connect(purpose: &str) -> anyhow::Result<(tokio::runtime::Runtime, kube::Client)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .with_context(|| format!("cannot start the async runtime for {purpose}"))?;
    let client = runtime.block_on(kube::Client::try_default()).with_context(|| {
        format!("cannot build a Kubernetes client for {purpose} (is KUBECONFIG or in-cluster config set?)")
    })?;
    Ok((runtime, client))
}
