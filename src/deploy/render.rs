//! Rendering, pure: an artifact's objects as they are applied into one environment.
//!
//! - `${CONVEYOR_ENVIRONMENT}` and `${CONVEYOR_VERSION}` are replaced in every string value
//!   (never in keys), anywhere in the object.
//! - Namespaced objects get `metadata.namespace` = the environment's namespace, whatever the
//!   manifest said (like Flux's `targetNamespace`): one artifact deploys unchanged into every
//!   environment, and an artifact cannot reach into a namespace the Pipeline was not allowed.
//!   Cluster-scoped objects lose any `metadata.namespace` they carried.
//! - Four labels are merged into `metadata.labels` (ours win on a clash): pipeline, pipeline
//!   namespace, release, environment. Pod templates are left alone: a label there would change
//!   a Deployment's selector match and roll its pods on every release.
//!
//! Whether a kind is namespaced is a fact of the cluster, so it comes in as a lookup.

use std::collections::BTreeMap;

use kube::discovery::Scope;
use serde_json::{Map, Value};

use super::Target;
use crate::api::pipeline::{ENVIRONMENT_LABEL, PIPELINE_LABEL, PIPELINE_NAMESPACE_LABEL, RELEASE_LABEL};
use crate::artifact::{Object, ObjectId};
use crate::core::plan::ObjectRef;

/// Replaced by the environment's name in every string value.
pub const ENVIRONMENT_VARIABLE: &str = "${CONVEYOR_ENVIRONMENT}";
/// Replaced by the release's version in every string value.
pub const VERSION_VARIABLE: &str = "${CONVEYOR_VERSION}";

/// One object ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// What it is once rendered (namespace `None` for cluster-scoped objects).
    pub reference: ObjectRef,
    /// The body sent to the API server.
    pub value: Value,
}

/// Renders every object for `target`, in artifact order; `scope_of` says how the cluster serves
/// each kind (`None`: no API serves it). Err is a refusal naming the object at fault: a kind no
/// API serves, a cluster-scoped object the config does not allow, two objects that would be one.
pub fn render(
    objects: &[Object],
    target: &Target<'_>,
    scope_of: impl Fn(&ObjectId) -> Option<Scope>,
) -> Result<Vec<Rendered>, String> {
    let mut rendered = Vec::with_capacity(objects.len());
    // Identity ignores the version: apps/v1 and apps/v1beta1 Deployment "web" are one object.
    let mut seen: BTreeMap<(String, String, Option<String>, String), &ObjectId> = BTreeMap::new();
    for object in objects {
        let id = &object.id;
        let scope = match scope_of(id) {
            Some(scope) => scope,
            None => return Err(format!("{}: no API serves this kind in the cluster", describe(id, &id.name))),
        };
        if scope == Scope::Cluster && !target.allow_cluster_scoped {
            return Err(format!(
                "{}: cluster-scoped objects are not allowed; set the controller config key \
                 `allow_cluster_scoped: true` or remove the object from the release",
                describe(id, &id.name)
            ));
        }
        let one = render_object(object, target, scope == Scope::Namespaced)?;
        let r = &one.reference;
        let key = (group(&r.api_version).to_owned(), r.kind.clone(), r.namespace.clone(), r.name.clone());
        if let Some(first) = seen.insert(key, id) {
            let place = r.namespace.as_ref().map(|ns| format!(" in namespace {ns:?}")).unwrap_or_default();
            return Err(format!(
                "{} and {} document {} are both {} {:?}{place} once rendered; an object may appear once",
                describe(first, &r.name),
                id.file,
                id.document,
                r.kind,
                r.name
            ));
        }
        rendered.push(one);
    }
    Ok(rendered)
}

