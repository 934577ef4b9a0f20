//! Manifest files → Kubernetes objects: multi-document YAML (JSON is read as YAML), parsed into
//! JSON values under a node budget so that an alias bomb fails early instead of filling memory.
//!
//! Conversion rules, close to what `kubectl` (sigs.k8s.io/yaml) sends to the API server:
//! - mapping keys that are strings, numbers or booleans become their string form (`80: x` is
//!   the key `"80"`); null, list and mapping keys are refused as invalid YAML;
//! - merge keys (`<<: *base`) are applied, explicit keys winning over merged ones;
//! - a key given twice in one mapping is refused: tools disagree on which one wins, so it is
//!   almost always a mistake;
//! - custom tags (`!foo`) and numbers JSON cannot hold (`.inf`, `.nan`, beyond 64 bits) are refused;
//! - plain scalars are typed by YAML 1.2 (serde_norway): `yes`, `on`, `no` stay strings, where
//!   kubectl's YAML 1.1 would make them booleans.

mod convert;

use serde::de::{self, DeserializeSeed};
use serde_json::{Map, Value};

use self::convert::{Conversion, Failure, NodeSeed, describe};
use super::{Error, ManifestFile, Result};

pub(super) use self::convert::SCALAR_BYTES_PER_NODE;

/// Identity of one object found in the manifests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectId {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `Deployment`.
    pub kind: String,
    /// `metadata.namespace`; `None` when absent, null or empty.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// The file it came from, relative to the source path.
    pub file: String,
    /// 1-based index of its document in the file (empty documents count too).
    pub document: usize,
}

/// One object with its content as JSON, the form the API server takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// Where it came from and what it is.
    pub id: ObjectId,
    /// The whole document.
    pub value: Value,
}

/// Parses every file (multi-document YAML; JSON files are one document, YAML parser handles them) and checks each document is a Kubernetes object.
///
/// `max_yaml_nodes` bounds each document after alias expansion. Stops at the first bad document.
pub fn parse_objects(files: &[ManifestFile], max_yaml_nodes: usize) -> Result<Vec<ObjectId>> {
    let mut ids = Vec::new();
    for file in files {
        // Only the identities are kept, so memory holds one document's value at a time.
        each_object(file, max_yaml_nodes, |id, _| ids.push(id))?;
    }
    Ok(ids)
}

/// Parses one file into its objects with their content, under the same rules as [`parse_objects`].
pub fn parse_file(file: &ManifestFile, max_yaml_nodes: usize) -> Result<Vec<Object>> {
    let mut objects = Vec::new();
    each_object(file, max_yaml_nodes, |id, value| objects.push(Object { id, value }))?;
    Ok(objects)
}

fn each_object(file: &ManifestFile, max_nodes: usize, mut found: impl FnMut(ObjectId, Value)) -> Result<()> {
    let invalid_yaml = |document, message| Error::InvalidYaml { file: file.path.clone(), document, message };
    let text = std::str::from_utf8(&file.content).map_err(|e| {
        let prefix = &file.content[..e.valid_up_to()];
        let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
        let message = format!("not UTF-8 (first bad byte on line {line}); save the file as UTF-8");
        invalid_yaml(documents_in(prefix), message)
    })?;
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let mut conv = Conversion::new(max_nodes);
        let value = match (NodeSeed { conv: &mut conv }).deserialize(document) {
            Ok(value) => value,
            Err(e) if conv.failure == Some(Failure::Expansion) || is_repetition_limit(&e) => {
                return Err(Error::YamlExpansionLimit { file: file.path.clone(), document: index, limit: max_nodes });
            }
            // Returning here also matters for termination: after a syntax error the document
            // iterator keeps yielding the same failure.
            Err(e) => {
                let fix = match conv.failure {
                    Some(Failure::Unconvertible(fix)) => fix,
                    _ => "fix the syntax there",
                };
                return Err(invalid_yaml(index, format!("{e}; {fix}")));
            }
        };
        // Comment-only, `---`-only and `~` documents carry nothing; their index still counts.
        if value.is_null() {
            continue;
        }
        let id = object_id(&value, file, index).map_err(|message| Error::InvalidObject {
            file: file.path.clone(),
            document: index,
            message,
        })?;
        found(id, value);
    }
    Ok(())
}

/// serde_norway's own bound on alias replays (a multiple of the document's event count).
fn is_repetition_limit(e: &serde_norway::Error) -> bool {
    // The crate exposes no error kind; this text is fixed in its source (error.rs).
    e.to_string().contains("repetition limit exceeded")
}

/// How many documents a valid UTF-8 prefix reaches into: the 1-based index of the document
/// holding the byte right after it.
fn documents_in(prefix: &[u8]) -> usize {
    let text = std::str::from_utf8(prefix).expect("the prefix is the valid part of the content");
    let mut count = 0;
    for document in serde_norway::Deserializer::from_str(text) {
        count += 1;
        // Stop at a syntax error (the cut may fall mid-token): the iterator would repeat it forever.
        if <de::IgnoredAny as serde::Deserialize>::deserialize(document).is_err() {
            break;
        }
    }
    count.max(1)
}

fn object_id(value: &Value, file: &ManifestFile, document: usize) -> std::result::Result<ObjectId, String> {
    let Value::Object(object) = value else {
        return Err(format!("is {}, not a mapping", describe(value)));
    };
    let api_version = required_string(object, "apiVersion", "apiVersion")?;
    let kind = required_string(object, "kind", "kind")?;
    if kind.ends_with("List") && object.get("items").is_some_and(Value::is_array) {
        return Err(format!("is a `kind: {kind}`; put each item in its own document, separated by `---`"));
    }
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => return Err("no `metadata`".to_owned()),
        Some(Value::Object(metadata)) => metadata,
        Some(other) => return Err(format!("`metadata` is {}, not a mapping", describe(other))),
    };
    let name = required_string(metadata, "name", "metadata.name")?;
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => None,
        // The API server treats an empty namespace as unset.
        Some(Value::String(ns)) if ns.is_empty() => None,
        Some(Value::String(ns)) => Some(ns.clone()),
        Some(other) => return Err(format!("`metadata.namespace` is {}, not a string", describe(other))),
    };
    Ok(ObjectId { api_version, kind, namespace, name, file: file.path.clone(), document })
}

fn required_string(object: &Map<String, Value>, key: &str, shown: &str) -> std::result::Result<String, String> {
    match object.get(key) {
        None | Some(Value::Null) => Err(format!("no `{shown}`")),
        Some(Value::String(s)) if s.is_empty() => Err(format!("`{shown}` is empty")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("`{shown}` is {}, not a string (quote it)", describe(other))),
    }
}

#[cfg(test)]
mod tests;
