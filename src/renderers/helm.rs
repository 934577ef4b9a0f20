//! Helm: the command line of `helm template` for one environment.
//!
//! The chart is a local directory of the scratch copy (`./path`, never a repository
//! reference), its dependencies must be vendored in its `charts/` directory (`helm template`
//! fails, naming the missing one, otherwise; it never downloads them), `.Release.Namespace` is
//! the environment's namespace, `.Release.Name` the spec's release name (default: the
//! Pipeline's name), and test hooks (`helm test` pods) are left out: they are not part of
//! what runs in the environment. CRDs in the chart's `crds/` directory are left out, as
//! `helm template` does by default.

use super::Job;

/// The arguments and the command as shown in messages; `values_files` are checked to exist
/// before this is run.
pub(super) fn args(job: &Job, release_name: &str, namespace: &str) -> (Vec<String>, String) {
    let chart = local(&job.path);
    let mut args = vec!["template".to_owned(), release_name.to_owned(), chart, "--namespace".into(), namespace.into()];
    args.push("--skip-tests".into());
    for file in &job.values_files {
        args.push("--values".into());
        args.push(local(file));
    }
    let shown = format!("helm {}", args.join(" "));
    (args, shown)
}

/// A path helm reads as a local directory or file, never as `repo/chart`.
fn local(path: &str) -> String {
    if path.is_empty() { ".".to_owned() } else { format!("./{path}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::release::Renderer;

    #[test]
    fn command_line() {
        let job = Job {
            environment: None,
            path: "charts/shop".into(),
            renderer: Renderer::Helm,
            values_files: vec!["charts/shop/values-staging.yaml".into()],
        };
        assert_eq!(
            args(&job, "shop", "shop-staging").1,
            "helm template shop ./charts/shop --namespace shop-staging --skip-tests --values ./charts/shop/values-staging.yaml"
        );
    }
}