/// Renders one object whose kind is `namespaced` or not. Err names the object when its
/// metadata cannot carry what rendering adds.
pub fn render_object(object: &Object, target: &Target<'_>, namespaced: bool) -> Result<Rendered, String> {
    let id = &object.id;
    let mut value = object.value.clone();
    substitute(&mut value, target.environment, target.version);
    let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(format!("{}: metadata is not a mapping", describe(id, &id.name)));
    };
    let name = match metadata.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => return Err(format!("{}: metadata.name is not a non-empty string", describe(id, &id.name))),
    };
    let namespace = if namespaced {
        metadata.insert("namespace".into(), Value::from(target.namespace));
        Some(target.namespace.to_owned())
    } else {
        metadata.remove("namespace");
        None
    };
    let labels = metadata.entry("labels").or_insert(Value::Null);
    if labels.is_null() {
        *labels = Value::Object(Map::new());
    }
    let Some(labels) = labels.as_object_mut() else {
        return Err(format!("{}: metadata.labels is not a mapping", describe(id, &name)));
    };
    for (key, label) in [
        (PIPELINE_LABEL, target.pipeline),
        (PIPELINE_NAMESPACE_LABEL, target.pipeline_namespace),
        (RELEASE_LABEL, target.release),
        (ENVIRONMENT_LABEL, target.environment),
    ] {
        labels.insert(key.into(), Value::from(label));
    }
    // apiVersion and kind as the manifest wrote them: the scope was looked up for those.
    let (api_version, kind) = (id.api_version.clone(), id.kind.clone());
    Ok(Rendered { reference: ObjectRef { api_version, kind, namespace, name }, value })
}

/// `deploy/app.yaml document 2: Widget example.com/v1 "foo"`: where the object came from, so a
/// user can find it in the repository.
pub fn describe(id: &ObjectId, name: &str) -> String {
    format!("{} document {}: {} {} {name:?}", id.file, id.document, id.kind, id.api_version)
}

