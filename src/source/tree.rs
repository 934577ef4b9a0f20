//! Manifests read straight from the object database at one commit: no checkout, no work tree.
//! Listing checks the file count and symlinks; loading checks each file's size from its object
//! header before reading the content.

use std::path::Path;

use git2::{ObjectType, Oid, Repository, Tree};

use super::{Error, Result};
use crate::artifact::{ManifestFile, is_manifest};
use crate::config::PackageLimits;
use crate::core::paths::normalize;

const MODE_SYMLINK: i32 = 0o120000;

/// The manifest files found under a source path, not loaded yet.
#[derive(Clone, Debug)]
pub struct Manifests {
    /// The source path, normalized, relative to the repository root.
    base: String,
    /// Sorted by path bytes, the archive's order.
    entries: Vec<ManifestEntry>,
}

/// One manifest file at the commit, not loaded yet.
#[derive(Clone, Debug)]
pub struct ManifestEntry {
    /// Path relative to the source path, '/'-separated.
    pub path: String,
    /// The content (for a symlink: its target's).
    blob: Oid,
}

impl Manifests {
    /// The files, sorted by path bytes.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// How many manifest files there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none (never, once listed: that is `NoManifests`).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A reader with its own handle on the repository at `git_dir` (a `Repository` serves one
    /// thread at a time, so each thread that loads files opens one).
    pub fn reader(&self, git_dir: &Path, max_file_bytes: u64) -> Result<ManifestReader<'_>> {
        skip_rehashing();
        Ok(ManifestReader { manifests: self, repo: Repository::open(git_dir)?, max_file_bytes })
    }

    /// Adds the `size` of the file at `path` to the running `total` of bytes, called in path
    /// order: fails at the first file that takes the total past `max_bytes`.
    pub fn count_bytes(&self, total: &mut u64, path: &str, size: u64, max_bytes: u64) -> Result<()> {
        *total += size;
        if *total > max_bytes {
            return Err(Error::ArtifactTooLarge { file: shown(&self.base, path), limit: max_bytes });
        }
        Ok(())
    }
}

/// Stops libgit2 from hashing every object it reads again, as git itself does not: objects
/// were hashed when they were fetched (or committed), and a damaged pack still fails its CRC and
/// zlib checks. Rehashing costs about a tenth of the time spent packaging.
fn skip_rehashing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| git2::opts::strict_hash_verification(false));
}

/// Loads manifest files, each size checked from its object header before the content is read.
pub struct ManifestReader<'a> {
    manifests: &'a Manifests,
    repo: Repository,
    max_file_bytes: u64,
}

impl ManifestReader<'_> {
    /// Loads one file; `FileTooLarge` (nothing read) when it is over `max_file_bytes`.
    pub fn load(&self, entry: &ManifestEntry) -> Result<ManifestFile> {
        let content = self.read(entry, <[u8]>::to_vec)?;
        Ok(ManifestFile { path: entry.path.clone(), content })
    }

    /// Reads one file and hands its content to `use_content`, without copying it; `FileTooLarge`
    /// (nothing read) when it is over `max_file_bytes`.
    pub fn read<T>(&self, entry: &ManifestEntry, use_content: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let odb = self.repo.odb()?;
        let (size, _) = odb.read_header(entry.blob)?;
        let size = size as u64;
        if size > self.max_file_bytes {
            let file = shown(&self.manifests.base, &entry.path);
            return Err(Error::FileTooLarge { file, size, limit: self.max_file_bytes });
        }
        Ok(use_content(odb.read(entry.blob)?.data()))
    }
}

