//! Where new notes go in a changelog file: pure text manipulation.

/// The changelog with `notes` added as the newest entry.
///
/// - No file (or an empty one): a new file with a `# Changelog` title, then the notes.
/// - A file starting with a top-level title (`# …`, or a title underlined with `===`): the title
///   and any introduction stay on top; the notes go just before the first `## ` section (the
///   previous newest release), or at the end when there is none.
/// - Any other file: the notes go on top.
///
/// One blank line separates the notes from what is around them.
pub fn prepend_notes(existing: Option<&str>, notes: &str) -> String {
    let notes = notes.trim_end();
    let existing = existing.unwrap_or("");
    if existing.trim().is_empty() {
        return format!("# Changelog\n\n{notes}\n");
    }
    let (head, tail) = existing.split_at(insertion_point(existing));
    let head = head.trim_end();
    let mut out = String::with_capacity(existing.len() + notes.len() + 4);
    if !head.is_empty() {
        out.push_str(head);
        out.push_str("\n\n");
    }
    out.push_str(notes);
    out.push('\n');
    if !tail.is_empty() {
        out.push('\n');
        out.push_str(tail);
    }
    out
}

/// Byte offset at which the notes are inserted.
fn insertion_point(text: &str) -> usize {
    // (offset of the line, the line without its newline)
    let lines: Vec<(usize, &str)> = text
        .split_inclusive('\n')
        .scan(0, |offset, line| {
            let start = *offset;
            *offset += line.len();
            Some((start, line.trim_end_matches(['\n', '\r'])))
        })
        .collect();
    let Some(first) = lines.iter().position(|(_, l)| !l.trim().is_empty()) else { return 0 };
    let title = lines[first].1;
    let underlined =
        lines.get(first + 1).is_some_and(|(_, l)| !l.trim().is_empty() && l.trim().chars().all(|c| c == '='));
    let body_from = if title.starts_with("# ") {
        first + 1
    } else if underlined {
        first + 2
    } else {
        return 0;
    };
    lines[body_from..].iter().find(|(_, l)| l.starts_with("## ")).map_or(text.len(), |(offset, _)| *offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_go_below_the_title_and_above_the_newest_release() {
        let notes = "## 1.1.0\n\n- new\n";
        // (existing, expected)
        let cases: &[(Option<&str>, &str)] = &[
            (None, "# Changelog\n\n## 1.1.0\n\n- new\n"),
            (Some(""), "# Changelog\n\n## 1.1.0\n\n- new\n"),
            (Some("\n \n"), "# Changelog\n\n## 1.1.0\n\n- new\n"),
            (Some("# Changelog\n"), "# Changelog\n\n## 1.1.0\n\n- new\n"),
            (Some("# Changelog\n\n## 1.0.0\n\n- old\n"), "# Changelog\n\n## 1.1.0\n\n- new\n\n## 1.0.0\n\n- old\n"),
            (
                Some("# History\n\nAll notable changes.\n\n\n## 1.0.0\n- old"),
                "# History\n\nAll notable changes.\n\n## 1.1.0\n\n- new\n\n## 1.0.0\n- old",
            ),
            (Some("# Changelog\n\nIntro only.\n"), "# Changelog\n\nIntro only.\n\n## 1.1.0\n\n- new\n"),
            (Some("Changelog\n=========\n\n## 1.0.0\n"), "Changelog\n=========\n\n## 1.1.0\n\n- new\n\n## 1.0.0\n"),
            // No title: on top.
            (Some("## 1.0.0\n\n- old\n"), "## 1.1.0\n\n- new\n\n## 1.0.0\n\n- old\n"),
            (Some("Some notes\n"), "## 1.1.0\n\n- new\n\nSome notes\n"),
            // `##` is not a title; `### ` inside the intro is not a release.
            (Some("# Changelog\n### About\n## 1.0.0\n"), "# Changelog\n### About\n\n## 1.1.0\n\n- new\n\n## 1.0.0\n"),
            (Some("# Changelog\r\n\r\n## 1.0.0\r\n"), "# Changelog\n\n## 1.1.0\n\n- new\n\n## 1.0.0\r\n"),
        ];
        for (existing, want) in cases {
            assert_eq!(prepend_notes(*existing, notes), *want, "{existing:?}");
        }
    }

    #[test]
    fn repeated_releases_stack_newest_first() {
        let mut text = prepend_notes(None, "## 1.0.0\n\n- a\n");
        text = prepend_notes(Some(&text), "## 1.1.0\n\n- b\n");
        text = prepend_notes(Some(&text), "## 2.0.0\n\n- c\n");
        assert_eq!(text, "# Changelog\n\n## 2.0.0\n\n- c\n\n## 1.1.0\n\n- b\n\n## 1.0.0\n\n- a\n");
    }
}
