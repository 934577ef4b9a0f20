//! `conveyor release` end to end: the real binary on real repositories made with the git CLI.
//! No cluster: `--apply` is covered elsewhere.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use conveyor::api::Release;
use support::cli::Run;

/// A repository in a temporary directory, isolated from the user's git configuration.
struct Repo {
    /// Holds the repository (`repo/`) and an empty home (`home/`).
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    home: PathBuf,
}

impl Repo {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, home) = (tmp.path().join("repo"), tmp.path().join("home"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let repo = Self { _tmp: tmp, dir, home };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Release Tester"]);
        repo.git(&["config", "user.email", "tester@example.com"]);
        repo.write("deploy/app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n");
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "chore: initial manifests"]);
        repo
    }

    /// Runs git in the repository; panics on failure; returns trimmed stdout.
    fn git(&self, args: &[&str]) -> String {
        let out = self.isolated(Command::new("git")).arg("-C").arg(&self.dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    /// A command with no global or system git configuration and no inherited Conveyor settings.
    fn isolated(&self, mut cmd: Command) -> Command {
        for (key, _) in std::env::vars() {
            if key.starts_with("CONVEYOR_") || key.starts_with("GIT_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1");
        cmd
    }

    fn write(&self, path: &str, content: &str) {
        let file = self.dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(path)).ok()
    }

    /// Commits a change to `src.txt` with `message` (subject, body and footers).
    fn commit(&self, message: &str) -> String {
        let mut text = self.read("src.txt").unwrap_or_default();
        text.push_str(message);
        text.push('\n');
        self.write("src.txt", &text);
        self.git(&["add", "src.txt"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Runs `conveyor release --repo <dir> <args>` with extra environment variables.
    fn release(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.isolated(Command::new(env!("CARGO_BIN_EXE_conveyor")));
        cmd.arg("release").arg("--repo").arg(&self.dir).args(args);
        for (key, value) in env {
            cmd.env(key, value);
        }
        Run::from(cmd.output().unwrap())
    }

    /// Everything a release could change: tags, HEAD, index and work tree state, files.
    fn snapshot(&self) -> String {
        let files: Vec<String> =
            ["CHANGELOG.md", "src.txt", "deploy/app.yaml"].iter().map(|f| format!("{f}: {:?}", self.read(f))).collect();
        [
            self.git(&["tag", "-l"]),
            self.git(&["rev-parse", "HEAD"]),
            self.git(&["status", "--porcelain", "--untracked-files=all"]),
            self.git(&["for-each-ref"]),
            files.join("\n"),
        ]
        .join("\n---\n")
    }

    fn canonical(&self) -> PathBuf {
        self.dir.canonicalize().unwrap()
    }
}

impl Run {
    fn release(&self) -> Release {
        serde_norway::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Positions of the headings, asserting each is present.
fn positions(text: &str, needles: &[&str]) -> Vec<usize> {
    needles.iter().map(|n| text.find(n).unwrap_or_else(|| panic!("{n:?} missing in:\n{text}"))).collect()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[test]
fn first_release_tags_writes_the_changelog_and_prints_the_release() {
    let repo = Repo::new();
    repo.commit("feat(api): add orders endpoint");
    repo.commit("fix: handle an empty cart");
    repo.commit("feat!: drop the legacy config\n\nBREAKING CHANGE: config v1 files are no longer read");
    repo.commit("Tidy the README");
    let before = repo.git(&["rev-parse", "HEAD"]);

    let run = repo.release(&["--version", "1.0.0", "--pipeline", "shop"], &[]).ok();

    // An annotated tag on a new commit holding only the changelog.
    assert_eq!(repo.git(&["cat-file", "-t", "v1.0.0"]), "tag");
    let head = repo.git(&["rev-parse", "HEAD"]);
    assert_eq!(repo.git(&["rev-parse", "v1.0.0^{commit}"]), head);
    assert_eq!(repo.git(&["rev-parse", "HEAD^"]), before);
    assert_eq!(repo.git(&["log", "-1", "--format=%s"]), "chore(release): 1.0.0");
    assert_eq!(repo.git(&["log", "-1", "--format=%an <%ae>"]), "Release Tester <tester@example.com>");
    assert_eq!(repo.git(&["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]), "CHANGELOG.md");
    assert_eq!(repo.git(&["status", "--porcelain"]), "", "the work tree is clean");

    let changelog = repo.read("CHANGELOG.md").unwrap();
    assert!(changelog.starts_with("# Changelog\n\n## 1.0.0\n"), "{changelog}");
    let at = positions(&changelog, &["### Breaking changes", "### Features", "### Bug fixes", "### Other changes"]);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "sections out of order:\n{changelog}");
    for line in [
        "- config v1 files are no longer read (",
        "- api: add orders endpoint (",
        "- drop the legacy config (",
        "- handle an empty cart (",
        "- chore: initial manifests (",
        "- Tidy the README (",
    ] {
        assert!(changelog.contains(line), "{line:?} missing in:\n{changelog}");
    }
    let tag_message = repo.git(&["tag", "-l", "--format=%(contents)", "v1.0.0"]);
    assert!(changelog.contains(tag_message.trim_end()), "tag message:\n{tag_message}");

    let short = &head[..7];
    assert!(run.stderr.contains(&format!("tagged v1.0.0 at {short}")), "{}", run.stderr);
    assert!(run.stderr.contains("updated CHANGELOG.md"), "{}", run.stderr);

    let release = run.release();
    assert_eq!(release.metadata.name.as_deref(), Some("shop-1.0.0"));
    assert_eq!(release.metadata.namespace, None);
    assert_eq!((release.spec.pipeline.as_str(), release.spec.version.as_str()), ("shop", "1.0.0"));
    assert_eq!(release.spec.notes, None, "the controller generates the notes");
    let source = release.spec.source.unwrap();
    assert_eq!(source.path.as_deref(), Some("deploy"));
    let git = source.git.unwrap();
    assert_eq!(git.url, file_url(&repo.canonical()));
    assert_eq!(git.reference.tag.as_deref(), Some("v1.0.0"));
    assert_eq!((git.reference.commit, git.reference.branch, git.secret_ref), (None, None, None));
    assert!(run.stdout.starts_with("apiVersion: conveyor.dev/v1alpha1\nkind: Release\n"), "{}", run.stdout);
}

#[test]
fn second_release_lists_only_commits_since_the_previous_tag() {
    let repo = Repo::new();
    repo.commit("feat: first feature");
    repo.release(&["--version", "1.0.0", "--pipeline", "shop"], &[]).ok();
    repo.commit("fix(ui): second fix");
    repo.commit("perf: faster checkout");
    repo.git(&["remote", "add", "origin", "https://git.example.com/shop/checkout.git"]);

    let run = repo
        .release(
            &[
                "--version",
                "1.1.0+build.7",
                "--pipeline",
                "shop",
                "--namespace",
                "shop-prod",
                "--secret",
                "git-creds",
                "--path",
                "k8s/overlays/prod",
            ],
            &[],
        )
        .ok();

    let notes = repo.git(&["tag", "-l", "--format=%(contents)", "v1.1.0+build.7"]);
    assert!(notes.starts_with("## 1.1.0+build.7"), "{notes}");
    assert!(notes.contains("- ui: second fix (") && notes.contains("- faster checkout ("), "{notes}");
    for old in ["first feature", "initial manifests", "chore(release)"] {
        assert!(!notes.contains(old), "{old:?} is from before v1.0.0:\n{notes}");
    }
    let changelog = repo.read("CHANGELOG.md").unwrap();
    let at = positions(&changelog, &["# Changelog", "## 1.1.0+build.7", "## 1.0.0", "first feature"]);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{changelog}");
    assert_eq!(changelog.matches("# Changelog").count(), 1, "{changelog}");

    let release = run.release();
    assert_eq!(release.metadata.name.as_deref(), Some("shop-1.1.0-build.7"));
    assert_eq!(release.metadata.namespace.as_deref(), Some("shop-prod"));
    let source = release.spec.source.unwrap();
    assert_eq!(source.path.as_deref(), Some("k8s/overlays/prod"));
    let git = source.git.unwrap();
    assert_eq!(git.url, "https://git.example.com/shop/checkout.git", "origin is the default URL");
    assert_eq!(git.reference.tag.as_deref(), Some("v1.1.0+build.7"));
    assert_eq!(git.secret_ref.map(|s| s.name).as_deref(), Some("git-creds"));
}

#[test]
fn empty_tag_prefix_tags_the_bare_version() {
    let repo = Repo::new();
    repo.commit("feat: old");
    // With no prefix, `v9.0.0` is not a release, `1.0.0` is.
    repo.git(&["tag", "v9.0.0"]);
    repo.git(&["tag", "-a", "1.0.0", "-m", "1.0.0"]);
    repo.commit("feat: new");

    let env = [("CONVEYOR_TAG_PREFIX", "")];
    let run =
        repo.release(&["--version", "1.1.0", "--pipeline", "shop", "--url", "https://git.example.com/x.git"], &env);
    let run = run.ok();
    assert_eq!(repo.git(&["cat-file", "-t", "1.1.0"]), "tag");
    assert!(repo.git(&["tag", "-l", "v1.1.0"]).is_empty());
    let notes = repo.git(&["tag", "-l", "--format=%(contents)", "1.1.0"]);
    assert!(notes.contains("- new (") && !notes.contains("- old ("), "{notes}");
    assert!(run.stderr.contains("tagged 1.1.0 at"), "{}", run.stderr);
    let release = run.release();
    assert_eq!(release.spec.source.unwrap().git.unwrap().reference.tag.as_deref(), Some("1.1.0"));
}

#[test]
fn refusals_exit_non_zero_name_the_problem_and_change_nothing() {
    let repo = Repo::new();
    repo.commit("feat: one");
    repo.release(&["--version", "1.0.0", "--pipeline", "shop"], &[]).ok();
    repo.commit("fix: two");

    // (version, what the message must say)
    let cases = [
        ("v1.2", "`v1.2` is not a SemVer 2.0 version"),
        ("1.2", "`1.2` is not a SemVer 2.0 version"),
        ("1.0.0", "tag v1.0.0 already exists"),
        ("1.0.0+build.2", "version 1.0.0+build.2 is not greater than the latest release 1.0.0 (tag v1.0.0)"),
        ("0.9.0", "version 0.9.0 is not greater than the latest release 1.0.0 (tag v1.0.0)"),
        ("1.0.0-rc.1", "is not greater than the latest release 1.0.0"),
    ];
    for (version, message) in cases {
        let before = repo.snapshot();
        let run = repo.release(&["--version", version, "--pipeline", "shop"], &[]);
        assert!(!run.success, "{version} was accepted:\n{}", run.stdout);
        assert!(run.stderr.contains(message), "{version}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{version}: printed {}", run.stdout);
        assert_eq!(repo.snapshot(), before, "{version} changed the repository");
    }

    // Uncommitted changes to the changelog: modified, then staged.
    repo.write("CHANGELOG.md", "# Changelog\n\nhand edit\n");
    for stage in [false, true] {
        if stage {
            repo.git(&["add", "CHANGELOG.md"]);
        }
        let before = repo.snapshot();
        let run = repo.release(&["--version", "1.1.0", "--pipeline", "shop"], &[]);
        assert!(!run.success);
        assert!(run.stderr.contains("CHANGELOG.md has uncommitted changes"), "{}", run.stderr);
        assert_eq!(repo.snapshot(), before);
    }
}

#[test]
fn a_repository_without_commits_is_refused() {
    let repo = Repo::new();
    repo.git(&["checkout", "-q", "--orphan", "empty"]);
    repo.git(&["rm", "-rq", "--cached", "."]);
    let run = repo.release(&["--version", "1.0.0", "--pipeline", "shop"], &[]);
    assert!(!run.success);
    assert!(run.stderr.contains("no commits yet"), "{}", run.stderr);
}

#[test]
fn dry_run_changes_nothing_and_prints_the_plan_and_the_manifest() {
    for existing_changelog in [false, true] {
        let repo = Repo::new();
        if existing_changelog {
            repo.commit("feat: one");
            repo.release(&["--version", "1.0.0", "--pipeline", "shop"], &[]).ok();
        }
        repo.commit("feat: dry feature");
        let before = repo.snapshot();

        let run = repo.release(&["--version", "1.1.0", "--pipeline", "shop", "--dry-run"], &[]).ok();

        assert_eq!(repo.snapshot(), before, "--dry-run changed the repository");
        for said in ["v1.1.0", "CHANGELOG.md", "## 1.1.0", "- dry feature ("] {
            assert!(run.stderr.contains(said), "{said:?} missing in:\n{}", run.stderr);
        }
        let release = run.release();
        assert_eq!(release.spec.source.unwrap().git.unwrap().reference.tag.as_deref(), Some("v1.1.0"));
    }
}

#[test]
fn json_output_parses_as_a_release() {
    let repo = Repo::new();
    let run = repo.release(&["--version", "0.1.0", "--pipeline", "shop", "-o", "json", "--name", "shop-first"], &[]);
    let run = run.ok();
    let release: Release = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(release.metadata.name.as_deref(), Some("shop-first"));
    assert_eq!(release.spec.version, "0.1.0");
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["apiVersion"], "conveyor.dev/v1alpha1");
    assert_eq!(value["kind"], "Release");
    assert!(value["spec"].get("notes").is_none() && value.get("status").is_none(), "{value}");
}

#[test]
fn other_staged_changes_stay_out_of_the_release_commit() {
    let repo = Repo::new();
    repo.commit("feat: one");
    repo.write("deploy/new.yaml", "kind: Namespace\n");
    repo.git(&["add", "deploy/new.yaml"]);
    repo.write("src.txt", "unstaged edit\n");

    let env = [("CONVEYOR_CHANGELOG_FILE", "docs/CHANGES.md")];
    repo.release(&["--version", "1.0.0", "--pipeline", "shop"], &env).ok();

    assert_eq!(repo.git(&["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]), "docs/CHANGES.md");
    assert!(repo.read("docs/CHANGES.md").unwrap().contains("## 1.0.0"));
    assert!(repo.read("CHANGELOG.md").is_none());
    let status = repo.git(&["status", "--porcelain"]);
    assert_eq!(status, "A  deploy/new.yaml\n M src.txt", "staged and unstaged work is left as it was");
}

#[test]
fn invalid_flags_are_refused_before_anything_changes() {
    let repo = Repo::new();
    repo.commit("feat: one");
    // (extra args, what the message must say)
    let cases: &[(&[&str], &str)] = &[
        (&["--name", "Shop_1"], "`Shop_1` is not a valid Release name"),
        (&["--namespace", "Prod"], "`Prod` is not a valid namespace"),
        (&["--url", "ftp://example.com/x"], "spec.source.git.url"),
        (&["--path", "../outside"], "spec.source.path"),
        (&["--secret", "Bad Name"], "spec.source.git.secretRef.name"),
    ];
    for (extra, message) in cases {
        let before = repo.snapshot();
        let mut args = vec!["--version", "1.0.0", "--pipeline", "shop"];
        args.extend_from_slice(extra);
        let run = repo.release(&args, &[]);
        assert!(!run.success, "{extra:?} was accepted");
        assert!(run.stderr.contains(message), "{extra:?}: {}", run.stderr);
        assert_eq!(repo.snapshot(), before, "{extra:?} changed the repository");
    }
}

#[test]
fn without_a_configured_user_conveyor_signs() {
    let repo = Repo::new();
    repo.commit("feat: one");
    repo.git(&["config", "--unset", "user.name"]);
    repo.git(&["config", "--unset", "user.email"]);
    repo.release(&["--version", "1.0.0", "--pipeline", "shop"], &[]).ok();
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>"]),
        "Conveyor <conveyor@localhost>|Conveyor <conveyor@localhost>"
    );
    assert_eq!(
        repo.git(&["tag", "-l", "--format=%(taggername) %(taggeremail)", "v1.0.0"]),
        "Conveyor <conveyor@localhost>"
    );
}
