//! The shape of a document: what the checks read of it, built without copying the document.
//!
//! Checking a file needs the conversion's verdict on every node but the content of only a
//! few: the identity check reads the root mapping's entries and the entries of mappings right
//! under it (`metadata.name`). So a [`Shape`] keeps the text of strings and the entries of
//! mappings down to that depth, and below it only what kind of node each one is. Mapping
//! keys are still collected at every depth, for the duplicate-key rule, on one stack shared
//! by the document's mappings.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::Number;

use super::convert::Build;
use super::{Kind, View};

/// The deepest nodes whose content is kept: `metadata.name` stands at depth 2.
const KEPT_DEPTH: usize = 2;

/// Up to this many keys, a mapping finds a duplicate by scanning its keys; past it, by hashing.
const SCANNED_KEYS: usize = 16;

/// One converted node, kept in full only near the root.
#[derive(Debug)]
pub(super) enum Shape<'de> {
    Null,
    Bool,
    Number,
    /// A string, with its text when it stands no deeper than [`KEPT_DEPTH`].
    String(Option<Cow<'de, str>>),
    List,
    /// A mapping, with its entries when they stand no deeper than [`KEPT_DEPTH`].
    Mapping(Option<Vec<(Cow<'de, str>, Shape<'de>)>>),
}

impl View for Shape<'_> {
    fn kind(&self) -> Kind {
        match self {
            Shape::Null => Kind::Null,
            Shape::Bool => Kind::Bool,
            Shape::Number => Kind::Number,
            Shape::String(_) => Kind::String,
            Shape::List => Kind::List,
            Shape::Mapping(_) => Kind::Mapping,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Shape::String(text) => text.as_deref(),
            _ => None,
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Shape::Mapping(Some(entries)) => entries.iter().find(|(k, _)| k == key).map(|(_, value)| value),
            _ => None,
        }
    }
}

/// Builds [`Shape`]s.
#[derive(Default)]
pub(super) struct Shapes<'de> {
    /// The keys of the mappings being read, outermost first: each mapping owns the tail
    /// from its `start`, and gives it back when it ends.
    keys: Vec<Cow<'de, str>>,
}

/// A mapping being read.
pub(super) struct OpenMapping<'de> {
    /// Where its keys start in [`Shapes::keys`].
    start: usize,
    /// Its keys again, hashed, once it has more than [`SCANNED_KEYS`].
    index: Option<HashSet<Cow<'de, str>>>,
    /// Its entries, when they are kept.
    entries: Option<Vec<(Cow<'de, str>, Shape<'de>)>>,
}

impl<'de> Build<'de> for Shapes<'de> {
    type Node = Shape<'de>;
    type List = ();
    type Mapping = OpenMapping<'de>;

    fn null(&mut self) -> Shape<'de> {
        Shape::Null
    }

    fn bool(&mut self, _: bool) -> Shape<'de> {
        Shape::Bool
    }

    fn number(&mut self, _: Number) -> Shape<'de> {
        Shape::Number
    }

    fn str(&mut self, s: &str, depth: usize) -> Shape<'de> {
        Shape::String((depth <= KEPT_DEPTH).then(|| Cow::Owned(s.to_owned())))
    }

    fn borrowed_str(&mut self, s: &'de str, depth: usize) -> Shape<'de> {
        Shape::String((depth <= KEPT_DEPTH).then_some(Cow::Borrowed(s)))
    }

    fn list(&mut self) {}

    fn push(&mut self, _: &mut (), _: Shape<'de>) {}

    fn end_list(&mut self, _: ()) -> Shape<'de> {
        Shape::List
    }

    fn mapping(&mut self, depth: usize) -> OpenMapping<'de> {
        OpenMapping { start: self.keys.len(), index: None, entries: (depth < KEPT_DEPTH).then(Vec::new) }
    }

    fn contains(&self, mapping: &OpenMapping<'de>, key: &str) -> bool {
        match &mapping.index {
            Some(index) => index.contains(key),
            None => self.keys[mapping.start..].iter().any(|k| k == key),
        }
    }

    fn insert(&mut self, mapping: &mut OpenMapping<'de>, key: Cow<'de, str>, value: Shape<'de>) {
        if let Some(entries) = &mut mapping.entries {
            entries.push((key.clone(), value));
        }
        match &mut mapping.index {
            Some(index) => {
                index.insert(key);
            }
            None => {
                self.keys.push(key);
                let own = &self.keys[mapping.start..];
                if own.len() > SCANNED_KEYS {
                    mapping.index = Some(own.iter().cloned().collect());
                    self.keys.truncate(mapping.start);
                }
            }
        }
    }

    fn end_mapping(&mut self, mapping: OpenMapping<'de>) -> Shape<'de> {
        self.keys.truncate(mapping.start);
        Shape::Mapping(mapping.entries)
    }

    fn into_entries(node: Shape<'de>) -> impl Iterator<Item = (Cow<'de, str>, Shape<'de>)> {
        match node {
            Shape::Mapping(entries) => entries.unwrap_or_default().into_iter(),
            _ => Vec::new().into_iter(),
        }
    }
}
