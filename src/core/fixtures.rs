//! Test builders shared by the core's unit tests: objects as users write them.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::pipeline::{Environment, PipelineSpec};
use crate::api::release::{Release, ReleaseSpec};

/// A timestamp `secs` seconds after the epoch.
pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("test timestamps are in range")
}

/// A pipeline spec from `(name, namespace)` pairs, nothing else set.
pub fn pipeline_spec(envs: &[(&str, &str)]) -> PipelineSpec {
    PipelineSpec {
        environments: envs
            .iter()
            .map(|(name, namespace)| Environment {
                name: (*name).to_owned(),
                namespace: (*namespace).to_owned(),
                approval: None,
                soak: None,
                health_checks: None,
                service_account_name: None,
            })
            .collect(),
        rollback: None,
        history_limit: None,
    }
}

/// The release spec a user would write: tagged git source, `shop` pipeline, at `version`.
pub fn release_spec(version: &str) -> ReleaseSpec {
    let mut spec: ReleaseSpec = serde_norway::from_str(
        r#"
pipeline: shop
version: 0.0.0
source:
  git:
    url: https://github.com/acme/shop.git
    ref:
      tag: v2.4.1
    secretRef:
      name: github-credentials
  path: deploy/k8s
"#,
    )
    .expect("valid release fixture parses");
    spec.version = version.to_owned();
    spec
}

/// A Release named `name` in namespace `shop`, created at `created` (seconds), generation 1.
pub fn release(name: &str, spec: ReleaseSpec, created: i64) -> Release {
    let mut r = Release::new(name, spec);
    r.metadata.namespace = Some("shop".to_owned());
    r.metadata.creation_timestamp = Some(Time(t(created)));
    r.metadata.generation = Some(1);
    r
}

/// A status condition as the controller writes it (generation 1, transition at the epoch).
pub fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(1),
        last_transition_time: Time(t(0)),
    }
}
