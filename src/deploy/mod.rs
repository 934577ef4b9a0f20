//! The deploy adapter: renders a release's objects for one environment, dry-runs every one of
//! them with server-side apply, applies them (field manager `conveyor`), then prunes what the
//! environment's previous inventory held and the new one does not.
//!
//! All or nothing up to the apply: a refusal (unknown kind, cluster-scoped object not allowed,
//! duplicate, dry-run refused) applies nothing and comes back as [`DeployOutcome::Rejected`].
//! Every step is idempotent, so after a transient error the controller runs the whole deploy again.

mod prune;
mod render;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersion;
use kube::discovery::{self, ApiResource, Scope};
use kube::error::DiscoveryError;
use kube::{Client, Config};
use tracing::{debug, info, instrument};

use crate::api::OBJECT_MANAGER;
use crate::artifact::Object;
use crate::core::plan::{DeployOutcome, ObjectRef};

pub use render::{ENVIRONMENT_VARIABLE, Rendered, VERSION_VARIABLE, describe, render, render_object};

/// Where and as what a release is deployed.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Pipeline name.
    pub pipeline: &'a str,
    /// Pipeline namespace.
    pub pipeline_namespace: &'a str,
    /// Environment name.
    pub environment: &'a str,
    /// The environment's namespace: every namespaced object goes there.
    pub namespace: &'a str,
    /// Release object name.
    pub release: &'a str,
    /// Release version.
    pub version: &'a str,
    /// Whether cluster-scoped objects may be applied (controller config `allow_cluster_scoped`).
    pub allow_cluster_scoped: bool,
}

/// How long one API call may take. The kube client has no read timeout of its own, and a
/// deploy must not hang a reconcile on a server that stopped answering.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the deploy adapter; refusals are not errors but [`DeployOutcome::Rejected`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call about one object (or kind) failed.
    #[error("{action} {object}: {}", message(source))]
    Call {
        /// What was being done: `discover`, `dry-run`, `apply`, `read`, `prune`.
        action: &'static str,
        /// The object or kind, described so a user can find it.
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An API call got no answer within [`CALL_TIMEOUT`].
    #[error("{action} {object}: no answer from the API server within {}s", CALL_TIMEOUT.as_secs())]
    Timeout {
        /// What was being done.
        action: &'static str,
        /// The object or kind.
        object: String,
    },
    /// A client impersonating a ServiceAccount could not be built.
    #[error("cannot build a client impersonating {user}: {source}")]
    Impersonation {
        /// The impersonated user name.
        user: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// Result with a deploy [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bounded name for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Call { source: kube::Error::Api(_), .. } => "api",
            Self::Call { .. } => "client",
            Self::Timeout { .. } => "timeout",
            Self::Impersonation { .. } => "client_config",
        }
    }

    /// Whether running the deploy again, unchanged, may succeed: the API server unreachable,
    /// overloaded (429, 5xx) or in a conflict (409).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Call { source, .. } => is_transient(source),
            Self::Timeout { .. } => true,
            Self::Impersonation { .. } => false,
        }
    }
}

/// Whether a client error may pass by itself.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code == 409 || status.code >= 500,
        // Discovery errors say what the server serves; asking again gives the same answer.
        kube::Error::Discovery(_) => false,
        _ => true,
    }
}

/// The API server's own words for an API error, the client's otherwise.
fn message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
}

/// Runs one API call under [`CALL_TIMEOUT`], naming what it was about when it fails.
async fn call<T>(
    action: &'static str,
    object: impl FnOnce() -> String,
    fut: impl Future<Output = kube::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(Error::Call { action, object: object(), source }),
        Err(_) => Err(Error::Timeout { action, object: object() }),
    }
}

/// A client that acts as ServiceAccount `service_account` in `namespace`, so applies are
/// bounded by that account's RBAC rather than the controller's.
pub fn impersonating(config: &Config, namespace: &str, service_account: &str) -> Result<Client> {
    let config = impersonation_config(config, namespace, service_account);
    let user = config.auth_info.impersonate.clone().unwrap_or_default();
    Client::try_from(config).map_err(|source| Error::Impersonation { user, source })
}

/// `config` acting as the ServiceAccount.
fn impersonation_config(config: &Config, namespace: &str, service_account: &str) -> Config {
    let mut config = config.clone();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{service_account}"));
    // The API server adds the ServiceAccount's own groups when none are given; groups left
    // over from the kubeconfig would grant more than the account has.
    config.auth_info.impersonate_groups = None;
    config
}

