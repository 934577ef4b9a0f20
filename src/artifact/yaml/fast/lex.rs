//! The one-line pieces the scanner reads: keys, quoted and plain scalars, and what YAML makes
//! of a plain scalar's text.

use std::borrow::Cow;

use super::MAX_KEY_BYTES;

/// `content` as text, if it holds only characters the scanner treats alike with libyaml:
/// no tabs, control characters, byte order marks or Unicode line breaks, and carriage returns
/// only before a line feed.
pub(super) fn plain_text(content: &[u8]) -> Option<&str> {
    let control = |(at, &b): (usize, &u8)| match b {
        b'\n' => false,
        b'\r' => content.get(at + 1) != Some(&b'\n'),
        _ => b < 0x20 || b == 0x7f,
    };
    if content.iter().enumerate().any(control) {
        return None;
    }
    let text = std::str::from_utf8(content).ok()?;
    if !content.is_ascii() && !text.chars().all(|c| c.is_ascii() || printable(c)) {
        return None;
    }
    Some(text)
}

/// Non-ASCII characters YAML allows in content, without those libyaml reads as line breaks
/// (U+0085, U+2028, U+2029) and the byte order mark.
fn printable(c: char) -> bool {
    matches!(c, '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

/// A one-line scalar as written: its text between the quotes (or plain), and whether that
/// text differs from its value (escapes, `''`).
#[derive(Clone, Copy)]
pub(super) struct Scalar<'a> {
    pub(super) raw: &'a str,
    /// `'` or `"`; none for a plain scalar.
    pub(super) quote: Option<u8>,
    pub(super) escaped: bool,
}

/// A block mapping key at the start of `s` and the text after its `:`.
pub(super) fn block_key(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let (key, tail) = match *s.as_bytes().first()? {
        b'"' | b'\'' => {
            let (scalar, tail) = quoted(s)?;
            (quoted_key(scalar)?, tail.trim_start_matches(' '))
        }
        _ => {
            if !plain_start(s, false) {
                return None;
            }
            // The key ends at the first `:` followed by a space or the end of the line.
            let bytes = s.as_bytes();
            let mut at = 0;
            let colon = loop {
                let colon = at + bytes[at..].iter().position(|&b| b == b':')?;
                if bytes.get(colon + 1).is_none_or(|&b| b == b' ') {
                    break colon;
                }
                at = colon + 1;
            };
            let key = &s[..colon];
            // A ` #` before it starts a comment: the line holds no key.
            if key.contains(" #") {
                return None;
            }
            let key = key.trim_end_matches(' ');
            if !is_plain_string(key) || key == "<<" {
                return None;
            }
            (Cow::Borrowed(key), &s[colon..])
        }
    };
    if s.len() - tail.len() > MAX_KEY_BYTES {
        return None;
    }
    let after = tail.strip_prefix(':')?;
    (after.is_empty() || after.starts_with(' ')).then_some((key, after))
}

/// A flow mapping key at the start of `s`, followed by `: `, and the text after the `:`.
pub(super) fn flow_key(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let (key, tail) = match s.as_bytes().first()? {
        b'"' | b'\'' => {
            let (scalar, tail) = quoted(s)?;
            (quoted_key(scalar)?, tail.trim_start_matches(' '))
        }
        _ => {
            let (key, tail) = flow_plain(s, b":")?;
            if !is_plain_string(key) || key == "<<" {
                return None;
            }
            (Cow::Borrowed(key), tail)
        }
    };
    if s.len() - tail.len() > MAX_KEY_BYTES {
        return None;
    }
    let after = tail.strip_prefix(": ")?;
    Some((key, after))
}

/// A quoted scalar as a key: its value, when the scanner can tell it exactly (`''` in
/// single quotes stands for one quote; double-quoted escapes are not decoded here).
fn quoted_key(scalar: Scalar<'_>) -> Option<Cow<'_, str>> {
    let key = match (scalar.escaped, scalar.quote) {
        (false, _) => Cow::Borrowed(scalar.raw),
        (true, Some(b'\'')) => Cow::Owned(scalar.raw.replace("''", "'")),
        _ => return None,
    };
    (key != "<<").then_some(key)
}

/// A quoted scalar that closes on this line, and the text after it. Double quotes take the
/// one-character escapes; `\x`, `\u`, `\U` and a line-ending backslash are left to libyaml.
pub(super) fn quoted(s: &str) -> Option<(Scalar<'_>, &str)> {
    let bytes = s.as_bytes();
    let quote = *bytes.first()?;
    let mut escaped = false;
    let mut at = 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\'' if quote == b'\'' && bytes.get(at + 1) == Some(&b'\'') => {
                escaped = true;
                at += 2;
            }
            b if b == quote => return Some((Scalar { raw: &s[1..at], quote: Some(quote), escaped }, &s[at + 1..])),
            b'\\' if quote == b'"' => {
                match bytes.get(at + 1)? {
                    b'0' | b'a' | b'b' | b't' | b'n' | b'v' | b'f' | b'r' | b'e' | b' ' | b'"' | b'/' | b'\\'
                    | b'N' | b'_' | b'L' | b'P' => {}
                    _ => return None,
                }
                escaped = true;
                at += 2;
            }
            _ => at += 1,
        }
    }
    None
}

