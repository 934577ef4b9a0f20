//! Release management in a local git repository (git2, blocking): the latest release tag, the
//! commits since it, and `conveyor release` as a plan (reads only) and its application (a
//! changelog commit and an annotated tag).
//!
//! [`latest_release`] and [`commits_between`] only read the object database, so the controller
//! uses them on its bare mirrors too; [`plan`] and [`apply`] need a work tree.

mod changelog;
mod history;
mod plan;
#[cfg(test)]
pub(crate) mod test_repo;

use std::path::PathBuf;

pub use changelog::prepend_notes;
pub use history::{History, commits_between, history_between, latest_release};
pub use plan::{Applied, Plan, apply, plan};

/// What can stop a release; each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested version is not SemVer 2.0.
    #[error(
        "`{version}` is not a SemVer 2.0 version ({reason}); write it like 1.4.0 or 2.0.0-rc.1, without a leading `v` (the tag prefix comes from tag_prefix in the configuration)"
    )]
    InvalidVersion {
        /// The version as given.
        version: String,
        /// Why it does not parse (in the message, so not a `source`).
        reason: semver::Error,
    },
    /// The requested version does not come after the latest release.
    #[error(
        "version {version} is not greater than the latest release {latest} (tag {tag}); choose a version above {latest}"
    )]
    VersionNotGreater {
        /// The version as given.
        version: String,
        /// The latest released version.
        latest: String,
        /// Its tag.
        tag: String,
    },
    /// The tag for the requested version already exists.
    #[error("tag {tag} already exists; a released version is never re-tagged, so choose a new, greater version")]
    TagExists {
        /// The tag name.
        tag: String,
    },
    /// `tag_prefix` + version is not a valid git tag name.
    #[error("`{tag}` is not a valid git tag name; fix tag_prefix in the configuration")]
    InvalidTagName {
        /// The tag name.
        tag: String,
    },
    /// The changelog file has uncommitted changes, which the release commit would mix in or lose.
    #[error(
        "{} has uncommitted changes; commit, stash or discard them first (the release commit contains only the new notes)",
        path.display()
    )]
    DirtyChangelog {
        /// The changelog file, relative to the repository root.
        path: PathBuf,
    },
    /// `changelog_file` leaves the repository.
    #[error(
        "changelog_file `{}` is not a relative path inside the repository; set changelog_file to something like CHANGELOG.md",
        path.display()
    )]
    InvalidChangelogPath {
        /// The configured path.
        path: PathBuf,
    },
    /// The changelog path names a directory, symlink or submodule in HEAD.
    #[error("{} is not a regular file in HEAD; point changelog_file at a regular file", path.display())]
    ChangelogNotAFile {
        /// The changelog file, relative to the repository root.
        path: PathBuf,
    },
    /// The changelog is not UTF-8, so notes cannot be inserted as text.
    #[error("{} is not UTF-8 text; convert it to UTF-8 or point changelog_file at another file", path.display())]
    ChangelogNotUtf8 {
        /// The changelog file, relative to the repository root.
        path: PathBuf,
    },
    /// HEAD has no commit yet.
    #[error("the repository has no commits yet (HEAD is unborn); commit the manifests first, then release")]
    UnbornHead,
    /// The repository is bare: there is no changelog file to update.
    #[error("{} is a bare repository; run conveyor release in a clone with a work tree", path.display())]
    NoWorkTree {
        /// The repository's git directory.
        path: PathBuf,
    },
    /// HEAD moved between the plan and its application.
    #[error("HEAD moved from {planned} to {current} while the release was prepared; run conveyor release again")]
    HeadMoved {
        /// The commit the plan was made on.
        planned: String,
        /// The commit HEAD points to now.
        current: String,
    },
    /// Writing the changelog into the work tree failed.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A git operation failed.
    #[error(transparent)]
    Git(#[from] git2::Error),
}

/// Result with a release [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bounded name for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidVersion { .. } => "invalid_version",
            Self::VersionNotGreater { .. } => "version_not_greater",
            Self::TagExists { .. } => "tag_exists",
            Self::InvalidTagName { .. } => "invalid_tag_name",
            Self::DirtyChangelog { .. } => "dirty_changelog",
            Self::InvalidChangelogPath { .. } => "invalid_changelog_path",
            Self::ChangelogNotAFile { .. } => "changelog_not_a_file",
            Self::ChangelogNotUtf8 { .. } => "changelog_not_utf8",
            Self::UnbornHead => "unborn_head",
            Self::NoWorkTree { .. } => "no_work_tree",
            Self::HeadMoved { .. } => "head_moved",
            Self::Io { .. } => "io",
            Self::Git(_) => "git",
        }
    }

    /// Whether running again unchanged may succeed.
    pub fn is_transient(&self) -> bool {
        // A moved HEAD gives a fresh plan next time; I/O and git failures may be a lock or a
        // full disk. Everything else needs the user to change something first.
        matches!(self, Self::HeadMoved { .. } | Self::Io { .. } | Self::Git(_))
    }
}
