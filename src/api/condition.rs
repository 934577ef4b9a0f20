//! kstatus conditions: the three condition types and every reason Conveyor writes.
//!
//! Reasons are stable API: tests, alerts and users' scripts match on them.

use serde::{Deserialize, Serialize};

/// The condition types Conveyor maintains on every object (kstatus conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionType {
    /// True when the object has reached its desired state.
    Ready,
    /// True while the controller is working towards the desired state.
    Reconciling,
    /// True when progress is impossible without a change from the user.
    Stalled,
}

impl ConditionType {
    /// The string form used in `status.conditions[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Reconciling => "Reconciling",
            Self::Stalled => "Stalled",
        }
    }
}

/// `True` / `False` of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
}

impl ConditionStatus {
    /// The string form used in `status.conditions[].status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
        }
    }

    /// `True` for `true`.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// Every reason Conveyor writes into a condition or an Event (PascalCase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Valid; the controller is working on it.
    Progressing,
    /// The object reached its desired state.
    Succeeded,
    // Pipeline spec problems.
    /// `spec.environments` is empty.
    NoEnvironments,
    /// An environment name is not a DNS-1123 label.
    InvalidEnvironmentName,
    /// Two environments share a name.
    DuplicateEnvironment,
    /// An environment namespace is not a valid namespace name.
    InvalidNamespace,
    /// Two environments deploy into the same namespace.
    DuplicateNamespace,
    /// `serviceAccountName` is not a valid ServiceAccount name.
    InvalidServiceAccount,
    /// A duration field does not parse.
    InvalidDuration,
    /// A health check is malformed.
    InvalidHealthCheck,
    /// `spec.historyLimit` is out of range.
    InvalidHistoryLimit,
    // Release spec problems.
    /// `spec.version` is not SemVer 2.0.
    InvalidVersion,
    /// `spec.pipeline` names no Pipeline in the namespace.
    PipelineNotFound,
    /// Another Release of the same pipeline already has this version.
    DuplicateVersion,
    /// `spec.source` is missing or has no git source.
    MissingSource,
    /// `spec.source` is present but malformed.
    InvalidSource,
    /// `spec.source.path` is absolute or climbs out of the repository with `..`.
    InvalidPath,
    /// The spec changed after the release was packaged; the change is refused.
    SpecImmutable,
    // Packaging progress and outcomes.
    /// Fetching git and building the artifact.
    Packaging,
    /// The artifact is stored and verified.
    Packaged,
    /// The git remote could not be reached in time (retried with backoff).
    GitUnreachable,
    /// The git remote refused the credentials (or asked for some and none were given).
    GitAuthFailed,
    /// The Secret named by `spec.source.git.secretRef` is missing or lacks usable keys.
    InvalidSecret,
    /// The tag, branch or commit does not exist in the repository.
    RefNotFound,
    /// `spec.source.path` does not exist at the commit, or is not a directory.
    PathNotFound,
    /// `spec.source.path` holds no `.yaml`, `.yml` or `.json` file.
    NoManifests,
    /// A manifest file is not valid YAML or JSON.
    InvalidYaml,
    /// A document is not a Kubernetes object (apiVersion, kind, metadata.name).
    InvalidObject,
    /// A document expands past the YAML node limit (alias bomb).
    YamlExpansionLimit,
    /// More manifest files than `package_max_files`.
    TooManyFiles,
    /// One manifest file larger than `package_max_file_bytes`.
    FileTooLarge,
    /// Manifests larger in total than `package_max_bytes`.
    ArtifactTooLarge,
    /// A symlink points outside `spec.source.path` (or at a directory).
    SymlinkEscape,
    /// An artifact rebuilt from git does not match the recorded digest.
    DigestMismatch,
    /// The artifact store could not be written or read (retried with backoff).
    StoreFailed,
    /// `kustomize build` or `helm template` failed; the engine's message follows.
    RenderFailed,
    /// The kustomize or helm binary is missing (retried with backoff).
    EngineUnavailable,
    // Pipeline progress.
    /// A release is being deployed or verified in an environment.
    Deploying,
    /// A release waits for `conveyor approve` to enter an environment.
    AwaitingApproval,
    /// A release failed in an environment and nothing newer has replaced it.
    DeploymentFailed,
    /// An environment's namespace does not allow the pipeline.
    NamespaceNotAllowed,
    /// The pipeline is paused; releases wait.
    Paused,
    /// A release failed in an environment and the previous healthy release was restored.
    RolledBack,
}

impl Reason {
    /// The PascalCase string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Progressing => "Progressing",
            Self::Succeeded => "Succeeded",
            Self::NoEnvironments => "NoEnvironments",
            Self::InvalidEnvironmentName => "InvalidEnvironmentName",
            Self::DuplicateEnvironment => "DuplicateEnvironment",
            Self::InvalidNamespace => "InvalidNamespace",
            Self::DuplicateNamespace => "DuplicateNamespace",
            Self::InvalidServiceAccount => "InvalidServiceAccount",
            Self::InvalidDuration => "InvalidDuration",
            Self::InvalidHealthCheck => "InvalidHealthCheck",
            Self::InvalidHistoryLimit => "InvalidHistoryLimit",
            Self::InvalidVersion => "InvalidVersion",
            Self::PipelineNotFound => "PipelineNotFound",
            Self::DuplicateVersion => "DuplicateVersion",
            Self::MissingSource => "MissingSource",
            Self::InvalidSource => "InvalidSource",
            Self::InvalidPath => "InvalidPath",
            Self::SpecImmutable => "SpecImmutable",
            Self::Packaging => "Packaging",
            Self::Packaged => "Packaged",
            Self::GitUnreachable => "GitUnreachable",
            Self::GitAuthFailed => "GitAuthFailed",
            Self::InvalidSecret => "InvalidSecret",
            Self::RefNotFound => "RefNotFound",
            Self::PathNotFound => "PathNotFound",
            Self::NoManifests => "NoManifests",
            Self::InvalidYaml => "InvalidYaml",
            Self::InvalidObject => "InvalidObject",
            Self::YamlExpansionLimit => "YamlExpansionLimit",
            Self::TooManyFiles => "TooManyFiles",
            Self::FileTooLarge => "FileTooLarge",
            Self::ArtifactTooLarge => "ArtifactTooLarge",
            Self::SymlinkEscape => "SymlinkEscape",
            Self::DigestMismatch => "DigestMismatch",
            Self::StoreFailed => "StoreFailed",
            Self::RenderFailed => "RenderFailed",
            Self::EngineUnavailable => "EngineUnavailable",
            Self::Deploying => "Deploying",
            Self::AwaitingApproval => "AwaitingApproval",
            Self::DeploymentFailed => "DeploymentFailed",
            Self::NamespaceNotAllowed => "NamespaceNotAllowed",
            Self::Paused => "Paused",
            Self::RolledBack => "RolledBack",
        }
    }

    /// Whether the problem depends on other objects and may clear without a change to this one.
    pub fn depends_on_others(self) -> bool {
        matches!(self, Self::PipelineNotFound | Self::DuplicateVersion | Self::GitAuthFailed | Self::InvalidSecret)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
