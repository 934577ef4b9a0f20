//! The controller validates Pipelines and Releases on the real apiserver: each invalid input
//! ends `Stalled=True` with its reason and a message naming the field and the fix, while the
//! controller keeps running; valid objects leave `Stalled` (an idle Pipeline is `Ready`, a new Release
//! `Reconciling`); `observedGeneration` follows spec.

mod support;

use conveyor::api::{Pipeline, Release};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::ControllerProcess;

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is(conditions: &[Condition], type_: &str, status: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == status)
}

fn pipeline(name: &str, environments: Value) -> Value {
    json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": name},
           "spec": {"environments": environments}})
}

fn release(name: &str, pipeline: &str, version: &str, source: Option<Value>) -> Value {
    let mut spec = json!({"pipeline": pipeline, "version": version});
    if let Some(source) = source {
        spec["source"] = source;
    }
    json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Release", "metadata": {"name": name}, "spec": spec})
}

fn source() -> Value {
    json!({"git": {"url": "https://git.example.com/shop/checkout.git", "ref": {"tag": "v1.0.0"}}, "path": "deploy"})
}

fn envs3() -> Value {
    json!([{"name": "development", "namespace": "shop-dev"}, {"name": "staging", "namespace": "shop-staging"},
           {"name": "production", "namespace": "shop-prod", "approval": "Manual"}])
}

async fn apply<K>(api: &Api<K>, name: &str, obj: &Value)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::apply("tests"), &Patch::Apply(obj)).await.expect("apply");
}

async fn stalled_pipeline(api: &Api<Pipeline>, name: &str) -> Condition {
    let p = support::wait_for(api, name, &format!("Pipeline {name} Stalled"), |p: &Pipeline| {
        p.status.as_ref().is_some_and(|s| is(&s.conditions, "Stalled", "True"))
    })
    .await;
    let conditions = p.status.unwrap().conditions;
    assert!(is(&conditions, "Ready", "False") && is(&conditions, "Reconciling", "False"));
    condition(&conditions, "Stalled").cloned().unwrap()
}

async fn stalled_release(api: &Api<Release>, name: &str) -> Condition {
    let r = support::wait_for(api, name, &format!("Release {name} Stalled"), |r: &Release| {
        r.status.as_ref().is_some_and(|s| is(&s.conditions, "Stalled", "True"))
    })
    .await;
    let conditions = r.status.unwrap().conditions;
    assert!(is(&conditions, "Ready", "False") && is(&conditions, "Reconciling", "False"));
    condition(&conditions, "Stalled").cloned().unwrap()
}

#[tokio::test]
async fn invalid_pipelines_stall_with_named_reasons_and_the_controller_keeps_running() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "pl-invalid").await;
    let mut controller = ControllerProcess::start(&ns, "validator");
    let api: Api<Pipeline> = Api::namespaced(client.clone(), &ns);

    let cases = [
        ("empty", json!([]), "NoEnvironments", "spec.environments", "at least one"),
        (
            "dup-names",
            json!([{"name": "dev", "namespace": "a"}, {"name": "dev", "namespace": "b"}]),
            "DuplicateEnvironment",
            "spec.environments[1].name",
            "unique name",
        ),
        (
            "bad-ns",
            json!([{"name": "dev", "namespace": "Bad_NS"}]),
            "InvalidNamespace",
            "spec.environments[0].namespace",
            "lowercase",
        ),
        (
            "bad-soak",
            json!([{"name": "dev", "namespace": "a", "soak": "a while"}]),
            "InvalidDuration",
            "spec.environments[0].soak",
            "30s, 5m or 1h30m",
        ),
    ];
    for (name, envs, ..) in &cases {
        apply(&api, name, &pipeline(name, envs.clone())).await;
    }
    for (name, _, reason, field, fix) in &cases {
        let stalled = stalled_pipeline(&api, name).await;
        assert_eq!(stalled.reason, *reason, "pipeline {name}");
        assert!(
            stalled.message.contains(field) && stalled.message.contains(fix),
            "pipeline {name}: {}",
            stalled.message
        );
    }

    // Still running, and still reconciling: a valid pipeline alongside the invalid ones is
    // Ready (nothing to deploy yet).
    assert!(controller.is_running());
    apply(&api, "good", &pipeline("good", envs3())).await;
    let good = support::wait_for(&api, "good", "Pipeline good Ready", |p: &Pipeline| {
        p.status.as_ref().is_some_and(|s| is(&s.conditions, "Ready", "True"))
    })
    .await;
    let status = good.status.unwrap();
    assert!(is(&status.conditions, "Stalled", "False") && is(&status.conditions, "Reconciling", "False"));
    let names: Vec<_> = status.environments.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["development", "staging", "production"]);

    // One Warning Event per stalled object, with the reason.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let list = events.list(&ListParams::default()).await.unwrap();
    for (name, _, reason, ..) in &cases {
        let matching = list
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
            .count();
        assert_eq!(matching, 1, "Warning Event {reason} for pipeline {name}");
    }
    assert!(controller.is_running());
}

