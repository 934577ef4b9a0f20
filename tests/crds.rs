//! CRDs: committed files equal the generated ones; they install on the real apiserver, become
//! Established, and serve the short names, category and printer columns users rely on.

mod support;

use conveyor::api::{crd_file_name, crd_yaml, crds};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

#[test]
fn committed_crds_equal_generated() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut expected_files: Vec<String> = Vec::new();
    for crd in crds() {
        let name = crd_file_name(&crd);
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == crd_yaml(&crd),
            "crds/{name} is out of date: run `cargo run -- crds --dir crds` and commit"
        );
        expected_files.push(name);
    }
    let mut present: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    present.sort();
    expected_files.sort();
    assert_eq!(present, expected_files, "crds/ holds files that `conveyor crds` does not generate");
}

#[test]
fn crds_carry_no_cel_rules() {
    // kube-apiserver 1.20 answers HTTP 500 to a CRD with x-kubernetes-validations.
    for crd in crds() {
        assert!(!crd_yaml(&crd).contains("x-kubernetes-validations"));
    }
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (name, short) in [("pipelines.conveyor.dev", "pl"), ("releases.conveyor.dev", "rel")] {
        let crd = api.get(name).await.unwrap();
        let names = crd.status.and_then(|s| s.accepted_names).expect("accepted names");
        assert_eq!(names.short_names, Some(vec![short.to_owned()]));
        assert_eq!(names.categories, Some(vec!["conveyor".to_owned()]));
    }
}

/// `kubectl get` output comes from the server's Table rendering of the printer columns.
async fn table(client: &kube::Client, ns: &str, plural: &str) -> Value {
    let req = http::Request::get(format!("/apis/conveyor.dev/v1alpha1/namespaces/{ns}/{plural}"))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap()
}

#[tokio::test]
async fn printer_columns_show_version_phase_and_readiness() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "columns").await;
    let release = json!({
        "apiVersion": "conveyor.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": "shop-1.2.3"},
        "spec": {"pipeline": "shop", "version": "1.2.3"}
    });
    let api: Api<conveyor::api::Release> = Api::namespaced(client.clone(), &ns);
    api.patch("shop-1.2.3", &PatchParams::apply("tests"), &Patch::Apply(&release)).await.unwrap();
    let status = json!({"apiVersion": "conveyor.dev/v1alpha1", "kind": "Release", "status": {
        "phase": "Packaged", "environment": "staging",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "ok",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    api.patch_status("shop-1.2.3", &PatchParams::apply("tests-status"), &Patch::Apply(&status)).await.unwrap();

    let t = table(&client, &ns, "releases").await;
    let columns: Vec<&str> =
        t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Name", "Pipeline", "Version", "Phase", "Environment", "Ready", "Status", "Age"]);
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[1], "shop");
    assert_eq!(cells[2], "1.2.3");
    assert_eq!(cells[3], "Packaged");
    assert_eq!(cells[4], "staging");
    assert_eq!(cells[5], "True");
    assert_eq!(cells[6], "ok");
}
