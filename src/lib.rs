//! Conveyor: ships releases through environments in order.

/// CRD types: Pipeline, Release, conditions, newtypes.
pub mod api;
/// Manifests → validated objects → deterministic tar.gz + digest; the content-addressed store.
pub mod artifact;
/// Probes that return typed samples: workload readiness (http and prometheus later).
pub mod checks;
/// Human commands: package, release.
pub mod cli;
/// One typed configuration, parsed once.
pub mod config;
/// The pure decision core: validation, conditions, status, release notes.
pub mod core;
/// Deploys a release into an environment: render, server-side dry-run and apply, prune, inventory.
pub mod deploy;
/// Leader election on a Lease.
pub mod leader;
/// Webhook notifications of deploys, promotions, failures and rollbacks: queued, delivered in order, retried.
pub mod notify;
/// One packaging path for the controller and the CLI: git → validated manifests → artifact, notes.
pub mod packaging;
/// The reconcile shell around the core.
pub mod reconcile;
/// Release management in a local repository: versions, tags, changelog.
pub mod release;
/// Renderers (plain, kustomize, helm) and per-environment sources: what each environment renders.
pub mod renderers;
/// Git sources: mirror cache, fetch with credentials and a deadline, refs, manifests at a commit.
pub mod source;
/// Metrics, tracing, and the HTTP server for probes.
pub mod telemetry;
