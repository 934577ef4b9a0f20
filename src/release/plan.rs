//! `conveyor release` in two steps: [`plan`] reads the repository and decides everything,
//! [`apply`] makes the changelog commit and the annotated tag.
//!
//! The release commit is built from HEAD's tree plus the new changelog blob in an in-memory
//! index, so changes the user has staged for other files never ride along.

use std::path::{Component, Path, PathBuf};

use git2::{ErrorCode, Index, IndexEntry, IndexTime, ObjectType, Oid, Repository, Signature, Status};

use super::history::{history_between, latest_release};
use super::{Error, Result, prepend_notes};
use crate::api::types::Version;
use crate::core::notes::{MAX_NOTES_BYTES, release_notes_with_omitted};

/// Most commits read for the notes: far more than fit in [`MAX_NOTES_BYTES`].
const MAX_NOTES_COMMITS: usize = 1000;

/// Signature used when the repository configuration has no `user.name`/`user.email`.
const FALLBACK_NAME: &str = "Conveyor";
const FALLBACK_EMAIL: &str = "conveyor@localhost";

/// Everything a release will do, decided before anything is changed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The new version.
    pub version: Version,
    /// The new tag, `<tag_prefix><version>`.
    pub tag: String,
    /// The latest release tag before this one, whose commits the notes start after.
    pub previous_tag: Option<String>,
    /// The commit the release is made on (HEAD); the release commit's parent.
    pub head: Oid,
    /// The branch HEAD is on (`main`), or `None` when HEAD is detached.
    pub branch: Option<String>,
    /// Release notes: the changelog entry and the tag message.
    pub notes: String,
    /// The changelog file, relative to the repository root.
    pub changelog_path: PathBuf,
    /// Whether the changelog file exists in HEAD.
    pub changelog_exists: bool,
    /// The changelog's new content.
    pub changelog: String,
}

impl Plan {
    /// The release commit's message.
    pub fn commit_message(&self) -> String {
        format!("chore(release): {}\n", self.version)
    }
}

/// What [`apply`] created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The release commit (changelog update), now HEAD.
    pub commit: Oid,
    /// The annotated tag object pointing at it.
    pub tag: Oid,
}

/// Decides a release of `version` at HEAD without changing anything: checks the version is
/// SemVer and greater than the latest `tag_prefix` release, that its tag is free and that the
/// changelog (`changelog_file`, relative to the repository root) has no uncommitted changes;
/// computes the notes since the latest release and the new changelog.
pub fn plan(repo: &Repository, version: &str, tag_prefix: &str, changelog_file: &Path) -> Result<Plan> {
    let parsed =
        Version::parse(version).map_err(|reason| Error::InvalidVersion { version: version.to_owned(), reason })?;
    let tag = format!("{tag_prefix}{version}");
    if !git2::Reference::is_valid_name(&format!("refs/tags/{tag}")) {
        return Err(Error::InvalidTagName { tag });
    }
    if repo.workdir().is_none() {
        return Err(Error::NoWorkTree { path: repo.path().to_owned() });
    }
    let changelog_path = repo_relative(changelog_file)?;
    let head = head_commit(repo)?;
    if tag_exists(repo, &tag)? {
        return Err(Error::TagExists { tag });
    }
    let latest = latest_release(repo, tag_prefix)?;
    if let Some((latest, latest_tag, _)) = &latest
        && parsed <= *latest
    {
        return Err(Error::VersionNotGreater {
            version: version.to_owned(),
            latest: latest.to_string(),
            tag: latest_tag.clone(),
        });
    }
    // Read HEAD's changelog first: a directory there is a clearer error than its status.
    let existing = changelog_in(repo, &head, &changelog_path)?;
    check_clean(repo, &changelog_path)?;

    let history = history_between(repo, latest.as_ref().map(|(_, _, commit)| *commit), head.id(), MAX_NOTES_COMMITS)?;
    let notes = release_notes_with_omitted(version, &history.commits, history.omitted, MAX_NOTES_BYTES);
    let changelog = prepend_notes(existing.as_ref().map(|(text, _)| text.as_str()), &notes);
    let head_ref = repo.head()?;
    let branch = head_ref.is_branch().then(|| head_ref.shorthand().map(str::to_owned)).transpose()?;
    Ok(Plan {
        version: parsed,
        tag,
        previous_tag: latest.map(|(_, tag, _)| tag),
        head: head.id(),
        branch,
        notes,
        changelog_path,
        changelog_exists: existing.is_some(),
        changelog,
    })
}

