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
        }
    }

    /// Whether the problem depends on other objects and may clear without a change to this one.
    pub fn depends_on_others(self) -> bool {
        matches!(self, Self::PipelineNotFound | Self::DuplicateVersion)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
