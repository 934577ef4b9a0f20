//! One packaging path for the controller and `conveyor package`: a source at a commit →
//! rendered, validated objects → deterministic artifact (stored, or only measured), and release
//! notes.
//!
//! A plain directory that every environment shares is streamed file by file ([`package`]);
//! everything else (kustomizations, Helm charts, per-environment sources) is rendered per
//! environment first ([`environments`]), then archived the same way.

mod environments;

use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use git2::{Oid, Repository};

use crate::api::Reason;
use crate::api::release::{Renderer, Source};
use crate::api::types::Digest;
use crate::artifact::{self, ArchiveWriter, Store};
use crate::config::PackageLimits;
use crate::core::notes::{MAX_NOTES_BYTES, release_notes_with_omitted};
use crate::renderers::{self, Engines, Environment};
use crate::source;

/// Errors of packaging: from the git source or from the artifact.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fetching or reading the git source failed.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// A manifest is invalid, or the store failed.
    #[error(transparent)]
    Artifact(#[from] artifact::Error),
    /// Rendering (kustomize, helm, per-environment sources) failed.
    #[error(transparent)]
    Render(#[from] renderers::Error),
}

impl Error {
    /// The condition reason.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Source(e) => e.reason(),
            Self::Artifact(e) => e.reason(),
            Self::Render(e) => e.reason(),
        }
    }

    /// Whether trying again later, unchanged, may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Source(e) => e.is_transient(),
            Self::Artifact(e) => e.is_transient(),
            Self::Render(e) => e.is_transient(),
        }
    }
}

/// What was packaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packaged {
    /// The commit packaged.
    pub commit: Oid,
    /// The artifact's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Manifest files in it.
    pub files: usize,
    /// Kubernetes objects in it (over all environments when rendered per environment).
    pub objects: usize,
    /// Per-environment artifacts: each environment's part; empty when all share one.
    pub environments: Vec<PackagedEnvironment>,
}

/// One environment's part of a per-environment artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackagedEnvironment {
    /// Environment name (its files are under `<name>/`).
    pub name: String,
    /// The namespace Helm rendered for; `None` for other renderers, which do not see it.
    pub namespace: Option<String>,
    /// Objects rendered for it.
    pub objects: usize,
}

/// What to package besides the repository and commit.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The Release's `spec.source` (its `git` part is not read here).
    pub source: &'a Source,
    /// The environments to render for, in promotion order: the Pipeline's when packaging, the
    /// ones recorded in the Release's status when rebuilding.
    pub environments: &'a [Environment],
    /// The Pipeline's name: Helm's `.Release.Name` unless the spec names one.
    pub pipeline: &'a str,
    /// The engines.
    pub engines: &'a Engines,
}

/// Packages `request.source` at `commit` into `sink`: renders it first when it is a
/// kustomization, a Helm chart or differs per environment; otherwise exactly as [`package`].
pub fn package_source(
    repo: &Repository,
    commit: Oid,
    request: &Request<'_>,
    limits: &PackageLimits,
    sink: Sink<'_>,
) -> Result<Packaged, Error> {
    let jobs = renderers::jobs(request.source, request.environments, |path| environments::detect(repo, commit, path))?;
    if let [job] = jobs.as_slice()
        && job.environment.is_none()
        && job.renderer == Renderer::Plain
    {
        return package(repo, commit, &job.path, limits, sink);
    }
    if jobs.is_empty() {
        return Err(renderers::Error::NoEnvironments.into());
    }
    let rendered = environments::render(repo, commit, &jobs, request, limits)?;
    let files = rendered.files.len();
    let objects = rendered.environments.iter().map(|e| e.objects).sum::<usize>() + rendered.shared_objects;
    let write = |out: &mut dyn Write| -> Result<(Digest, u64), Error> {
        Ok(artifact::write_archive(&rendered.files, out).map_err(artifact::Error::Io)?)
    };
    let (digest, size) = match sink {
        Sink::Store { store, expected } => store.put_with(expected, write)?,
        Sink::Writer(out) => write(out)?,
    };
    Ok(Packaged { commit, digest, size, files, objects, environments: rendered.environments })
}

/// Where an artifact goes.
pub enum Sink<'a> {
    /// Into the store; with an `expected` digest, a different one stores nothing and fails.
    Store {
        /// The store.
        store: &'a Store,
        /// The digest recorded earlier, when rebuilding.
        expected: Option<&'a Digest>,
    },
    /// Written out (a file, or `io::sink()` to only measure it).
    Writer(&'a mut dyn std::io::Write),
}