/// Whether a plain scalar may start at `s` (in a flow collection when `flow`).
fn plain_start(s: &str, flow: bool) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else { return false };
    match first {
        // `-` starts a scalar when a character other than a space follows it (in a flow
        // collection, other than a flow indicator); so do `?` and `:` outside flow collections.
        b'-' => bytes.get(1).is_some_and(|&b| b != b' ' && !(flow && b",[]{}".contains(&b))),
        b'?' | b':' => !flow && bytes.get(1).is_some_and(|&b| b != b' '),
        b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@'
        | b'`' => false,
        _ => true,
    }
}

/// A one-line plain scalar in a block at the start of `s`, and the text after it: it runs to
/// the end of the line or a comment. One holding `: ` or ending in `:` is left to libyaml.
pub(super) fn plain(s: &str) -> Option<(&str, &str)> {
    if !plain_start(s, false) {
        return None;
    }
    let end = s.find(" #").unwrap_or(s.len());
    let text = s[..end].trim_end_matches(' ');
    if text.contains(": ") || text.ends_with(':') {
        return None;
    }
    Some((text, &s[end..]))
}

/// A plain scalar in a flow collection at the start of `s`, and the text after it, which
/// starts with `ends` (one of `,]}` for a value, `:` for a key). One holding a `:`, `#`, quote
/// or bracket, or running to the end of the line, is left to libyaml.
pub(super) fn flow_plain<'s>(s: &'s str, ends: &[u8]) -> Option<(&'s str, &'s str)> {
    if s.is_empty() || !plain_start(s, true) {
        return None;
    }
    let end = s.find([',', ']', '}', ':', '#', '[', '{', '"', '\''])?;
    ends.contains(&s.as_bytes()[end]).then(|| (s[..end].trim_end_matches(' '), &s[end..]))
}

/// Whether the rest of a line is only spaces, then perhaps a comment.
pub(super) fn end_of_line(tail: &str) -> Option<()> {
    let comment = tail.trim_start_matches(' ');
    (comment.is_empty() || (comment.starts_with('#') && comment.len() < tail.len())).then_some(())
}

/// Plain scalars YAML reads as null.
pub(super) fn is_null(s: &str) -> bool {
    matches!(s, "~" | "null" | "Null" | "NULL")
}

/// Whether a plain scalar is certainly a string: not null, not a boolean, and not starting the
/// way a number can.
pub(super) fn is_plain_string(s: &str) -> bool {
    let Some(&first) = s.as_bytes().first() else { return false };
    let number_like = first.is_ascii_digit() || matches!(first, b'.' | b'+' | b'-');
    let boolean = matches!(s, "true" | "True" | "TRUE" | "false" | "False" | "FALSE");
    !(number_like || boolean || is_null(s))
}

/// Whether a plain scalar is certainly not a number JSON cannot hold: `.inf`, `.nan`, or an
/// integer beyond 64 bits (in any base).
pub(super) fn number_is_safe(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let bytes = unsigned.as_bytes();
    match bytes {
        [b'.', ..] => !matches!(&unsigned[1..], "inf" | "Inf" | "INF" | "nan" | "NaN" | "NAN"),
        [b'0', b'x' | b'o' | b'b', ..] => false,
        _ => !(bytes.len() >= 19 && bytes.iter().all(u8::is_ascii_digit)),
    }
}