/// The manifest files under `path` (empty: the repository root) at `commit`, with paths relative
/// to `path`. Symlinks to files inside `path` are followed; any other symlink is refused.
pub fn list_manifests(repo: &Repository, commit: Oid, path: &str, limits: &PackageLimits) -> Result<Manifests> {
    let commit_obj = repo.find_commit(commit)?;
    let root = commit_obj.tree()?;
    let short = short(commit);
    let Some(base) = normalize(path) else {
        return Err(Error::PathNotFound {
            path: path.to_owned(),
            message: "climbs out of the repository",
            commit: short,
        });
    };
    let dir = if base.is_empty() {
        root.clone()
    } else {
        let missing = || Error::PathNotFound { path: base.clone(), message: "does not exist", commit: short.clone() };
        let entry = root.get_path(Path::new(&base)).map_err(|_| missing())?;
        if entry.kind() != Some(ObjectType::Tree) {
            return Err(Error::PathNotFound { path: base.clone(), message: "is not a directory", commit: short });
        }
        repo.find_tree(entry.id())?
    };

    let mut reader = Reader { repo, root: &root, base: &base, limits, entries: Vec::new() };
    reader.walk(&dir, "")?;
    let mut entries = reader.entries;
    if entries.is_empty() {
        return Err(Error::NoManifests { path: if base.is_empty() { ".".into() } else { base }, commit: short });
    }
    entries.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(Manifests { base, entries })
}

struct Reader<'a> {
    repo: &'a Repository,
    root: &'a Tree<'a>,
    /// The source path, normalized, relative to the repository root.
    base: &'a str,
    limits: &'a PackageLimits,
    entries: Vec<ManifestEntry>,
}

impl Reader<'_> {
    fn walk(&mut self, tree: &Tree<'_>, prefix: &str) -> Result<()> {
        for entry in tree {
            let Ok(name) = entry.name() else { continue };
            let rel = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
            match entry.kind() {
                Some(ObjectType::Tree) => self.walk(&self.repo.find_tree(entry.id())?, &rel)?,
                Some(ObjectType::Blob) if entry.filemode() == MODE_SYMLINK => self.symlink(entry.id(), &rel)?,
                Some(ObjectType::Blob) if is_manifest(name) => self.add(entry.id(), rel)?,
                // Other files (README, scripts) are not manifests; submodules are not followed.
                _ => {}
            }
        }
        Ok(())
    }

    /// A symlink is followed only to a file inside the source path.
    fn symlink(&mut self, link: Oid, rel: &str) -> Result<()> {
        let target = String::from_utf8_lossy(self.repo.find_blob(link)?.content()).into_owned();
        let shown = self.shown(rel);
        let escape = |message| Error::SymlinkEscape { file: shown.clone(), target: target.clone(), message };
        let parent = rel.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
        let joined = if target.starts_with('/') {
            return Err(escape("is an absolute path"));
        } else if parent.is_empty() {
            target.clone()
        } else {
            format!("{parent}/{target}")
        };
        // Relative to the source path: climbing above it means leaving it.
        let Some(inside) = normalize(&joined) else { return Err(escape("leaves the source path")) };
        let full = if self.base.is_empty() { inside.clone() } else { format!("{}/{inside}", self.base) };
        let entry = self.root.get_path(Path::new(&full)).map_err(|_| escape("does not exist"))?;
        match entry.kind() {
            Some(ObjectType::Blob) if entry.filemode() == MODE_SYMLINK => Err(escape("is another symlink")),
            Some(ObjectType::Blob) if is_manifest(rel) => self.add(entry.id(), rel.to_owned()),
            Some(ObjectType::Blob) => Ok(()),
            _ => Err(escape("is a directory (only symlinks to files are followed)")),
        }
    }

    fn add(&mut self, blob: Oid, rel: String) -> Result<()> {
        if self.entries.len() >= self.limits.max_files {
            return Err(Error::TooManyFiles { path: self.shown(""), limit: self.limits.max_files });
        }
        self.entries.push(ManifestEntry { path: rel, blob });
        Ok(())
    }

    fn shown(&self, rel: &str) -> String {
        shown(self.base, rel)
    }
}

/// A path as the user sees it in the repository: `rel` inside the source path `base`.
fn shown(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (true, true) => ".".to_owned(),
        (true, false) => rel.to_owned(),
        (false, true) => base.to_owned(),
        (false, false) => format!("{base}/{rel}"),
    }
}

fn short(commit: Oid) -> String {
    let mut s = commit.to_string();
    s.truncate(12);
    s
}