/// Packages `path` at `commit` into `sink`.
///
/// Worker threads load and check the files (size bounds, YAML) while this thread streams them
/// into the archive in path order, so that loading, checking and compressing run at once and
/// only a few files are held in memory. Any invalid file fails the whole package, and the
/// error named is that of the first file in path order that fails a check, however the
/// threads were scheduled. On failure a store keeps nothing, and a writer's partial output
/// must be discarded by the caller.
pub fn package(
    repo: &Repository,
    commit: Oid,
    path: &str,
    limits: &PackageLimits,
    sink: Sink<'_>,
) -> Result<Packaged, Error> {
    let manifests = source::list_manifests(repo, commit, path, limits)?;
    environments::refuse_kustomizations(&manifests, path)?;
    let mut objects = 0;
    let mut write = |out: &mut dyn Write| -> Result<(Digest, u64), Error> {
        let (digest, size, count) = build(repo.path(), &manifests, path, limits, out)?;
        objects = count;
        Ok((digest, size))
    };
    let (digest, size) = match sink {
        Sink::Store { store, expected } => store.put_with(expected, write)?,
        Sink::Writer(out) => write(out)?,
    };
    Ok(Packaged { commit, digest, size, files: manifests.len(), objects, environments: Vec::new() })
}

/// Most worker threads; past a few, the single compressing thread is the limit.
const MAX_WORKERS: usize = 4;
/// Files per chunk: chunk `i` goes to worker `i % workers`, so the archive can take chunks in
/// order from the workers in turn.
const CHUNK_FILES: usize = 32;
/// A worker hands over what it has loaded once it holds this many bytes, which bounds the
/// memory in flight (with each worker at most one batch ahead) whatever the file sizes.
const BATCH_BYTES: usize = 256 * 1024;

/// Loaded, checked and framed files of one chunk, in order; `end` closes the chunk; `error` is
/// the chunk's first failure, after the files before it.
#[derive(Default)]
struct Batch {
    /// Their tar entries.
    frames: artifact::Frames,
    /// Each file's index in the listing and its size, for the total bound.
    sizes: Vec<(usize, u64)>,
    objects: usize,
    end: bool,
    error: Option<Error>,
}

/// Archives `manifests` into `out` with worker threads loading, checking and framing them;
/// returns the digest, the size and the number of objects.
fn build(
    git_dir: &Path,
    manifests: &source::Manifests,
    path: &str,
    limits: &PackageLimits,
    out: &mut dyn Write,
) -> Result<(Digest, u64, usize), Error> {
    let workers = thread::available_parallelism().map_or(1, usize::from).clamp(1, MAX_WORKERS);
    let files = manifests.len();
    let chunks: Vec<Range<usize>> =
        (0..files).step_by(CHUNK_FILES).map(|start| start..(start + CHUNK_FILES).min(files)).collect();
    thread::scope(|scope| {
        let batches: Vec<_> = (0..workers)
            .map(|worker| {
                let (send, receive) = mpsc::sync_channel(1);
                let mine = chunks.iter().skip(worker).step_by(workers).cloned();
                // A worker that panics re-raises the panic when the scope ends.
                scope.spawn(move || load_and_check(git_dir, manifests, mine, path, limits, &send));
                receive
            })
            .collect();
        // Returning drops the receivers, which stops the workers at their next hand-over.
        write_chunks(manifests, &batches, chunks.len(), limits.max_bytes, out)
    })
}

/// A worker: loads, checks and frames each file of its chunks, in order, until the first failure.
fn load_and_check(
    git_dir: &Path,
    manifests: &source::Manifests,
    chunks: impl Iterator<Item = Range<usize>>,
    path: &str,
    limits: &PackageLimits,
    batches: &mpsc::SyncSender<Batch>,
) {
    let reader = match manifests.reader(git_dir, limits.max_file_bytes) {
        Ok(reader) => reader,
        Err(e) => {
            let _ = batches.send(Batch { end: true, error: Some(e.into()), ..Batch::default() });
            return;
        }
    };
    // The content is lent by the object database: checked and framed without a copy of its own.
    let take = |index: usize, batch: &mut Batch| -> Result<(), Error> {
        let entry = &manifests.entries()[index];
        reader.read(entry, |content| -> Result<(), Error> {
            let objects = artifact::check_content(&entry.path, content, limits.max_yaml_nodes)
                .map_err(|e| in_repository(e, path))?;
            batch.frames.append(&entry.path, content).map_err(artifact::Error::Io)?;
            batch.sizes.push((index, content.len() as u64));
            batch.objects += objects;
            Ok(())
        })?
    };
    for chunk in chunks {
        let mut batch = Batch::default();
        for index in chunk {
            if let Err(e) = take(index, &mut batch) {
                let _ = batches.send(Batch { end: true, error: Some(e), ..batch });
                return;
            }
            if batch.frames.len() >= BATCH_BYTES && batches.send(std::mem::take(&mut batch)).is_err() {
                return;
            }
        }
        batch.end = true;
        if batches.send(batch).is_err() {
            return;
        }
    }
}

