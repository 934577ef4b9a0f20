//! The Pipeline controller's I/O per environment: observe health, deploy a release (artifact
//! from the store, rebuilt from git when missing), and write each Release's journey.

use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use super::release::rebuild_if_missing;
use super::{Context, Error, Result};
use crate::api::pipeline::Environment;
use crate::api::release::ArtifactEnvironment;
use crate::api::types::Digest;
use crate::api::{JOURNEY_MANAGER, Pipeline, Release};
use crate::artifact::{Object, parse_file, read_archive};
use crate::checks::workloads::workloads_health;
use crate::core::checks::Sample;
use crate::core::duration;
use crate::core::environments::PROBE_TIMEOUT;
use crate::core::environments::{furthest, journey};
use crate::core::plan::{DeployOutcome, EnvironmentSpec, EnvironmentState, Health};
use crate::core::release::Outcome;
use crate::core::threshold::Threshold;
use crate::deploy::{self, Target};

/// The health of the release running in `env` (workload readiness; HTTP and Prometheus checks
/// come with the health-check work).
pub async fn health(ctx: &Context, env: &Environment, state: &EnvironmentState) -> Result<Health> {
    let workloads = env.health_checks.as_ref().and_then(|c| c.workloads).unwrap_or(true);
    if !workloads {
        return Ok(Health::Ready);
    }
    match tokio::time::timeout(HEALTH_READ_TIMEOUT, workloads_health(&ctx.client, &state.inventory)).await {
        Ok(health) => Ok(health?),
        // Unknown is not unhealthy: the environment's own timeout decides; look again soon.
        Err(_) => Ok(Health::Progressing(format!(
            "workload status could not be read within {}",
            humantime::format_duration(HEALTH_READ_TIMEOUT)
        ))),
    }
}

/// Probes the checks of `env` listed in `due` (indices into `check_specs`: HTTP checks first,
/// then Prometheus ones), all at once; each probe is bounded by its own timeout.
pub async fn probe(ctx: &Context, env: &Environment, due: &[usize]) -> Vec<(usize, Sample)> {
    let Some(checks) = env.health_checks.as_ref() else { return Vec::new() };
    let probes = due.iter().map(|&i| async move {
        let sample = match (checks.http.get(i), checks.prometheus.get(i.wrapping_sub(checks.http.len()))) {
            (Some(http), _) => {
                let expect = http.expect_status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
                let timeout = timeout_of(http.timeout.as_deref());
                ctx.prober.http(&http.url, expect, http.expect_body.as_deref(), timeout).await
            }
            (None, Some(prom)) => {
                let base = match prom.address.as_deref().map(url::Url::parse) {
                    Some(Ok(url)) => url,
                    Some(Err(e)) => return (i, Sample::Fail(format!("address is not a URL: {e}"))),
                    None => ctx.config.prometheus_address.clone(),
                };
                let Ok(condition) = Threshold::parse(&prom.condition) else {
                    return (i, Sample::Fail(format!("condition `{}` does not parse", prom.condition)));
                };
                let timeout = timeout_of(prom.timeout.as_deref());
                ctx.prober.prometheus(&base, &prom.query, &condition, prom.condition.trim(), timeout).await
            }
            (None, None) => Sample::Fail("no such check (the spec changed)".into()),
        };
        let kind = if i < checks.http.len() { "http" } else { "prometheus" };
        match &sample {
            Sample::Pass(_) => {}
            Sample::Fail(_) => ctx.metrics.check_failure(kind, "failed"),
            Sample::NoData(_) => ctx.metrics.check_failure(kind, "no_data"),
            Sample::Unreachable(_) => ctx.metrics.check_failure(kind, "unreachable"),
        }
        (i, sample)
    });
    futures::future::join_all(probes).await
}

fn timeout_of(field: Option<&str>) -> std::time::Duration {
    field.and_then(|s| duration::parse(s).ok()).unwrap_or(PROBE_TIMEOUT)
}

