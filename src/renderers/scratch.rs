//! The scratch copy an engine runs on: the whole repository at one commit, written from the git
//! object database (no checkout, no `.git`, nothing from another commit), in a temporary
//! directory removed when the copy is dropped.
//!
//! Kustomize overlays reach into `../base` and charts into `charts/`, so the whole tree is
//! written, bounded by the package limits. Symlinks are not written as symlinks: one that stays
//! inside the repository is written as a copy of what it points at (so no path on disk can lead
//! elsewhere); one that is absolute or climbs above the root is refused, naming it. Files larger
//! than `package_max_file_bytes` are left out (images, archives): an engine that needs one fails,
//! and the message lists what was left out.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository, Tree};

use super::Error;
use crate::config::PackageLimits;
use crate::source::normalize;

const MODE_SYMLINK: i32 = 0o120000;
/// Most symlinks followed from one entry (a chain `a → b → c`), and most directory copies nested.
const MAX_HOPS: usize = 8;

/// A repository tree written to disk for an engine.
pub struct Scratch {
    dir: tempfile::TempDir,
    /// Files larger than the per-file limit, left out.
    pub skipped: Vec<String>,
}

impl Scratch {
    /// Writes the tree of `commit` into a new temporary directory under `parent` (created if
    /// missing), or the system's temporary directory.
    pub fn write(repo: &Repository, commit: Oid, limits: &PackageLimits, parent: Option<&Path>) -> Result<Self, Error> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("conveyor-render-");
        let dir = match parent {
            Some(parent) => {
                std::fs::create_dir_all(parent)?;
                builder.tempdir_in(parent)?
            }
            None => builder.tempdir()?,
        };
        let root = repo.find_commit(commit)?.tree()?;
        let repo_dir = dir.path().join("repo");
        std::fs::create_dir(&repo_dir)?;
        let mut writer = Writer { repo, root: &root, limits, files: 0, bytes: 0, skipped: Vec::new() };
        writer.tree(&root, "", &repo_dir, 0)?;
        let skipped = writer.skipped;
        Ok(Self { dir, skipped })
    }

    /// The repository's root on disk.
    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// A directory beside the repository for the engines' HOME and caches.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("engine")
    }
}

struct Writer<'a> {
    repo: &'a Repository,
    root: &'a Tree<'a>,
    limits: &'a PackageLimits,
    files: u64,
    bytes: u64,
    skipped: Vec<String>,
}