/// Takes the chunks in order from the workers in turn and writes their files into the archive.
/// Files arrive in path order, so the first failure met here is the first in path order.
fn write_chunks(
    manifests: &source::Manifests,
    batches: &[mpsc::Receiver<Batch>],
    chunks: usize,
    max_bytes: u64,
    out: &mut dyn Write,
) -> Result<(Digest, u64, usize), Error> {
    let mut archive = ArchiveWriter::new(out);
    let (mut total, mut objects) = (0, 0);
    for chunk in 0..chunks {
        loop {
            let Ok(batch) = batches[chunk % batches.len()].recv() else {
                // Only a panicking worker hangs up early; the scope re-raises its panic.
                return Err(artifact::Error::Io(std::io::Error::other("a packaging thread stopped")).into());
            };
            for &(index, size) in &batch.sizes {
                manifests.count_bytes(&mut total, &manifests.entries()[index].path, size, max_bytes)?;
            }
            archive.append_frames(batch.frames).map_err(artifact::Error::Io)?;
            objects += batch.objects;
            if let Some(error) = batch.error {
                return Err(error);
            }
            if batch.end {
                break;
            }
        }
    }
    let (_, digest, size) = archive.finish().map_err(artifact::Error::Io)?;
    Ok((digest, size, objects))
}

/// Names the file at fault by its path in the repository, as the user knows it.
fn in_repository(mut error: artifact::Error, path: &str) -> artifact::Error {
    let base = path.trim().trim_matches('/');
    if let artifact::Error::InvalidYaml { file, .. }
    | artifact::Error::InvalidObject { file, .. }
    | artifact::Error::YamlExpansionLimit { file, .. } = &mut error
        && !base.is_empty()
        && base != "."
    {
        *file = format!("{base}/{file}");
    }
    error
}

/// Most commits read for one release's notes.
const MAX_NOTE_COMMITS: usize = 500;

