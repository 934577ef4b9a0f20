//! Renderers: how a release's source directory becomes manifests (`Plain` YAML files,
//! `kustomize build`, `helm template`), and what each environment of the Pipeline renders.
//!
//! Decisions (see also the README, "Sources: kustomize, Helm, per-environment overlays"):
//! - Rendering happens once, when the release is packaged: the artifact holds the rendered
//!   manifests, so its digest covers what is deployed, and what staging verified is what
//!   production gets, byte for byte, apart from what the source itself makes differ.
//! - When nothing differs between environments (a fixed path, no per-environment values, not
//!   Helm), there is one shared rendering and the artifact keeps today's layout: a plain
//!   directory packages to the very bytes it packaged to before renderers existed.
//! - Otherwise the artifact holds one directory per environment, `<environment>/…`, and the
//!   Release status lists those environments; an environment added to the Pipeline later has
//!   nothing to deploy and is refused by name, never served another environment's manifests.
//! - Helm always renders per environment: templates see `.Release.Namespace`, which is the
//!   environment's namespace.
//! - The engines are the real tools, run on a scratch copy of the repository written from the
//!   git object database at the exact commit ([`scratch`]), with no network ([`engine`]), and
//!   kustomizations are checked first so that nothing reaches outside the repository
//!   ([`kustomize`]).

mod engine;
mod helm;
mod kustomize;
mod scratch;
#[cfg(test)]
pub(crate) mod test_repo;

use crate::api::Reason;
use crate::api::release::{Renderer, Source};

pub use engine::{Engines, resolve_binary};
pub use scratch::Scratch;

pub use crate::core::paths::{ENVIRONMENT_VARIABLE, inside_repository, substitute};

/// Files that make a directory a kustomization, in the order kustomize looks for them.
pub const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The file that makes a directory a Helm chart.
pub const CHART_FILE: &str = "Chart.yaml";

/// The name of the one file an engine's output is kept in, per environment or shared.
pub const RENDERED_FILE: &str = "rendered.yaml";

/// The renderer a directory holding the files `names` calls for: `None` when it holds both a
/// kustomization and a chart, which only the spec can settle.
pub fn detect<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<Renderer> {
    let (mut kustomization, mut chart) = (false, false);
    for name in names {
        kustomization |= KUSTOMIZATION_FILES.contains(&name);
        chart |= name == CHART_FILE;
    }
    match (kustomization, chart) {
        (true, true) => None,
        (true, false) => Some(Renderer::Kustomize),
        (false, true) => Some(Renderer::Helm),
        (false, false) => Some(Renderer::Plain),
    }
}

/// Whether a file (by its last path component) is a kustomization: never an object to apply.
pub fn is_kustomization(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    KUSTOMIZATION_FILES.contains(&name)
}

/// One environment of the Pipeline, as rendering needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    /// Environment name.
    pub name: String,
    /// Its namespace (what Helm renders `.Release.Namespace` as).
    pub namespace: String,
}

/// What to render: for one environment, or once for all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The environment; `None` for the shared rendering every environment deploys.
    pub environment: Option<Environment>,
    /// The source directory, relative to the repository root, variable substituted.
    pub path: String,
    /// How it is rendered.
    pub renderer: Renderer,
    /// Helm values files relative to the repository root, in the order given to `helm`.
    pub values_files: Vec<String>,
}

/// The jobs a source calls for, given the Pipeline's environments (in promotion order) and a
/// way to detect the renderer of a directory (the shell reads the tree at the commit): one
/// shared job when every environment would render the same directory the same way, one job
/// per environment otherwise. Pure apart from `detect_at`.
pub fn jobs<E: From<Error>>(
    source: &Source,
    environments: &[Environment],
    mut detect_at: impl FnMut(&str) -> Result<Renderer, E>,
) -> Result<Vec<Job>, E> {
    for (index, over) in source.environments.iter().enumerate() {
        if !environments.iter().any(|e| e.name == over.name) {
            return Err(E::from(Error::UnknownEnvironment {
                field: format!("spec.source.environments[{index}].name"),
                name: over.name.clone(),
                known: environments.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", "),
            }));
        }
    }
    let path = source.path.as_deref().unwrap_or_default();
    let helm = source.helm.as_ref();
    let common_values = helm.map(|h| h.values_files.as_slice()).unwrap_or_default();
    let varies = path.contains(ENVIRONMENT_VARIABLE)
        || !source.environments.is_empty()
        || common_values.iter().any(|v| v.contains(ENVIRONMENT_VARIABLE));
    let renderer_at = |detect_at: &mut dyn FnMut(&str) -> Result<Renderer, E>, at: &str| match source.renderer {
        Some(renderer) => Ok(renderer),
        None => detect_at(at),
    };
    if !varies {
        // Today's layout and bytes for a plain directory: the path exactly as the spec gives it.
        let renderer = renderer_at(&mut detect_at, path)?;
        if renderer != Renderer::Helm {
            return Ok(vec![Job { environment: None, path: path.to_owned(), renderer, values_files: Vec::new() }]);
        }
    }
    let mut jobs = Vec::with_capacity(environments.len());
    for env in environments {
        let over = source.environments.iter().find(|o| o.name == env.name);
        let at = substitute(over.and_then(|o| o.path.as_deref()).unwrap_or(path), &env.name);
        let renderer = renderer_at(&mut detect_at, &at)?;
        let own = over.map(|o| o.values_files.as_slice()).unwrap_or_default();
        let mut values_files = Vec::with_capacity(common_values.len() + own.len());
        for file in common_values.iter().chain(own) {
            let file = substitute(file, &env.name);
            match inside_repository(&at, &file) {
                Some(inside) => values_files.push(inside),
                None => {
                    return Err(E::from(Error::Outside { what: format!("values file `{file}`"), file: at.clone() }));
                }
            }
        }
        jobs.push(Job { environment: Some(env.clone()), path: at, renderer, values_files });
    }
    Ok(jobs)
}

