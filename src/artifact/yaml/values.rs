//! Documents as JSON values, the form the API server takes.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use super::convert::Build;
use super::{Kind, View};

/// Builds every node as a JSON value.
pub(super) struct Values;

impl<'de> Build<'de> for Values {
    type Node = Value;
    type List = Vec<Value>;
    type Mapping = Map<String, Value>;

    fn null(&mut self) -> Value {
        Value::Null
    }

    fn bool(&mut self, v: bool) -> Value {
        Value::Bool(v)
    }

    fn number(&mut self, n: Number) -> Value {
        Value::Number(n)
    }

    fn str(&mut self, s: &str, _: usize) -> Value {
        Value::String(s.to_owned())
    }

    fn list(&mut self) -> Vec<Value> {
        Vec::new()
    }

    fn push(&mut self, list: &mut Vec<Value>, item: Value) {
        list.push(item);
    }

    fn end_list(&mut self, list: Vec<Value>) -> Value {
        Value::Array(list)
    }

    fn mapping(&mut self, _: usize) -> Map<String, Value> {
        Map::new()
    }

    fn contains(&self, mapping: &Map<String, Value>, key: &str) -> bool {
        mapping.contains_key(key)
    }

    fn insert(&mut self, mapping: &mut Map<String, Value>, key: Cow<'de, str>, value: Value) {
        mapping.insert(key.into_owned(), value);
    }

    fn end_mapping(&mut self, mapping: Map<String, Value>) -> Value {
        Value::Object(mapping)
    }

    fn into_entries(node: Value) -> impl Iterator<Item = (Cow<'de, str>, Value)> {
        let entries = match node {
            Value::Object(mapping) => Some(mapping.into_iter().map(|(key, value)| (Cow::Owned(key), value))),
            _ => None,
        };
        entries.into_iter().flatten()
    }
}

impl View for Value {
    fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Array(_) => Kind::List,
            Value::Object(_) => Kind::Mapping,
        }
    }

    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }

    fn get(&self, key: &str) -> Option<&Self> {
        Value::get(self, key)
    }
}