/// Deadline for reading the workloads' status in one round.
const HEALTH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Renders and applies `release` into environment `index` of `pipeline`; `state` is the
/// environment's state (its inventory is what the previous release applied, to prune).
pub async fn deploy(
    ctx: &Context,
    pipeline: &Pipeline,
    index: usize,
    state: &EnvironmentState,
    release: &str,
    releases: &[Arc<Release>],
) -> Result<DeployOutcome> {
    let ns = pipeline.namespace().ok_or(Error::MissingField("metadata.namespace"))?;
    let env = &pipeline.spec.environments[index];
    let Some(found) = releases.iter().find(|r| r.name_any() == release) else {
        return Ok(DeployOutcome::Rejected { reason: format!("Release {release} no longer exists") });
    };
    let objects = match artifact_objects(ctx, found, &ns, env).await? {
        Ok(objects) => objects,
        Err(reason) => return Ok(DeployOutcome::Rejected { reason }),
    };
    let client = match &env.service_account_name {
        Some(sa) => deploy::impersonating(&ctx.kube_config, &env.namespace, sa)?,
        None => ctx.client.clone(),
    };
    let name = pipeline.name_any();
    let target = Target {
        pipeline: &name,
        pipeline_namespace: &ns,
        environment: &env.name,
        namespace: &env.namespace,
        release,
        version: &found.spec.version,
        allow_cluster_scoped: ctx.config.allow_cluster_scoped,
    };
    Ok(deploy::deploy(&client, &objects, &target, &state.inventory).await?)
}

