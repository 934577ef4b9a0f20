//! Release notes from commit messages: pure text in, Markdown out.
//!
//! Commits are read as [Conventional Commits](https://www.conventionalcommits.org/en/v1.0.0/):
//! a subject `type(scope)!: description` and optional `BREAKING CHANGE: text` (or
//! `BREAKING-CHANGE: text`) footers. The choices where the specification leaves room:
//!
//! - Types are case-insensitive (`Feat:` is a feature); the footer token must be upper case,
//!   as the specification requires. A footer may sit anywhere in the body and its text runs
//!   to the next blank line or footer, joined into one line.
//! - The subject must have `: ` (colon *and* space) after the type, a non-empty scope when it
//!   has parentheses, and a non-empty description. Anything else (`fix:typo`, `http://x`,
//!   `feat(): x`) is not conventional and is listed verbatim under "Other changes": guessing
//!   would misfile ordinary prose.
//! - Sections, in this order, each only when it has entries: "Breaking changes", "Features"
//!   (`feat`), "Bug fixes" (`fix`), "Performance" (`perf`), "Reverts" (`revert`, and git's own
//!   `Revert "…"` subjects), "Other changes" (every other type, known or not, and
//!   non-conventional subjects).
//! - In the typed sections a line is `- scope: description (abcdef1)`; the heading already says
//!   the type. In "Other changes" the heading says nothing, so the line keeps the whole
//!   subject as written: `- chore(deps): bump serde (abcdef1)`.
//! - A breaking commit is listed twice, as conventional-changelog does: under "Breaking
//!   changes" with its footer text (or its description when it only has `!`), and in its own
//!   type's section with its description. A commit with several breaking footers gives one
//!   breaking line per footer.
//! - Merge commits (`Merge branch …`, `Merge pull request …`, …) are skipped: the commits they
//!   bring in are listed on their own.
//! - Commits keep their given order (newest first) inside a section, so the same input always
//!   gives the same text.
//!
//! The text is bounded: when it would exceed `max_bytes`, it is cut after the last whole line
//! that fits, and a final line says how many commits are not listed. Sections come in priority
//! order, so what is cut is the least important.

use std::collections::BTreeSet;

/// Default bound on the size of release notes, in bytes (they end up in a Kubernetes object,
/// a tag message and the changelog).
pub const MAX_NOTES_BYTES: usize = 8 * 1024;

/// Longest description kept on one line, in bytes; a pasted stack trace in a subject should not
/// crowd out every other commit.
const MAX_TEXT_BYTES: usize = 500;

/// One commit as the notes need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full hexadecimal commit id.
    pub id: String,
    /// Full commit message: subject, body and footers.
    pub message: String,
}

/// Release notes for `version` from commits (newest first), grouped by Conventional Commit
/// type, breaking changes first; at most `max_bytes` bytes (cut at a line boundary with a final
/// line saying how many commits were left out).
pub fn release_notes(version: &str, commits: &[CommitInfo], max_bytes: usize) -> String {
    release_notes_with_omitted(version, commits, 0, max_bytes)
}

