//! One packaging path for the controller and `conveyor package`: manifests at a commit →
//! validated objects → deterministic artifact (stored, or only measured), and release notes.

use git2::{Oid, Repository};

use crate::api::Reason;
use crate::api::types::Digest;
use crate::artifact::{self, Store};
use crate::config::PackageLimits;
use crate::core::notes::{MAX_NOTES_BYTES, release_notes_with_omitted};
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
}

impl Error {
    /// The condition reason.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Source(e) => e.reason(),
            Self::Artifact(e) => e.reason(),
        }
    }

    /// Whether trying again later, unchanged, may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Source(e) => e.is_transient(),
            Self::Artifact(e) => e.is_transient(),
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
    /// Kubernetes objects in it.
    pub objects: usize,
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

/// Packages `path` at `commit` into `sink`. Every manifest is validated before anything is written.
pub fn package(
    repo: &Repository,
    commit: Oid,
    path: &str,
    limits: &PackageLimits,
    sink: Sink<'_>,
) -> Result<Packaged, Error> {
    let files = source::read_manifests(repo, commit, path, limits)?;
    let objects = artifact::parse_objects(&files, limits.max_yaml_nodes).map_err(|e| in_repository(e, path))?;
    let (digest, size) = match sink {
        Sink::Store { store, expected } => store.put(&files, expected)?,
        Sink::Writer(out) => artifact::write_archive(&files, out).map_err(artifact::Error::Io)?,
    };
    Ok(Packaged { commit, digest, size, files: files.len(), objects: objects.len() })
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