#[tokio::test]
async fn invalid_releases_stall_with_named_reasons() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "rel-invalid").await;
    let _controller = ControllerProcess::start(&ns, "validator");
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let api: Api<Release> = Api::namespaced(client.clone(), &ns);
    apply(&pipelines, "shop", &pipeline("shop", envs3())).await;

    apply(&api, "shop-1.0.0", &release("shop-1.0.0", "shop", "1.0.0", Some(source()))).await;
    support::wait_for(&api, "shop-1.0.0", "the first 1.0.0 Reconciling", |r: &Release| {
        r.status.as_ref().is_some_and(|s| is(&s.conditions, "Reconciling", "True"))
    })
    .await;

    let cases = [
        (release("not-semver", "shop", "v1.0", Some(source())), "InvalidVersion", "spec.version", "2.4.1"),
        (release("no-pipeline", "nowhere", "1.0.0", Some(source())), "PipelineNotFound", "spec.pipeline", "create it"),
        // Created after shop-1.0.0 and sorting after it, so it is the newer whatever the clock says.
        (release("shop-1.0.0-again", "shop", "1.0.0", Some(source())), "DuplicateVersion", "shop-1.0.0", "new version"),
        (release("no-source", "shop", "1.0.1", None), "MissingSource", "spec.source", "spec.source.git.url"),
    ];
    for (obj, ..) in &cases {
        let name = obj["metadata"]["name"].as_str().unwrap();
        apply(&api, name, obj).await;
    }
    for (obj, reason, field, fix) in &cases {
        let name = obj["metadata"]["name"].as_str().unwrap();
        let stalled = stalled_release(&api, name).await;
        assert_eq!(stalled.reason, *reason, "release {name}");
        assert!(
            stalled.message.contains(field) && stalled.message.contains(fix),
            "release {name}: {}",
            stalled.message
        );
    }

    // The owner of 1.0.0 is untouched by the duplicate.
    let owner = api.get("shop-1.0.0").await.unwrap();
    assert!(is(&owner.status.unwrap().conditions, "Stalled", "False"));

    // Creating the missing Pipeline un-stalls the release that named it, without touching the release.
    apply(&pipelines, "nowhere", &pipeline("nowhere", json!([{"name": "dev", "namespace": "nowhere-dev"}]))).await;
    support::wait_for(&api, "no-pipeline", "release un-stalled once its Pipeline exists", |r: &Release| {
        r.status.as_ref().is_some_and(|s| is(&s.conditions, "Reconciling", "True"))
    })
    .await;
}

#[tokio::test]
async fn observed_generation_follows_spec_changes_and_a_fix_clears_stalled() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "generation").await;
    let controller = ControllerProcess::start(&ns, "validator");
    let api: Api<Pipeline> = Api::namespaced(client.clone(), &ns);

    apply(&api, "shop", &pipeline("shop", json!([{"name": "dev", "namespace": "Not Valid"}]))).await;
    let stalled = stalled_pipeline(&api, "shop").await;
    let first_generation = api.get("shop").await.unwrap().metadata.generation.unwrap();
    assert_eq!(stalled.observed_generation, Some(first_generation));

    apply(&api, "shop", &pipeline("shop", envs3())).await;
    let fixed =
        support::wait_for(&api, "shop", "fixed Pipeline observed at its new generation", move |p: &Pipeline| {
            let generation = p.metadata.generation;
            generation > Some(first_generation)
                && p.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == generation && is(&s.conditions, "Ready", "True"))
        })
        .await;
    let status = fixed.status.unwrap();
    assert!(is(&status.conditions, "Stalled", "False"));
    assert!(status.conditions.iter().all(|c| c.observed_generation == fixed.metadata.generation));

    // A reconcile that changes nothing writes nothing: label the object (a watch event that
    // triggers a reconcile without changing the spec) and check that only the label moved it.
    let reconciles = r#"conveyor_reconcile_duration_seconds_count{controller="pipeline"}"#;
    let before = controller.metric(reconciles).await.unwrap_or(0.0);
    let labelled = api
        .patch("shop", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})))
        .await
        .unwrap();
    support::poll("a reconcile after the label change", support::DEADLINE, || async {
        controller.metric(reconciles).await.filter(|n| *n > before)
    })
    .await;
    let after = api.get("shop").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, labelled.metadata.resource_version,
        "status rewritten without a change"
    );
}

#[tokio::test]
async fn same_version_releases_created_together_converge_on_one_owner() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "same-version").await;
    let _controller = ControllerProcess::start(&ns, "validator");
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let api: Api<Release> = Api::namespaced(client.clone(), &ns);
    apply(&pipelines, "shop", &pipeline("shop", envs3())).await;
    for name in ["twin-b", "twin-a"] {
        apply(&api, name, &release(name, "shop", "3.0.0", Some(source()))).await;
    }
    let (owner, duplicate) = support::poll("exactly one owner of 3.0.0", support::DEADLINE, || async {
        let state = |r: &Release| {
            let s = r.status.as_ref()?;
            (s.observed_generation == r.metadata.generation).then(|| condition(&s.conditions, "Stalled").cloned())?
        };
        let (a, b) = (api.get("twin-a").await.ok()?, api.get("twin-b").await.ok()?);
        let (sa, sb) = (state(&a)?, state(&b)?);
        match (sa.status.as_str(), sb.status.as_str()) {
            ("False", "True") if sb.reason == "DuplicateVersion" => Some(("twin-a", sb)),
            ("True", "False") if sa.reason == "DuplicateVersion" => Some(("twin-b", sa)),
            _ => None,
        }
    })
    .await;
    assert!(duplicate.message.contains(&format!("Release `{owner}`")), "{}", duplicate.message);
}