/// Carries out `plan`: commits the new changelog on the current branch (only that file), tags
/// the commit with the notes as the annotated tag's message, then writes the changelog into
/// the work tree and the index so that `git status` stays clean for it.
///
/// Refuses if HEAD moved, the tag appeared or the changelog was edited since the plan.
pub fn apply(repo: &Repository, plan: &Plan) -> Result<Applied> {
    let workdir = repo.workdir().ok_or_else(|| Error::NoWorkTree { path: repo.path().to_owned() })?.to_owned();
    let head = head_commit(repo)?;
    if head.id() != plan.head {
        return Err(Error::HeadMoved { planned: plan.head.to_string(), current: head.id().to_string() });
    }
    if tag_exists(repo, &plan.tag)? {
        return Err(Error::TagExists { tag: plan.tag.clone() });
    }
    let mode = changelog_in(repo, &head, &plan.changelog_path)?.map_or(0o100_644, |(_, mode)| mode);
    check_clean(repo, &plan.changelog_path)?;

    // The release commit: HEAD's tree with only the changelog replaced.
    let blob = repo.blob(plan.changelog.as_bytes())?;
    let git_path = git_path(&plan.changelog_path)?;
    let mut index = Index::new_ext(repo.object_format())?;
    index.read_tree(&head.tree()?)?;
    index.add(&IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(plan.changelog.len()).unwrap_or(u32::MAX),
        id: blob,
        // The low 12 bits hold the path length (capped), as in git's index format.
        flags: u16::try_from(git_path.len().min(0xfff)).expect("capped to 12 bits"),
        flags_extended: 0,
        path: git_path.clone().into_bytes(),
    })?;
    let tree = repo.find_tree(index.write_tree_to(repo)?)?;
    let signature = signature(repo)?;
    let message = plan.commit_message();
    let commit = repo.commit(None, &signature, &signature, &message, &tree, &[&head])?;

    // Move the branch (or a detached HEAD) only if it still points where the plan saw it.
    let head_ref = repo.head()?;
    let ref_name = head_ref.name()?.to_owned();
    let summary = message.trim_end();
    repo.reference_matching(&ref_name, commit, true, plan.head, &format!("commit: {summary}")).map_err(|e| {
        if e.code() == ErrorCode::Modified {
            Error::HeadMoved { planned: plan.head.to_string(), current: "a new commit".to_owned() }
        } else {
            Error::Git(e)
        }
    })?;

    let target = repo.find_object(commit, Some(ObjectType::Commit))?;
    let tag = repo.tag(&plan.tag, &target, &signature, &plan.notes, false).map_err(|e| {
        if e.code() == ErrorCode::Exists { Error::TagExists { tag: plan.tag.clone() } } else { Error::Git(e) }
    })?;

    // Only now touch the work tree: git already holds the release, so a failure here leaves
    // a file `git checkout` can restore rather than a half-made release.
    let file = workdir.join(&plan.changelog_path);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_owned(), source })?;
    }
    std::fs::write(&file, &plan.changelog).map_err(|source| Error::Io { path: file.clone(), source })?;
    let mut real_index = repo.index()?;
    real_index.add_path(Path::new(&git_path))?;
    real_index.write()?;
    Ok(Applied { commit, tag })
}

/// HEAD's commit; a clear error when there is none yet.
fn head_commit(repo: &Repository) -> Result<git2::Commit<'_>> {
    match repo.head() {
        Ok(head) => Ok(head.peel_to_commit()?),
        Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Err(Error::UnbornHead),
        Err(e) => Err(Error::Git(e)),
    }
}