/// The group of an `apiVersion` (`""` for the core group).
pub fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Replaces the variables in every string value below `value`.
fn substitute(value: &mut Value, environment: &str, version: &str) {
    match value {
        // Environment names are DNS labels and versions SemVer: neither can contain a
        // variable, so replacing one after the other cannot substitute twice.
        Value::String(s) if s.contains("${CONVEYOR_") => {
            *s = s.replace(ENVIRONMENT_VARIABLE, environment).replace(VERSION_VARIABLE, version);
        }
        Value::Array(items) => items.iter_mut().for_each(|item| substitute(item, environment, version)),
        Value::Object(map) => map.values_mut().for_each(|item| substitute(item, environment, version)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{ManifestFile, parse_file};
    use serde_json::json;

    fn target(allow_cluster_scoped: bool) -> Target<'static> {
        Target {
            pipeline: "checkout",
            pipeline_namespace: "shop",
            environment: "staging",
            namespace: "checkout-staging",
            release: "checkout-2.4.1",
            version: "2.4.1",
            allow_cluster_scoped,
        }
    }

    fn objects(path: &str, yaml: &str) -> Vec<Object> {
        parse_file(&ManifestFile { path: path.into(), content: yaml.as_bytes().to_vec() }, 10_000).unwrap()
    }

    /// Core and apps kinds are namespaced, rbac ClusterRoles and Namespaces are not, nothing else is served.
    fn scope_of(id: &ObjectId) -> Option<Scope> {
        match id.kind.as_str() {
            "ConfigMap" | "Deployment" | "Service" => Some(Scope::Namespaced),
            "ClusterRole" | "Namespace" => Some(Scope::Cluster),
            _ => None,
        }
    }

    const APP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: somewhere-else
  labels: { app: checkout, conveyor.dev/release: forged }
data:
  environment: ${CONVEYOR_ENVIRONMENT}
  banner: checkout ${CONVEYOR_VERSION} on ${CONVEYOR_ENVIRONMENT}
  ${CONVEYOR_VERSION}: key stays
  list: '[${CONVEYOR_UNKNOWN}]'
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: web
          image: registry.example/web:${CONVEYOR_VERSION}
          args: [--env, '${CONVEYOR_ENVIRONMENT}', 3]
";

    #[test]
    fn substitutes_values_sets_namespace_and_labels() {
        let rendered = render(&objects("deploy/app.yaml", APP), &target(false), scope_of).unwrap();
        let [settings, web] = &rendered[..] else { panic!("two objects: {rendered:?}") };
        assert_eq!(
            settings.value,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "settings",
                    "namespace": "checkout-staging",
                    "labels": {
                        "app": "checkout",
                        "conveyor.dev/pipeline": "checkout",
                        "conveyor.dev/pipeline-namespace": "shop",
                        "conveyor.dev/release": "checkout-2.4.1",
                        "conveyor.dev/environment": "staging",
                    },
                },
                "data": {
                    "environment": "staging",
                    "banner": "checkout 2.4.1 on staging",
                    "${CONVEYOR_VERSION}": "key stays",
                    "list": "[${CONVEYOR_UNKNOWN}]",
                },
            })
        );
        assert_eq!(
            settings.reference,
            ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("checkout-staging".into()),
                name: "settings".into()
            }
        );
        let container = &web.value["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "registry.example/web:2.4.1");
        assert_eq!(container["args"], json!(["--env", "staging", 3]));
        assert_eq!(
            web.value["spec"]["template"]["metadata"]["labels"],
            json!({ "app": "web" }),
            "pod template untouched"
        );
        assert_eq!(web.value["metadata"]["labels"]["conveyor.dev/environment"], "staging");
        assert_eq!(web.reference.namespace.as_deref(), Some("checkout-staging"));
    }

    #[test]
    fn cluster_scoped_objects_lose_their_namespace_when_allowed() {
        let yaml =
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: { name: reader, namespace: x }\n";
        let rendered = render(&objects("rbac.yaml", yaml), &target(true), scope_of).unwrap();
        assert_eq!(rendered[0].reference.namespace, None);
        assert_eq!(rendered[0].value["metadata"].get("namespace"), None);
        assert_eq!(rendered[0].value["metadata"]["labels"]["conveyor.dev/pipeline"], "checkout");
    }

    #[test]
    fn refusals_name_the_object() {
        let cases = [
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\n---\n\
                 apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: foo }\n",
                true,
                "deploy/app.yaml document 2: Widget example.com/v1 \"foo\": no API serves this kind in the cluster",
            ),
            (
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: { name: reader }\n",
                false,
                "deploy/app.yaml document 1: ClusterRole rbac.authorization.k8s.io/v1 \"reader\": cluster-scoped \
                 objects are not allowed; set the controller config key `allow_cluster_scoped: true` or remove the \
                 object from the release",
            ),
            (
                // Different namespaces in the manifest, one namespace once rendered.
                "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a, namespace: one }\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a, namespace: two }\n",
                false,
                "deploy/app.yaml document 1: ConfigMap v1 \"a\" and deploy/app.yaml document 2 are both ConfigMap \
                 \"a\" in namespace \"checkout-staging\" once rendered; an object may appear once",
            ),
            (
                // Same group and kind at two versions is one object.
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: 'web-${CONVEYOR_ENVIRONMENT}' }\n---\n\
                 apiVersion: apps/v1beta2\nkind: Deployment\nmetadata: { name: web-staging }\n",
                false,
                "deploy/app.yaml document 1: Deployment apps/v1 \"web-staging\" and deploy/app.yaml document 2 are \
                 both Deployment \"web-staging\" in namespace \"checkout-staging\" once rendered; an object may \
                 appear once",
            ),
            (
                "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a, labels: [x] }\n",
                false,
                "deploy/app.yaml document 1: ConfigMap v1 \"a\": metadata.labels is not a mapping",
            ),
        ];
        for (yaml, allow, want) in cases {
            let err = render(&objects("deploy/app.yaml", yaml), &target(allow), scope_of).unwrap_err();
            assert_eq!(err, want, "{yaml}");
        }
    }

    #[test]
    fn same_name_in_different_kinds_or_groups_is_fine() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\n---\n\
                    apiVersion: v1\nkind: Service\nmetadata: { name: a }\n---\n\
                    apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: { name: a }\n";
        assert_eq!(render(&objects("a.yaml", yaml), &target(true), scope_of).unwrap().len(), 3);
    }

    #[test]
    fn null_labels_become_ours() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a, labels: null }\n";
        let rendered = render(&objects("a.yaml", yaml), &target(false), scope_of).unwrap();
        assert_eq!(rendered[0].value["metadata"]["labels"].as_object().map(Map::len), Some(4));
    }

    #[test]
    fn group_of_api_version() {
        assert_eq!(group("v1"), "");
        assert_eq!(group("apps/v1"), "apps");
        assert_eq!(group("rbac.authorization.k8s.io/v1"), "rbac.authorization.k8s.io");
    }
}
