//! Rendering for packaging: each job (one per environment, or one shared) becomes files of the
//! artifact, checked under the same rules and limits as a plain directory.
//!
//! Layout: a shared rendering puts the engine's output at `rendered.yaml`; a per-environment
//! one puts each environment's files under `<environment>/` (`<environment>/rendered.yaml`
//! for an engine, the directory's own files for a plain directory). Environment names are DNS
//! labels, so they never clash with one another or with a path component like `..`.

use std::path::Path;

use git2::{ObjectType, Oid, Repository};

use super::{Error, PackagedEnvironment, Request, in_repository};
use crate::api::release::Renderer;
use crate::artifact::{self, ManifestFile};
use crate::config::PackageLimits;
use crate::renderers::{self, Job, RENDERED_FILE, Scratch};
use crate::source;

/// The files of a rendered artifact and what each environment got.
pub(super) struct Rendered {
    /// Every file, in any order (the archive sorts them).
    pub files: Vec<ManifestFile>,
    /// Each environment's part, in promotion order; empty for a shared rendering.
    pub environments: Vec<PackagedEnvironment>,
    /// Objects of a shared rendering (0 when per environment).
    pub shared_objects: usize,
}

/// The renderer the directory `path` calls for at `commit`.
pub(super) fn detect(repo: &Repository, commit: Oid, path: &str) -> Result<Renderer, Error> {
    let tree = directory(repo, commit, path)?;
    let names: Vec<String> = tree.iter().filter_map(|e| e.name().ok().map(str::to_owned)).collect();
    renderers::detect(names.iter().map(String::as_str))
        .ok_or_else(|| renderers::Error::Ambiguous { path: path.to_owned() }.into())
}

/// The tree of the directory `path` at `commit`; `PathNotFound` when it is missing or a file.
fn directory<'r>(repo: &'r Repository, commit: Oid, path: &str) -> Result<git2::Tree<'r>, Error> {
    let root = repo.find_commit(commit).and_then(|c| c.tree()).map_err(source::Error::Git)?;
    let short = commit.to_string()[..12].to_owned();
    let not_found = |message| source::Error::PathNotFound { path: path.to_owned(), message, commit: short.clone() };
    let Some(base) = source::normalize(path) else { return Err(not_found("climbs out of the repository").into()) };
    if base.is_empty() {
        return Ok(root);
    }
    let entry = root.get_path(Path::new(&base)).map_err(|_| not_found("does not exist"))?;
    if entry.kind() != Some(ObjectType::Tree) {
        return Err(not_found("is not a directory").into());
    }
    Ok(repo.find_tree(entry.id()).map_err(source::Error::Git)?)
}

/// A kustomization in a plain directory is refused: applying it as an object would fail (no
/// API serves `kustomize.config.k8s.io`), and the user almost surely meant it to be rendered.
pub(super) fn refuse_kustomizations(manifests: &source::Manifests, path: &str) -> Result<(), Error> {
    let base = source::normalize(path).unwrap_or_default();
    match manifests.entries().iter().find(|e| renderers::is_kustomization(&e.path)) {
        Some(entry) => {
            let file = if base.is_empty() { entry.path.clone() } else { format!("{base}/{}", entry.path) };
            Err(renderers::Error::KustomizationAsManifest { file }.into())
        }
        None => Ok(()),
    }
}

/// Renders every job into the artifact's files.
pub(super) fn render(
    repo: &Repository,
    commit: Oid,
    jobs: &[Job],
    request: &Request<'_>,
    limits: &PackageLimits,
) -> Result<Rendered, Error> {
    // Written once, for every job that runs an engine, and removed when this returns.
    let scratch = if jobs.iter().any(|j| j.renderer != Renderer::Plain) {
        Some(Scratch::write(repo, commit, limits, request.engines.scratch_dir.as_deref())?)
    } else {
        None
    };
    let release_name = request.source.helm.as_ref().and_then(|h| h.release_name.as_deref()).unwrap_or(request.pipeline);
    let mut rendered = Rendered { files: Vec::new(), environments: Vec::new(), shared_objects: 0 };
    for job in jobs {
        directory(repo, commit, &job.path)?;
        let prefix = job.environment.as_ref().map(|e| format!("{}/", e.name)).unwrap_or_default();
        let objects = match (job.renderer, &scratch) {
            (Renderer::Plain, _) => plain(repo, commit, &job.path, &prefix, limits, &mut rendered.files)?,
            (_, Some(scratch)) => {
                let (output, command) =
                    renderers::run_engine(job, scratch, request.engines, release_name, limits.max_bytes)?;
                let file = ManifestFile { path: format!("{prefix}{RENDERED_FILE}"), content: output };
                let objects = artifact::check_file(&file, limits.max_yaml_nodes)?;
                if objects == 0 {
                    let for_env = job.environment.as_ref().map(|e| format!(" for environment {}", e.name));
                    return Err(
                        renderers::Error::NothingRendered { command, for_env: for_env.unwrap_or_default() }.into()
                    );
                }
                rendered.files.push(file);
                objects
            }
            (_, None) => unreachable!("a scratch copy is written whenever a job runs an engine"),
        };
        match &job.environment {
            Some(env) => rendered.environments.push(PackagedEnvironment {
                name: env.name.clone(),
                namespace: (job.renderer == Renderer::Helm).then(|| env.namespace.clone()),
                objects,
            }),
            None => rendered.shared_objects += objects,
        }
    }
    Ok(rendered)
}

/// Loads and checks the plain directory `path` into `files` under `prefix`; returns its objects.
fn plain(
    repo: &Repository,
    commit: Oid,
    path: &str,
    prefix: &str,
    limits: &PackageLimits,
    files: &mut Vec<ManifestFile>,
) -> Result<usize, Error> {
    let manifests = source::list_manifests(repo, commit, path, limits)?;
    refuse_kustomizations(&manifests, path)?;
    let reader = manifests.reader(repo.path(), limits.max_file_bytes)?;
    let (mut total, mut objects) = (0, 0);
    for entry in manifests.entries() {
        let file = reader.load(entry)?;
        manifests.count_bytes(&mut total, &file.path, file.content.len() as u64, limits.max_bytes)?;
        objects += artifact::check_file(&file, limits.max_yaml_nodes).map_err(|e| in_repository(e, path))?;
        files.push(ManifestFile { path: format!("{prefix}{}", file.path), content: file.content });
    }
    Ok(objects)
}
