//! `Pipeline`: how one application is deployed through an ordered chain of environments.

// kube-derive takes one `printcolumn(...)` per column; clippy reads the repeated `type_` keys as duplicates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::release::CheckResult;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation that pauses a Pipeline: while it is `"true"`, no new deployment starts
/// (deployments in flight finish). Set by `conveyor pause`, removed by `conveyor resume`.
pub const PAUSED_ANNOTATION: &str = "conveyor.dev/paused";
/// Prefix of approval annotations: `approve.conveyor.dev/<environment>: <release>` lets that
/// release enter that `Manual` environment. Set by `conveyor approve`.
pub const APPROVE_ANNOTATION_PREFIX: &str = "approve.conveyor.dev/";
/// Prefix of rollback requests: `rollback.conveyor.dev/<environment>: <release>@<deployment id>`
/// asks the controller to re-apply `<release>` in that environment, provided the environment
/// still runs the deployment `<deployment id>` it ran when the request was made (so a request
/// is carried out once, and never after something newer was deployed). Set by `conveyor rollback`.
pub const ROLLBACK_ANNOTATION_PREFIX: &str = "rollback.conveyor.dev/";
/// Label on every object Conveyor applies: the Pipeline's name.
pub const PIPELINE_LABEL: &str = "conveyor.dev/pipeline";
/// Label on every object Conveyor applies: the Pipeline's namespace.
pub const PIPELINE_NAMESPACE_LABEL: &str = "conveyor.dev/pipeline-namespace";
/// Label on every object Conveyor applies: the Release it came from.
pub const RELEASE_LABEL: &str = "conveyor.dev/release";
/// Label on every object Conveyor applies: the environment it was applied for.
pub const ENVIRONMENT_LABEL: &str = "conveyor.dev/environment";

/// Desired deployment of one application: environments in promotion order.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "conveyor.dev",
    version = "v1alpha1",
    kind = "Pipeline",
    namespaced,
    status = "PipelineStatus",
    shortname = "pl",
    category = "conveyor",
    doc = "A Pipeline describes how one application is deployed: its environments in promotion order, their gates and health checks.",
    printcolumn(
        name = "Environments",
        type_ = "string",
        json_path = ".status.summary",
        description = "Phase per environment"
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
pub struct PipelineSpec {
    /// Environments in promotion order; a release enters environment i only once it is Healthy in i-1.
    pub environments: Vec<Environment>,
    /// What happens when a health check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackPolicy>,
    /// Entries kept per environment in `status.environments[].history` (1–100, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_limit: Option<i32>,
}

/// One environment of a pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Name, a DNS-1123 label (for example `staging`); unique within the pipeline.
    pub name: String,
    /// Namespace the artifact's objects are applied to.
    pub namespace: String,
    /// `Automatic` (default) promotes on health; `Manual` waits for `conveyor approve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// How long a release must stay healthy here before it is promoted on (`0s`, `10m`, `1h30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
    /// Health checks that decide whether a release is healthy here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<HealthChecks>,
    /// ServiceAccount (in `namespace`) to impersonate when applying objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Whether promotion into an environment needs a person.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Approval {
    /// Promote as soon as the previous environment is healthy (and soaked).
    #[default]
    Automatic,
    /// Wait in `AwaitingApproval` until approved.
    Manual,
}

/// Health checks of one environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthChecks {
    /// Overall deadline for the environment to become healthy (default: the controller's
    /// `validation_timeout`, `5m` unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Wait for the artifact's Deployments, StatefulSets and DaemonSets to become ready (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<bool>,
    /// HTTP GET checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpCheck>,
    /// PromQL checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prometheus: Vec<PrometheusCheck>,
}

/// An HTTP GET health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// Name shown in status (defaults to the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `http://` or `https://` URL to GET.
    pub url: String,
    /// Expected HTTP status code (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<i32>,
    /// Text the response body must contain (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// Time between probes (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Deadline for one probe, connection included (default `5s`); a probe that takes longer fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Consecutive successes needed to pass (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    /// Failures tolerated before the check fails (default 0: the first failure fails it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<i32>,
}