fn tag_exists(repo: &Repository, tag: &str) -> Result<bool> {
    match repo.find_reference(&format!("refs/tags/{tag}")) {
        Ok(_) => Ok(true),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(false),
        Err(e) => Err(Error::Git(e)),
    }
}

/// `changelog_file` as a normal relative path; anything that could leave the repository is refused.
fn repo_relative(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::InvalidChangelogPath { path: path.to_owned() });
            }
        }
    }
    if out.as_os_str().is_empty() || out.starts_with(".git") {
        return Err(Error::InvalidChangelogPath { path: path.to_owned() });
    }
    Ok(out)
}

/// The path as git writes it: UTF-8 with `/` separators.
fn git_path(path: &Path) -> Result<String> {
    let parts: Option<Vec<&str>> = path.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|p| p.join("/")).ok_or_else(|| Error::InvalidChangelogPath { path: path.to_owned() })
}

/// Refuses when the changelog differs between HEAD, the index and the work tree (or is
/// untracked but present): the release commit would silently drop or mix in those edits.
fn check_clean(repo: &Repository, path: &Path) -> Result<()> {
    match repo.status_file(path) {
        Ok(status) if status == Status::CURRENT => Ok(()),
        Ok(_) => Err(Error::DirtyChangelog { path: path.to_owned() }),
        // Nowhere at all: the release creates it.
        Err(e) if e.code() == ErrorCode::NotFound => Ok(()),
        // A directory in the work tree.
        Err(e) if e.code() == ErrorCode::Ambiguous => Err(Error::ChangelogNotAFile { path: path.to_owned() }),
        Err(e) => Err(Error::Git(e)),
    }
}

/// The changelog's text and file mode in `commit`, `None` when it does not exist there.
fn changelog_in(repo: &Repository, commit: &git2::Commit<'_>, path: &Path) -> Result<Option<(String, u32)>> {
    let entry = match commit.tree()?.get_path(path) {
        Ok(entry) => entry,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(Error::Git(e)),
    };
    let mode = u32::try_from(entry.filemode()).unwrap_or(0);
    if entry.kind() != Some(ObjectType::Blob) || !matches!(mode, 0o100_644 | 0o100_755) {
        return Err(Error::ChangelogNotAFile { path: path.to_owned() });
    }
    let blob = repo.find_blob(entry.id())?;
    let text =
        String::from_utf8(blob.content().to_vec()).map_err(|_| Error::ChangelogNotUtf8 { path: path.to_owned() })?;
    Ok(Some((text, mode)))
}

