//! A fast path for [`super::check_file`]: a recognizer for the plain block YAML that nearly all
//! manifests are written in, several times faster than the full parser.
//!
//! It answers only when it is sure. `Some(n)` means the full check would find the file valid
//! with `n` objects. Everything it does not fully understand gives `None`, and the full parser
//! decides and explains: anchors, aliases, tags, merge keys, scalars over several lines, flow
//! collections over several lines, escapes it would have to decode, numbers JSON might not hold,
//! keys that are not plainly strings, odd indentation, tabs, carriage returns, and any document
//! that might not be an object. So it never has to word an error, and it may stay narrow; the
//! tests hold it to its one promise by comparing it with the full check on generated and
//! mutated documents.
//!
//! What it reads, line by line: `---` between documents, comments, block mappings and
//! sequences (a sequence may stand at its key's indentation, and `- key: value` opens a
//! mapping in the item), one-line plain, single- and double-quoted scalars, one-line flow
//! collections, and `|`/`>` block scalars. Duplicate keys, the node budget and the identity
//! rules (`apiVersion`, `kind`, `metadata.name`) are checked as the full path checks them.

use std::borrow::Cow;

use self::lex::{
    Scalar, block_key, end_of_line, flow_key, flow_plain, is_null, is_plain_string, number_is_safe, plain, plain_text,
    quoted,
};
use super::convert::SCALAR_BYTES_PER_NODE;

mod lex;

/// The number of objects in `content` when it is certain that the full check finds exactly
/// that many and no error; `None` when the full check has to look.
pub(super) fn objects(content: &[u8], max_nodes: usize) -> Option<usize> {
    // The full check charges a node even for an empty document, which this scanner does not
    // count: a budget of none is left to it.
    if max_nodes == 0 {
        return None;
    }
    let text = plain_text(content)?;
    let mut scanner = Scanner::new(max_nodes);
    for line in text.split('\n') {
        // libyaml reads `\r\n` as one line break.
        scanner.line(line.strip_suffix('\r').unwrap_or(line))?;
    }
    scanner.end_document()?;
    Some(scanner.objects)
}

/// Nesting deeper than this is left to the full parser (serde_norway stops at 128).
const MAX_DEPTH: usize = 64;
/// libyaml gives up on a key whose `:` is more than 1024 characters after its start.
const MAX_KEY_BYTES: usize = 1000;

/// An open block collection.
#[derive(Clone, Copy)]
struct Frame {
    /// The column of its keys or dashes.
    indent: usize,
    kind: FrameKind,
    role: Role,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// A mapping, whose keys so far are `keys[keys_from..]`.
    Map { keys_from: usize },
    /// A sequence; `indentless` when its dashes stand at its key's own column.
    Seq { indentless: bool },
}

/// What a mapping is to the identity check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Metadata,
    Other,
}

/// Which identity field a value is, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    None,
    ApiVersion,
    Kind,
    Metadata,
    Name,
    Namespace,
}

/// A value as the identity check sees it.
enum Value<'a> {
    Null,
    Scalar(Scalar<'a>),
    Mapping,
    /// A sequence or a block scalar.
    Other,
}

/// A key or a dash whose value starts on a later line (or is null).
#[derive(Clone, Copy)]
struct Pending {
    /// The column of the collection holding it.
    col: usize,
    key: bool,
    slot: Slot,
}

/// A `|` or `>` scalar being read.
struct BlockScalar {
    /// The column of the collection holding it: its lines are indented more.
    parent: usize,
    /// The indentation of its content, known from its first non-empty line.
    indent: Option<usize>,
    /// Bytes of its lines so far: at least the length of its value.
    bytes: usize,
}

/// What the identity check has learned of the current document.
#[derive(Default)]
struct Identity {
    api_version: bool,
    kind: bool,
    metadata: bool,
    name: bool,
    /// Something the scanner cannot vouch for: let the full check decide.
    unsure: bool,
}

