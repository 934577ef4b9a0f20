//! `conveyor release`: tag a new version in a local repository and write its Release.
//!
//! Everything is decided first ([`release::plan`]) and the Release manifest is built and
//! validated before the repository is touched, so a bad flag never leaves a tag behind.
//! Progress goes to stderr, the manifest to stdout (pipe it to `kubectl apply -f -`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use git2::Repository;
use kube::api::{Api, Patch, PatchParams};

use crate::api::release::{GitRef, GitSource, SecretRef, Source};
use crate::api::{Release, ReleaseSpec};
use crate::config::Config;
use crate::core::validate::{ReleaseNeighbours, describe, is_dns_label, is_dns_subdomain, validate_release};
use crate::release::{self, Plan};

/// Field manager of Releases applied by the command line.
const FIELD_MANAGER: &str = "conveyor-cli";

/// Deadline for applying the Release to the cluster.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `conveyor release`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository (any directory in its work tree).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// New version, SemVer without the tag prefix (2.4.1, 3.0.0-rc.1); must exceed the latest release tag.
    #[arg(long)]
    pub version: String,
    /// Pipeline the Release goes through (spec.pipeline).
    #[arg(long)]
    pub pipeline: String,
    /// Manifests directory in the repository (spec.source.path).
    #[arg(long, default_value = "deploy")]
    pub path: String,
    /// Git URL the controller fetches (default: the `origin` remote, else file://<repository>).
    #[arg(long)]
    pub url: Option<String>,
    /// Release name (default: <pipeline>-<version>, lower case, `+` replaced by `-`).
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace of the Release (default: none in the manifest; the kubeconfig's with --apply).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Secret with git credentials (spec.source.git.secretRef).
    #[arg(long)]
    pub secret: Option<String>,
    /// Format of the printed manifest.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
    /// Also server-side apply the Release to the cluster (field manager `conveyor-cli`).
    #[arg(long)]
    pub apply: bool,
    /// Print what would be done (tag, notes, changelog, manifest) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Manifest output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// Runs `conveyor release`.
pub fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let repo = Repository::discover(&args.repo)
        .with_context(|| format!("{} is not inside a git repository; pass --repo", args.repo.display()))?;
    let plan = release::plan(&repo, &args.version, &config.tag_prefix, &config.changelog_file)?;
    let release = manifest(&args, &repo, &plan)?;
    warn_if_no_manifests(&repo, &plan, &args.path);
    let text = render(&release, args.output)?;

    if args.dry_run {
        report_dry_run(&plan, &release, args.apply);
        print!("{text}");
        return Ok(());
    }

    // Connect before changing the repository: a missing kubeconfig should not leave a tag
    // whose Release was never applied.
    let cluster = if args.apply { Some(super::connect("--apply")?) } else { None };
    let applied = release::apply(&repo, &plan)?;
    let commit = short(applied.commit);
    eprintln!("updated {}", plan.changelog_path.display());
    eprintln!("committed {} as {commit}", plan.commit_message().trim_end());
    eprintln!("tagged {} at {commit}", plan.tag);
    print!("{text}");

    if let Some((runtime, client)) = cluster {
        let applied = runtime.block_on(apply_release(client, &release)).with_context(|| {
            format!(
                "tag {} was created, but applying Release {} failed; apply the manifest printed above with `kubectl apply --server-side -f -`",
                plan.tag,
                release.metadata.name.as_deref().unwrap_or_default()
            )
        })?;
        let namespace = applied.metadata.namespace.unwrap_or_default();
        eprintln!("applied Release {namespace}/{}", applied.metadata.name.unwrap_or_default());
    }
    Ok(())
}

/// The Release for `plan`, checked by the same validator the controller runs.
fn manifest(args: &Args, repo: &Repository, plan: &Plan) -> anyhow::Result<Release> {
    let name = args.name.clone().unwrap_or_else(|| default_name(&args.pipeline, &args.version));
    if !is_dns_subdomain(&name) {
        bail!(
            "`{name}` is not a valid Release name (lower case letters, digits, '-' and '.', at most 253 characters); pass --name"
        );
    }
    if let Some(namespace) = &args.namespace
        && !is_dns_label(namespace)
    {
        bail!("`{namespace}` is not a valid namespace name; pass a lower case DNS label to --namespace");
    }
    if !is_dns_subdomain(&args.pipeline) {
        bail!("`{}` is not a valid Pipeline name; pass the name of an existing Pipeline to --pipeline", args.pipeline);
    }
    let url = match &args.url {
        Some(url) => url.clone(),
        None => default_url(repo)?,
    };
    let spec = ReleaseSpec {
        pipeline: args.pipeline.clone(),
        version: args.version.clone(),
        source: Some(Source {
            git: Some(GitSource {
                url,
                reference: GitRef { tag: Some(plan.tag.clone()), ..GitRef::default() },
                secret_ref: args.secret.clone().map(|name| SecretRef { name }),
            }),
            path: Some(args.path.clone()),
            ..Source::default()
        }),
        // The controller generates the notes from the same history.
        notes: None,
    };
    let mut release = Release::new(&name, spec);
    release.metadata.namespace = args.namespace.clone();
    // The Pipeline and other Releases are the cluster's business; check the object itself.
    let problems = validate_release(&release, &ReleaseNeighbours { pipeline_exists: true, others: &[] });
    if !problems.is_empty() {
        bail!("the Release would be invalid: {}", describe(&problems));
    }
    Ok(release)
}