impl Writer<'_> {
    /// Writes `tree` (at `rel` in the repository) into `dir`; `depth` counts directory copies made
    /// for symlinks, which bounds a symlink to an ancestor.
    fn tree(&mut self, tree: &Tree<'_>, rel: &str, dir: &Path, depth: usize) -> Result<(), Error> {
        for entry in tree {
            let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
            // A crafted tree can hold names git itself would never write; any of them could
            // step out of the directory on disk.
            if name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('\0')
                || name == ".git"
            {
                return Err(Error::UnsafeName { name, dir: if rel.is_empty() { ".".into() } else { rel.into() } });
            }
            let path = join(rel, &name);
            let target = dir.join(&name);
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    std::fs::create_dir(&target)?;
                    self.tree(&self.repo.find_tree(entry.id())?, &path, &target, depth)?;
                }
                Some(ObjectType::Blob) if entry.filemode() == MODE_SYMLINK => {
                    self.symlink(entry.id(), &path, &target, depth)?
                }
                Some(ObjectType::Blob) => self.blob(entry.id(), &path, &target)?,
                // Submodules are not part of this repository's content.
                _ => {}
            }
        }
        Ok(())
    }

    fn blob(&mut self, blob: Oid, path: &str, target: &Path) -> Result<(), Error> {
        let odb = self.repo.odb()?;
        let (size, _) = odb.read_header(blob)?;
        let size = size as u64;
        if size > self.limits.max_file_bytes {
            self.skipped.push(path.to_owned());
            return Ok(());
        }
        self.files += 1;
        self.bytes += size;
        if self.files > self.limits.max_files as u64 {
            return Err(Error::TreeTooLarge {
                what: "files",
                limit: self.limits.max_files as u64,
                key: "package_max_files",
            });
        }
        if self.bytes > self.limits.max_bytes {
            return Err(Error::TreeTooLarge { what: "bytes", limit: self.limits.max_bytes, key: "package_max_bytes" });
        }
        std::fs::write(target, odb.read(blob)?.data())?;
        Ok(())
    }

    /// Writes a copy of what the symlink at `path` points to, if it stays inside the repository.
    fn symlink(&mut self, link: Oid, path: &str, target: &Path, depth: usize) -> Result<(), Error> {
        let (mut link, mut at) = (link, path.to_owned());
        for _ in 0..MAX_HOPS {
            let points_to = String::from_utf8_lossy(self.repo.find_blob(link)?.content()).into_owned();
            let escape = |message| Error::SymlinkEscape { file: path.to_owned(), target: points_to.clone(), message };
            if points_to.starts_with('/') {
                return Err(escape("is an absolute path"));
            }
            let parent = at.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
            let Some(resolved) = normalize(&join(parent, &points_to)) else {
                return Err(escape("leaves the repository"));
            };
            let entry = if resolved.is_empty() {
                None
            } else {
                match self.root.get_path(Path::new(&resolved)) {
                    Ok(entry) => Some(entry),
                    // A dangling link is written as nothing, as a checkout would leave it unusable.
                    Err(_) => return Ok(()),
                }
            };
            match entry.as_ref().map(|e| (e.kind(), e.filemode())) {
                Some((Some(ObjectType::Blob), MODE_SYMLINK)) => {
                    link = entry.expect("matched Some").id();
                    at = resolved;
                }
                Some((Some(ObjectType::Blob), _)) => return self.blob(entry.expect("matched Some").id(), path, target),
                // The root itself, or a directory.
                None | Some((Some(ObjectType::Tree), _)) => {
                    if resolved.is_empty() || path.starts_with(&format!("{resolved}/")) {
                        return Err(escape("is a directory holding the link itself"));
                    }
                    if depth >= MAX_HOPS {
                        return Err(escape("nests more directory links than are followed"));
                    }
                    let tree = self.repo.find_tree(entry.expect("not the root").id())?;
                    std::fs::create_dir(target)?;
                    return self.tree(&tree, path, target, depth + 1);
                }
                _ => return Ok(()),
            }
        }
        let points_to = String::from_utf8_lossy(self.repo.find_blob(link)?.content()).into_owned();
        Err(Error::SymlinkEscape {
            file: path.to_owned(),
            target: points_to,
            message: "is a chain of too many symlinks",
        })
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::renderers::test_repo::{Entry, TreeRepo, files};

    fn written(repo: &TreeRepo, limits: &PackageLimits) -> Result<(Scratch, Vec<String>), Error> {
        let scratch = Scratch::write(&repo.repo, repo.commit, limits, None)?;
        let mut found = Vec::new();
        let root = scratch.repo();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                assert!(!kind.is_symlink(), "{:?} written as a symlink", entry.path());
                if kind.is_dir() {
                    stack.push(entry.path());
                } else {
                    found.push(entry.path().strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        found.sort();
        Ok((scratch, found))
    }

    #[test]
    fn writes_the_tree_with_symlinks_as_copies() {
        let mut entries = files(&[
            ("base/deploy.yaml", "kind: A\n"),
            ("overlays/dev/kustomization.yaml", "resources: [../../base]\n"),
        ]);
        entries.push(("overlays/dev/shared.yaml", Entry::Link("../../base/deploy.yaml")));
        entries.push(("overlays/base", Entry::Link("../base")));
        entries.push(("overlays/chain.yaml", Entry::Link("dev/shared.yaml")));
        entries.push(("dangling", Entry::Link("nothing/here")));
        let repo = TreeRepo::new(&entries);
        let (scratch, found) = written(&repo, &PackageLimits::default()).unwrap();
        assert_eq!(
            found,
            [
                "base/deploy.yaml",
                "overlays/base/deploy.yaml",
                "overlays/chain.yaml",
                "overlays/dev/kustomization.yaml",
                "overlays/dev/shared.yaml"
            ]
        );
        assert_eq!(std::fs::read(scratch.repo().join("overlays/chain.yaml")).unwrap(), b"kind: A\n");
        assert!(scratch.skipped.is_empty());
    }

    #[test]
    fn symlinks_leaving_the_repository_are_refused() {
        for (link, target, message) in [
            ("deploy/passwd", "/etc/passwd", "is an absolute path"),
            ("deploy/up", "../../outside", "leaves the repository"),
            ("deploy/loop", "..", "is a directory holding the link itself"),
            ("deploy/root", "../", "is a directory holding the link itself"),
        ] {
            let mut entries = files(&[("deploy/app.yaml", "kind: A\n")]);
            entries.push((link, Entry::Link(target)));
            let repo = TreeRepo::new(&entries);
            let err = written(&repo, &PackageLimits::default()).err().expect("refused");
            assert_eq!(
                err.to_string(),
                format!("{link} is a symlink to `{target}`, which {message}; replace it with the file itself")
            );
        }
    }

    #[test]
    fn large_files_are_left_out_and_totals_are_bounded() {
        let big = vec![0u8; 5000];
        let mut entries = files(&[("deploy/app.yaml", "kind: A\n")]);
        entries.push(("docs/diagram.png", Entry::File(&big)));
        let repo = TreeRepo::new(&entries);
        let limits = PackageLimits { max_file_bytes: 4096, ..PackageLimits::default() };
        let (scratch, found) = written(&repo, &limits).unwrap();
        assert_eq!(found, ["deploy/app.yaml"]);
        assert_eq!(scratch.skipped, ["docs/diagram.png"]);
        let repo = TreeRepo::new(&files(&[("a.yaml", "kind: A\n"), ("b.yaml", "kind: B\n")]));
        let err = written(&repo, &PackageLimits { max_files: 1, ..PackageLimits::default() }).err().expect("too many");
        assert_eq!(err.reason(), crate::api::Reason::TooManyFiles, "{err}");
        let err = written(&repo, &PackageLimits { max_bytes: 10, ..PackageLimits::default() }).err().expect("too big");
        assert_eq!(err.reason(), crate::api::Reason::ArtifactTooLarge, "{err}");
    }
}