struct Scanner<'a> {
    max_nodes: usize,
    /// Objects in the documents finished so far.
    objects: usize,
    /// Nodes of the current document, counted at least as high as the full check counts.
    nodes: usize,
    /// Whether the current document has any content.
    started: bool,
    frames: Vec<Frame>,
    /// Keys of the open mappings, block and flow, each mapping's after its parent's.
    keys: Vec<Cow<'a, str>>,
    pending: Option<Pending>,
    /// After a value that ended its line: the deepest indentation the next line may have (a
    /// deeper one would continue the scalar, or be an error).
    limit: Option<usize>,
    block: Option<BlockScalar>,
    identity: Identity,
}

impl<'a> Scanner<'a> {
    fn new(max_nodes: usize) -> Self {
        Self {
            max_nodes,
            objects: 0,
            nodes: 0,
            started: false,
            frames: Vec::new(),
            keys: Vec::new(),
            pending: None,
            limit: None,
            block: None,
            identity: Identity::default(),
        }
    }

    fn line(&mut self, line: &'a str) -> Option<()> {
        let rest = line.trim_start_matches(' ');
        let indent = line.len() - rest.len();
        if let Some(block) = &mut self.block {
            match block.indent {
                // Leading lines of spaces decide the indentation in ways best left to libyaml.
                None if rest.is_empty() && indent > 0 => return None,
                None if rest.is_empty() => {}
                None if indent > block.parent => block.indent = Some(indent),
                Some(content) if rest.is_empty() || indent >= content => {}
                _ => {
                    self.end_block()?;
                    return self.structure(indent, rest);
                }
            }
            block.bytes += line.len() + 1;
            return Some(());
        }
        self.structure(indent, rest)
    }

    /// A line outside block scalars.
    fn structure(&mut self, indent: usize, rest: &'a str) -> Option<()> {
        if rest.is_empty() || rest.starts_with('#') {
            return Some(());
        }
        if indent == 0 && (rest.starts_with("---") || rest.starts_with("...") || rest.starts_with('%')) {
            let marker = rest.strip_prefix("---")?;
            let comment = marker.trim_start_matches(' ');
            if !(marker.is_empty()
                || (comment.len() < marker.len() && (comment.is_empty() || comment.starts_with('#'))))
            {
                return None;
            }
            self.end_document()?;
            return Some(());
        }
        self.content(indent, rest)
    }

    fn end_block(&mut self) -> Option<()> {
        if let Some(block) = self.block.take() {
            self.charge(1 + block.bytes / SCALAR_BYTES_PER_NODE)?;
            self.limit = Some(block.parent);
        }
        Some(())
    }

    fn end_document(&mut self) -> Option<()> {
        self.end_block()?;
        if let Some(pending) = self.pending.take() {
            self.charge(1)?;
            self.deliver(pending.slot, Value::Null);
        }
        if self.started {
            let id = &self.identity;
            if id.unsure || !(id.api_version && id.kind && id.metadata && id.name) {
                return None;
            }
            self.objects += 1;
        }
        self.nodes = 0;
        self.started = false;
        self.frames.clear();
        self.keys.clear();
        self.limit = None;
        self.identity = Identity::default();
        Some(())
    }

    /// A line with content at column `col`.
    fn content(&mut self, col: usize, rest: &'a str) -> Option<()> {
        let dash = rest == "-" || rest.starts_with("- ");
        if let Some(pending) = self.pending.take() {
            if col > pending.col {
                self.limit = None;
                return self.open(col, dash, false, pending.slot, rest);
            }
            if col == pending.col && dash && pending.key {
                return self.open(col, true, true, pending.slot, rest);
            }
            self.charge(1)?;
            self.deliver(pending.slot, Value::Null);
        } else if self.limit.is_some_and(|limit| col > limit) {
            return None;
        }
        self.limit = None;
        if self.frames.is_empty() {
            // The document's root: a mapping at the first column.
            if col != 0 || dash {
                return None;
            }
            self.started = true;
            self.charge(1)?;
            let kind = FrameKind::Map { keys_from: 0 };
            self.frames.push(Frame { indent: 0, kind, role: Role::Root });
            return self.map_entry(0, rest);
        }
        while let Some(top) = self.frames.last() {
            let indentless = top.kind == FrameKind::Seq { indentless: true };
            if top.indent > col || (top.indent == col && indentless && !dash) {
                self.close();
            } else {
                break;
            }
        }
        let top = *self.frames.last()?;
        match (top.indent == col, top.kind, dash) {
            (true, FrameKind::Map { .. }, false) => self.map_entry(col, rest),
            (true, FrameKind::Seq { .. }, true) => self.seq_entry(col, rest),
            _ => None,
        }
    }

