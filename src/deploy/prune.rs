//! Pruning: deletes what the environment's previous inventory held and the new one does not,
//! but only objects that still say they belong to this Pipeline.

use kube::api::{Api, DeleteParams, DynamicObject, Preconditions};
use kube::discovery::Scope;
use tracing::info;

use super::{Error, Kinds, Result, Target, call, render::group};
use crate::api::pipeline::{PIPELINE_LABEL, PIPELINE_NAMESPACE_LABEL};
use crate::core::plan::ObjectRef;

/// Deletes every entry of `previous` that is not in `inventory`, when its live labels name
/// `target`'s Pipeline. Gone already, or of a kind no longer served: nothing to do.
pub(super) async fn prune(
    kinds: &mut Kinds<'_>,
    target: &Target<'_>,
    previous: &[ObjectRef],
    inventory: &[ObjectRef],
) -> Result<()> {
    // Plain loops, no iterator adapters with closures held across the awaits: those make the
    // future's Send bound fail to be general enough for kube-runtime's controller.
    for old in previous {
        if inventory.iter().any(|new| same_object(old, new)) {
            continue;
        }
        let who = || format!("{} {} {}", old.kind, old.api_version, place(old));
        let Some((resource, scope)) = kinds.resolve(&old.api_version, &old.kind).await?.cloned() else {
            // Its CRD (or API version) was removed since: no object of it can be left to delete.
            info!(object = %who(), "not pruned: no API serves this kind any more");
            continue;
        };
        let api: Api<DynamicObject> = match (&scope, &old.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(kinds.client.clone(), ns, &resource),
            (Scope::Cluster, _) => Api::all_with(kinds.client.clone(), &resource),
            (Scope::Namespaced, None) => {
                info!(object = %who(), "not pruned: the kind is namespaced but the inventory names no namespace");
                continue;
            }
        };
        let Some(live) = call("read", who, api.get_metadata_opt(&old.name)).await? else {
            continue;
        };
        let labels = live.metadata.labels.unwrap_or_default();
        let owner = (
            labels.get(PIPELINE_LABEL).map_or("", String::as_str),
            labels.get(PIPELINE_NAMESPACE_LABEL).map_or("", String::as_str),
        );
        if owner != (target.pipeline, target.pipeline_namespace) {
            // Someone took it over (or removed our labels): deleting it would destroy what
            // is no longer ours to manage.
            info!(
                object = %who(),
                pipeline = owner.0,
                pipeline_namespace = owner.1,
                "not pruned: its labels no longer name this pipeline"
            );
            continue;
        }
        // The uid precondition deletes exactly the object whose labels were just read, not one
        // recreated under the same name in between.
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: live.metadata.uid, resource_version: None }),
            ..DeleteParams::background()
        };
        match call("prune", who, api.delete(&old.name, &params)).await {
            Ok(_) => info!(object = %who(), "pruned"),
            Err(Error::Call { source: kube::Error::Api(status), .. }) if status.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether two references name the same object: the version does not matter (a release that
/// moves a Deployment from apps/v1beta2 to apps/v1 must not prune it).
fn same_object(a: &ObjectRef, b: &ObjectRef) -> bool {
    group(&a.api_version) == group(&b.api_version) && a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

/// `"name" in namespace "ns"` or `"name"`.
fn place(r: &ObjectRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{:?} in namespace {ns:?}", r.name),
        None => format!("{:?}", r.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn identity_ignores_the_version_only() {
        let web = r("apps/v1", "Deployment", Some("ns"), "web");
        assert!(same_object(&web, &r("apps/v1beta2", "Deployment", Some("ns"), "web")));
        assert!(!same_object(&web, &r("extensions/v1beta1", "Deployment", Some("ns"), "web")));
        assert!(!same_object(&web, &r("apps/v1", "StatefulSet", Some("ns"), "web")));
        assert!(!same_object(&web, &r("apps/v1", "Deployment", Some("other"), "web")));
        assert!(!same_object(&web, &r("apps/v1", "Deployment", None, "web")));
        assert!(!same_object(&web, &r("apps/v1", "Deployment", Some("ns"), "api")));
    }

    #[test]
    fn places_read_like_kubectl() {
        assert_eq!(place(&r("v1", "ConfigMap", Some("ns"), "a")), "\"a\" in namespace \"ns\"");
        assert_eq!(place(&r("v1", "Namespace", None, "a")), "\"a\"");
    }
}
