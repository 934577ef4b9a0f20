//! One YAML document → one converted node, under a node budget.
//!
//! serde_norway replays an alias by visiting its anchor's events again, so a visitor that
//! counts what it builds sees the expanded size and can stop an alias bomb before it fills
//! memory. Keys, merge keys, tags and numbers are converted as the parent module's doc says.
//!
//! Every rule lives in the visitors here; what a node becomes is left to a [`Build`]: a JSON
//! value ([`super::values::Values`]) or only the shape the checks read ([`super::shape::Shapes`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::{Kind, View};

/// A string scalar costs one node plus one per this many bytes, so that aliases to one long
/// string cannot expand to gigabytes while staying under the node count.
pub(in crate::artifact) const SCALAR_BYTES_PER_NODE: usize = 256;

/// What a conversion makes of the nodes it reads.
///
/// The visitors call these only for nodes they have charged and accepted, so an
/// implementation decides what to keep, never what is valid. `depth` is where a node stands
/// in the converted document: 0 for the root, its entries at 1, and so on.
pub(super) trait Build<'de> {
    /// A converted node.
    type Node: View;
    /// A list being filled.
    type List;
    /// A mapping being filled.
    type Mapping;

    /// A null.
    fn null(&mut self) -> Self::Node;
    /// A boolean.
    fn bool(&mut self, v: bool) -> Self::Node;
    /// A number JSON can hold.
    fn number(&mut self, n: Number) -> Self::Node;
    /// A string only lent for the call.
    fn str(&mut self, s: &str, depth: usize) -> Self::Node;
    /// A string borrowed from the document's text.
    fn borrowed_str(&mut self, s: &'de str, depth: usize) -> Self::Node {
        self.str(s, depth)
    }

    /// An empty list.
    fn list(&mut self) -> Self::List;
    /// Appends an item to `list`.
    fn push(&mut self, list: &mut Self::List, item: Self::Node);
    /// The finished list.
    fn end_list(&mut self, list: Self::List) -> Self::Node;

    /// An empty mapping at `depth`.
    fn mapping(&mut self, depth: usize) -> Self::Mapping;
    /// Whether `mapping` already has `key`.
    fn contains(&self, mapping: &Self::Mapping, key: &str) -> bool;
    /// Adds an entry whose key `mapping` does not have yet.
    fn insert(&mut self, mapping: &mut Self::Mapping, key: Cow<'de, str>, value: Self::Node);
    /// The finished mapping; no key is added to it after this.
    fn end_mapping(&mut self, mapping: Self::Mapping) -> Self::Node;
    /// The entries of a finished mapping, in order; none for other nodes.
    fn into_entries(node: Self::Node) -> impl Iterator<Item = (Cow<'de, str>, Self::Node)>;
}

/// One document's conversion: nodes built so far against the limit, why it failed, and what
/// the nodes become.
pub(super) struct Conversion<B> {
    used: usize,
    limit: usize,
    /// Set when the conversion itself (not the parser) stopped.
    pub(super) failure: Option<Failure>,
    build: B,
}

/// Why a conversion stopped, known here but not to serde_norway's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The node budget ran out.
    Expansion,
    /// The YAML is well-formed but cannot become JSON; the text says how to fix it.
    Unconvertible(&'static str),
}

impl<B> Conversion<B> {
    /// A fresh budget of `limit` nodes, building with `build`.
    pub(super) fn new(limit: usize, build: B) -> Self {
        Self { used: 0, limit, failure: None, build }
    }

    /// A fresh budget for the next document, keeping the builder (and what it has allocated).
    pub(super) fn restart(&mut self) {
        self.used = 0;
        self.failure = None;
    }

    fn charge<E: de::Error>(&mut self, nodes: usize) -> std::result::Result<(), E> {
        self.used = self.used.saturating_add(nodes);
        if self.used > self.limit {
            self.failure = Some(Failure::Expansion);
            return Err(E::custom(format_args!("more than {} YAML nodes", self.limit)));
        }
        Ok(())
    }

    fn charge_str<E: de::Error>(&mut self, s: &str) -> std::result::Result<(), E> {
        self.charge(1 + s.len() / SCALAR_BYTES_PER_NODE)
    }

    /// An error describing what is wrong; `fix` is appended after serde_norway adds the position.
    fn refuse<E: de::Error>(&mut self, what: impl fmt::Display, fix: &'static str) -> E {
        self.failure = Some(Failure::Unconvertible(fix));
        E::custom(what)
    }
}

/// Builds one YAML node, charging the budget before building anything.
///
/// serde_norway replays an alias by visiting its anchor's events again, so every expanded
/// node passes through here and is counted.
pub(super) struct NodeSeed<'a, B> {
    /// The document's budget, failure record and builder.
    pub(super) conv: &'a mut Conversion<B>,
    /// Where the node stands in the converted document.
    pub(super) depth: usize,
}