/// Dry-runs every object, then applies every object, then prunes what `previous` held and the
/// new inventory does not. Refusals apply nothing and return [`DeployOutcome::Rejected`].
#[instrument(skip_all, fields(pipeline = target.pipeline, environment = target.environment, release = target.release))]
pub async fn deploy(
    client: &Client,
    objects: &[Object],
    target: &Target<'_>,
    previous: &[ObjectRef],
) -> Result<DeployOutcome> {
    let mut kinds = Kinds::new(client);
    for object in objects {
        kinds.resolve(&object.id.api_version, &object.id.kind).await?;
    }
    let rendered = match render(objects, target, |id| kinds.scope(&id.api_version, &id.kind)) {
        Ok(rendered) => rendered,
        Err(reason) => return Ok(DeployOutcome::Rejected { reason }),
    };

    // Every object is dry-run before any is applied: one the server refuses must not leave
    // the environment half on the new release.
    let dry_run = PatchParams::apply(OBJECT_MANAGER).force().dry_run();
    for (object, one) in objects.iter().zip(&rendered) {
        let who = || describe(&object.id, &one.reference.name);
        let api = kinds.api(&one.reference)?;
        match call("dry-run", who, api.patch(&one.reference.name, &dry_run, &Patch::Apply(&one.value))).await {
            Ok(_) => debug!(object = %who(), "dry-run passed"),
            Err(Error::Call { source, .. }) if is_refusal(&source) => {
                let reason = format!("{}: the API server refused it: {}", who(), message(&source));
                info!(%reason, "dry-run refused; nothing applied");
                return Ok(DeployOutcome::Rejected { reason });
            }
            Err(e) => return Err(e),
        }
    }

    let apply = PatchParams::apply(OBJECT_MANAGER).force();
    for index in apply_order(&rendered) {
        let (object, one) = (&objects[index], &rendered[index]);
        let api = kinds.api(&one.reference)?;
        let who = || describe(&object.id, &one.reference.name);
        call("apply", who, api.patch(&one.reference.name, &apply, &Patch::Apply(&one.value))).await?;
    }
    let mut inventory: Vec<ObjectRef> = rendered.into_iter().map(|one| one.reference).collect();
    inventory.sort();
    info!(objects = inventory.len(), "applied");

    prune::prune(&mut kinds, target, previous, &inventory).await?;
    Ok(DeployOutcome::Applied { inventory })
}

/// Whether a dry-run error is the server saying no to this object (invalid, forbidden, its
/// namespace missing), rather than a failure that may pass.
fn is_refusal(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) if !is_transient(error) => status.code >= 400,
        // A 1.20 server answers 500 to an associative list item that omits a key it defaults
        // (a port without `protocol`). The same object gets the same answer every time, so
        // retrying would never end: it is the manifest that must change.
        kube::Error::Api(status) => status.code == 500 && status.message.contains("omits key field"),
        _ => false,
    }
}

/// Indices in the order objects are applied: Namespaces and CustomResourceDefinitions first
/// (what the others may live in or be instances of), the rest in artifact order.
fn apply_order(rendered: &[Rendered]) -> Vec<usize> {
    let first = |r: &ObjectRef| {
        matches!(
            (render::group(&r.api_version), r.kind.as_str()),
            ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition")
        )
    };
    let mut order: Vec<usize> = (0..rendered.len()).collect();
    // A stable sort keeps artifact order within each of the two groups.
    order.sort_by_key(|&i| !first(&rendered[i].reference));
    order
}

/// What the cluster serves, discovered once per kind within one deploy.
struct Kinds<'c> {
    client: &'c Client,
    /// `(apiVersion, kind)` → how it is served; `None` when nothing serves it.
    known: HashMap<(String, String), Option<(ApiResource, Scope)>>,
}

impl<'c> Kinds<'c> {
    fn new(client: &'c Client) -> Self {
        Self { client, known: HashMap::new() }
    }

    /// Discovers `kind` at `api_version` unless already known; `None` when nothing serves it.
    async fn resolve(&mut self, api_version: &str, kind: &str) -> Result<Option<&(ApiResource, Scope)>> {
        let key = (api_version.to_owned(), kind.to_owned());
        if !self.known.contains_key(&key) {
            let served = match GroupVersion::from_str(api_version) {
                Ok(gv) => {
                    let (gvk, client) = (gv.with_kind(kind), self.client);
                    call("discover", || format!("{kind} {api_version}"), async {
                        match discovery::pinned_kind(client, &gvk).await {
                            Ok((resource, caps)) => Ok(Some((resource, caps.scope))),
                            // 404: no such group/version; MissingKind: the group/version
                            // exists but does not serve this kind.
                            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
                            Err(kube::Error::Discovery(DiscoveryError::MissingKind(_))) => Ok(None),
                            Err(e) => Err(e),
                        }
                    })
                    .await?
                }
                Err(_) => None,
            };
            self.known.insert(key.clone(), served);
        }
        Ok(self.known.get(&key).and_then(Option::as_ref))
    }

