//! Workload readiness, the built-in health check: reads each Deployment, StatefulSet and
//! DaemonSet of an environment's inventory and judges it with [`crate::core::health`].

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tracing::instrument;

use crate::core::health::{combine, daemonset_health, deployment_health, statefulset_health};
use crate::core::plan::{Health, ObjectRef};

/// The API version of the workloads judged here.
const APPS_V1: &str = "apps/v1";
/// How many workloads are read at once.
const CONCURRENT_READS: usize = 8;

/// A kind of workload whose readiness is judged.
#[derive(Clone, Copy, Debug)]
enum Workload {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Workload {
    fn of(object: &ObjectRef) -> Option<Self> {
        if object.api_version != APPS_V1 {
            return None;
        }
        match object.kind.as_str() {
            "Deployment" => Some(Self::Deployment),
            "StatefulSet" => Some(Self::StatefulSet),
            "DaemonSet" => Some(Self::DaemonSet),
            _ => None,
        }
    }
}

/// The health of the workloads among `inventory` (Deployments, StatefulSets, DaemonSets in group
/// apps/v1; other kinds ignored).
///
/// A workload that is not found is `Progressing` (it was just applied, or someone deleted it:
/// either way it is not ready); any other API error is returned for the shell to retry. Calls
/// are bounded by the client's timeouts; callers wanting a shorter deadline wrap this call.
#[instrument(skip_all, fields(objects = inventory.len()))]
pub async fn workloads_health(client: &Client, inventory: &[ObjectRef]) -> Result<Health, kube::Error> {
    // Owned pairs: a stream over borrowing closures makes the future not `Send` for every
    // lifetime, which kube-runtime's Controller requires of a reconcile.
    let workloads: Vec<(ObjectRef, Workload)> =
        inventory.iter().filter_map(|o| Some((o.clone(), Workload::of(o)?))).collect();
    let verdicts: Vec<(String, Health)> = stream::iter(workloads)
        .map(|(object, workload)| async move {
            let health = workload_health(client, &object, workload).await?;
            Ok::<_, kube::Error>((label(&object), health))
        })
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    Ok(combine(verdicts))
}

async fn workload_health(client: &Client, object: &ObjectRef, workload: Workload) -> Result<Health, kube::Error> {
    let Some(namespace) = object.namespace.as_deref() else {
        // Workloads are namespaced: an inventory entry without one is a bug that waiting
        // cannot fix, and guessing a namespace could judge someone else's object.
        return Ok(Health::Failed(format!("{} has no namespace in the inventory", label(object))));
    };
    match workload {
        Workload::Deployment => read::<Deployment>(client, namespace, object, deployment_health).await,
        Workload::StatefulSet => read::<StatefulSet>(client, namespace, object, statefulset_health).await,
        Workload::DaemonSet => read::<DaemonSet>(client, namespace, object, daemonset_health).await,
    }
}

async fn read<K>(
    client: &Client,
    namespace: &str,
    object: &ObjectRef,
    health: fn(&K) -> Health,
) -> Result<Health, kube::Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(match api.get_opt(&object.name).await? {
        Some(found) => health(&found),
        None => Health::Progressing(format!("{} not found", label(object))),
    })
}

fn label(object: &ObjectRef) -> String {
    format!("{}/{}", object.kind, object.name)
}
