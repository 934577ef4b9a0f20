//! Reading release history from the object database: release tags and the commits between two
//! points. Nothing here touches a work tree or an index, so it works on bare mirrors.

use git2::{Oid, Repository, Sort};

use crate::api::types::Version;
use crate::core::notes::CommitInfo;

/// The release with the highest SemVer precedence among tags named `<tag_prefix><semver>`:
/// its version, tag name and commit.
///
/// Tags that do not parse, or do not point (through annotated tags) at a commit, are not
/// releases and are ignored. With an empty prefix, `v1.0.0` is not a release but `1.0.0` is.
/// Two tags of equal precedence (`1.0.0+a`, `1.0.0+b`) are ordered by name, the greater name
/// winning, so the answer never depends on the order git lists tags in.
pub fn latest_release(repo: &Repository, tag_prefix: &str) -> Result<Option<(Version, String, Oid)>, git2::Error> {
    let names = repo.tag_names(None)?;
    let mut releases: Vec<(Version, &str)> = names
        .iter_bytes()
        .filter_map(|name| std::str::from_utf8(name).ok())
        .filter_map(|name| Some((Version::parse(name.strip_prefix(tag_prefix)?).ok()?, name)))
        .collect();
    releases.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    for (version, name) in releases.into_iter().rev() {
        let commit = match repo.find_reference(&format!("refs/tags/{name}")).and_then(|r| r.peel_to_commit()) {
            Ok(commit) => commit.id(),
            // A tag of a tree or blob is not a release; look at the next one down.
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::NotFound | git2::ErrorCode::InvalidSpec | git2::ErrorCode::Peel
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        return Ok(Some((version, name.to_owned(), commit)));
    }
    Ok(None)
}

/// Commits reachable from one point and not from another, as far as a bound allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Newest first, at most the bound asked for.
    pub commits: Vec<CommitInfo>,
    /// How many more (older) commits are in the range but not in `commits`.
    pub omitted: usize,
}

/// Commits reachable from `to` and not from `from` (all of `to`'s history when `None`), newest
/// first, at most `max`. Merge commits are left out: they change nothing of their own, and the
/// commits they bring in are listed. Use [`history_between`] to learn how many were cut.
pub fn commits_between(
    repo: &Repository,
    from: Option<Oid>,
    to: Oid,
    max: usize,
) -> Result<Vec<CommitInfo>, git2::Error> {
    history_between(repo, from, to, max).map(|h| h.commits)
}