/// The objects of a release's artifact for environment `env`: from the store, or rebuilt from
/// git at the recorded commit when the store lost it. `Ok(Err(reason))` when the artifact can
/// never be had, or holds nothing for `env`.
async fn artifact_objects(
    ctx: &Context,
    release: &Release,
    ns: &str,
    env: &Environment,
) -> Result<Result<Vec<Object>, String>> {
    let status = release.status.as_ref();
    let (Some(commit), Some(artifact)) =
        (status.and_then(|s| s.commit.as_ref()), status.and_then(|s| s.artifact.as_ref()))
    else {
        return Ok(Err(format!("Release {} has no packaged artifact", release.name_any())));
    };
    let part = match environment_part(&release.name_any(), &artifact.environments, env) {
        Ok(part) => part,
        Err(reason) => return Ok(Err(reason)),
    };
    match rebuild_if_missing(release, ns, commit, &artifact.digest, ctx).await {
        Outcome::Verified => {}
        Outcome::Retrying { message, .. } => return Err(Error::Artifact(message)),
        Outcome::Failed { message, .. } => return Ok(Err(message)),
        other => return Err(Error::Artifact(format!("unexpected outcome {other:?}"))),
    }
    let digest = Digest::parse(&artifact.digest).map_err(|e| Error::Artifact(e.to_string()))?;
    let (store, max_nodes) = (ctx.store.clone(), ctx.config.package_limits.max_yaml_nodes);
    let read = tokio::task::spawn_blocking(move || -> Result<Result<Vec<Object>, String>, String> {
        let bytes = match store.read(&digest) {
            Ok(bytes) => bytes,
            Err(e) if e.is_transient() => return Err(e.to_string()),
            Err(e) => return Ok(Err(e.to_string())),
        };
        let files = read_archive(&bytes).map_err(|e| format!("artifact {digest} cannot be read: {e}"))?;
        let mut objects = Vec::new();
        // A per-environment artifact: only this environment's directory.
        for file in files.iter().filter(|f| part.as_ref().is_none_or(|prefix| f.path.starts_with(prefix.as_str()))) {
            match parse_file(file, max_nodes) {
                Ok(found) => objects.extend(found),
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        Ok(Ok(objects))
    });
    match read.await {
        Ok(Ok(objects)) => Ok(objects),
        Ok(Err(message)) => Err(Error::Artifact(message)),
        Err(join) => Err(Error::Artifact(format!("reading the artifact failed: {join}"))),
    }
}

/// Which part of an artifact environment `env` deploys: `None` for a shared artifact (all of
/// it), `<name>/` for a per-environment one. Err names why there is nothing to deploy: the
/// environment was added to the Pipeline after the release was packaged, or a Helm release was
/// rendered for another namespace than the environment now has. Either way the release must be
/// packaged again (a new Release); serving another environment's manifests would deploy what
/// was never rendered for this one.
pub fn environment_part(
    release: &str,
    recorded: &[ArtifactEnvironment],
    env: &Environment,
) -> Result<Option<String>, String> {
    if recorded.is_empty() {
        return Ok(None);
    }
    let Some(part) = recorded.iter().find(|e| e.name == env.name) else {
        let names: Vec<&str> = recorded.iter().map(|e| e.name.as_str()).collect();
        return Err(format!(
            "Release {release} was rendered for environments {} when it was packaged, not for {}, which was \
             added to the Pipeline since; create a new Release (a new version) to deploy to {}",
            names.join(", "),
            env.name,
            env.name
        ));
    };
    if let Some(namespace) = &part.namespace
        && *namespace != env.namespace
    {
        return Err(format!(
            "Release {release} was rendered by Helm for namespace {namespace} in environment {}, which now deploys \
             to {}; create a new Release (a new version) so that the chart is rendered for {}",
            env.name, env.namespace, env.namespace
        ));
    }
    Ok(Some(format!("{}/", env.name)))
}

/// Writes each Release's journey through the environments where it changed, with its own
/// field manager (the Release controller owns the rest of the Release status).
pub async fn write_journeys(
    ctx: &Context,
    pipeline: &Pipeline,
    specs: &[EnvironmentSpec],
    states: &[EnvironmentState],
    releases: &[Arc<Release>],
) -> Result<()> {
    let name = pipeline.name_any();
    for release in releases {
        if release.spec.pipeline != name {
            continue;
        }
        let recorded = release.status.as_ref().map(|s| s.environments.as_slice()).unwrap_or_default();
        let steps = journey(&release.name_any(), specs, states, recorded);
        if steps.as_slice() == recorded || steps.is_empty() {
            continue;
        }
        let mut status = serde_json::json!({ "environments": steps });
        if let Some(environment) = furthest(&steps) {
            status["environment"] = environment.into();
        }
        let patch = serde_json::json!({
            "apiVersion": Release::api_version(&()),
            "kind": Release::kind(&()),
            "status": status,
        });
        let api = Api::<Release>::namespaced(ctx.client.clone(), &release.namespace().unwrap_or_default());
        let params = PatchParams::apply(JOURNEY_MANAGER).force();
        match api.patch_status(&release.name_any(), &params, &Patch::Apply(&patch)).await {
            Ok(_) => {}
            // Deleted meanwhile: nothing to record.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, namespace: &str) -> Environment {
        serde_json::from_value(serde_json::json!({"name": name, "namespace": namespace})).unwrap()
    }

    fn recorded(name: &str, namespace: Option<&str>) -> ArtifactEnvironment {
        ArtifactEnvironment { name: name.into(), namespace: namespace.map(str::to_owned), objects: 3 }
    }

    #[test]
    fn a_shared_artifact_serves_every_environment_whole() {
        assert_eq!(environment_part("shop-1.0.0", &[], &env("added-later", "x")), Ok(None));
    }

    #[test]
    fn a_per_environment_artifact_serves_only_its_own_directory() {
        let parts = [recorded("development", None), recorded("staging", None)];
        assert_eq!(environment_part("shop-1.0.0", &parts, &env("staging", "shop-stg")), Ok(Some("staging/".into())));
        assert_eq!(
            environment_part("shop-1.0.0", &parts, &env("production", "shop-prod")).unwrap_err(),
            "Release shop-1.0.0 was rendered for environments development, staging when it was packaged, not for \
             production, which was added to the Pipeline since; create a new Release (a new version) to deploy to \
             production"
        );
    }

    #[test]
    fn helm_parts_are_bound_to_their_namespace() {
        let parts = [recorded("staging", Some("shop-stg"))];
        assert_eq!(environment_part("r", &parts, &env("staging", "shop-stg")), Ok(Some("staging/".into())));
        let err = environment_part("r", &parts, &env("staging", "shop-staging")).unwrap_err();
        assert!(
            err.contains("rendered by Helm for namespace shop-stg") && err.contains("now deploys to shop-staging"),
            "{err}"
        );
    }
}