    /// Opens a block collection at `col` as the value for `slot`, and reads its first entry.
    fn open(&mut self, col: usize, seq: bool, indentless: bool, slot: Slot, rest: &'a str) -> Option<()> {
        if self.frames.len() >= MAX_DEPTH {
            return None;
        }
        self.charge(1)?;
        self.deliver(slot, if seq { Value::Other } else { Value::Mapping });
        let (kind, role) = if seq {
            (FrameKind::Seq { indentless }, Role::Other)
        } else {
            let role = if slot == Slot::Metadata { Role::Metadata } else { Role::Other };
            (FrameKind::Map { keys_from: self.keys.len() }, role)
        };
        self.frames.push(Frame { indent: col, kind, role });
        if seq { self.seq_entry(col, rest) } else { self.map_entry(col, rest) }
    }

    fn close(&mut self) {
        if let Some(Frame { kind: FrameKind::Map { keys_from }, .. }) = self.frames.pop() {
            self.keys.truncate(keys_from);
        }
    }

    /// `key: value` in the block mapping at `col`.
    fn map_entry(&mut self, col: usize, rest: &'a str) -> Option<()> {
        let (key, after) = block_key(rest)?;
        let frame = *self.frames.last()?;
        let FrameKind::Map { keys_from } = frame.kind else { return None };
        let slot = slot_for(frame.role, &key);
        self.key(key, keys_from)?;
        self.inline_value(col, true, after, slot)
    }

    /// `- item` in the block sequence at `col`.
    fn seq_entry(&mut self, col: usize, rest: &'a str) -> Option<()> {
        let after = &rest[1..];
        let item = after.trim_start_matches(' ');
        if item == "-" || item.starts_with("- ") {
            return None;
        }
        if !item.starts_with('#') && block_key(item).is_some() {
            // `- key: value`: a mapping whose keys stand at this column.
            let item_col = col + 1 + (after.len() - item.len());
            return self.open(item_col, false, false, Slot::None, item);
        }
        self.inline_value(col, false, after, Slot::None)
    }

    /// The rest of a line after a key's `:` or a dash, in the collection at `col`.
    fn inline_value(&mut self, col: usize, key: bool, after: &'a str, slot: Slot) -> Option<()> {
        let value = after.trim_start_matches(' ');
        if value.is_empty() || value.starts_with('#') {
            self.pending = Some(Pending { col, key, slot });
            return Some(());
        }
        self.limit = Some(col);
        let tail = match value.as_bytes()[0] {
            b'"' | b'\'' => {
                let (scalar, tail) = quoted(value)?;
                self.scalar(slot, scalar)?;
                tail
            }
            b'[' | b'{' => self.flow(value, slot, 0)?,
            b'|' | b'>' => {
                let header = &value[1..];
                end_of_line(header.strip_prefix(['-', '+']).unwrap_or(header))?;
                self.deliver(slot, Value::Other);
                self.block = Some(BlockScalar { parent: col, indent: None, bytes: 0 });
                return Some(());
            }
            _ => {
                let raw = plain(value)?.0;
                return self.scalar(slot, Scalar { raw, quote: None, escaped: false });
            }
        };
        end_of_line(tail)
    }

