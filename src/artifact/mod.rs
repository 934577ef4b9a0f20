//! A release's manifests → validated Kubernetes objects → a deterministic tar.gz with a
//! `sha256:` digest, kept in a content-addressed store on disk.
//!
//! Parsing and archiving are pure functions of the files (plus a writer); only [`Store`]
//! touches the filesystem.

mod archive;
mod store;
mod yaml;

use crate::api::Reason;
use crate::api::types::Digest;

pub use archive::{ArchiveWriter, Frames, HashingWriter, read_archive, write_archive};
pub use store::Store;
pub use yaml::{Object, ObjectId, check_content, check_file, parse_file, parse_objects};

/// One manifest file: path relative to the release's source directory, '/'-separated, no leading './'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFile {
    /// Path relative to the source directory, e.g. `deploy/app.yaml`.
    pub path: String,
    /// The file's bytes as committed.
    pub content: Vec<u8>,
}

/// Whether a file name is a manifest (.yaml, .yml, .json; case-insensitive extension).
///
/// Accepts a bare name or a '/'-separated path; only the last component is looked at. A name
/// that is only an extension (`.yaml`) is a hidden file, not a manifest.
pub fn is_manifest(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            ["yaml", "yml", "json"].iter().any(|known| ext.eq_ignore_ascii_case(known))
        }
        _ => false,
    }
}

/// What the fix is, shared by every message about a document that is not an object.
const OBJECT_HINT: &str = "every document must be a Kubernetes object with apiVersion, kind and metadata.name";

/// Errors of the artifact layer: invalid manifests, a digest that does not match, store I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file is not valid YAML/JSON (or not UTF-8).
    #[error("{file}, document {document}: invalid YAML: {message}")]
    InvalidYaml {
        /// The file, relative to the source path.
        file: String,
        /// 1-based index of the document in the file.
        document: usize,
        /// The parser's message, with line and column when it has them, and how to fix it.
        message: String,
    },
    /// A document is not a Kubernetes object.
    #[error("{file}, document {document}: {message}; {OBJECT_HINT}")]
    InvalidObject {
        /// The file, relative to the source path.
        file: String,
        /// 1-based index of the document in the file.
        document: usize,
        /// What is missing or malformed.
        message: String,
    },
    /// A document expands (through anchors and aliases) past the node limit.
    #[error(
        "{file}, document {document}: expands to more than {limit} YAML nodes (aliases repeat what their anchor \
         holds; long strings count one node per {} bytes); remove the nested aliases or raise package_max_yaml_nodes",
        yaml::SCALAR_BYTES_PER_NODE
    )]
    YamlExpansionLimit {
        /// The file, relative to the source path.
        file: String,
        /// 1-based index of the document in the file.
        document: usize,
        /// The node limit.
        limit: usize,
    },
    /// An artifact's bytes do not have the digest they should.
    #[error(
        "artifact digest is {actual}, expected {expected}: the manifests rebuilt from git, or the stored archive, \
         differ from what was packaged; point the release at a commit or tag that does not move, or delete the \
         altered file from the store so that it is rebuilt"
    )]
    DigestMismatch {
        /// The digest recorded when the release was packaged.
        expected: Digest,
        /// The digest of the bytes at hand.
        actual: Digest,
    },
    /// The store could not be written or read.
    #[error("artifact store: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with an artifact [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The condition reason for this error.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidYaml { .. } => Reason::InvalidYaml,
            Self::InvalidObject { .. } => Reason::InvalidObject,
            Self::YamlExpansionLimit { .. } => Reason::YamlExpansionLimit,
            Self::DigestMismatch { .. } => Reason::DigestMismatch,
            Self::Io(_) => Reason::StoreFailed,
        }
    }

    /// A bounded label for metrics and events (the reason's PascalCase form).
    pub fn kind(&self) -> &'static str {
        self.reason().as_str()
    }

    /// Whether trying again later, unchanged, may succeed: only store I/O; manifests and
    /// digests stay wrong until someone changes them.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Io(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_manifest_by_extension() {
        let cases = [
            ("app.yaml", true),
            ("app.yml", true),
            ("app.json", true),
            ("APP.YAML", true),
            ("app.Yml", true),
            ("deploy/app.yaml", true),
            ("deploy.d/app.json", true),
            ("app.tar.yaml", true),
            ("README.md", false),
            ("app.yaml.bak", false),
            ("app.yamlx", false),
            ("yaml", false),
            (".yaml", false),
            ("deploy.yaml/README", false),
            ("kustomization", false),
            ("", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_manifest(name), want, "{name}");
        }
    }

    #[test]
    fn reasons_and_transience() {
        let digest = Digest::of(b"");
        let cases = [
            (Error::InvalidYaml { file: "a".into(), document: 1, message: "x".into() }, Reason::InvalidYaml, false),
            (Error::InvalidObject { file: "a".into(), document: 1, message: "x".into() }, Reason::InvalidObject, false),
            (Error::YamlExpansionLimit { file: "a".into(), document: 1, limit: 1 }, Reason::YamlExpansionLimit, false),
            (Error::DigestMismatch { expected: digest.clone(), actual: digest.clone() }, Reason::DigestMismatch, false),
            (Error::Io(std::io::Error::other("disk full")), Reason::StoreFailed, true),
        ];
        for (err, reason, transient) in cases {
            assert_eq!(err.reason(), reason, "{err}");
            assert_eq!(err.kind(), reason.as_str());
            assert_eq!(err.is_transient(), transient, "{err}");
        }
    }

    #[test]
    fn object_message_names_file_document_and_fix() {
        let err = Error::InvalidObject { file: "deploy/app.yaml".into(), document: 2, message: "no `kind`".into() };
        assert_eq!(
            err.to_string(),
            "deploy/app.yaml, document 2: no `kind`; every document must be a Kubernetes object with apiVersion, \
             kind and metadata.name"
        );
    }
}