impl<'de, B: Build<'de>> DeserializeSeed<'de> for NodeSeed<'_, B> {
    type Value = B::Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<B::Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Advice for a number JSON cannot hold.
const QUOTE_IT: &str = "quote it if it is meant as a string";

impl<'de, B: Build<'de>> Visitor<'de> for NodeSeed<'_, B> {
    type Value = B::Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value that JSON can hold")
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<B::Node, E> {
        self.conv.charge(1)?;
        Ok(self.conv.build.null())
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<B::Node, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<B::Node, E> {
        self.conv.charge(1)?;
        Ok(self.conv.build.bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<B::Node, E> {
        self.conv.charge(1)?;
        Ok(self.conv.build.number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<B::Node, E> {
        self.conv.charge(1)?;
        Ok(self.conv.build.number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<B::Node, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(self.conv.refuse(format_args!("the integer {v} does not fit in 64 bits"), QUOTE_IT)),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<B::Node, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(self.conv.refuse(format_args!("the integer {v} does not fit in 64 bits"), QUOTE_IT)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<B::Node, E> {
        self.conv.charge(1)?;
        match Number::from_f64(v) {
            Some(n) => Ok(self.conv.build.number(n)),
            None => Err(self.conv.refuse(format_args!("the number {v} cannot be represented in JSON"), QUOTE_IT)),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<B::Node, E> {
        self.conv.charge_str(v)?;
        Ok(self.conv.build.str(v, self.depth))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<B::Node, E> {
        self.conv.charge_str(v)?;
        Ok(self.conv.build.borrowed_str(v, self.depth))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<B::Node, A::Error> {
        self.conv.charge(1)?;
        let mut list = self.conv.build.list();
        while let Some(item) = seq.next_element_seed(NodeSeed { conv: &mut *self.conv, depth: self.depth + 1 })? {
            self.conv.build.push(&mut list, item);
        }
        Ok(self.conv.build.end_list(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<B::Node, A::Error> {
        build_map(self.conv, map, self.depth)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> std::result::Result<B::Node, A::Error> {
        refuse_tag(self.conv, data)
    }
}

/// A mapping's entries, keys in string form, merge keys applied.
fn build_map<'de, B: Build<'de>, A: MapAccess<'de>>(
    conv: &mut Conversion<B>,
    mut map: A,
    depth: usize,
) -> std::result::Result<B::Node, A::Error> {
    conv.charge(1)?;
    let mut mapping = conv.build.mapping(depth);
    let mut merged = Vec::new();
    while let Some(key) = map.next_key_seed(KeySeed { conv: &mut *conv, seen: &mapping })? {
        if key == MERGE_KEY {
            merged.extend(map.next_value_seed(MergeSeed { conv: &mut *conv, depth })?);
        } else {
            let value = map.next_value_seed(NodeSeed { conv: &mut *conv, depth: depth + 1 })?;
            conv.build.insert(&mut mapping, key, value);
        }
    }
    // YAML merge keys: explicit keys win, then earlier merged mappings over later ones.
    for source in merged {
        for (key, value) in B::into_entries(source) {
            if !conv.build.contains(&mapping, &key) {
                conv.build.insert(&mut mapping, key, value);
            }
        }
    }
    Ok(conv.build.end_mapping(mapping))
}

/// The YAML merge key: its value's entries are merged into the mapping holding it.
const MERGE_KEY: &str = "<<";

/// Reads one mapping key as its string form, refusing keys JSON cannot hold and duplicates.
///
/// Checking here, inside the key's own deserialization, lets serde_norway attach the key's
/// line and column to the error.
struct KeySeed<'a, B, M> {
    conv: &'a mut Conversion<B>,
    /// The mapping being read (a `B::Mapping`), with the keys it has so far.
    seen: &'a M,
}

impl<'de, B: Build<'de>> KeySeed<'_, B, B::Mapping> {
    fn key<E: de::Error>(self, key: Cow<'de, str>) -> std::result::Result<Cow<'de, str>, E> {
        if key != MERGE_KEY && self.conv.build.contains(self.seen, &key) {
            return Err(self.conv.refuse(format_args!("duplicate key `{key}`"), "keep one of them"));
        }
        Ok(key)
    }

    fn refuse<E: de::Error>(self, what: &str) -> std::result::Result<Cow<'de, str>, E> {
        let fix = "keys must be strings, numbers or booleans";
        Err(self.conv.refuse(format_args!("a mapping key is {what}"), fix))
    }

    /// A key that is not a string, in its string form.
    fn typed<E: de::Error>(self, key: impl ToString) -> std::result::Result<Cow<'de, str>, E> {
        self.conv.charge(1)?;
        self.key(Cow::Owned(key.to_string()))
    }
}

impl<'de, B: Build<'de>> DeserializeSeed<'de> for KeySeed<'_, B, B::Mapping> {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, B: Build<'de>> Visitor<'de> for KeySeed<'_, B, B::Mapping> {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        self.conv.charge_str(v)?;
        self.key(Cow::Owned(v.to_owned()))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        self.conv.charge_str(v)?;
        self.key(Cow::Borrowed(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
        self.typed(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        self.typed(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        self.typed(v)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Self::Value, E> {
        self.typed(v)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Self::Value, E> {
        self.typed(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
        self.conv.charge(1)?;
        match Number::from_f64(v) {
            Some(n) => self.key(Cow::Owned(n.to_string())),
            None => self.refuse(&v.to_string()),
        }
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        self.refuse("null")
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        self.refuse("null")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<Self::Value, A::Error> {
        self.refuse("a list")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> std::result::Result<Self::Value, A::Error> {
        self.refuse("a mapping")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> std::result::Result<Self::Value, A::Error> {
        refuse_tag(self.conv, data)
    }
}

/// Reads the value of a merge key (`<<`): one mapping, or a list of mappings.
///
/// A merge source stands where the mapping it merges into stands, so it is built at that
/// mapping's depth.
struct MergeSeed<'a, B> {
    conv: &'a mut Conversion<B>,
    depth: usize,
}

impl<'de, B: Build<'de>> DeserializeSeed<'de> for MergeSeed<'_, B> {
    type Value = Vec<B::Node>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, B: Build<'de>> Visitor<'de> for MergeSeed<'_, B> {
    type Value = Vec<B::Node>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping or a list of mappings to merge")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        Ok(vec![build_map(self.conv, map, self.depth)?])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        self.conv.charge(1)?;
        let mut sources = Vec::new();
        while let Some(item) = seq.next_element_seed(NodeSeed { conv: &mut *self.conv, depth: self.depth })? {
            match item.kind() {
                Kind::Mapping => sources.push(item),
                other => return self.not_mapping(other.words()),
            }
        }
        Ok(sources)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> std::result::Result<Self::Value, A::Error> {
        refuse_tag(self.conv, data)
    }

    // Scalars: anything but a mapping or a list is refused.
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        self.not_mapping("null")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
        self.not_mapping("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
        self.not_mapping("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
        self.not_mapping("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
        self.not_mapping("a number")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Self::Value, E> {
        self.not_mapping("a string")
    }
}

impl<B> MergeSeed<'_, B> {
    fn not_mapping<E: de::Error, T>(self, what: &str) -> std::result::Result<T, E> {
        let fix = "`<<` takes a mapping or a list of mappings, usually an alias such as `*defaults`";
        Err(self.conv.refuse(format_args!("`<<` was given {what}"), fix))
    }
}

/// serde_norway presents a node with a custom tag (`!foo bar`) as an enum named by the tag.
fn refuse_tag<'de, A: EnumAccess<'de>, B, T>(conv: &mut Conversion<B>, data: A) -> std::result::Result<T, A::Error> {
    let (tag, _) = data.variant::<String>()?;
    Err(conv.refuse(format_args!("the tag `!{tag}` is not supported in Kubernetes manifests"), "remove the tag"))
}
