//! Repositories built straight into the object database, for the renderers' unit tests:
//! any file, symlink and directory layout, one commit.

use std::collections::BTreeMap;

use git2::{Oid, Repository, Signature};

/// What one path holds.
pub(crate) enum Entry<'a> {
    /// A regular file.
    File(&'a [u8]),
    /// A symlink to the given target.
    Link(&'a str),
}

/// A bare repository in a temporary directory with one commit holding `entries`.
pub(crate) struct TreeRepo {
    _dir: tempfile::TempDir,
    pub(crate) repo: Repository,
    pub(crate) commit: Oid,
}

impl TreeRepo {
    pub(crate) fn new(entries: &[(&str, Entry<'_>)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = Repository::init_bare(dir.path()).expect("git init");
        let commit = {
            let tree = build(&repo, entries.iter().map(|(p, e)| (*p, e)).collect());
            let tree = repo.find_tree(tree).expect("tree");
            let sig = Signature::now("Test", "test@example.com").expect("signature");
            repo.commit(Some("HEAD"), &sig, &sig, "feat: test tree", &tree, &[]).expect("commit")
        };
        Self { _dir: dir, repo, commit }
    }
}

/// Files with text content, for brevity.
pub(crate) fn files<'a>(list: &[(&'a str, &'a str)]) -> Vec<(&'a str, Entry<'a>)> {
    list.iter().map(|(p, c)| (*p, Entry::File(c.as_bytes()))).collect()
}

fn build(repo: &Repository, entries: Vec<(&str, &Entry<'_>)>) -> Oid {
    let mut here: BTreeMap<&str, Vec<(&str, &Entry<'_>)>> = BTreeMap::new();
    let mut builder = repo.treebuilder(None).expect("treebuilder");
    for (path, entry) in entries {
        match path.split_once('/') {
            Some((dir, rest)) => here.entry(dir).or_default().push((rest, entry)),
            None => {
                let (content, mode) = match entry {
                    Entry::File(c) => (*c, 0o100644),
                    Entry::Link(t) => (t.as_bytes(), 0o120000),
                };
                let blob = repo.blob(content).expect("blob");
                builder.insert(path, blob, mode).expect("insert");
            }
        }
    }
    for (dir, inner) in here {
        let sub = build(repo, inner);
        builder.insert(dir, sub, 0o040000).expect("insert tree");
    }
    builder.write().expect("write tree")
}
