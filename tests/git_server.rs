//! The git fixtures themselves: repositories made with the git CLI, and the smart-HTTP server
//! with basic auth, exercised by the git CLI and by libgit2.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use support::git::{GitRepo, git_command, sample_manifests};
use support::git_server::GitHttpServer;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";

/// Runs the git CLI in `dir` with no credential helper (and, from `git_command`, no prompts).
fn git_cli(dir: &Path, args: &[&str]) -> Output {
    git_command().current_dir(dir).args(["-c", "credential.helper="]).args(args).output().expect("run git")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic, incompressible bytes: a first commit much bigger than any later one.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `<root>/app` holding the sample manifests and a 64 KiB blob, committed; served with auth.
fn served_repo() -> (tempfile::TempDir, GitRepo, String, GitHttpServer) {
    let root = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_at(&root.path().join("app"));
    repo.write_all("deploy", sample_manifests("web")).write("assets/blob.bin", noise(64 * 1024));
    let commit = repo.commit("first");
    let server = GitHttpServer::start(root.path(), USER, PASSWORD);
    (root, repo, commit, server)
}

#[test]
fn repo_helpers_make_real_commits_tags_branches_and_symlinks() {
    let repo = GitRepo::init();
    assert!(repo.file_url().starts_with("file:///"), "{}", repo.file_url());
    assert_eq!(repo.git(&["symbolic-ref", "--short", "HEAD"]), "main");

    repo.write_all("", sample_manifests("web"));
    let first = repo.commit("first");
    assert_eq!(first.len(), 40, "{first}");
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), first);
    assert_eq!(repo.git(&["ls-tree", "--name-only", "HEAD"]), "web-config.yaml\nweb.yaml");
    let app = repo.git(&["show", "HEAD:web.yaml"]);
    assert_eq!(app.matches("\n---\n").count(), 1, "Deployment and Service in one file:\n{app}");
    assert_eq!(app.matches("protocol: TCP").count(), 2, "{app}");

    repo.tag("v1").branch("release");
    assert_eq!(repo.git(&["cat-file", "-t", "v1"]), "tag", "annotated");
    assert_eq!(repo.git(&["rev-parse", "v1^{commit}"]), first);
    assert_eq!(repo.rev_parse("v1"), first);
    assert_eq!(repo.git(&["rev-parse", "release"]), first);
    assert_eq!(repo.git(&["symbolic-ref", "--short", "HEAD"]), "main", "branch does not switch");

    repo.symlink("current.yaml", "web.yaml").write("nested/dir/x.yaml", "a: 1\n");
    let second = repo.commit("second");
    assert_ne!(second, first);
    let entry = repo.git(&["ls-tree", "HEAD", "current.yaml"]);
    assert!(entry.starts_with("120000 blob "), "{entry}");
    assert_eq!(repo.git(&["cat-file", "-p", "HEAD:current.yaml"]), "web.yaml", "target stored as written");
    assert_eq!(repo.git(&["rev-parse", "release"]), first, "release stays");
    repo.branch("release");
    assert_eq!(repo.git(&["rev-parse", "release"]), second, "branch moves to HEAD");

    let empty = repo.commit("nothing changed");
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]), second, "empty commits allowed");
    repo.remove("nested").remove("current.yaml");
    repo.commit("removed");
    assert_eq!(repo.git(&["ls-tree", "--name-only", "HEAD"]), "web-config.yaml\nweb.yaml");

    repo.checkout("v1");
    assert_eq!(repo.head(), first);
    assert!(!repo.path().join("current.yaml").exists());
    repo.checkout("main");
    assert_eq!(repo.rev_parse("HEAD~1"), empty);

    let dir = tempfile::tempdir().unwrap();
    let clone = repo.clone_to(&dir.path().join("copy"));
    assert_eq!(clone.head(), repo.head());
    for entry in walk(&clone.path().join(".git/objects")) {
        assert_eq!(entry.metadata().unwrap().nlink(), 1, "{} is hard-linked", entry.display());
    }
    clone.write("only-in-clone", "x");
    let clone_commit = clone.commit("in the clone");
    assert_ne!(clone.head(), repo.head());
    let missing = git_cli(repo.path(), &["cat-file", "-e", &clone_commit]);
    assert!(!missing.status.success(), "the clone's commit is not in the original");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[test]