/// Like [`release_notes`], for when the caller already left `omitted` older commits out (a
/// bounded history walk): they are counted in the final "not listed" line, which then always
/// appears.
pub fn release_notes_with_omitted(version: &str, commits: &[CommitInfo], omitted: usize, max_bytes: usize) -> String {
    let heading = format!("## {version}\n");
    let entries: Vec<(usize, &CommitInfo, Parsed<'_>)> =
        commits.iter().filter_map(|c| Some((c, parse(&c.message)?))).enumerate().map(|(i, (c, p))| (i, c, p)).collect();
    if entries.is_empty() && omitted == 0 {
        return truncate_at_char_boundary(format!("{heading}\nNo changes.\n"), max_bytes);
    }

    let sections = group(&entries);
    let full = render(&heading, &sections, usize::MAX).0;
    if omitted == 0 && full.len() <= max_bytes {
        return full;
    }

    // Reserve room for the final line with the largest count it could carry.
    let worst_footer = footer(entries.len() + omitted);
    let Some(budget) = max_bytes.checked_sub(worst_footer.len()).filter(|b| *b >= heading.len()) else {
        return truncate_at_char_boundary(heading + &worst_footer, max_bytes);
    };
    let (mut text, listed) = render(&heading, &sections, budget);
    let left_out = entries.len() - listed.len() + omitted;
    if left_out > 0 {
        text.push_str(&footer(left_out));
    }
    text
}

/// The final line of cut notes, with the blank line before it.
fn footer(left_out: usize) -> String {
    let noun = if left_out == 1 { "commit" } else { "commits" };
    format!("\n_{left_out} more {noun} not listed._\n")
}

/// Renders the heading and the sections, stopping before the first line that would take the
/// text past `budget` bytes; returns the text and which commits (by entry index) it lists.
fn render(heading: &str, sections: &[(Section, Vec<Line>)], budget: usize) -> (String, BTreeSet<usize>) {
    let mut text = heading.to_owned();
    let mut listed = BTreeSet::new();
    for (section, lines) in sections {
        for (n, line) in lines.iter().enumerate() {
            let title = if n == 0 { format!("\n### {}\n\n", section.title()) } else { String::new() };
            if text.len() + title.len() + line.text.len() > budget {
                return (text, listed);
            }
            text.push_str(&title);
            text.push_str(&line.text);
            listed.insert(line.entry);
        }
    }
    (text, listed)
}

/// One rendered list item and the entry it comes from.
struct Line {
    entry: usize,
    text: String,
}

/// Sections in display order, each with its lines; empty sections are left out.
fn group(entries: &[(usize, &CommitInfo, Parsed<'_>)]) -> Vec<(Section, Vec<Line>)> {
    Section::ORDER
        .iter()
        .map(|&section| {
            let mut lines = Vec::new();
            for (entry, commit, parsed) in entries {
                let short = short_id(&commit.id);
                if section == Section::Breaking {
                    for note in &parsed.breaking {
                        lines.push(Line { entry: *entry, text: item(parsed.scope, note, short) });
                    }
                } else if section == parsed.section {
                    lines.push(Line { entry: *entry, text: item(parsed.scope, &parsed.text, short) });
                }
            }
            (section, lines)
        })
        .filter(|(_, lines)| !lines.is_empty())
        .collect()
}

/// `- scope: text (abcdef1)` with a newline.
fn item(scope: Option<&str>, text: &str, short: &str) -> String {
    let text = truncate_at_char_boundary(text.to_owned(), MAX_TEXT_BYTES);
    match scope {
        Some(scope) => format!("- {scope}: {text} ({short})\n"),
        None => format!("- {text} ({short})\n"),
    }
}

/// The usual 7-character abbreviation of a commit id.
fn short_id(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

/// Cuts `s` to at most `max` bytes without splitting a character; marks a cut with `…` when
/// there is room for it.
pub fn truncate_at_char_boundary(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    const MARK: &str = "…";
    let keep = if max >= MARK.len() { max - MARK.len() } else { max };
    let mut end = keep;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    if s.len() + MARK.len() <= max {
        s.push_str(MARK);
    }
    s
}

/// Where a commit is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Breaking,
    Features,
    Fixes,
    Performance,
    Reverts,
    Other,
}

impl Section {
    const ORDER: [Section; 6] =
        [Section::Breaking, Section::Features, Section::Fixes, Section::Performance, Section::Reverts, Section::Other];

    fn title(self) -> &'static str {
        match self {
            Section::Breaking => "Breaking changes",
            Section::Features => "Features",
            Section::Fixes => "Bug fixes",
            Section::Performance => "Performance",
            Section::Reverts => "Reverts",
            Section::Other => "Other changes",
        }
    }

    /// The section of a (lower-cased) Conventional Commit type.
    fn of_type(type_: &str) -> Section {
        match type_ {
            "feat" => Section::Features,
            "fix" => Section::Fixes,
            "perf" => Section::Performance,
            "revert" => Section::Reverts,
            // refactor, docs, build, ci, test, style, chore and unknown types alike.
            _ => Section::Other,
        }
    }
}

/// What the notes take from one commit message.
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    section: Section,
    scope: Option<&'a str>,
    /// The description in typed sections; the whole subject in "Other changes".
    text: String,
    /// One note per breaking change; empty when the commit is not breaking.
    breaking: Vec<String>,
}

/// Subjects git and forges write for merge commits.
const MERGE_PREFIXES: [&str; 6] = [
    "Merge branch ",
    "Merge branches ",
    "Merge remote-tracking branch ",
    "Merge pull request ",
    "Merge tag ",
    "Merge commit ",
];

/// Parses one commit message; `None` for merge commits, which the notes skip.
fn parse(message: &str) -> Option<Parsed<'_>> {
    let mut lines = message.lines();
    let subject = lines.next().unwrap_or("").trim();
    if MERGE_PREFIXES.iter().any(|p| subject.starts_with(p)) {
        return None;
    }
    let footers = breaking_footers(lines);
    let mut parsed = match conventional_subject(subject) {
        Some(s) => {
            let section = Section::of_type(&s.type_);
            let text = if section == Section::Other { subject.to_owned() } else { s.description.to_owned() };
            let mut breaking = footers;
            if breaking.is_empty() && s.bang {
                breaking.push(s.description.to_owned());
            }
            let scope = if section == Section::Other { None } else { s.scope };
            Parsed { section, scope, text, breaking }
        }
        None => match git_revert_subject(subject) {
            Some(reverted) => {
                Parsed { section: Section::Reverts, scope: None, text: reverted.to_owned(), breaking: footers }
            }
            None => {
                let text = if subject.is_empty() { "(no message)".to_owned() } else { subject.to_owned() };
                Parsed { section: Section::Other, scope: None, text, breaking: footers }
            }
        },
    };
    // A footer with no text still marks the change as breaking; the description says what.
    for note in &mut parsed.breaking {
        if note.is_empty() {
            note.clone_from(&parsed.text);
        }
    }
    Some(parsed)
}

