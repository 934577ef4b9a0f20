//! Manifests read straight from the object database at one commit: no checkout, no work tree,
//! and every bound checked before a blob is loaded.

use git2::{ObjectType, Oid, Repository, Tree};

use super::{Error, Result};
use crate::artifact::{ManifestFile, is_manifest};
use crate::config::PackageLimits;

const MODE_SYMLINK: i32 = 0o120000;

/// The manifest files under `path` (empty: the repository root) at `commit`, with paths relative
/// to `path`, sorted. Symlinks to files inside `path` are followed; any other symlink is refused.
pub fn read_manifests(repo: &Repository, commit: Oid, path: &str, limits: &PackageLimits) -> Result<Vec<ManifestFile>> {
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
        let entry = root.get_path(std::path::Path::new(&base)).map_err(|_| missing())?;
        if entry.kind() != Some(ObjectType::Tree) {
            return Err(Error::PathNotFound { path: base.clone(), message: "is not a directory", commit: short });
        }
        repo.find_tree(entry.id())?
    };

    let mut reader = Reader { repo, root: &root, base: &base, limits, files: Vec::new(), total: 0 };
    reader.walk(&dir, "")?;
    let mut files = reader.files;
    if files.is_empty() {
        return Err(Error::NoManifests { path: if base.is_empty() { ".".into() } else { base }, commit: short });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

struct Reader<'a> {
    repo: &'a Repository,
    root: &'a Tree<'a>,
    /// The source path, normalized, relative to the repository root.
    base: &'a str,
    limits: &'a PackageLimits,
    files: Vec<ManifestFile>,
    total: u64,
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
        let entry = self.root.get_path(std::path::Path::new(&full)).map_err(|_| escape("does not exist"))?;
        match entry.kind() {
            Some(ObjectType::Blob) if entry.filemode() == MODE_SYMLINK => Err(escape("is another symlink")),
            Some(ObjectType::Blob) if is_manifest(rel) => self.add(entry.id(), rel.to_owned()),
            Some(ObjectType::Blob) => Ok(()),
            _ => Err(escape("is a directory (only symlinks to files are followed)")),
        }
    }

    fn add(&mut self, blob: Oid, rel: String) -> Result<()> {
        if self.files.len() >= self.limits.max_files {
            return Err(Error::TooManyFiles { path: self.shown(""), limit: self.limits.max_files });
        }
        // The header gives the size without loading the content.
        let (size, _) = self.repo.odb()?.read_header(blob)?;
        let size = size as u64;
        if size > self.limits.max_file_bytes {
            return Err(Error::FileTooLarge { file: self.shown(&rel), size, limit: self.limits.max_file_bytes });
        }
        self.total += size;
        if self.total > self.limits.max_bytes {
            return Err(Error::ArtifactTooLarge { file: self.shown(&rel), limit: self.limits.max_bytes });
        }
        let content = self.repo.find_blob(blob)?.content().to_vec();
        self.files.push(ManifestFile { path: rel, content });
        Ok(())
    }

    /// A path as the user sees it in the repository.
    fn shown(&self, rel: &str) -> String {
        match (self.base.is_empty(), rel.is_empty()) {
            (true, true) => ".".to_owned(),
            (true, false) => rel.to_owned(),
            (false, true) => self.base.to_owned(),
            (false, false) => format!("{}/{rel}", self.base),
        }
    }
}

/// `a/./b//c/../d` → `a/b/d`; `None` when it climbs above its start.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.trim().split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn short(commit: Oid) -> String {
    let mut s = commit.to_string();
    s.truncate(12);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_cases() {
        // (input, expected)
        let cases = [
            ("deploy", Some("deploy")),
            ("./deploy/", Some("deploy")),
            ("a/./b//c/../d", Some("a/b/d")),
            ("", Some("")),
            (".", Some("")),
            ("a/..", Some("")),
            ("..", None),
            ("a/../../b", None),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input).as_deref(), expected, "{input}");
        }
    }
}
