//! A throwaway repository with a work tree for the release tests.

use std::path::Path;

use git2::{IndexAddOption, Oid, Repository, RepositoryInitOptions, Signature};

/// A repository in a temporary directory, on branch `main`, with a test user configured.
pub(crate) struct TestRepo {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) repo: Repository,
}

impl TestRepo {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo =
            Repository::init_opts(dir.path(), RepositoryInitOptions::new().initial_head("main")).expect("git init");
        let mut config = repo.config().expect("repository config");
        config.set_str("user.name", "Test").expect("set user.name");
        config.set_str("user.email", "test@example.com").expect("set user.email");
        Self { dir, repo }
    }

    /// Writes a file in the work tree, creating directories.
    pub(crate) fn write(&self, path: &str, content: &str) {
        let file = self.dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }

    /// Stages one path.
    pub(crate) fn stage(&self, path: &str) {
        let mut index = self.repo.index().expect("index");
        index.add_path(Path::new(path)).expect("git add");
        index.write().expect("write index");
    }

    /// Appends the message to `history.txt`, stages everything but `staged.txt` and commits on
    /// HEAD; with `parents`, those are the parents (a merge when there are two).
    pub(crate) fn commit(&self, message: &str, parents: &[Oid]) -> Oid {
        self.commit_to(Some("HEAD"), message, parents)
    }

    /// Like [`TestRepo::commit`] but moves no ref (a commit on a side branch).
    pub(crate) fn commit_on(&self, message: &str, parents: &[Oid]) -> Oid {
        self.commit_to(None, message, parents)
    }

    fn commit_to(&self, update: Option<&str>, message: &str, parents: &[Oid]) -> Oid {
        let history = self.dir.path().join("history.txt");
        let mut text = std::fs::read_to_string(&history).unwrap_or_default();
        text.push_str(message);
        text.push('\n');
        std::fs::write(&history, text).expect("write history");
        let mut index = self.repo.index().expect("index");
        index.add_path(Path::new("history.txt")).expect("add history");
        index.add_all(["src", "CHANGELOG.md"], IndexAddOption::DEFAULT, None).expect("add other files");
        index.write().expect("write index");
        let tree = self.repo.find_tree(index.write_tree().expect("write tree")).expect("tree");
        let parents: Vec<Oid> = if parents.is_empty() {
            self.repo.head().ok().and_then(|h| h.target()).into_iter().collect()
        } else {
            parents.to_vec()
        };
        let parents: Vec<_> = parents.iter().map(|p| self.repo.find_commit(*p).expect("parent")).collect();
        let parents: Vec<_> = parents.iter().collect();
        let sig = Signature::now("Test", "test@example.com").expect("signature");
        self.repo.commit(update, &sig, &sig, message, &tree, &parents).expect("commit")
    }

    /// Tags `target`, annotated or lightweight.
    pub(crate) fn tag(&self, name: &str, target: Oid, annotated: bool) {
        let object = self.repo.find_object(target, None).expect("tag target");
        if annotated {
            let sig = Signature::now("Test", "test@example.com").expect("signature");
            self.repo.tag(name, &object, &sig, "release", false).expect("annotated tag");
        } else {
            self.repo.tag_lightweight(name, &object, false).expect("lightweight tag");
        }
    }
}