/// The parts of a conventional subject.
struct Subject<'a> {
    type_: String,
    scope: Option<&'a str>,
    bang: bool,
    description: &'a str,
}

/// Parses `type(scope)!: description`; `None` when the subject is not conventional.
fn conventional_subject(subject: &str) -> Option<Subject<'_>> {
    let (prefix, rest) = subject.split_once(':')?;
    // The specification requires a space after the colon; without it this is likely a URL or prose.
    let description = rest.strip_prefix(' ')?.trim();
    if description.is_empty() {
        return None;
    }
    let (prefix, bang) = match prefix.strip_suffix('!') {
        Some(p) => (p, true),
        None => (prefix, false),
    };
    let (type_, scope) = match prefix.split_once('(') {
        Some((type_, scope)) => {
            let scope = scope.strip_suffix(')')?.trim();
            if scope.is_empty() || scope.contains(['(', ')']) {
                return None;
            }
            (type_, Some(scope))
        }
        None => (prefix, None),
    };
    let mut chars = type_.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(Subject { type_: type_.to_ascii_lowercase(), scope, bang, description })
}

/// The reverted subject of git's own `Revert "subject"` messages.
fn git_revert_subject(subject: &str) -> Option<&str> {
    let inner = subject.strip_prefix("Revert \"")?.strip_suffix('"')?.trim();
    (!inner.is_empty()).then_some(inner)
}

/// The texts of `BREAKING CHANGE:` / `BREAKING-CHANGE:` footers in the body, each joined into
/// one line (an empty string for a footer with no text).
fn breaking_footers<'a>(body: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut notes = Vec::new();
    let mut current: Option<String> = None;
    for line in body {
        let line = line.trim_end();
        if let Some(text) = line.strip_prefix("BREAKING CHANGE:").or_else(|| line.strip_prefix("BREAKING-CHANGE:")) {
            notes.extend(current.take());
            current = Some(text.trim().to_owned());
        } else if let Some(note) = &mut current {
            if line.trim().is_empty() || is_footer(line) {
                notes.extend(current.take());
            } else {
                if !note.is_empty() {
                    note.push(' ');
                }
                note.push_str(line.trim());
            }
        }
    }
    notes.extend(current);
    notes
}