/// The tag is permanent, so a Release pointing at a directory missing at that commit would
/// never package; say so (the directory may still be meant for a later, corrected Release).
fn warn_if_no_manifests(repo: &Repository, plan: &Plan, path: &str) {
    let path = path.trim_matches('/');
    if path.is_empty() || path == "." {
        return;
    }
    let kind = repo
        .find_commit(plan.head)
        .and_then(|c| c.tree())
        .and_then(|t| t.get_path(std::path::Path::new(path)))
        .map(|entry| entry.kind());
    if !matches!(kind, Ok(Some(git2::ObjectType::Tree))) {
        eprintln!(
            "warning: {path} is not a directory at {}; the Release cannot be packaged from it (pass --path)",
            short(plan.head)
        );
    }
}

/// `<pipeline>-<version>` as a Kubernetes name: `+` (build metadata) is not allowed there.
fn default_name(pipeline: &str, version: &str) -> String {
    format!("{pipeline}-{version}").replace('+', "-").to_lowercase()
}

/// The `origin` remote's URL (without any password), else a `file://` URL of the work tree.
fn default_url(repo: &Repository) -> anyhow::Result<String> {
    match repo.find_remote("origin") {
        Ok(remote) => {
            let url = remote.url().context("the origin remote's URL is not UTF-8; pass --url")?;
            return Ok(without_password(url));
        }
        Err(e) if e.code() == git2::ErrorCode::NotFound => {}
        Err(e) => return Err(e).context("cannot read the origin remote; pass --url"),
    }
    let workdir = repo.workdir().context("the repository has no work tree; pass --url")?;
    let absolute =
        workdir.canonicalize().with_context(|| format!("cannot resolve {}; pass --url", workdir.display()))?;
    url::Url::from_file_path(&absolute)
        .map(String::from)
        .map_err(|()| anyhow::anyhow!("cannot make a file:// URL of {}; pass --url", absolute.display()))
}

/// A password in a URL would end up in the cluster; the controller takes credentials from a Secret.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting no password cannot fail on a URL that already has one.
            let _ = parsed.set_password(None);
            eprintln!("warning: left the password out of origin's URL; put credentials in a Secret and pass --secret");
            parsed.into()
        }
        _ => url.to_owned(),
    }
}

/// The manifest as YAML or JSON, ending with a newline.
fn render(release: &Release, output: Output) -> anyhow::Result<String> {
    Ok(match output {
        Output::Yaml => serde_norway::to_string(release).context("cannot write the Release as YAML")?,
        Output::Json => serde_json::to_string_pretty(release).context("cannot write the Release as JSON")? + "\n",
    })
}

/// What a real run would do, on stderr.
fn report_dry_run(plan: &Plan, release: &Release, apply: bool) {
    let path = plan.changelog_path.display();
    let on = plan.branch.as_deref().map_or_else(|| "a detached HEAD".to_owned(), |b| format!("branch {b}"));
    let since = plan
        .previous_tag
        .as_deref()
        .map_or_else(|| "all commits: there is no earlier release tag".to_owned(), |t| format!("commits since {t}"));
    eprintln!("dry run: nothing is changed");
    if plan.changelog_exists {
        eprintln!("would update {path}: the notes below go above the previous release");
    } else {
        eprintln!("would create {path} with the notes below");
    }
    eprintln!("would commit {} on {on} (parent {})", plan.commit_message().trim_end(), short(plan.head));
    eprintln!("would tag {} on that commit; notes ({since}):", plan.tag);
    eprintln!();
    eprint!("{}", plan.notes);
    eprintln!();
    if apply {
        let name = release.metadata.name.as_deref().unwrap_or_default();
        eprintln!("would apply Release {name} with field manager {FIELD_MANAGER}");
    }
}

/// Server-side applies the Release, in its namespace or the client's default one.
async fn apply_release(client: kube::Client, release: &Release) -> anyhow::Result<Release> {
    let api: Api<Release> = match release.metadata.namespace.as_deref() {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::default_namespaced(client),
    };
    let name = release.metadata.name.as_deref().context("the Release has no name")?;
    let (params, patch) = (PatchParams::apply(FIELD_MANAGER), Patch::Apply(release));
    let applied = tokio::time::timeout(APPLY_TIMEOUT, api.patch(name, &params, &patch))
        .await
        .with_context(|| format!("no answer from the Kubernetes API within {}s", APPLY_TIMEOUT.as_secs()))??;
    Ok(applied)
}

/// The 7-character abbreviation of a commit id.
fn short(id: git2::Oid) -> String {
    let mut s = id.to_string();
    s.truncate(7);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_kubernetes_names() {
        // (pipeline, version, name)
        let cases = [
            ("shop", "2.4.1", "shop-2.4.1"),
            ("shop", "3.0.0-RC.1", "shop-3.0.0-rc.1"),
            ("shop", "1.0.0+build.7", "shop-1.0.0-build.7"),
        ];
        for (pipeline, version, want) in cases {
            assert_eq!(default_name(pipeline, version), want);
            assert!(is_dns_subdomain(want));
        }
    }

    #[test]
    fn passwords_are_left_out_of_urls() {
        // (url, expected)
        let cases = [
            ("https://user:secret@git.example.com/shop.git", "https://user@git.example.com/shop.git"),
            ("https://git.example.com/shop.git", "https://git.example.com/shop.git"),
            ("git@github.com:org/shop.git", "git@github.com:org/shop.git"),
        ];
        for (url, want) in cases {
            assert_eq!(without_password(url), want);
        }
    }
}