/// Release notes for `version`: the commits after `previous` up to `commit`, grouped.
pub fn notes(repo: &Repository, version: &str, previous: Option<Oid>, commit: Oid) -> Result<String, Error> {
    // The previous release may come from another repository: then its commit is unknown here.
    let previous = previous.filter(|p| repo.find_commit(*p).is_ok());
    let history =
        crate::release::history_between(repo, previous, commit, MAX_NOTE_COMMITS).map_err(source::Error::Git)?;
    Ok(release_notes_with_omitted(version, &history.commits, history.omitted, MAX_NOTES_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::test_repo::TestRepo;

    /// Enough files for many chunks, so that every worker takes several.
    const FILES: usize = 300;

    fn manifest(i: usize) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{i}\ndata:\n  index: \"{i}\"\n")
    }

    fn name(i: usize) -> String {
        format!("src/deploy/{i:04}.yaml")
    }

    /// A repository with FILES good manifests under `src/deploy`, except the `replaced` ones.
    fn repo_with(replaced: &[(usize, &str)]) -> (TestRepo, Oid) {
        let repo = TestRepo::new();
        for i in 0..FILES {
            let content =
                replaced.iter().find(|(at, _)| *at == i).map_or_else(|| manifest(i), |(_, c)| (*c).to_owned());
            repo.write(&name(i), &content);
        }
        let commit = repo.commit("feat: manifests", &[]);
        (repo, commit)
    }

    fn package_to_sink(repo: &TestRepo, commit: Oid, limits: &PackageLimits) -> Result<Packaged, Error> {
        package(&repo.repo, commit, "src/deploy", limits, Sink::Writer(&mut std::io::sink()))
    }

    #[test]
    fn streams_the_same_archive_as_write_archive() {
        let (repo, commit) = repo_with(&[]);
        let mut bytes = Vec::new();
        let packaged =
            package(&repo.repo, commit, "src/deploy", &PackageLimits::default(), Sink::Writer(&mut bytes)).unwrap();
        let files: Vec<artifact::ManifestFile> = (0..FILES)
            .map(|i| artifact::ManifestFile { path: format!("{i:04}.yaml"), content: manifest(i).into_bytes() })
            .collect();
        let mut expected = Vec::new();
        let (digest, size) = artifact::write_archive(&files, &mut expected).unwrap();
        assert_eq!(bytes, expected);
        assert_eq!((packaged.digest, packaged.size), (digest, size));
        assert_eq!((packaged.files, packaged.objects, packaged.commit), (FILES, FILES, commit));
    }

    #[test]
    fn the_first_bad_file_in_path_order_is_reported_every_time() {
        let big = format!("{}# padding\n{}", manifest(0), "#".repeat(4096));
        let limits = PackageLimits { max_file_bytes: 2048, ..PackageLimits::default() };
        let (repo, commit) = repo_with(&[(41, "kind: [unclosed\n"), (140, "apiVersion: v1\n"), (260, &big)]);
        // Workers race; the answer must not.
        for _ in 0..5 {
            let err = package_to_sink(&repo, commit, &limits).unwrap_err();
            assert_eq!(err.reason(), Reason::InvalidYaml, "{err}");
            assert!(err.to_string().starts_with("src/deploy/0041.yaml, document 1: invalid YAML"), "{err}");
        }
        // Without the first, the next one in path order.
        let (repo, commit) = repo_with(&[(140, "apiVersion: v1\n"), (260, &big)]);
        let err = package_to_sink(&repo, commit, &limits).unwrap_err();
        assert_eq!(err.reason(), Reason::InvalidObject, "{err}");
        assert!(err.to_string().starts_with("src/deploy/0140.yaml, document 1: no `kind`"), "{err}");
        let (repo, commit) = repo_with(&[(260, &big)]);
        let err = package_to_sink(&repo, commit, &limits).unwrap_err();
        assert_eq!(err.reason(), Reason::FileTooLarge, "{err}");
        assert!(err.to_string().contains("src/deploy/0260.yaml"), "{err}");
    }

    #[test]
    fn the_total_bound_names_the_file_that_crosses_it() {
        let (repo, commit) = repo_with(&[]);
        let sizes: Vec<u64> = (0..FILES).map(|i| manifest(i).len() as u64).collect();
        // The total passes the bound at file 200.
        let limits = PackageLimits { max_bytes: sizes[..=200].iter().sum::<u64>() - 1, ..PackageLimits::default() };
        let err = package_to_sink(&repo, commit, &limits).unwrap_err();
        assert_eq!(err.reason(), Reason::ArtifactTooLarge, "{err}");
        assert!(err.to_string().contains("src/deploy/0200.yaml"), "{err}");
    }

    #[test]
    fn a_failed_package_stores_nothing() {
        let (repo, commit) = repo_with(&[(150, "kind: Secret\n")]);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let sink = Sink::Store { store: &store, expected: None };
        let err = package(&repo.repo, commit, "src/deploy", &PackageLimits::default(), sink).unwrap_err();
        assert_eq!(err.reason(), Reason::InvalidObject, "{err}");
        for sub in ["sha256", "tmp"] {
            assert_eq!(std::fs::read_dir(dir.path().join(sub)).unwrap().count(), 0, "{sub}");
        }
    }

    mod sources {
        use super::*;
        use crate::api::release::EnvironmentSource;
        use crate::renderers::test_repo::{TreeRepo, files};

        fn three() -> Vec<Environment> {
            ["development", "staging", "production"]
                .iter()
                .map(|n| Environment { name: (*n).to_owned(), namespace: format!("shop-{n}") })
                .collect()
        }

        /// Engines that do not exist: these tests must never need one.
        fn no_engines() -> Engines {
            Engines {
                kustomize: "/nonexistent/kubectl".into(),
                helm: "/nonexistent/helm".into(),
                timeout: std::time::Duration::from_secs(1),
                scratch_dir: None,
            }
        }

        fn package_with(repo: &TreeRepo, source: &Source, out: &mut Vec<u8>) -> Result<Packaged, Error> {
            let (environments, engines) = (three(), no_engines());
            let request = Request { source, environments: &environments, pipeline: "shop", engines: &engines };
            package_source(&repo.repo, repo.commit, &request, &PackageLimits::default(), Sink::Writer(out))
        }

        const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";

        #[test]
        fn a_fixed_plain_directory_packages_to_the_same_bytes_as_before_renderers() {
            let repo = TreeRepo::new(&files(&[("deploy/a.yaml", CM), ("deploy/b/c.yml", CM), ("other/x.yaml", CM)]));
            for path in ["deploy", "./deploy/"] {
                let source = Source { path: Some(path.into()), ..Source::default() };
                let (mut new, mut old) = (Vec::new(), Vec::new());
                let packaged = package_with(&repo, &source, &mut new).unwrap();
                let before =
                    package(&repo.repo, repo.commit, path, &PackageLimits::default(), Sink::Writer(&mut old)).unwrap();
                assert_eq!(new, old, "{path}");
                assert_eq!(packaged, before);
                assert!(packaged.environments.is_empty());
                let paths: Vec<String> = artifact::read_archive(&new).unwrap().into_iter().map(|f| f.path).collect();
                assert_eq!(paths, ["a.yaml", "b/c.yml"]);
            }
        }

        #[test]
        fn a_plain_directory_per_environment_is_laid_out_by_environment() {
            let repo = TreeRepo::new(&files(&[
                ("envs/development/a.yaml", CM),
                ("envs/staging/a.yaml", CM),
                ("envs/staging/b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"),
                ("prod/a.yaml", CM),
            ]));
            let source = Source {
                path: Some("envs/${CONVEYOR_ENVIRONMENT}".into()),
                environments: vec![EnvironmentSource {
                    name: "production".into(),
                    path: Some("prod".into()),
                    values_files: vec![],
                }],
                ..Source::default()
            };
            let mut out = Vec::new();
            let packaged = package_with(&repo, &source, &mut out).unwrap();
            let paths: Vec<String> = artifact::read_archive(&out).unwrap().into_iter().map(|f| f.path).collect();
            assert_eq!(paths, ["development/a.yaml", "production/a.yaml", "staging/a.yaml", "staging/b.yaml"]);
            let counts: Vec<(&str, Option<&str>, usize)> =
                packaged.environments.iter().map(|e| (e.name.as_str(), e.namespace.as_deref(), e.objects)).collect();
            assert_eq!(counts, [("development", None, 1), ("staging", None, 2), ("production", None, 1)]);
            assert_eq!((packaged.files, packaged.objects), (4, 4));
            // Deterministic: the same bytes again.
            let mut again = Vec::new();
            package_with(&repo, &source, &mut again).unwrap();
            assert_eq!(out, again);
        }

        #[test]
        fn a_kustomization_is_never_packaged_as_an_object() {
            let kustomization =
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nmetadata: {name: x}\n";
            let repo =
                TreeRepo::new(&files(&[("deploy/a.yaml", CM), ("deploy/sub/kustomization.yaml", kustomization)]));
            for renderer in [None, Some(Renderer::Plain)] {
                let source = Source { path: Some("deploy".into()), renderer, ..Source::default() };
                let err = package_with(&repo, &source, &mut Vec::new()).unwrap_err();
                assert_eq!(err.reason(), Reason::InvalidSource, "{err}");
                assert!(err.to_string().starts_with("deploy/sub/kustomization.yaml is a kustomization"), "{err}");
            }
            // At the path itself it is detected, and then a missing engine is said so (retried).
            let source = Source { path: Some("deploy/sub".into()), ..Source::default() };
            let err = package_with(&repo, &source, &mut Vec::new()).unwrap_err();
            assert_eq!(err.reason(), Reason::EngineUnavailable, "{err}");
            assert!(err.is_transient());
            assert!(err.to_string().contains("set the controller config key `kustomize_binary`"), "{err}");
        }

        #[test]
        fn a_missing_environment_directory_is_named() {
            let repo = TreeRepo::new(&files(&[("envs/development/a.yaml", CM)]));
            let source = Source { path: Some("envs/${CONVEYOR_ENVIRONMENT}".into()), ..Source::default() };
            let err = package_with(&repo, &source, &mut Vec::new()).unwrap_err();
            assert_eq!(err.reason(), Reason::PathNotFound, "{err}");
            assert!(err.to_string().starts_with("path `envs/staging` does not exist"), "{err}");
        }
    }
}
