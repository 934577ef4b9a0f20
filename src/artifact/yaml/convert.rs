//! One YAML document → one JSON value, under a node budget.
//!
//! serde_norway replays an alias by visiting its anchor's events again, so a visitor that
//! counts what it builds sees the expanded size and can stop an alias bomb before it fills
//! memory. Keys, merge keys, tags and numbers are converted as the parent module's doc says.

use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A string scalar costs one node plus one per this many bytes, so that aliases to one long
/// string cannot expand to gigabytes while staying under the node count.
pub(in crate::artifact) const SCALAR_BYTES_PER_NODE: usize = 256;

/// One document's conversion: nodes built so far against the limit, and why it failed.
pub(super) struct Conversion {
    used: usize,
    limit: usize,
    /// Set when the conversion itself (not the parser) stopped.
    pub(super) failure: Option<Failure>,
}

/// Why a conversion stopped, known here but not to serde_norway's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The node budget ran out.
    Expansion,
    /// The YAML is well-formed but cannot become JSON; the text says how to fix it.
    Unconvertible(&'static str),
}

impl Conversion {
    /// A fresh budget of `limit` nodes.
    pub(super) fn new(limit: usize) -> Self {
        Self { used: 0, limit, failure: None }
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

/// Builds one YAML node as a JSON value, charging the budget before allocating anything.
///
/// serde_norway replays an alias by visiting its anchor's events again, so every expanded
/// node passes through here and is counted.
pub(super) struct NodeSeed<'a> {
    /// The document's budget and failure record.
    pub(super) conv: &'a mut Conversion,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Advice for a number JSON cannot hold.
const QUOTE_IT: &str = "quote it if it is meant as a string";

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value that JSON can hold")
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        self.conv.charge(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Value, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        self.conv.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        self.conv.charge(1)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        self.conv.charge(1)?;
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Value, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(self.conv.refuse(format_args!("the integer {v} does not fit in 64 bits"), QUOTE_IT)),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(self.conv.refuse(format_args!("the integer {v} does not fit in 64 bits"), QUOTE_IT)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        self.conv.charge(1)?;
        match Number::from_f64(v) {
            Some(n) => Ok(Value::Number(n)),
            None => Err(self.conv.refuse(format_args!("the number {v} cannot be represented in JSON"), QUOTE_IT)),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        self.conv.charge_str(v)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        self.conv.charge(1)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(NodeSeed { conv: &mut *self.conv })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Value, A::Error> {
        build_map(self.conv, map).map(Value::Object)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> std::result::Result<Value, A::Error> {
        refuse_tag(self.conv, data)
    }
}

/// A mapping's entries, keys in string form, merge keys applied.
fn build_map<'de, A: MapAccess<'de>>(
    conv: &mut Conversion,
    mut map: A,
) -> std::result::Result<Map<String, Value>, A::Error> {
    conv.charge(1)?;
    let mut explicit = Map::new();
    let mut merged = Vec::new();
    while let Some(key) = map.next_key_seed(KeySeed { conv: &mut *conv, seen: &explicit })? {
        if key == MERGE_KEY {
            merged.extend(map.next_value_seed(MergeSeed { conv: &mut *conv })?);
        } else {
            let value = map.next_value_seed(NodeSeed { conv: &mut *conv })?;
            explicit.insert(key, value);
        }
    }
    // YAML merge keys: explicit keys win, then earlier merged mappings over later ones.
    for source in merged {
        for (key, value) in source {
            explicit.entry(key).or_insert(value);
        }
    }
    Ok(explicit)
}

/// The YAML merge key: its value's entries are merged into the mapping holding it.
const MERGE_KEY: &str = "<<";

/// Reads one mapping key as its string form, refusing keys JSON cannot hold and duplicates.
///
/// Checking here, inside the key's own deserialization, lets serde_norway attach the key's
/// line and column to the error.
struct KeySeed<'a> {
    conv: &'a mut Conversion,
    /// Keys already in the mapping.
    seen: &'a Map<String, Value>,
}

impl KeySeed<'_> {
    fn key<E: de::Error>(self, key: String) -> std::result::Result<String, E> {
        if key != MERGE_KEY && self.seen.contains_key(&key) {
            return Err(self.conv.refuse(format_args!("duplicate key `{key}`"), "keep one of them"));
        }
        Ok(key)
    }

    fn refuse<E: de::Error>(self, what: &str) -> std::result::Result<String, E> {
        let fix = "keys must be strings, numbers or booleans";
        Err(self.conv.refuse(format_args!("a mapping key is {what}"), fix))
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<String, E> {
        self.conv.charge_str(v)?;
        self.key(v.to_owned())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<String, E> {
        self.conv.charge(1)?;
        self.key(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<String, E> {
        self.conv.charge(1)?;
        self.key(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<String, E> {
        self.conv.charge(1)?;
        self.key(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<String, E> {
        self.conv.charge(1)?;
        self.key(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<String, E> {
        self.conv.charge(1)?;
        self.key(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<String, E> {
        self.conv.charge(1)?;
        match Number::from_f64(v) {
            Some(n) => self.key(n.to_string()),
            None => self.refuse(&v.to_string()),
        }
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<String, E> {
        self.refuse("null")
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<String, E> {
        self.refuse("null")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<String, A::Error> {
        self.refuse("a list")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> std::result::Result<String, A::Error> {
        self.refuse("a mapping")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> std::result::Result<String, A::Error> {
        refuse_tag(self.conv, data)
    }
}

/// Reads the value of a merge key (`<<`): one mapping, or a list of mappings.
struct MergeSeed<'a> {
    conv: &'a mut Conversion,
}

impl<'de> DeserializeSeed<'de> for MergeSeed<'_> {
    type Value = Vec<Map<String, Value>>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MergeSeed<'_> {
    type Value = Vec<Map<String, Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping or a list of mappings to merge")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        Ok(vec![build_map(self.conv, map)?])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        self.conv.charge(1)?;
        let mut sources = Vec::new();
        while let Some(item) = seq.next_element_seed(NodeSeed { conv: &mut *self.conv })? {
            match item {
                Value::Object(source) => sources.push(source),
                other => return self.not_mapping(describe(&other)),
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

impl MergeSeed<'_> {
    fn not_mapping<E: de::Error, T>(self, what: &str) -> std::result::Result<T, E> {
        let fix = "`<<` takes a mapping or a list of mappings, usually an alias such as `*defaults`";
        Err(self.conv.refuse(format_args!("`<<` was given {what}"), fix))
    }
}

/// serde_norway presents a node with a custom tag (`!foo bar`) as an enum named by the tag.
fn refuse_tag<'de, A: EnumAccess<'de>, T>(conv: &mut Conversion, data: A) -> std::result::Result<T, A::Error> {
    let (tag, _) = data.variant::<String>()?;
    Err(conv.refuse(format_args!("the tag `!{tag}` is not supported in Kubernetes manifests"), "remove the tag"))
}

/// What a value is, in words, for messages.
pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