    /// The scope of a kind already resolved (`None` if not served).
    fn scope(&self, api_version: &str, kind: &str) -> Option<Scope> {
        let key = (api_version.to_owned(), kind.to_owned());
        self.known.get(&key).and_then(Option::as_ref).map(|(_, scope)| scope.clone())
    }

    /// The API for a rendered object, whose kind was resolved before rendering.
    fn api(&self, object: &ObjectRef) -> Result<Api<DynamicObject>> {
        let key = (object.api_version.clone(), object.kind.clone());
        let Some(Some((resource, _))) = self.known.get(&key) else {
            // Rendering refuses kinds that were not resolved, so this means a bug; a failed
            // deploy is a kinder outcome than a panic in the controller.
            return Err(Error::Call {
                action: "apply",
                object: format!("{} {} {:?}", object.kind, object.api_version, object.name),
                source: kube::Error::Discovery(DiscoveryError::MissingKind(object.kind.clone())),
            });
        };
        Ok(match &object.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure(message, "").with_code(code)))
    }

    /// Compiles only while the deploy future can be spawned: the controller runs it on a
    /// multi-threaded runtime, and a closure held across an await can silently break that.
    #[allow(dead_code)]
    fn deploy_is_send(client: Client, objects: Vec<Object>, previous: Vec<ObjectRef>) {
        tokio::spawn(async move {
            let target = Target {
                pipeline: "p",
                pipeline_namespace: "ns",
                environment: "e",
                namespace: "ns",
                release: "r",
                version: "1.0.0",
                allow_cluster_scoped: false,
            };
            deploy(&client, &objects, &target, &previous).await
        });
    }

    #[test]
    fn transience_and_kinds() {
        let call = |source| Error::Call { action: "apply", object: "x".into(), source };
        let cases = [
            (call(api_error(500, "etcd timeout")), true, "api"),
            (call(api_error(503, "unavailable")), true, "api"),
            (call(api_error(429, "slow down")), true, "api"),
            (call(api_error(409, "conflict")), true, "api"),
            (call(api_error(422, "invalid")), false, "api"),
            (call(api_error(403, "forbidden")), false, "api"),
            (call(kube::Error::LinesCodecMaxLineLengthExceeded), true, "client"),
            (call(kube::Error::Discovery(DiscoveryError::MissingKind("Widget".into()))), false, "client"),
            (Error::Timeout { action: "apply", object: "x".into() }, true, "timeout"),
        ];
        for (err, transient, kind) in cases {
            assert_eq!(err.is_transient(), transient, "{err}");
            assert_eq!(err.kind(), kind, "{err}");
        }
    }

    #[test]
    fn refusals_are_the_servers_no() {
        assert!(is_refusal(&api_error(422, "invalid")));
        assert!(is_refusal(&api_error(403, "forbidden")));
        assert!(is_refusal(&api_error(404, "namespace not found")));
        assert!(is_refusal(&api_error(
            500,
            ".spec.ports: element 0: associative list with keys has an element that omits key field \"protocol\""
        )));
        assert!(!is_refusal(&api_error(500, "etcdserver: request timed out")));
        assert!(!is_refusal(&api_error(409, "conflict")));
        assert!(!is_refusal(&api_error(429, "slow down")));
    }

    #[test]
    fn api_errors_show_the_servers_message() {
        let err = Error::Call {
            action: "apply",
            object: "a.yaml document 1: ConfigMap v1 \"x\"".into(),
            source: api_error(422, "bad name"),
        };
        assert_eq!(err.to_string(), "apply a.yaml document 1: ConfigMap v1 \"x\": bad name (HTTP 422)");
    }

    #[test]
    fn namespaces_and_crds_go_first() {
        let one = |api_version: &str, kind: &str, name: &str| Rendered {
            reference: ObjectRef {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: None,
                name: name.into(),
            },
            value: serde_json::Value::Null,
        };
        let rendered = [
            one("v1", "ConfigMap", "a"),
            one("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com"),
            one("apps/v1", "Deployment", "b"),
            one("v1", "Namespace", "ns"),
            one("example.com/v1", "Namespace", "not-the-core-one"),
        ];
        assert_eq!(apply_order(&rendered), [1, 3, 0, 2, 4]);
    }

    #[test]
    fn impersonation_names_the_service_account() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().unwrap());
        config.auth_info.impersonate_groups = Some(vec!["system:masters".into()]);
        let acting = impersonation_config(&config, "shop", "deployer");
        assert_eq!(acting.auth_info.impersonate.as_deref(), Some("system:serviceaccount:shop:deployer"));
        assert_eq!(acting.auth_info.impersonate_groups, None);
        assert_eq!(acting.cluster_url, config.cluster_url);
        // The original config is left as it was.
        assert_eq!(config.auth_info.impersonate, None);
    }
}
