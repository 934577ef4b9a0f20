//! Manifest files → Kubernetes objects: multi-document YAML (JSON is read as YAML), parsed into
//! JSON values under a node budget so that an alias bomb fails early instead of filling memory.
//! [`check_file`] applies the same rules but builds only each document's shape, not its value.
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
mod fast;
mod shape;
mod values;

use serde::de::{self, DeserializeSeed};
use serde_json::Value;

use self::convert::{Build, Conversion, Failure, NodeSeed};
use self::shape::Shapes;
use self::values::Values;
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

/// Checks one file under the same rules as [`parse_objects`] and returns how many objects it holds.
pub fn check_file(file: &ManifestFile, max_yaml_nodes: usize) -> Result<usize> {
    check_content(&file.path, &file.content, max_yaml_nodes)
}

/// [`check_file`] on a file's path and content, lent rather than owned.
///
/// A recognizer of the plain YAML most manifests are written in answers first, many times
/// faster, but only where it is sure; the full parser decides everything else.
pub fn check_content(path: &str, content: &[u8], max_yaml_nodes: usize) -> Result<usize> {
    match fast::objects(content, max_yaml_nodes) {
        Some(count) => Ok(count),
        // Rare, and slow anyway: the copy costs little next to the parse.
        None => check_parsed(&ManifestFile { path: path.to_owned(), content: content.to_vec() }, max_yaml_nodes),
    }
}

/// [`check_file`] by the full parser: the authority on every file, and the only path that
/// explains what is wrong.
fn check_parsed(file: &ManifestFile, max_yaml_nodes: usize) -> Result<usize> {
    let mut count = 0;
    // Shapes, not values: the same verdicts without copying the file's content.
    each_document(file, max_yaml_nodes, Shapes::default(), |index, shape| {
        identify(file, index, &shape)?;
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// Parses one file into its objects with their content, under the same rules as [`parse_objects`].
pub fn parse_file(file: &ManifestFile, max_yaml_nodes: usize) -> Result<Vec<Object>> {
    let mut objects = Vec::new();
    each_object(file, max_yaml_nodes, |id, value| objects.push(Object { id, value }))?;
    Ok(objects)
}

fn each_object(file: &ManifestFile, max_nodes: usize, mut found: impl FnMut(ObjectId, Value)) -> Result<()> {
    each_document(file, max_nodes, Values, |index, value| {
        let id = identify(file, index, &value)?.object_id(file, index);
        found(id, value);
        Ok(())
    })
}

/// Converts each non-empty document of `file` with `build` and hands it to `found` with its
/// 1-based index.
fn each_document<'de, B: Build<'de>>(
    file: &'de ManifestFile,
    max_nodes: usize,
    build: B,
    mut found: impl FnMut(usize, B::Node) -> Result<()>,
) -> Result<()> {
    let invalid_yaml = |document, message| Error::InvalidYaml { file: file.path.clone(), document, message };
    let text = std::str::from_utf8(&file.content).map_err(|e| {
        let prefix = &file.content[..e.valid_up_to()];
        let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
        let message = format!("not UTF-8 (first bad byte on line {line}); save the file as UTF-8");
        invalid_yaml(documents_in(prefix), message)
    })?;
    let mut conv = Conversion::new(max_nodes, build);
    for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        conv.restart();
        let node = match (NodeSeed { conv: &mut conv, depth: 0 }).deserialize(document) {
            Ok(node) => node,
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
        if node.kind() == Kind::Null {
            continue;
        }
        found(index, node)?;
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

/// What a converted document is, for the identity check and for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    List,
    Mapping,
}

impl Kind {
    /// The kind in words, for messages.
    fn words(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::List => "a list",
            Kind::Mapping => "a mapping",
        }
    }
}

/// What the identity check reads of a converted node.
trait View {
    /// What kind of node it is.
    fn kind(&self) -> Kind;
    /// Its text, if it is a string whose text was kept.
    fn as_str(&self) -> Option<&str>;
    /// The value at `key`, if it is a mapping with that key.
    fn get(&self, key: &str) -> Option<&Self>;
}

/// The identity of one document, borrowed from it.
struct Identity<'a> {
    api_version: &'a str,
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
}

impl Identity<'_> {
    fn object_id(&self, file: &ManifestFile, document: usize) -> ObjectId {
        ObjectId {
            api_version: self.api_version.to_owned(),
            kind: self.kind.to_owned(),
            namespace: self.namespace.map(str::to_owned),
            name: self.name.to_owned(),
            file: file.path.clone(),
            document,
        }
    }
}

/// Checks that a document is a Kubernetes object and reads its identity.
fn identify<'a, N: View>(file: &ManifestFile, document: usize, node: &'a N) -> Result<Identity<'a>> {
    identity(node).map_err(|message| Error::InvalidObject { file: file.path.clone(), document, message })
}

/// The identity rules, in order: the message says which one the document breaks first.
fn identity<N: View>(node: &N) -> std::result::Result<Identity<'_>, String> {
    if node.kind() != Kind::Mapping {
        return Err(format!("is {}, not a mapping", node.kind().words()));
    }
    let api_version = required_string(node, "apiVersion", "apiVersion")?;
    let kind = required_string(node, "kind", "kind")?;
    if kind.ends_with("List") && node.get("items").is_some_and(|items| items.kind() == Kind::List) {
        return Err(format!("is a `kind: {kind}`; put each item in its own document, separated by `---`"));
    }
    let metadata = match node.get("metadata").map(|metadata| (metadata, metadata.kind())) {
        None | Some((_, Kind::Null)) => return Err("no `metadata`".to_owned()),
        Some((metadata, Kind::Mapping)) => metadata,
        Some((_, other)) => return Err(format!("`metadata` is {}, not a mapping", other.words())),
    };
    let name = required_string(metadata, "name", "metadata.name")?;
    let namespace = match metadata.get("namespace") {
        None => None,
        Some(ns) => match (ns.kind(), ns.as_str()) {
            // The API server treats an empty namespace as unset.
            (Kind::Null, _) | (_, Some("")) => None,
            (_, Some(ns)) => Some(ns),
            (other, None) => return Err(format!("`metadata.namespace` is {}, not a string", other.words())),
        },
    };
    Ok(Identity { api_version, kind, namespace, name })
}

fn required_string<'a, N: View>(object: &'a N, key: &str, shown: &str) -> std::result::Result<&'a str, String> {
    let Some(value) = object.get(key).filter(|value| value.kind() != Kind::Null) else {
        return Err(format!("no `{shown}`"));
    };
    match value.as_str() {
        Some("") => Err(format!("`{shown}` is empty")),
        Some(s) => Ok(s),
        None => Err(format!("`{shown}` is {}, not a string (quote it)", value.kind().words())),
    }
}

#[cfg(test)]
mod tests;
