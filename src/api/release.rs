//! `Release`: one immutable version of an application, packaged from git.

// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeated `type_` keys as duplicates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pipeline::EnvironmentPhase;

/// One version of an application: where its manifests come from. Immutable once packaged.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "conveyor.dev",
    version = "v1alpha1",
    kind = "Release",
    namespaced,
    status = "ReleaseStatus",
    shortname = "rel",
    category = "conveyor",
    doc = "A Release is one version of an application, packaged from git into an immutable artifact and walked through its Pipeline's environments.",
    printcolumn(name = "Pipeline", type_ = "string", json_path = ".spec.pipeline"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".status.environment",
        description = "Furthest environment reached"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// Name of the Pipeline (same namespace) this release goes through.
    pub pipeline: String,
    /// SemVer 2.0 version, unique within the pipeline (for example `2.4.1`).
    pub version: String,
    /// Where the manifests come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Release notes; generated from git history when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Source of a release's manifests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// A git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// Directory inside the repository (default: the repository root): plain manifests, a
    /// kustomization or a Helm chart. `${CONVEYOR_ENVIRONMENT}` is replaced by each environment's
    /// name, e.g. `deploy/overlays/${CONVEYOR_ENVIRONMENT}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How the directory becomes manifests; detected when omitted: `Kustomize` when it holds a
    /// `kustomization.yaml` (or `.yml`, or `Kustomization`), `Helm` when it holds a `Chart.yaml`,
    /// `Plain` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderer: Option<Renderer>,
    /// Options of the `Helm` renderer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    /// Per-environment overrides, by Pipeline environment name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<EnvironmentSource>,
}

/// How the source directory becomes Kubernetes objects. When omitted it is detected from the
/// directory: `Kustomize` when it holds a `kustomization.yaml` (or `.yml`, or `Kustomization`),
/// `Helm` when it holds a `Chart.yaml`, `Plain` otherwise.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Renderer {
    /// The directory's `.yaml`, `.yml` and `.json` files, as they are.
    Plain,
    /// `kustomize build` of the directory (run as `kubectl kustomize`).
    Kustomize,
    /// `helm template` of the chart in the directory.
    Helm,
}

impl Renderer {
    /// The name as written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "Plain",
            Self::Kustomize => "Kustomize",
            Self::Helm => "Helm",
        }
    }
}

/// Options of the `Helm` renderer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// `.Release.Name` in the templates (default: the Pipeline's name, so object names stay the
    /// same from one version to the next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Values files, relative to `path` (`..` allowed while it stays inside the repository),
    /// applied in order after the chart's own `values.yaml`; `${CONVEYOR_ENVIRONMENT}` is replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
}

/// What one environment renders differently.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSource {
    /// A Pipeline environment name.
    pub name: String,
    /// Replaces `spec.source.path` for this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Helm values files for this environment, relative to its path, applied after
    /// `spec.source.helm.valuesFiles` (so they win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
}

/// A git repository and the ref to package.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// `https://` (or `http://`), `ssh://` (or `user@host:path`) or `file://` URL.
    pub url: String,
    /// Exactly one of tag, commit or branch; resolved once and recorded in `status.commit`.
    #[serde(rename = "ref")]
    pub reference: GitRef,
    /// Secret in the same namespace with credentials (`username`/`password`, or `identity`/`known_hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// A git ref: exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRef {
    /// A tag name, e.g. `v2.4.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A full commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// A branch name, resolved to its head once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// Reference to a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretRef {
    /// Secret name.
    pub name: String,
}

/// Packaging phase of a Release.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ReleasePhase {
    /// Accepted, not packaged yet.
    #[default]
    Pending,
    /// Fetching git and building the artifact.
    Packaging,
    /// The artifact is stored; the release can be deployed.
    Packaged,
    /// Packaging failed.
    Failed,
}

/// Observed state of a Release, written only by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Packaging phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReleasePhase>,
    /// The exact commit packaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// When that commit was made (committer time): where lead time for changes starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<Time>,
    /// The packaged artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// Release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The spec as it was when packaged; later changes to the spec are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packaged_spec: Option<ReleaseSpec>,
    /// Furthest environment this release has reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// This release's journey, one entry per environment reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<ReleaseEnvironment>,
    /// `Ready`, `Reconciling` and `Stalled` (kstatus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A packaged artifact.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// `sha256:` digest of the gzip'd tar.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// Manifest files.
    pub files: i32,
    /// Kubernetes objects (over all environments when rendered per environment).
    pub objects: i32,
    /// The environments the artifact was rendered for, when what they get differs (a per-environment
    /// path or values, or a Helm chart); empty when every environment gets the same manifests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<ArtifactEnvironment>,
}

/// One environment's part of a per-environment artifact.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactEnvironment {
    /// Environment name; its manifests are under `<name>/` in the artifact.
    pub name: String,
    /// The namespace Helm rendered for (`.Release.Namespace`); only for Helm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes objects for this environment.
    pub objects: i32,
}

/// A release's state in one environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseEnvironment {
    /// Environment name.
    pub name: String,
    /// Phase of this release there.
    pub phase: EnvironmentPhase,
    /// Deployment id (matches the Pipeline's history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// When the deployment started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Why it failed here, or why it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Health check results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
}

/// Kind of health check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CheckType {
    /// Workload readiness.
    Workloads,
    /// HTTP GET.
    Http,
    /// PromQL query.
    Prometheus,
}

/// Verdict of a health check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CheckVerdict {
    /// Still running.
    Pending,
    /// Passed.
    Passed,
    /// Failed.
    Failed,
}

/// Latest result of one health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Check type.
    #[serde(rename = "type")]
    pub type_: CheckType,
    /// Verdict.
    pub result: CheckVerdict,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Consecutive successes so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successes: Option<i32>,
    /// Failures counted so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<i32>,
    /// When the check was last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
}