/// Whether a body line starts another git trailer (`Token: value` or `Token #value`).
fn is_footer(line: &str) -> bool {
    let token_end = line.find([':', ' ']).unwrap_or(line.len());
    let token = &line[..token_end];
    !token.is_empty()
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && (line[token_end..].starts_with(": ") || line[token_end..].starts_with(" #"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(n: u8, message: &str) -> CommitInfo {
        CommitInfo { id: format!("{n:02x}").repeat(20), message: message.to_owned() }
    }

    fn commits(messages: &[&str]) -> Vec<CommitInfo> {
        messages.iter().enumerate().map(|(i, m)| commit(i as u8 + 1, m)).collect()
    }

    #[test]
    fn parses_subjects_and_footers() {
        use Section::*;
        // (message, section, scope, text, breaking notes)
        type Case = (&'static str, Section, Option<&'static str>, &'static str, &'static [&'static str]);
        let cases: &[Case] = &[
            ("feat: add login", Features, None, "add login", &[]),
            ("feat(auth): add login", Features, Some("auth"), "add login", &[]),
            ("fix(api)!: drop v1", Fixes, Some("api"), "drop v1", &["drop v1"]),
            ("feat!: new config", Features, None, "new config", &["new config"]),
            ("perf: cache tags", Performance, None, "cache tags", &[]),
            ("revert: feat: add login", Reverts, None, "feat: add login", &[]),
            ("Revert \"feat: add login\"\n\nThis reverts commit abc.", Reverts, None, "feat: add login", &[]),
            // Types are case-insensitive; scopes are kept as written.
            ("FEAT: shout", Features, None, "shout", &[]),
            ("Fix(API): typo", Fixes, Some("API"), "typo", &[]),
            // Extra spaces around the description are trimmed.
            ("fix:   spaced  ", Fixes, None, "spaced", &[]),
            // Other known and unknown types keep their whole subject.
            ("chore(deps): bump serde", Other, None, "chore(deps): bump serde", &[]),
            ("docs: readme", Other, None, "docs: readme", &[]),
            ("wip: half done", Other, None, "wip: half done", &[]),
            ("refactor!: rename crate", Other, None, "refactor!: rename crate", &["rename crate"]),
            // Not conventional: listed verbatim.
            ("fix:typo", Other, None, "fix:typo", &[]),
            ("Update README", Other, None, "Update README", &[]),
            ("see http://example.com", Other, None, "see http://example.com", &[]),
            ("feat(): empty scope", Other, None, "feat(): empty scope", &[]),
            ("feat(a: unclosed", Other, None, "feat(a: unclosed", &[]),
            ("feat: ", Other, None, "feat:", &[]),
            ("feat : space before colon", Other, None, "feat : space before colon", &[]),
            ("2fa: numbers first", Other, None, "2fa: numbers first", &[]),
            ("", Other, None, "(no message)", &[]),
            // Footers, with and without `!`; the footer text wins over the description.
            (
                "feat(api): v2\n\nBREAKING CHANGE: clients must use /v2",
                Features,
                Some("api"),
                "v2",
                &["clients must use /v2"],
            ),
            ("feat!: v2\n\nBREAKING-CHANGE: use /v2", Features, None, "v2", &["use /v2"]),
            // Multi-line footer text is joined; it ends at a blank line or another trailer.
            (
                "fix: x\n\nBody line.\nBREAKING CHANGE: first\n  continued here\nReviewed-by: Z\n",
                Fixes,
                None,
                "x",
                &["first continued here"],
            ),
            ("fix: x\n\nBREAKING CHANGE: a\n\nmore prose", Fixes, None, "x", &["a"]),
            ("fix: x\n\nBREAKING CHANGE: a\nBREAKING CHANGE: b", Fixes, None, "x", &["a", "b"]),
            // A footer with no text uses the description; lower case is not a footer.
            ("fix: x\n\nBREAKING CHANGE:", Fixes, None, "x", &["x"]),
            ("fix: x\n\nbreaking change: no", Fixes, None, "x", &[]),
            ("fix: x\n\nNot a BREAKING CHANGE: mid-line", Fixes, None, "x", &[]),
            // Windows line endings and a multi-line body.
            ("feat: crlf\r\n\r\nbody\r\nBREAKING CHANGE: gone\r\n", Features, None, "crlf", &["gone"]),
            // A non-conventional commit can still declare a breaking change.
            ("Big rewrite\n\nBREAKING CHANGE: everything", Other, None, "Big rewrite", &["everything"]),
        ];
        for (message, section, scope, text, breaking) in cases {
            let parsed = parse(message).unwrap_or_else(|| panic!("{message:?} was skipped"));
            let want = Parsed {
                section: *section,
                scope: *scope,
                text: (*text).to_owned(),
                breaking: breaking.iter().map(|s| (*s).to_owned()).collect(),
            };
            assert_eq!(parsed, want, "{message:?}");
        }
    }

    #[test]
    fn merge_commits_are_skipped() {
        for message in [
            "Merge branch 'main' into feature",
            "Merge pull request #12 from org/branch\n\nfeat: thing",
            "Merge remote-tracking branch 'origin/main'",
            "Merge tag 'v1.0.0'",
        ] {
            assert_eq!(parse(message), None, "{message:?}");
        }
        assert!(parse("Merged the config loaders").is_some());
    }

    #[test]
    fn groups_in_section_order_breaking_first() {
        let c = commits(&[
            "chore: tidy",
            "fix(ui): button",
            "Plain subject",
            "feat(api)!: remove v1\n\nBREAKING CHANGE: use /v2",
            "perf: faster",
            "Merge branch 'x'",
            "feat: second feature",
            "revert: fix: bad fix",
            "docs: readme",
        ]);
        let notes = release_notes("2.4.1", &c, MAX_NOTES_BYTES);
        let want = "\
## 2.4.1

### Breaking changes

- api: use /v2 (0404040)

### Features

- api: remove v1 (0404040)
- second feature (0707070)

### Bug fixes

- ui: button (0202020)

### Performance

- faster (0505050)

### Reverts

- fix: bad fix (0808080)

### Other changes

- chore: tidy (0101010)
- Plain subject (0303030)
- docs: readme (0909090)
";
        assert_eq!(notes, want);
        assert_eq!(release_notes("2.4.1", &c, MAX_NOTES_BYTES), notes, "deterministic");
    }

    #[test]
    fn no_commits_says_no_changes() {
        for c in [vec![], commits(&["Merge branch 'a'"])] {
            assert_eq!(release_notes("1.0.0", &c, MAX_NOTES_BYTES), "## 1.0.0\n\nNo changes.\n");
        }
    }

    #[test]
    fn long_descriptions_are_cut_on_a_char_boundary() {
        let long = format!("feat: {}", "é".repeat(400));
        let notes = release_notes("1.0.0", &commits(&[&long]), MAX_NOTES_BYTES);
        let line = notes.lines().find(|l| l.starts_with("- ")).expect("one item");
        assert!(line.len() < MAX_TEXT_BYTES + 20, "{}", line.len());
        assert!(line.ends_with("… (0101010)"), "{line}");
    }

    #[test]
    fn truncation_keeps_whole_lines_and_counts_what_is_left_out() {
        // 40 features with multi-byte text, then 10 fixes.
        let mut messages: Vec<String> = (0..40).map(|i| format!("feat: füture ✓ number {i}")).collect();
        messages.extend((0..10).map(|i| format!("fix: bug {i}")));
        let c: Vec<CommitInfo> = messages.iter().enumerate().map(|(i, m)| commit(i as u8, m)).collect();
        let full = release_notes("1.0.0", &c, usize::MAX);

        // (max_bytes, expect a cut)
        let cases = [(full.len(), false), (full.len() - 1, true), (600, true), (200, true), (61, true), (40, true)];
        for (max, cut) in cases {
            let notes = release_notes("1.0.0", &c, max);
            assert!(notes.len() <= max, "max {max}: {} bytes", notes.len());
            if !cut {
                assert_eq!(notes, full);
                continue;
            }
            let listed = notes.lines().filter(|l| l.starts_with("- ")).count();
            {
                assert!(notes.starts_with("## 1.0.0\n"), "max {max}: {notes}");
                // Every kept line is a whole line of the full notes.
                for line in notes.lines().filter(|l| l.starts_with("- ") || l.starts_with('#')) {
                    assert!(full.lines().any(|f| f == line), "max {max}: {line:?} was split");
                }
                let last = notes.lines().last().expect("a final line");
                assert_eq!(last, format!("_{} more commits not listed._", 50 - listed), "max {max}");
                // A heading always comes with at least one item.
                let lines: Vec<&str> = notes.lines().collect();
                for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.starts_with("### ")) {
                    assert!(lines.get(i + 2).is_some_and(|l| l.starts_with("- ")), "max {max}: empty {line}");
                }
            }
        }
    }

    #[test]
    fn truncation_drops_whole_sections_in_priority_order() {
        let c = commits(&["chore: one", "feat: two", "fix: three"]);
        let full = release_notes("1.0.0", &c, usize::MAX);
        let cut_at = full.find("### Other changes").expect("other section") + footer(3).len();
        let notes = release_notes("1.0.0", &c, cut_at);
        assert!(notes.contains("- two") && notes.contains("- three"), "{notes}");
        assert!(!notes.contains("Other changes") && !notes.contains("one"), "{notes}");
        assert!(notes.ends_with("\n_1 more commit not listed._\n"), "{notes}");
    }

    #[test]
    fn caller_omitted_commits_are_reported() {
        let c = commits(&["feat: a"]);
        let notes = release_notes_with_omitted("1.0.0", &c, 5, MAX_NOTES_BYTES);
        assert!(notes.contains("- a (0101010)"), "{notes}");
        assert!(notes.ends_with("\n_5 more commits not listed._\n"), "{notes}");
        let notes = release_notes_with_omitted("1.0.0", &[], 1, MAX_NOTES_BYTES);
        assert_eq!(notes, "## 1.0.0\n\n_1 more commit not listed._\n");
    }

    #[test]
    fn tiny_limits_never_split_a_character() {
        let c = commits(&["feat: ü"]);
        for max in 0..40 {
            let notes = release_notes("1.0.0-ünï", &c, max);
            assert!(notes.len() <= max, "max {max}: {notes:?}");
        }
        for max in 0..30 {
            assert!(release_notes("1.0.0-ünï", &[], max).len() <= max);
        }
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("4f1c2ab9d0e"), "4f1c2ab");
        assert_eq!(short_id("4f1"), "4f1");
    }
}