fn cli_clones_with_the_right_credentials_over_both_protocols() {
    let (_root, repo, commit, server) = served_repo();
    let dest = tempfile::tempdir().unwrap();
    for version in ["2", "0"] {
        let target = dest.path().join(format!("v{version}"));
        let out = git_cli(
            dest.path(),
            &[
                "-c",
                &format!("protocol.version={version}"),
                "clone",
                "-q",
                &server.url_with_credentials("app"),
                target.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "protocol v{version}: {}", stderr(&out));
        let clone = support::git::run_git(&target, &["rev-parse", "HEAD"]);
        assert_eq!(clone, commit, "protocol v{version}");
        assert_eq!(
            std::fs::read(target.join("assets/blob.bin")).unwrap(),
            std::fs::read(repo.path().join("assets/blob.bin")).unwrap()
        );
    }
    let served = server.served();
    assert_eq!(server.requests(), served.len());
    assert!(served.iter().any(|s| s.git_protocol.as_deref() == Some("version=2") && s.status == 200), "{served:#?}");
    assert!(
        served.iter().any(|s| s.method == "POST" && s.uri == "/app/git-upload-pack" && s.status == 200),
        "{served:#?}"
    );
    assert!(server.upload_pack_bytes() > 64 * 1024, "{}", server.upload_pack_bytes());
}

#[test]
fn cli_with_a_wrong_password_or_none_is_refused() {
    let (_root, _repo, _commit, server) = served_repo();
    let dest = tempfile::tempdir().unwrap();

    let wrong = git_cli(dest.path(), &["clone", "-q", &server.url_with(USER, "wrong", "app"), "wrong"]);
    assert!(!wrong.status.success());
    assert!(stderr(&wrong).contains("Authentication failed"), "{}", stderr(&wrong));
    assert!(!dest.path().join("wrong").exists());

    let none = git_cli(dest.path(), &["clone", "-q", &server.url("app"), "none"]);
    assert!(!none.status.success());
    assert!(stderr(&none).contains("could not read Username"), "{}", stderr(&none));

    let served = server.served();
    assert!(!served.is_empty());
    assert!(served.iter().all(|s| s.status == 401), "{served:#?}");
    assert_eq!(server.upload_pack_bytes(), 0);
}

#[test]
fn a_second_fetch_downloads_only_what_is_new() {
    let (_root, repo, _commit, server) = served_repo();
    let dest = tempfile::tempdir().unwrap();
    let out = git_cli(dest.path(), &["clone", "-q", &server.url_with_credentials("app"), "clone"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (clone_bytes, clone_requests) = (server.upload_pack_bytes(), server.requests());

    repo.write("deploy/web-config.yaml", sample_manifests("web")[1].1.replace("\"1\"", "\"2\""));
    let second = repo.commit("second");
    let out = git_cli(&dest.path().join("clone"), &["fetch", "-q", "origin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(support::git::run_git(&dest.path().join("clone"), &["rev-parse", "origin/main"]), second);

    assert!(server.requests() > clone_requests, "the fetch reached the server");
    let fetch_bytes = server.upload_pack_bytes() - clone_bytes;
    assert!(fetch_bytes > 0 && fetch_bytes * 10 < clone_bytes, "fetch {fetch_bytes} bytes, clone {clone_bytes}");
}

#[test]
fn cli_gzipped_requests_are_understood() {
    // Enough refs that protocol v0's "want" list passes git's 1 KiB gzip threshold.
    let (_root, repo, _commit, server) = served_repo();
    for i in 0..60 {
        repo.write("n", i.to_string());
        repo.commit(&format!("c{i}"));
        repo.branch(&format!("feature/branch-with-a-long-name-{i:03}"));
    }
    let dest = tempfile::tempdir().unwrap();
    let out = git_cli(
        dest.path(),
        &["-c", "protocol.version=0", "clone", "-q", "--mirror", &server.url_with_credentials("app"), "mirror"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let served = server.served();
    assert!(served.iter().any(|s| s.content_encoding.as_deref() == Some("gzip") && s.status == 200), "{served:#?}");
    let branches = support::git::run_git(&dest.path().join("mirror"), &["branch", "--list", "feature/*"]);
    assert_eq!(branches.lines().count(), 60);
}

/// libgit2 fetch options answering the server's challenge with `user:password`, once only
/// (libgit2 asks again after each refusal).
fn libgit2_options(user: &'static str, password: &'static str) -> git2::FetchOptions<'static> {
    let mut asked = 0;
    let mut callbacks = git2::RemoteCallbacks::new();
    callbacks.credentials(move |_url, _user_from_url, allowed| {
        asked += 1;
        assert!(allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT), "{allowed:?}");
        if asked > 1 {
            return Err(git2::Error::from_str("credentials refused"));
        }
        git2::Cred::userpass_plaintext(user, password)
    });
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(callbacks);
    options
}

#[test]
fn libgit2_clones_and_fetches_with_basic_auth() {
    let (_root, repo, commit, server) = served_repo();
    let dest = tempfile::tempdir().unwrap();

    let wrong = git2::build::RepoBuilder::new()
        .fetch_options(libgit2_options(USER, "wrong"))
        .clone(&server.url("app"), &dest.path().join("wrong"));
    let err = wrong.err().expect("wrong password refused");
    assert!(err.message().contains("credentials refused"), "{err}");
    assert_eq!(server.upload_pack_bytes(), 0);

    let clone = git2::build::RepoBuilder::new()
        .fetch_options(libgit2_options(USER, PASSWORD))
        .clone(&server.url("app"), &dest.path().join("clone"))
        .expect("libgit2 clone");
    assert_eq!(clone.head().unwrap().target().unwrap().to_string(), commit);
    let served = server.served();
    assert!(served.iter().any(|s| s.uri == "/app/info/refs?service=git-upload-pack" && s.status == 401), "{served:#?}");
    assert!(served.iter().any(|s| s.uri == "/app/git-upload-pack" && s.status == 200), "{served:#?}");
    let clone_bytes = server.upload_pack_bytes();
    assert!(clone_bytes > 64 * 1024, "{clone_bytes}");

    repo.write("deploy/extra.yaml", "a: 1\n");
    let second = repo.commit("second");
    let mut remote = clone.find_remote("origin").unwrap();
    remote.fetch(&["main"], Some(&mut libgit2_options(USER, PASSWORD)), None).expect("libgit2 fetch");
    assert_eq!(clone.refname_to_id("refs/remotes/origin/main").unwrap().to_string(), second);
    let fetch_bytes = server.upload_pack_bytes() - clone_bytes;
    assert!(fetch_bytes > 0 && fetch_bytes * 10 < clone_bytes, "fetch {fetch_bytes} bytes, clone {clone_bytes}");
}