/// Like [`commits_between`], and counts the commits beyond `max` (walking the whole range), so
/// that notes can say how many are not listed.
pub fn history_between(repo: &Repository, from: Option<Oid>, to: Oid, max: usize) -> Result<History, git2::Error> {
    let mut walk = repo.revwalk()?;
    // Topological so a commit never precedes its descendants even with skewed clocks; time
    // breaks ties between branches so the order reads like `git log`.
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
    walk.push(to)?;
    if let Some(from) = from {
        walk.hide(from)?;
    }
    let mut history = History::default();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        if commit.parent_count() > 1 {
            continue;
        }
        if history.commits.len() < max {
            // Messages are UTF-8 in practice; a legacy encoding should not stop a release.
            let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
            history.commits.push(CommitInfo { id: commit.id().to_string(), message });
        } else {
            history.omitted += 1;
        }
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::test_repo::TestRepo;

    #[test]
    fn latest_release_picks_the_highest_semver_with_the_prefix() {
        // (tags, prefix, expected tag)
        let cases: &[(&[&str], &str, Option<&str>)] = &[
            (&[], "v", None),
            (&["v1.0.0", "v1.10.0", "v1.9.0"], "v", Some("v1.10.0")),
            (&["v1.0.0", "v2.0.0-rc.1", "v1.5.0"], "v", Some("v2.0.0-rc.1")),
            (&["v2.0.0-rc.1", "v2.0.0"], "v", Some("v2.0.0")),
            (&["v1.0.0", "latest", "v1.2", "vnext", "v3"], "v", Some("v1.0.0")),
            // With an empty prefix, `v`-tags are not releases.
            (&["v9.0.0", "1.0.0", "1.1.0"], "", Some("1.1.0")),
            (&["v9.0.0"], "", None),
            (&["release/1.0.0", "v5.0.0", "release/1.2.0"], "release/", Some("release/1.2.0")),
            // Equal precedence: the greater name wins, whatever the listing order.
            (&["v1.0.0+b", "v1.0.0+a"], "v", Some("v1.0.0+b")),
        ];
        for (tags, prefix, want) in cases {
            let repo = TestRepo::new();
            let commit = repo.commit("feat: one", &[]);
            for (i, tag) in tags.iter().enumerate() {
                // Mix annotated and lightweight tags.
                repo.tag(tag, commit, i % 2 == 0);
            }
            let got = latest_release(&repo.repo, prefix).unwrap();
            assert_eq!(got.as_ref().map(|(_, t, _)| t.as_str()), *want, "{tags:?} with prefix {prefix:?}");
            if let Some((version, tag, oid)) = got {
                assert_eq!(version.to_string(), tag[prefix.len()..]);
                assert_eq!(oid, commit);
            }
        }
    }

    #[test]
    fn latest_release_skips_tags_of_non_commits() {
        let repo = TestRepo::new();
        let commit = repo.commit("feat: one", &[]);
        repo.tag("v1.0.0", commit, true);
        let tree = repo.repo.find_commit(commit).unwrap().tree_id();
        let tree = repo.repo.find_object(tree, None).unwrap();
        repo.repo.tag_lightweight("v2.0.0", &tree, false).unwrap();
        let (_, tag, _) = latest_release(&repo.repo, "v").unwrap().unwrap();
        assert_eq!(tag, "v1.0.0");
    }

    #[test]
    fn commits_between_walks_newest_first_and_bounds() {
        let repo = TestRepo::new();
        let a = repo.commit("feat: a", &[]);
        let b = repo.commit("fix: b", &[]);
        repo.commit("perf: c", &[]);
        let d = repo.commit("docs: d", &[]);
        let ids = |h: &[CommitInfo]| h.iter().map(|c| c.message.clone()).collect::<Vec<_>>();

        // (from, to, max, expected messages, omitted)
        type Case = (Option<Oid>, Oid, usize, &'static [&'static str], usize);
        let cases: &[Case] = &[
            (None, d, 10, &["docs: d", "perf: c", "fix: b", "feat: a"], 0),
            (Some(b), d, 10, &["docs: d", "perf: c"], 0),
            (Some(d), d, 10, &[], 0),
            (None, b, 10, &["fix: b", "feat: a"], 0),
            (None, d, 2, &["docs: d", "perf: c"], 2),
            (Some(a), d, 0, &[], 3),
        ];
        for (from, to, max, want, omitted) in cases {
            let h = history_between(&repo.repo, *from, *to, *max).unwrap();
            assert_eq!(ids(&h.commits), *want, "from {from:?} to {to} max {max}");
            assert_eq!(h.omitted, *omitted, "from {from:?} to {to} max {max}");
            assert_eq!(commits_between(&repo.repo, *from, *to, *max).unwrap(), h.commits);
        }
        assert_eq!(history_between(&repo.repo, None, d, 10).unwrap().commits[0].id, d.to_string());
    }

    #[test]
    fn merges_are_left_out_and_both_sides_listed() {
        let repo = TestRepo::new();
        let base = repo.commit("feat: base", &[]);
        let side = repo.commit_on("fix: side", &[base]);
        let main = repo.commit("feat: main", &[]);
        let merge = repo.commit("Merge branch 'side'", &[main, side]);
        let h = history_between(&repo.repo, Some(base), merge, 10).unwrap();
        let mut got: Vec<_> = h.commits.iter().map(|c| c.message.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, ["feat: main", "fix: side"]);
    }

    #[test]
    fn works_on_a_bare_repository() {
        let repo = TestRepo::new();
        let a = repo.commit("feat: a", &[]);
        repo.tag("v1.0.0", a, true);
        let b = repo.commit("fix: b", &[]);
        let bare_dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", repo.dir.path().display());
        let bare = git2::build::RepoBuilder::new().bare(true).clone(&url, bare_dir.path()).unwrap();
        assert!(bare.is_bare());
        let (_, tag, commit) = latest_release(&bare, "v").unwrap().unwrap();
        assert_eq!((tag.as_str(), commit), ("v1.0.0", a));
        let h = history_between(&bare, Some(commit), b, 10).unwrap();
        assert_eq!(h.commits.len(), 1);
        assert_eq!(h.commits[0].message, "fix: b");
    }
}
