//! Real git repositories made by tests, through the `git` CLI, isolated from the user's and the
//! system's git configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// Environment variables that would make git act on another repository, use another identity, or
/// ask someone for a password.
const LEAKY_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_PROTOCOL",
];

/// A `git` command isolated from global and system config, never prompting, with C-locale
/// messages (so tests can match them), and never proxying loopback.
pub fn git_command() -> Command {
    let mut cmd = Command::new("git");
    for var in LEAKY_ENV {
        cmd.env_remove(var);
    }
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("LANGUAGE", "C")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    cmd
}

/// Runs `git args` in `dir` and returns its output, whether it succeeded or not.
pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    git_command().current_dir(dir).args(args).output().unwrap_or_else(|e| panic!("run git {args:?}: {e}"))
}

/// Runs `git args` in `dir`; panics with git's stderr when it fails; returns trimmed stdout.
pub fn run_git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {} failed ({}):\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git prints UTF-8").trim().to_owned()
}

/// A git repository with a work tree, on `main`, with a test identity and no signing.
#[derive(Debug)]
pub struct GitRepo {
    path: PathBuf,
    /// Set when the repository lives in its own temporary directory (removed on drop).
    _temp: Option<TempDir>,
}

impl GitRepo {
    /// A new, empty repository in its own temporary directory.
    pub fn init() -> Self {
        let dir = tempfile::Builder::new().prefix("conveyor-git-").tempdir().expect("create temp dir");
        let mut repo = Self::init_at(dir.path());
        repo._temp = Some(dir);
        repo
    }

    /// A new, empty repository at `path` (created if missing; not removed on drop): for example
    /// `<root>/<name>` to serve it with [`super::git_server::GitHttpServer`].
    pub fn init_at(path: &Path) -> Self {
        std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let path = path.canonicalize().expect("canonicalize repository path");
        run_git(&path, &["init", "-q", "-b", "main"]);
        let repo = Self { path, _temp: None };
        repo.configure();
        repo
    }

    fn configure(&self) {
        for (key, value) in [
            ("user.name", "Conveyor Test"),
            ("user.email", "test@conveyor.invalid"),
            ("commit.gpgsign", "false"),
            ("tag.gpgsign", "false"),
            ("core.autocrlf", "false"),
            ("core.symlinks", "true"),
            ("gc.auto", "0"),
            ("maintenance.auto", "false"),
        ] {
            self.git(&["config", key, value]);
        }
    }

    /// The work tree (the `.git` directory is inside it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `file:///abs/path`.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn file(&self, rel: &str) -> PathBuf {
        assert!(!Path::new(rel).is_absolute() && !rel.split('/').any(|p| p == ".."), "{rel:?} leaves the repository");
        self.path.join(rel)
    }

    /// Removes a symlink at `path` so that writing there does not write through it.
    fn unlink(path: &Path) {
        if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        }
    }

    /// Writes a file in the work tree, creating its parent directories.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let path = self.file(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        Self::unlink(&path);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    /// Writes each `(rel, content)` under `dir` (`""`: the root), e.g. [`sample_manifests`].
    pub fn write_all<P: AsRef<str>, C: AsRef<[u8]>>(
        &self,
        dir: &str,
        files: impl IntoIterator<Item = (P, C)>,
    ) -> &Self {
        for (rel, content) in files {
            let rel = rel.as_ref();
            let rel = if dir.is_empty() { rel.to_owned() } else { format!("{}/{rel}", dir.trim_end_matches('/')) };
            self.write(&rel, content);
        }
        self
    }

    /// Removes a file, symlink or directory from the work tree.
    pub fn remove(&self, rel: &str) -> &Self {
        let path = self.file(rel);
        let meta = path.symlink_metadata().unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        let removed = if meta.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        self
    }

    /// A symlink `rel` → `target` (stored by git as mode 120000, target kept as written).
    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        let path = self.file(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        if path.symlink_metadata().is_ok() {
            self.remove(rel);
        }
        std::os::unix::fs::symlink(target, &path).unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
        self
    }

    /// Stages everything (`git add -A`) and commits (empty commits allowed); the full commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "--no-verify", "-m", message]);
        self.head()
    }

    /// The full commit id of HEAD.
    pub fn head(&self) -> String {
        self.rev_parse("HEAD")
    }

    /// The full commit id `rev` names (tags are peeled to their commit).
    pub fn rev_parse(&self, rev: &str) -> String {
        self.git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
    }

    /// An annotated tag `name` at HEAD (fails if it exists).
    pub fn tag(&self, name: &str) -> &Self {
        self.git(&["tag", "-a", "-m", &format!("tag {name}"), name]);
        self
    }

    /// Creates branch `name` at HEAD, or moves it there, without switching to it.
    pub fn branch(&self, name: &str) -> &Self {
        self.git(&["check-ref-format", "--branch", name]);
        self.git(&["update-ref", &format!("refs/heads/{name}"), "HEAD"]);
        self
    }

    /// Switches the work tree to a branch, tag or commit.
    pub fn checkout(&self, name: &str) -> &Self {
        self.git(&["checkout", "-q", name]);
        self
    }

    /// Runs any git command here; panics with git's stderr on failure; returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        run_git(&self.path, args)
    }

    /// A separate copy (`git clone --no-hardlinks`) at `dir` (not removed on drop), with the
    /// same test identity; its `origin` is this repository.
    pub fn clone_to(&self, dir: &Path) -> GitRepo {
        let dest = dir.to_str().expect("UTF-8 path");
        let src = self.path.to_str().expect("UTF-8 path");
        self.git(&["clone", "-q", "--no-hardlinks", src, dest]);
        let repo = GitRepo { path: dir.canonicalize().expect("canonicalize clone path"), _temp: None };
        repo.configure();
        repo
    }
}

/// A Deployment and Service (one multi-document file, `<name>.yaml`) and a ConfigMap
/// (`<name>-config.yaml`) for `name`, as `(path relative to the source path, content)`.
/// Pods are labelled `app: <name>`; image `registry.invalid/<name>:1`; ports say `protocol: TCP`
/// (the test API server needs it).
pub fn sample_manifests(name: &str) -> Vec<(String, String)> {
    let app = format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: {name}
          image: registry.invalid/{name}:1
          ports:
            - containerPort: 8080
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {name}-config
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  selector:
    app: {name}
  ports:
    - name: http
      port: 80
      targetPort: 8080
      protocol: TCP
"
    );
    let config = format!(
        "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
  labels:
    app: {name}
data:
  GREETING: hello
  VERSION: \"1\"
"
    );
    vec![(format!("{name}.yaml"), app), (format!("{name}-config.yaml"), config)]
}
