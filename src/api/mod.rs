//! The Kubernetes API of Conveyor: CRD types only (serde + schemars + kube-derive).

pub mod condition;
pub mod pipeline;
pub mod release;
pub mod types;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use condition::{ConditionStatus, ConditionType, Reason};
pub use pipeline::{Pipeline, PipelineSpec, PipelineStatus};
pub use release::{Release, ReleaseSpec, ReleaseStatus};

/// API group of every Conveyor resource.
pub const GROUP: &str = "conveyor.dev";
/// Field manager for objects Conveyor applies into environments.
pub const OBJECT_MANAGER: &str = "conveyor";
/// Field manager for the status subresource (kept apart from spec ownership, see DESIGN.md).
pub const STATUS_MANAGER: &str = "conveyor-status";
/// Field manager for `Release.status.environment(s)`, the journey the Pipeline controller
/// writes; the Release controller's status writes leave those fields to it.
pub const JOURNEY_MANAGER: &str = "conveyor-journey";

/// Every CRD Conveyor serves, in a stable order (pipelines, then releases).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Pipeline::crd(), Release::crd()]
}

/// The file name under `crds/` for a CRD (`conveyor.dev_pipelines.yaml`).
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{GROUP}_{}.yaml", crd.spec.names.plural)
}

/// One CRD as a YAML document starting with `---`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    let body = serde_norway::to_string(crd).expect("a CRD always serialises to YAML");
    format!("---\n{body}")
}

/// All CRDs as one multi-document YAML stream, exactly the concatenation of the files in `crds/`.
pub fn crds_yaml() -> String {
    crds().iter().map(crd_yaml).collect()
}