/// Runs the engine of `job` (Kustomize or Helm) on the scratch copy and returns what it printed
/// and the command as shown in messages; `release_name` is Helm's `.Release.Name`, `max_output`
/// the most bytes accepted.
pub fn run_engine(
    job: &Job,
    scratch: &Scratch,
    engines: &Engines,
    release_name: &str,
    max_output: u64,
) -> Result<(Vec<u8>, String), Error> {
    let repo = scratch.repo();
    let (binary, engine, key) = match job.renderer {
        Renderer::Helm => (&engines.helm, "helm", "helm_binary"),
        _ => (&engines.kustomize, "kustomize", "kustomize_binary"),
    };
    let Some(resolved) = resolve_binary(binary) else {
        return Err(Error::EngineUnavailable {
            engine,
            message: format!("`{}` is not an executable file or a name found on PATH", binary.display()),
            key,
        });
    };
    let (args, shown) = match job.renderer {
        Renderer::Helm => {
            let environment = job.environment.as_ref().map(|e| e.name.as_str()).unwrap_or_default();
            for file in &job.values_files {
                if !repo.join(file).is_file() {
                    return Err(Error::MissingValues { file: file.clone(), environment: environment.to_owned() });
                }
            }
            let namespace = job.environment.as_ref().map(|e| e.namespace.as_str()).unwrap_or("default");
            helm::args(job, release_name, namespace)
        }
        _ => {
            kustomize::check(&repo, &job.path)?;
            kustomize::args(&resolved, &job.path)
        }
    };
    let for_env = for_environment(job.environment.as_ref());
    let run = engine::Run {
        binary: &resolved,
        args,
        repo: &repo,
        home: &scratch.home(),
        timeout: engines.timeout,
        max_output,
        shown: shown.clone(),
        for_env,
    };
    match run.output() {
        Ok(output) => Ok((output, shown)),
        Err(Error::EngineFailed { command, for_env, status, mut stderr }) if !scratch.skipped.is_empty() => {
            let mut left_out = scratch.skipped.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            if scratch.skipped.len() > 5 {
                left_out.push_str(", …");
            }
            stderr.push_str(&format!(
                " (files larger than package_max_file_bytes were not given to the engine: {left_out})"
            ));
            Err(Error::EngineFailed { command, for_env, status, stderr })
        }
        Err(other) => Err(other),
    }
}