    /// A flow collection that closes on this line, as the value for `slot`; returns the text
    /// after it.
    fn flow(&mut self, s: &'a str, slot: Slot, depth: usize) -> Option<&'a str> {
        if self.frames.len() + depth >= MAX_DEPTH {
            return None;
        }
        self.charge(1)?;
        let map = s.starts_with('{');
        self.deliver(slot, if map { Value::Mapping } else { Value::Other });
        let role = if map && slot == Slot::Metadata { Role::Metadata } else { Role::Other };
        let close = if map { '}' } else { ']' };
        let keys_from = self.keys.len();
        let mut rest = s[1..].trim_start_matches(' ');
        if let Some(after) = rest.strip_prefix(close) {
            return Some(after);
        }
        loop {
            let (item_slot, item) = if map {
                let (key, after) = flow_key(rest)?;
                let item_slot = slot_for(role, &key);
                self.key(key, keys_from)?;
                (item_slot, after.trim_start_matches(' '))
            } else {
                (Slot::None, rest)
            };
            rest = self.flow_node(item, item_slot, depth + 1)?.trim_start_matches(' ');
            if let Some(after) = rest.strip_prefix(close) {
                self.keys.truncate(keys_from);
                return Some(after);
            }
            rest = rest.strip_prefix(',')?.trim_start_matches(' ');
            // Trailing commas and empty entries are left to the full parser.
            if rest.is_empty() || rest.starts_with([',', ']', '}']) {
                return None;
            }
        }
    }

    /// One node inside a flow collection; returns the text after it.
    fn flow_node(&mut self, s: &'a str, slot: Slot, depth: usize) -> Option<&'a str> {
        match s.as_bytes().first()? {
            b'[' | b'{' => self.flow(s, slot, depth),
            b'"' | b'\'' => {
                let (scalar, tail) = quoted(s)?;
                self.scalar(slot, scalar)?;
                Some(tail)
            }
            _ => {
                let (raw, tail) = flow_plain(s, b",]}")?;
                self.scalar(slot, Scalar { raw, quote: None, escaped: false })?;
                Some(tail)
            }
        }
    }

    fn scalar(&mut self, slot: Slot, scalar: Scalar<'a>) -> Option<()> {
        if scalar.quote.is_none() && !number_is_safe(scalar.raw) {
            return None;
        }
        self.charge(1 + scalar.raw.len() / SCALAR_BYTES_PER_NODE)?;
        self.deliver(slot, Value::Scalar(scalar));
        Some(())
    }

    /// Adds a key to the mapping whose keys start at `keys_from`.
    fn key(&mut self, key: Cow<'a, str>, keys_from: usize) -> Option<()> {
        self.charge(1 + key.len() / SCALAR_BYTES_PER_NODE);
        if self.keys[keys_from..].contains(&key) {
            return None;
        }
        self.keys.push(key);
        Some(())
    }

    fn charge(&mut self, nodes: usize) -> Option<()> {
        self.nodes += nodes;
        (self.nodes <= self.max_nodes).then_some(())
    }

    /// Records what the identity check needs of a value.
    fn deliver(&mut self, slot: Slot, value: Value<'_>) {
        let id = &mut self.identity;
        // The text of a string value, where it has the value's emptiness and ending: `''`
        // does not change those, double-quoted escapes may.
        let text = match value {
            Value::Scalar(s) => match s.quote {
                None => is_plain_string(s.raw).then_some(s.raw),
                Some(b'"') if s.escaped => None,
                Some(_) => Some(s.raw),
            },
            _ => None,
        };
        let known = match slot {
            Slot::None => true,
            Slot::ApiVersion => {
                id.api_version = text.is_some_and(|t| !t.is_empty());
                id.api_version
            }
            Slot::Kind => {
                id.kind = text.is_some_and(|t| !t.is_empty() && !t.ends_with("List"));
                id.kind
            }
            Slot::Metadata => {
                id.metadata = matches!(value, Value::Mapping);
                id.metadata
            }
            Slot::Name => {
                id.name = text.is_some_and(|t| !t.is_empty());
                id.name
            }
            Slot::Namespace => match value {
                Value::Null => true,
                Value::Scalar(s) if s.quote.is_none() && is_null(s.raw) => true,
                _ => text.is_some(),
            },
        };
        id.unsure |= !known;
    }
}

/// The identity field a key's value is, in a mapping of `role`.
fn slot_for(role: Role, key: &str) -> Slot {
    match (role, key) {
        (Role::Root, "apiVersion") => Slot::ApiVersion,
        (Role::Root, "kind") => Slot::Kind,
        (Role::Root, "metadata") => Slot::Metadata,
        (Role::Metadata, "name") => Slot::Name,
        (Role::Metadata, "namespace") => Slot::Namespace,
        _ => Slot::None,
    }
}

#[cfg(test)]
mod tests;