/// A PromQL health check evaluated against the Prometheus HTTP API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusCheck {
    /// Name shown in status.
    pub name: String,
    /// Instant query returning a single value.
    pub query: String,
    /// Condition on the value: an operator (`<`, `<=`, `>`, `>=`, `==`, `!=`) and a number, e.g. `< 0.05`.
    pub condition: String,
    /// Time between queries (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Deadline for one query (default `5s`); a query that takes longer counts as unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Consecutive successes needed to pass (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    /// Failures tolerated before the check fails (default 0: the first failure fails it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<i32>,
    /// What a query with no result (no series, or NaN) counts as: `Fail` (default), `Ignore` or `Pass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_data: Option<InconclusivePolicy>,
    /// What an unreachable Prometheus (error, timeout, error answer) counts as: `Fail` (default) or `Ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_unreachable: Option<InconclusivePolicy>,
    /// Prometheus base URL overriding the controller default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// What an inconclusive Prometheus result counts as.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum InconclusivePolicy {
    /// A failure, toward `failureLimit` (fail closed).
    #[default]
    Fail,
    /// Nothing: the check keeps waiting and the environment's timeout decides.
    Ignore,
    /// A success (for `onNoData` only: a query for errors may have no series while all is well).
    Pass,
}

/// Rollback behaviour on a failed health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPolicy {
    /// Re-apply the last healthy release when a check fails (default: the controller's `rollback_enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<bool>,
}

/// Observed state of a Pipeline, written only by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled` (kstatus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One line per environment for `kubectl get` (`development=Healthy staging=Idle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// State of each environment, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<EnvironmentStatus>,
}

/// Phase of one environment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum EnvironmentPhase {
    /// Nothing deployed yet, or nothing to do.
    #[default]
    Idle,
    /// Objects are being applied.
    Deploying,
    /// Health checks are running.
    Verifying,
    /// Healthy, waiting out the soak time.
    Soaking,
    /// Healthy and soaked, waiting for `conveyor approve`.
    AwaitingApproval,
    /// The current release is healthy here.
    Healthy,
    /// The previous healthy release is being restored.
    RollingBack,
    /// The release failed here and nothing could be restored.
    Failed,
}

impl EnvironmentPhase {
    /// Every phase, in the order an environment usually goes through them.
    pub const ALL: [Self; 8] = [
        Self::Idle,
        Self::Deploying,
        Self::Verifying,
        Self::Soaking,
        Self::AwaitingApproval,
        Self::Healthy,
        Self::RollingBack,
        Self::Failed,
    ];

    /// The name as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Deploying => "Deploying",
            Self::Verifying => "Verifying",
            Self::Soaking => "Soaking",
            Self::AwaitingApproval => "AwaitingApproval",
            Self::Healthy => "Healthy",
            Self::RollingBack => "RollingBack",
            Self::Failed => "Failed",
        }
    }
}

/// State of one environment of a Pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// Environment name, as in spec.
    pub name: String,
    /// Current phase.
    pub phase: EnvironmentPhase,
    /// The release running here now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<DeployedRelease>,
    /// The release that ran here before `current`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<DeployedRelease>,
    /// The release waiting for `conveyor approve` to enter (phase `AwaitingApproval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_approval: Option<String>,
    /// Why the environment failed, or why nothing can start here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Deployments started here so far (numbers the deployment ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployments: Option<i64>,
    /// The newest version ever started here; only newer versions may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_version: Option<String>,
    /// Objects Conveyor applied here (used for pruning).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
    /// Health checks of the deployment being verified (or last verified) here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// Past deployments, newest first, at most `spec.historyLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
    /// The last rollback request refused (`<release>@<deployment id>`), so it is reported once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_rollback: Option<String>,
}

/// A release deployed into an environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployedRelease {
    /// Release object name.
    pub release: String,
    /// Release version.
    pub version: String,
    /// Artifact digest (`sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// When it started running here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// The deployment's id (matches `history[].deploymentId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// When it was first seen healthy here (its soak started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<Time>,
    /// When its objects were applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<Time>,
    /// Set on a rollback: the release it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
}

/// An object Conveyor applied into an environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// `group/version` or `version`.
    pub api_version: String,
    /// Object kind.
    pub kind: String,
    /// Namespace, absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

/// Outcome of a finished deployment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeploymentResult {
    /// Became healthy.
    Succeeded,
    /// Failed its checks.
    Failed,
    /// Failed and the previous release was restored.
    RolledBack,
}

/// One past deployment in an environment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Unique id of this deployment.
    pub deployment_id: String,
    /// Release object name.
    pub release: String,
    /// Release version.
    pub version: String,
    /// Outcome.
    pub result: DeploymentResult,
    /// When the deployment started.
    pub started_at: Time,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Why it ended the way it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set on a rollback: the release it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// Its health checks as they stood when it finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
}
