//! `conveyor package`: package a git source exactly as the controller does, and print what it
//! would record (commit, digest, files, objects, size, and each environment's object count when
//! the source renders per environment).
//!
//! The digest matches the controller's when the same source options and, for a source that
//! renders per environment, the same environments (with their namespaces, for Helm) are given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use git2::Repository;

use crate::api::release::{HelmSource, Renderer, Source};
use crate::config::Config;
use crate::core::validate::is_dns_label;
use crate::packaging::{self, Request, Sink};
use crate::renderers::{Engines, Environment};
use crate::source::{Credentials, Mirrors, Reference, resolve};

/// Arguments of `conveyor package`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A local repository (path) or a git URL (https://, ssh://, file://, user@host:path).
    #[arg(long)]
    pub repo: String,
    /// Tag, branch or commit id to package (tags win over branches of the same name).
    #[arg(long = "ref", default_value = "HEAD")]
    pub reference: String,
    /// Source directory inside the repository (default: the root); `${CONVEYOR_ENVIRONMENT}` is
    /// replaced by each environment's name.
    #[arg(long, default_value = "")]
    pub path: String,
    /// How the directory is rendered (default: detected, as spec.source.renderer).
    #[arg(long, value_enum)]
    pub renderer: Option<RendererArg>,
    /// A Helm values file, relative to --path (repeatable, applied in order).
    #[arg(long = "values", value_name = "FILE")]
    pub values: Vec<String>,
    /// Helm's `.Release.Name` (default: --pipeline).
    #[arg(long)]
    pub release_name: Option<String>,
    /// The Pipeline's name (Helm's default release name).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Render for this environment, as NAME or NAME=NAMESPACE (repeatable; default: every
    /// environment of the config key `environments`, each in a namespace of its own name).
    #[arg(long = "environment", value_name = "NAME[=NAMESPACE]")]
    pub environments: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Also write the artifact (gzip'd tar) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// For URLs: a directory holding credentials files named like a Secret's keys
    /// (username, password, token, bearerToken, identity, known_hosts), e.g. a mounted Secret.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// For URLs: where mirrors are cached (default: $XDG_CACHE_HOME/conveyor/git or ~/.cache/conveyor/git).
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

/// Renderers, as typed on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RendererArg {
    /// YAML files as they are.
    Plain,
    /// `kustomize build`.
    Kustomize,
    /// `helm template`.
    Helm,
}

impl From<RendererArg> for Renderer {
    fn from(arg: RendererArg) -> Self {
        match arg {
            RendererArg::Plain => Renderer::Plain,
            RendererArg::Kustomize => Renderer::Kustomize,
            RendererArg::Helm => Renderer::Helm,
        }
    }
}

/// The environments to render for: `--environment` values, or the config's.
fn environments(args: &Args, config: &Config) -> anyhow::Result<Vec<Environment>> {
    let given: Vec<String> =
        if args.environments.is_empty() { config.environments.clone() } else { args.environments.clone() };
    given
        .iter()
        .map(|e| {
            let (name, namespace) = e.split_once('=').unwrap_or((e, e));
            let (name, namespace) = (name.trim(), namespace.trim());
            if !is_dns_label(name) || !is_dns_label(namespace) {
                anyhow::bail!(
                    "--environment `{e}`: give NAME or NAME=NAMESPACE, both DNS-1123 labels (e.g. staging=shop-staging)"
                );
            }
            Ok(Environment { name: name.to_owned(), namespace: namespace.to_owned() })
        })
        .collect()
}

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned `key value` lines.
    Text,
    /// One JSON object.
    Json,
}

/// Runs `conveyor package`.
pub fn run(args: Args, config: &Config) -> anyhow::Result<()> {
    let reference = Reference::Any(args.reference.clone());
    let local = Path::new(&args.repo);
    let (repo, commit) = if local.exists() {
        let repo = Repository::open(local).with_context(|| format!("{} is not a git repository", local.display()))?;
        let commit = resolve(&repo, &args.repo, &reference)?;
        (repo, commit)
    } else {
        let credentials = args.credentials.as_deref().map(read_credentials).transpose()?;
        let cache = args.cache.clone().unwrap_or_else(default_cache);
        eprintln!("fetching {} (cache {})", args.repo, cache.display());
        Mirrors::new(cache).fetch(&args.repo, credentials.as_ref(), &reference, config.git_timeout)?
    };

    let source = Source {
        git: None,
        path: Some(args.path.clone()),
        renderer: args.renderer.map(Renderer::from),
        helm: (args.release_name.is_some() || !args.values.is_empty())
            .then(|| HelmSource { release_name: args.release_name.clone(), values_files: args.values.clone() }),
        environments: Vec::new(),
    };
    let environments = environments(&args, config)?;
    let engines = Engines::from_config(config);
    let pipeline = args.pipeline.clone().unwrap_or_else(|| "conveyor".to_owned());
    let request = Request { source: &source, environments: &environments, pipeline: &pipeline, engines: &engines };
    let limits = &config.package_limits;
    let packaged = match &args.out {
        Some(out) => {
            // Written next to the destination and renamed, so a failure leaves no partial file.
            let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let mut file = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot create a file in {}", dir.display()))?;
            let packaged = packaging::package_source(&repo, commit, &request, limits, Sink::Writer(&mut file))?;
            file.persist(out).with_context(|| format!("cannot write {}", out.display()))?;
            packaged
        }
        None => packaging::package_source(&repo, commit, &request, limits, Sink::Writer(&mut std::io::sink()))?,
    };

    let path = if args.path.is_empty() { "." } else { args.path.as_str() };
    match args.output {
        Format::Json => {
            let mut report = serde_json::json!({
                "repo": args.repo,
                "ref": args.reference,
                "path": path,
                "commit": packaged.commit.to_string(),
                "digest": packaged.digest.to_string(),
                "files": packaged.files,
                "objects": packaged.objects,
                "size": packaged.size,
            });
            if !packaged.environments.is_empty() {
                let per: Vec<serde_json::Value> = packaged
                    .environments
                    .iter()
                    .map(|e| serde_json::json!({"name": e.name, "namespace": e.namespace, "objects": e.objects}))
                    .collect();
                report["environments"] = per.into();
            }
            println!("{}", serde_json::to_string_pretty(&report).expect("a JSON value serializes"));
        }
        Format::Text => {
            println!("commit   {}", packaged.commit);
            println!("digest   {}", packaged.digest);
            println!("files    {}", packaged.files);
            println!("objects  {}", packaged.objects);
            println!("size     {} bytes", packaged.size);
            for e in &packaged.environments {
                println!("environment {:<16} {} objects", e.name, e.objects);
            }
        }
    }
    if let Some(out) = &args.out {
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// Reads a directory of credential files, as a Secret mounted as a volume looks.
fn read_credentials(dir: &Path) -> anyhow::Result<Credentials> {
    let mut data = BTreeMap::new();
    for key in ["username", "password", "token", "bearerToken", "identity", "known_hosts"] {
        let file = dir.join(key);
        if file.exists() {
            data.insert(
                key.to_owned(),
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?,
            );
        }
    }
    Credentials::from_secret(&dir.display().to_string(), &data).map_err(anyhow::Error::msg)
}

fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("conveyor").join("git")
}
