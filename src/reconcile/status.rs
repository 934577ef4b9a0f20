//! Status writes (server-side apply, field manager `conveyor-status`) and transition Events.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Result};
use crate::api::{ConditionType, STATUS_MANAGER};
use crate::core::conditions;
use crate::core::notes::truncate_at_char_boundary;

/// Applies `status` unless it equals `current`; one patch per reconcile at most.
pub async fn apply<K, S>(api: &Api<K>, obj: &K, current: Option<&S>, status: &S) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&obj.name_any(), &PatchParams::apply(STATUS_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(true)
}

/// Emits a Warning Event when the object becomes Stalled or its stall reason changes.
pub async fn event_on_stall<K>(ctx: &Context, obj: &K, before: &[Condition], after: &[Condition])
where
    K: Resource<DynamicType = ()>,
{
    let stalled = |cs: &[Condition]| {
        conditions::find(cs, ConditionType::Stalled).filter(|c| c.status == "True").map(|c| c.reason.clone())
    };
    let (old, new) = (stalled(before), stalled(after));
    let Some(reason) = new else { return };
    if old.as_ref() == Some(&reason) {
        return;
    }
    let note = conditions::find(after, ConditionType::Stalled).map(|c| c.message.clone()).unwrap_or_default();
    publish(ctx, obj, EventType::Warning, &reason, &note, "Validate").await;
}

/// Publishes an Event about `obj`; `reason` is a stable PascalCase word.
pub async fn publish<K>(ctx: &Context, obj: &K, type_: EventType, reason: &str, note: &str, action: &str)
where
    K: Resource<DynamicType = ()>,
{
    publish_related(ctx, obj, None, type_, reason, note, action).await;
}

/// Publishes an Event about `obj` that also concerns `related`.
///
/// The recorder folds an Event into an earlier one with the same type, reason, action and
/// objects (it only counts it again, keeping the first message), so whatever tells two
/// transitions apart must be in `action` or `related`, not only in the note.
pub async fn publish_related<K>(
    ctx: &Context,
    obj: &K,
    related: Option<ObjectReference>,
    type_: EventType,
    reason: &str,
    note: &str,
    action: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate_at_char_boundary(note.to_owned(), 1000)),
        action: action.to_owned(),
        secondary: related,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        // An Event is a courtesy; failing to write one must not fail the reconcile.
        tracing::warn!(error = %e, "could not publish Event");
    }
}
