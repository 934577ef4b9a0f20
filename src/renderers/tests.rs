//! The pure parts: detection, substitution, paths inside the repository, and jobs.

use super::*;
use crate::api::release::{EnvironmentSource, HelmSource};

fn envs() -> Vec<Environment> {
    ["development", "staging", "production"]
        .iter()
        .map(|n| Environment { name: (*n).to_owned(), namespace: format!("shop-{n}") })
        .collect()
}

fn source(path: &str) -> Source {
    Source { path: Some(path.to_owned()), ..Source::default() }
}

/// Detection as if every directory held what its name says.
fn by_name(path: &str) -> Result<Renderer, Error> {
    Ok(if path.contains("chart") {
        Renderer::Helm
    } else if path.contains("overlays") || path.contains("kustomize") {
        Renderer::Kustomize
    } else {
        Renderer::Plain
    })
}

#[test]
fn detection_by_the_files_in_the_directory() {
    let cases: [(&[&str], Option<Renderer>); 7] = [
        (&["deployment.yaml", "service.yaml"], Some(Renderer::Plain)),
        (&["kustomization.yaml", "deployment.yaml"], Some(Renderer::Kustomize)),
        (&["kustomization.yml"], Some(Renderer::Kustomize)),
        (&["Kustomization"], Some(Renderer::Kustomize)),
        (&["Chart.yaml", "values.yaml", "templates"], Some(Renderer::Helm)),
        (&["Chart.yaml", "kustomization.yaml"], None),
        // Names are exact, as kustomize and helm read them.
        (&["chart.yaml", "Kustomization.yaml", "kustomization.json"], Some(Renderer::Plain)),
    ];
    for (names, want) in cases {
        assert_eq!(detect(names.iter().copied()), want, "{names:?}");
    }
}

#[test]
fn kustomization_files_by_name() {
    for (path, want) in [
        ("kustomization.yaml", true),
        ("overlays/dev/kustomization.yml", true),
        ("base/Kustomization", true),
        ("kustomization.yaml.bak", false),
        ("my-kustomization.yaml", false),
    ] {
        assert_eq!(is_kustomization(path), want, "{path}");
    }
}

#[test]
fn a_fixed_plain_or_kustomize_directory_is_one_shared_job() {
    for (path, renderer) in [("deploy", Renderer::Plain), ("kustomize/app", Renderer::Kustomize), ("", Renderer::Plain)]
    {
        let jobs = jobs(&source(path), &envs(), by_name).unwrap();
        assert_eq!(jobs, [Job { environment: None, path: path.to_owned(), renderer, values_files: vec![] }]);
    }
    // The path is kept as written, so that a plain release packages to the same bytes as before.
    let jobs = jobs(&source("./deploy/"), &envs(), by_name).unwrap();
    assert_eq!(jobs[0].path, "./deploy/");
}

#[test]
fn a_path_with_the_variable_is_one_job_per_environment_in_order() {
    let jobs = jobs(&source("deploy/overlays/${CONVEYOR_ENVIRONMENT}"), &envs(), by_name).unwrap();
    let got: Vec<(Option<&str>, &str, Renderer)> =
        jobs.iter().map(|j| (j.environment.as_ref().map(|e| e.name.as_str()), j.path.as_str(), j.renderer)).collect();
    assert_eq!(
        got,
        [
            (Some("development"), "deploy/overlays/development", Renderer::Kustomize),
            (Some("staging"), "deploy/overlays/staging", Renderer::Kustomize),
            (Some("production"), "deploy/overlays/production", Renderer::Kustomize),
        ]
    );
}

#[test]
fn overrides_replace_the_path_and_add_values_after_the_common_ones() {
    let mut s = source("charts/shop");
    s.helm = Some(HelmSource {
        release_name: None,
        values_files: vec!["values.yaml".into(), "values-${CONVEYOR_ENVIRONMENT}.yaml".into()],
    });
    s.environments = vec![
        EnvironmentSource { name: "production".into(), path: None, values_files: vec!["../../prod/extra.yaml".into()] },
        EnvironmentSource { name: "development".into(), path: Some("charts/shop-dev".into()), values_files: vec![] },
    ];
    let jobs = jobs(&s, &envs(), by_name).unwrap();
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[0].path, "charts/shop-dev");
    assert_eq!(jobs[0].values_files, ["charts/shop-dev/values.yaml", "charts/shop-dev/values-development.yaml"]);
    assert_eq!(jobs[1].values_files, ["charts/shop/values.yaml", "charts/shop/values-staging.yaml"]);
    assert_eq!(
        jobs[2].values_files,
        ["charts/shop/values.yaml", "charts/shop/values-production.yaml", "prod/extra.yaml"]
    );
    assert_eq!(
        jobs[2].environment,
        Some(Environment { name: "production".into(), namespace: "shop-production".into() })
    );
}

#[test]
fn helm_is_always_per_environment_and_an_explicit_renderer_is_not_detected() {
    let jobs = jobs(&source("charts/shop"), &envs(), by_name).unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j.renderer == Renderer::Helm && j.environment.is_some()));
    let mut s = source("deploy");
    s.renderer = Some(Renderer::Kustomize);
    let never = |_: &str| -> Result<Renderer, Error> { panic!("detected although the spec names the renderer") };
    let jobs = super::jobs(&s, &envs(), never).unwrap();
    assert_eq!((jobs.len(), jobs[0].renderer), (1, Renderer::Kustomize));
}

#[test]
fn refusals_name_the_field_and_the_fix() {
    let mut s = source("deploy/${CONVEYOR_ENVIRONMENT}");
    s.environments =
        vec![EnvironmentSource { name: "prod".into(), path: Some("deploy/p".into()), values_files: vec![] }];
    let err = jobs(&s, &envs(), by_name).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.source.environments[0].name: `prod` is not an environment of the Pipeline (it has development, \
         staging, production); fix the name"
    );
    assert_eq!(err.reason(), Reason::InvalidSource);

    let mut s = source("charts/shop");
    s.helm = Some(HelmSource { release_name: None, values_files: vec!["../../../secrets.yaml".into()] });
    let err = jobs(&s, &envs(), by_name).unwrap_err();
    assert_eq!(
        err.to_string(),
        "values file `../../../secrets.yaml` in charts/shop reaches outside the repository; use a path inside it, \
         without climbing above its root"
    );
    assert_eq!(err.reason(), Reason::InvalidPath);

    let ambiguous = |p: &str| -> Result<Renderer, Error> { Err(Error::Ambiguous { path: p.to_owned() }) };
    let err = jobs(&source("app"), &envs(), ambiguous).unwrap_err();
    assert!(err.to_string().contains("set spec.source.renderer to Kustomize or Helm"), "{err}");
}