/// The committer and tagger: the repository's `user.name`/`user.email`, else Conveyor's own.
fn signature(repo: &Repository) -> Result<Signature<'static>> {
    match repo.signature() {
        Ok(signature) => Ok(signature),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(Signature::now(FALLBACK_NAME, FALLBACK_EMAIL)?),
        Err(e) => Err(Error::Git(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::test_repo::TestRepo;

    fn released(repo: &TestRepo, version: &str) -> Applied {
        let plan = plan(&repo.repo, version, "v", Path::new("CHANGELOG.md")).unwrap();
        apply(&repo.repo, &plan).unwrap()
    }

    #[test]
    fn refusals_name_the_problem() {
        let repo = TestRepo::new();
        repo.commit("feat: one", &[]);
        released(&repo, "1.0.0");
        repo.commit("fix: two", &[]);

        repo.write("src/main.rs", "fn main() {}\n");
        repo.commit("feat: code", &[]);

        // (version, prefix, changelog, expected error kind)
        let cases = [
            ("v1.2.0", "v", "CHANGELOG.md", "invalid_version"),
            ("1.2", "v", "CHANGELOG.md", "invalid_version"),
            ("1.0.0", "v", "CHANGELOG.md", "tag_exists"),
            ("1.0.0+build.1", "v", "CHANGELOG.md", "version_not_greater"),
            ("0.9.0", "v", "CHANGELOG.md", "version_not_greater"),
            ("1.1.0", "bad prefix ", "CHANGELOG.md", "invalid_tag_name"),
            ("1.1.0", ".", "CHANGELOG.md", "invalid_tag_name"),
            ("1.1.0", "v", "../CHANGELOG.md", "invalid_changelog_path"),
            ("1.1.0", "v", "/tmp/CHANGELOG.md", "invalid_changelog_path"),
            ("1.1.0", "v", ".git/config", "invalid_changelog_path"),
            ("1.1.0", "v", "", "invalid_changelog_path"),
            ("1.1.0", "v", "src", "changelog_not_a_file"),
        ];
        for (version, prefix, changelog, kind) in cases {
            let err = plan(&repo.repo, version, prefix, Path::new(changelog)).unwrap_err();
            assert_eq!(err.kind(), kind, "{version} {prefix:?} {changelog}: {err}");
        }
        let err = plan(&repo.repo, "0.9.0", "v", Path::new("CHANGELOG.md")).unwrap_err().to_string();
        assert!(err.contains("v1.0.0") && err.contains("1.0.0"), "{err}");
    }

    #[test]
    fn unborn_head_and_bare_repositories_are_refused() {
        let repo = TestRepo::new();
        let err = plan(&repo.repo, "1.0.0", "v", Path::new("CHANGELOG.md")).unwrap_err();
        assert_eq!(err.kind(), "unborn_head", "{err}");

        let dir = tempfile::tempdir().unwrap();
        let bare = Repository::init_bare(dir.path()).unwrap();
        let err = plan(&bare, "1.0.0", "v", Path::new("CHANGELOG.md")).unwrap_err();
        assert_eq!(err.kind(), "no_work_tree", "{err}");
    }

    #[test]
    fn dirty_changelog_is_refused_in_every_form() {
        // (how the changelog is left before planning)
        type Dirty = fn(&TestRepo);
        let cases: &[(&str, Dirty)] = &[
            ("modified", |r| r.write("CHANGELOG.md", "edited\n")),
            ("staged", |r| {
                r.write("CHANGELOG.md", "edited\n");
                r.stage("CHANGELOG.md");
            }),
            ("deleted", |r| std::fs::remove_file(r.dir.path().join("CHANGELOG.md")).unwrap()),
        ];
        for (what, dirty) in cases {
            let repo = TestRepo::new();
            repo.commit("feat: one", &[]);
            released(&repo, "1.0.0");
            dirty(&repo);
            let err = plan(&repo.repo, "1.1.0", "v", Path::new("CHANGELOG.md")).unwrap_err();
            assert_eq!(err.kind(), "dirty_changelog", "{what}: {err}");
            assert!(err.to_string().contains("CHANGELOG.md"), "{err}");
        }
        // Untracked before the first release.
        let repo = TestRepo::new();
        repo.commit("feat: one", &[]);
        repo.write("CHANGELOG.md", "draft\n");
        let err = plan(&repo.repo, "1.0.0", "v", Path::new("CHANGELOG.md")).unwrap_err();
        assert_eq!(err.kind(), "dirty_changelog", "{err}");
    }

    #[test]
    fn apply_commits_only_the_changelog_and_tags_it() {
        let repo = TestRepo::new();
        let first = repo.commit("feat(api): one", &[]);
        // Staged and unstaged work on other files must survive untouched and uncommitted.
        repo.write("staged.txt", "staged\n");
        repo.stage("staged.txt");
        repo.write("history.txt", "unstaged edit\n");

        let plan = plan(&repo.repo, "1.0.0", "v", Path::new("docs/CHANGELOG.md")).unwrap();
        assert_eq!((plan.tag.as_str(), plan.head, plan.previous_tag.as_deref()), ("v1.0.0", first, None));
        assert_eq!(plan.branch.as_deref(), Some("main"));
        assert!(!plan.changelog_exists);
        assert!(plan.notes.starts_with("## 1.0.0\n") && plan.notes.contains("- api: one ("), "{}", plan.notes);
        assert_eq!(plan.changelog, format!("# Changelog\n\n{}", plan.notes));
        let applied = apply(&repo.repo, &plan).unwrap();

        let r = &repo.repo;
        let commit = r.find_commit(applied.commit).unwrap();
        assert_eq!(commit.message(), Ok("chore(release): 1.0.0\n"));
        assert_eq!(commit.parent_ids().collect::<Vec<_>>(), [first]);
        assert_eq!(r.head().unwrap().peel_to_commit().unwrap().id(), applied.commit);
        let diff = r
            .diff_tree_to_tree(
                Some(&r.find_commit(first).unwrap().tree().unwrap()),
                Some(&commit.tree().unwrap()),
                None,
            )
            .unwrap();
        let changed: Vec<_> = diff.deltas().map(|d| d.new_file().path().unwrap().to_owned()).collect();
        assert_eq!(changed, [PathBuf::from("docs/CHANGELOG.md")]);

        let tag = r.find_tag(applied.tag).unwrap();
        assert_eq!(
            (tag.name(), tag.target_id(), tag.message()),
            (Ok("v1.0.0"), applied.commit, Ok(Some(plan.notes.as_str())))
        );
        assert_eq!(tag.tagger().unwrap().email(), Ok("test@example.com"));

        let on_disk = std::fs::read_to_string(repo.dir.path().join("docs/CHANGELOG.md")).unwrap();
        assert_eq!(on_disk, plan.changelog);
        assert_eq!(r.status_file(Path::new("docs/CHANGELOG.md")).unwrap(), Status::CURRENT);
        assert_eq!(r.status_file(Path::new("staged.txt")).unwrap(), Status::INDEX_NEW);
        assert_eq!(r.status_file(Path::new("history.txt")).unwrap(), Status::WT_MODIFIED);
    }

    #[test]
    fn second_release_lists_only_new_commits_and_stacks_the_changelog() {
        let repo = TestRepo::new();
        repo.commit("feat: first feature", &[]);
        released(&repo, "1.0.0");
        repo.commit("fix: later fix", &[]);
        let plan = plan(&repo.repo, "1.0.1", "v", Path::new("CHANGELOG.md")).unwrap();
        assert_eq!(plan.previous_tag.as_deref(), Some("v1.0.0"));
        assert!(plan.notes.contains("later fix"), "{}", plan.notes);
        assert!(!plan.notes.contains("first feature") && !plan.notes.contains("chore(release)"), "{}", plan.notes);
        let (new_pos, old_pos) = (plan.changelog.find("## 1.0.1").unwrap(), plan.changelog.find("## 1.0.0").unwrap());
        assert!(plan.changelog.starts_with("# Changelog\n\n## 1.0.1\n") && new_pos < old_pos, "{}", plan.changelog);
        apply(&repo.repo, &plan).unwrap();
        let (latest, tag, _) = latest_release(&repo.repo, "v").unwrap().unwrap();
        assert_eq!((latest.to_string(), tag.as_str()), ("1.0.1".to_owned(), "v1.0.1"));
    }

    #[test]
    fn detached_head_is_released_in_place() {
        let repo = TestRepo::new();
        let first = repo.commit("feat: one", &[]);
        repo.commit("feat: two", &[]);
        repo.repo.set_head_detached(first).unwrap();
        let plan = plan(&repo.repo, "1.0.0", "v", Path::new("CHANGELOG.md")).unwrap();
        assert_eq!((plan.branch.as_deref(), plan.head), (None, first));
        assert!(plan.notes.contains("- one (") && !plan.notes.contains("- two ("), "{}", plan.notes);
        let applied = apply(&repo.repo, &plan).unwrap();
        assert!(repo.repo.head_detached().unwrap());
        assert_eq!(repo.repo.head().unwrap().target(), Some(applied.commit));
        let main = repo.repo.find_reference("refs/heads/main").unwrap().target().unwrap();
        assert_ne!(main, applied.commit, "the branch HEAD left stays where it was");
    }

    #[test]
    fn apply_refuses_a_stale_plan() {
        let repo = TestRepo::new();
        repo.commit("feat: one", &[]);
        let plan = plan(&repo.repo, "1.0.0", "v", Path::new("CHANGELOG.md")).unwrap();
        repo.commit("feat: sneaked in", &[]);
        let err = apply(&repo.repo, &plan).unwrap_err();
        assert_eq!(err.kind(), "head_moved", "{err}");
        assert!(repo.repo.find_reference("refs/tags/v1.0.0").is_err());
    }
}