/// Errors of rendering. Messages name the environment, the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory holds both a kustomization and a chart.
    #[error(
        "`{path}` holds both a kustomization and a Chart.yaml; set spec.source.renderer to Kustomize or Helm to say which"
    )]
    Ambiguous {
        /// The directory.
        path: String,
    },
    /// A per-environment override names an environment the Pipeline does not have.
    #[error("{field}: `{name}` is not an environment of the Pipeline (it has {known}); fix the name")]
    UnknownEnvironment {
        /// The field at fault.
        field: String,
        /// The name given.
        name: String,
        /// The Pipeline's environments.
        known: String,
    },
    /// The source renders per environment, and there is no environment to render for.
    #[error(
        "the source renders per environment, but no environment is known to render for; the Pipeline needs \
         environments (or, when rebuilding, status.artifact.environments must list them)"
    )]
    NoEnvironments,
    /// A kustomization file in a directory packaged as plain YAML.
    #[error(
        "{file} is a kustomization, not a Kubernetes object; set spec.source.renderer: Kustomize (or remove \
         spec.source.renderer to detect it), or point spec.source.path at the manifests"
    )]
    KustomizationAsManifest {
        /// The file, from the repository root.
        file: String,
    },
    /// A path in the source reaches outside the repository.
    #[error("{what} in {file} reaches outside the repository; use a path inside it, without climbing above its root")]
    Outside {
        /// What was found (`resources entry ../../x`).
        what: String,
        /// Where (a kustomization file, or the source directory).
        file: String,
    },
    /// A path in a kustomization names nothing in the repository (kustomize would try the network).
    #[error(
        "{what} in {file} is not in the repository at this commit; Conveyor renders without network, so \
         remote bases and files must be vendored into the repository"
    )]
    NotInRepository {
        /// What was found.
        what: String,
        /// The kustomization file.
        file: String,
    },
    /// An engine printed no object.
    #[error("{command}{for_env} rendered no object; check the source directory")]
    NothingRendered {
        /// The command line.
        command: String,
        /// ` for environment <name>`, or empty.
        for_env: String,
    },
    /// A values file does not exist.
    #[error(
        "values file `{file}` for environment {environment} does not exist at this commit; create it or fix spec.source.helm.valuesFiles / spec.source.environments[].valuesFiles"
    )]
    MissingValues {
        /// The file, from the repository root.
        file: String,
        /// The environment.
        environment: String,
    },
    /// The engine binary is not there.
    #[error("{engine} is not available: {message}; install it or set the controller config key `{key}`")]
    EngineUnavailable {
        /// `kustomize` or `helm`.
        engine: &'static str,
        /// What was looked for.
        message: String,
        /// The config key naming the binary.
        key: &'static str,
    },
    /// The engine failed; its own message (bounded) follows.
    #[error("{command}{for_env} failed ({status}): {stderr}")]
    EngineFailed {
        /// The command line, as a user would type it in the repository.
        command: String,
        /// ` for environment <name>`, or empty.
        for_env: String,
        /// The exit status.
        status: String,
        /// The engine's standard error, bounded.
        stderr: String,
    },
    /// The engine did not finish in time.
    #[error("{command}{for_env} did not finish within {seconds}s; simplify the source or raise render_timeout")]
    Timeout {
        /// The command line.
        command: String,
        /// ` for environment <name>`, or empty.
        for_env: String,
        /// The timeout.
        seconds: u64,
    },
    /// The engine printed more than an artifact may hold.
    #[error(
        "{command}{for_env} printed more than {limit} bytes; shrink the rendered manifests or raise package_max_bytes"
    )]
    OutputTooLarge {
        /// The command line.
        command: String,
        /// ` for environment <name>`, or empty.
        for_env: String,
        /// The limit.
        limit: u64,
    },
    /// The repository is too big to write out for an engine.
    #[error("the repository at this commit holds more than {limit} {what} to copy for rendering; raise {key}")]
    TreeTooLarge {
        /// `files` or `bytes`.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// The config key.
        key: &'static str,
    },
    /// A symlink in the repository that cannot be copied safely.
    #[error("{file} is a symlink to `{target}`, which {message}; replace it with the file itself")]
    SymlinkEscape {
        /// The symlink, from the repository root.
        file: String,
        /// Where it points.
        target: String,
        /// Why it is refused.
        message: &'static str,
    },
    /// A tree entry whose name could not be written safely (`..`, `.git`, a `/`).
    #[error("the repository holds an entry named {name:?} under `{dir}`, which cannot be written out safely")]
    UnsafeName {
        /// The entry's name.
        name: String,
        /// Its directory.
        dir: String,
    },
    /// Reading the git objects failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The scratch directory could not be written, or the engine could not be started.
    #[error("rendering: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The condition reason.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Ambiguous { .. }
            | Self::UnknownEnvironment { .. }
            | Self::KustomizationAsManifest { .. }
            | Self::NotInRepository { .. } => Reason::InvalidSource,
            Self::NoEnvironments => Reason::NoEnvironments,
            Self::Outside { .. } | Self::MissingValues { .. } => Reason::InvalidPath,
            Self::EngineUnavailable { .. } => Reason::EngineUnavailable,
            Self::EngineFailed { .. } | Self::Timeout { .. } => Reason::RenderFailed,
            Self::OutputTooLarge { .. } => Reason::ArtifactTooLarge,
            Self::NothingRendered { .. } => Reason::NoManifests,
            Self::TreeTooLarge { what: "files", .. } => Reason::TooManyFiles,
            Self::TreeTooLarge { .. } => Reason::ArtifactTooLarge,
            Self::SymlinkEscape { .. } | Self::UnsafeName { .. } => Reason::SymlinkEscape,
            Self::Git(_) => Reason::GitUnreachable,
            Self::Io(_) => Reason::StoreFailed,
        }
    }

    /// Whether trying again later, unchanged, may succeed: a missing engine (the controller's
    /// image or config is fixed, not the release) and local I/O.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::EngineUnavailable { .. } | Self::Io(_) | Self::Git(_))
    }
}

/// ` for environment <name>` for messages, or nothing for a shared rendering.
fn for_environment(environment: Option<&Environment>) -> String {
    environment.map(|e| format!(" for environment {}", e.name)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
