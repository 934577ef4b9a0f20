//! kstatus conditions built from [`ConditionType`] and [`Reason`], with stable transition times.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ConditionStatus, ConditionType, Reason};

/// The summary state an object is in, from which all three kstatus conditions follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Summary {
    /// Done: `Ready=True`, `Reconciling=False`, `Stalled=False`.
    Ready { reason: Reason, message: String },
    /// Working: `Ready=False`, `Reconciling=True`, `Stalled=False`.
    Reconciling { reason: Reason, message: String },
    /// Cannot progress without a change: `Ready=False`, `Reconciling=False`, `Stalled=True`.
    Stalled { reason: Reason, message: String },
}

impl Summary {
    fn reason_and_message(&self) -> (Reason, &str) {
        match self {
            Self::Ready { reason, message }
            | Self::Reconciling { reason, message }
            | Self::Stalled { reason, message } => (*reason, message),
        }
    }
}

/// The three conditions for `summary`, keeping each `lastTransitionTime` from `existing`
/// unless that condition's status flips.
pub fn conditions_for(
    summary: &Summary,
    existing: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let (reason, message) = summary.reason_and_message();
    let (ready, reconciling, stalled) = match summary {
        Summary::Ready { .. } => (true, false, false),
        Summary::Reconciling { .. } => (false, true, false),
        Summary::Stalled { .. } => (false, false, true),
    };
    [(ConditionType::Ready, ready), (ConditionType::Reconciling, reconciling), (ConditionType::Stalled, stalled)]
        .into_iter()
        .map(|(type_, holds)| {
            let status = ConditionStatus::from_bool(holds).as_str();
            let last_transition_time = existing
                .iter()
                .find(|c| c.type_ == type_.as_str() && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: type_.as_str().to_owned(),
                status: status.to_owned(),
                reason: reason.as_str().to_owned(),
                message: message.to_owned(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The condition of `type_` in `conditions`, if present.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Whether `type_` is `True` in `conditions`.
pub fn is_true(conditions: &[Condition], type_: ConditionType) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fixtures::t;

    fn stalled() -> Summary {
        Summary::Stalled { reason: Reason::InvalidVersion, message: "bad".into() }
    }

    #[test]
    fn stalled_sets_kstatus_triplet() {
        let c = conditions_for(&stalled(), &[], Some(3), t(10));
        let get = |ty| find(&c, ty).unwrap();
        assert_eq!(get(ConditionType::Stalled).status, "True");
        assert_eq!(get(ConditionType::Ready).status, "False");
        assert_eq!(get(ConditionType::Reconciling).status, "False");
        assert!(c.iter().all(|c| c.observed_generation == Some(3) && c.reason == "InvalidVersion"));
    }

    #[test]
    fn transition_time_kept_unless_status_flips() {
        let first = conditions_for(&stalled(), &[], Some(1), t(10));
        let again = conditions_for(&stalled(), &first, Some(2), t(20));
        assert!(again.iter().all(|c| c.last_transition_time == Time(t(10))));

        let fixed = Summary::Reconciling { reason: Reason::Progressing, message: "ok".into() };
        let after = conditions_for(&fixed, &again, Some(3), t(30));
        assert_eq!(find(&after, ConditionType::Stalled).unwrap().last_transition_time, Time(t(30)));
        assert_eq!(find(&after, ConditionType::Reconciling).unwrap().last_transition_time, Time(t(30)));
        // Ready stayed False: its transition time is kept.
        assert_eq!(find(&after, ConditionType::Ready).unwrap().last_transition_time, Time(t(10)));
    }
}
