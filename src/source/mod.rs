//! Git sources: a mirror cache per URL, fetches with credentials and a deadline, refs resolved
//! to one commit, and manifests read straight from the object database at that commit.
//!
//! Everything here is blocking (libgit2); the controller runs it in `spawn_blocking`.

mod credentials;
mod fetch;
mod tree;

pub use crate::core::paths::normalize;
pub use credentials::Credentials;
pub use fetch::{Mirrors, resolve};
pub use tree::{ManifestEntry, ManifestReader, Manifests, list_manifests};

use crate::api::Reason;
use crate::api::release::GitRef;

/// What to package: a tag, a branch head, a commit id, or (from the command line) any of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `refs/tags/<name>`.
    Tag(String),
    /// `refs/heads/<name>`, resolved once.
    Branch(String),
    /// A full commit id.
    Commit(String),
    /// A tag, a branch or a commit id, tried in that order (`conveyor package --ref`).
    Any(String),
}

impl Reference {
    /// The reference a validated `spec.source.git.ref` names.
    pub fn from_spec(r: &GitRef) -> Option<Self> {
        match (&r.tag, &r.branch, &r.commit) {
            (Some(t), None, None) => Some(Self::Tag(t.trim().to_owned())),
            (None, Some(b), None) => Some(Self::Branch(b.trim().to_owned())),
            (None, None, Some(c)) => Some(Self::Commit(c.trim().to_ascii_lowercase())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tag(t) => write!(f, "tag `{t}`"),
            Self::Branch(b) => write!(f, "branch `{b}`"),
            Self::Commit(c) => write!(f, "commit `{c}`"),
            Self::Any(r) => write!(f, "ref `{r}`"),
        }
    }
}

/// Errors of a git source. Messages name the file or ref at fault and never carry credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The remote could not be reached, or the fetch did not finish before the deadline.
    #[error("cannot fetch {url}: {message}")]
    Unreachable {
        /// The repository URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The remote refused the credentials, or wants some and none were given.
    #[error("cannot fetch {url}: {message}")]
    AuthFailed {
        /// The repository URL.
        url: String,
        /// What went wrong and how to fix it.
        message: String,
    },
    /// The credentials Secret is unusable.
    #[error("{0}")]
    InvalidSecret(String),
    /// The ref does not exist.
    #[error("{reference} not found in {url}{hint}")]
    RefNotFound {
        /// The repository URL (or path).
        url: String,
        /// The ref asked for.
        reference: Reference,
        /// Refs that do exist, to help spot a typo.
        hint: String,
    },
    /// `path` does not exist at the commit or is not a directory.
    #[error("path `{path}` {message} at commit {commit}")]
    PathNotFound {
        /// The source path.
        path: String,
        /// Missing, or a file.
        message: &'static str,
        /// The commit.
        commit: String,
    },
    /// No manifest files under `path`.
    #[error(
        "path `{path}` holds no .yaml, .yml or .json file at commit {commit}; point spec.source.path at the manifests directory"
    )]
    NoManifests {
        /// The source path.
        path: String,
        /// The commit.
        commit: String,
    },
    /// More manifest files than allowed.
    #[error("more than {limit} manifest files under `{path}`; split the application or raise package_max_files")]
    TooManyFiles {
        /// The source path.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// One file larger than allowed.
    #[error(
        "{file} is {size} bytes, more than the {limit}-byte limit per file; shrink it or raise package_max_file_bytes"
    )]
    FileTooLarge {
        /// The file.
        file: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// All files together larger than allowed.
    #[error("manifests exceed {limit} bytes in total (reached at {file}); shrink them or raise package_max_bytes")]
    ArtifactTooLarge {
        /// The file that crossed the limit.
        file: String,
        /// The limit.
        limit: u64,
    },
    /// A symlink leaves `path` or points at a directory.
    #[error("{file} is a symlink to `{target}`, which {message}; replace it with the file itself")]
    SymlinkEscape {
        /// The symlink.
        file: String,
        /// Where it points.
        target: String,
        /// Why it is refused.
        message: &'static str,
    },
    /// Any other libgit2 failure (for example a damaged mirror).
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The mirror cache directory could not be prepared.
    #[error("git mirror cache: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with a source [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The condition reason for this error.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Unreachable { .. } | Self::Git(_) | Self::Io(_) => Reason::GitUnreachable,
            Self::AuthFailed { .. } => Reason::GitAuthFailed,
            Self::InvalidSecret(_) => Reason::InvalidSecret,
            Self::RefNotFound { .. } => Reason::RefNotFound,
            Self::PathNotFound { .. } => Reason::PathNotFound,
            Self::NoManifests { .. } => Reason::NoManifests,
            Self::TooManyFiles { .. } => Reason::TooManyFiles,
            Self::FileTooLarge { .. } => Reason::FileTooLarge,
            Self::ArtifactTooLarge { .. } => Reason::ArtifactTooLarge,
            Self::SymlinkEscape { .. } => Reason::SymlinkEscape,
        }
    }

    /// Whether trying again later, unchanged, may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Git(_) | Self::Io(_))
    }
}
