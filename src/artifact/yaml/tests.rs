use super::*;

const LIMIT: usize = 100_000;

fn file(path: &str, content: &str) -> ManifestFile {
    ManifestFile { path: path.to_owned(), content: content.as_bytes().to_vec() }
}

fn ids(path: &str, content: &str) -> Result<Vec<ObjectId>> {
    parse_objects(&[file(path, content)], LIMIT)
}

/// (document, kind, name, namespace) of each object, for compact assertions.
fn summary(ids: &[ObjectId]) -> Vec<(usize, &str, &str, Option<&str>)> {
    ids.iter().map(|id| (id.document, id.kind.as_str(), id.name.as_str(), id.namespace.as_deref())).collect()
}

#[test]
fn multi_document_yaml_skips_empty_documents_but_counts_them() {
    let yaml = "\
# A leading comment is not a document.
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
# only a comment
---
---
~
---
apiVersion: v1
kind: Secret
metadata:
  name: b
  namespace: prod
...
---
";
    let found = ids("deploy/app.yaml", yaml).unwrap();
    assert_eq!(summary(&found), [(1, "ConfigMap", "a", None), (5, "Secret", "b", Some("prod"))]);
    assert!(found.iter().all(|id| id.file == "deploy/app.yaml" && id.api_version == "v1"));
}

#[test]
fn empty_files_yield_no_objects() {
    for content in ["", "\n", "# nothing here\n", "---\n", "---\n---\n", "~\n", "null\n"] {
        assert_eq!(ids("empty.yaml", content).unwrap(), [], "{content:?}");
    }
}

#[test]
fn json_file_is_one_document() {
    let json = r#"{
  "apiVersion": "apps/v1",
  "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
  "spec": {"replicas": 2, "ratio": 0.5, "paused": false, "x": null}
}"#;
    let objects = parse_file(&file("web.json", json), LIMIT).unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(summary(&[objects[0].id.clone()]), [(1, "Deployment", "web", Some("shop"))]);
    assert_eq!(objects[0].value, serde_json::from_str::<Value>(json).unwrap());
}

#[test]
fn objects_across_files_keep_their_file() {
    let files = [
        file("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
        file("b/c.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
    ];
    let found = parse_objects(&files, LIMIT).unwrap();
    let where_: Vec<_> = found.iter().map(|id| (id.file.as_str(), id.name.as_str())).collect();
    assert_eq!(where_, [("a.yaml", "a"), ("b/c.yml", "c")]);
}

#[test]
fn broken_yaml_names_file_document_and_line() {
    let cases = [
        ("apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nkey: [unclosed\n", 2),
        ("a: b\n  c: d\n", 1),
        ("apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n---\nfoo: *nowhere\n", 3),
        ("apiVersion: v1\napiVersion: v2\nkind: A\nmetadata: {name: a}\n", 1),
        ("apiVersion: v1\nkind: A\nmetadata: {name: a, labels: {~: x}}\n", 1),
        ("apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: !custom {x: 1}\n", 1),
        ("apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: .inf}\n", 1),
        ("apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: 99999999999999999999999}\n", 1),
    ];
    for (yaml, document) in cases {
        match ids("deploy/app.yaml", yaml) {
            Err(err @ Error::InvalidYaml { .. }) => {
                let Error::InvalidYaml { file, document: got, message } = &err else { unreachable!() };
                assert_eq!((file.as_str(), *got), ("deploy/app.yaml", document), "{yaml:?}: {err}");
                assert!(message.contains("line"), "{yaml:?}: parser position kept: {message}");
                assert!(err.to_string().starts_with(&format!("deploy/app.yaml, document {document}: ")), "{err}");
            }
            other => panic!("{yaml:?}: expected InvalidYaml, got {other:?}"),
        }
    }
}

#[test]
fn non_utf8_is_invalid_yaml_in_the_right_document() {
    let cases: [(&[u8], usize, &str); 3] = [
        (b"apiVersion: v1\nkind: A\nmetadata:\n  name: \xff\n", 1, "line 4"),
        (b"apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nkind: \xc3\n", 2, "line 5"),
        (b"\xfe\xff", 1, "line 1"),
    ];
    for (content, document, line) in cases {
        let err = parse_objects(&[ManifestFile { path: "x.yaml".into(), content: content.to_vec() }], LIMIT)
            .expect_err("non-UTF-8 is refused");
        match &err {
            Error::InvalidYaml { document: got, message, .. } => {
                assert_eq!(*got, document, "{err}");
                assert!(message.contains("UTF-8") && message.contains(line), "{err}");
            }
            other => panic!("expected InvalidYaml, got {other:?}"),
        }
    }
}

#[test]
fn documents_that_are_not_objects_are_named() {
    let cases = [
        ("kind: A\nmetadata: {name: a}\n", "no `apiVersion`"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "no `kind`"),
        ("apiVersion: v1\nkind: A\n", "no `metadata`"),
        ("apiVersion: v1\nkind: A\nmetadata: {namespace: x}\n", "no `metadata.name`"),
        ("apiVersion: v1\nkind: A\nmetadata: {name: ~}\n", "no `metadata.name`"),
        ("apiVersion: v1\nkind: A\nmetadata: {name: ''}\n", "`metadata.name` is empty"),
        ("apiVersion: v1\nkind: A\nmetadata: {name: 123}\n", "`metadata.name` is a number, not a string"),
        ("apiVersion: 1\nkind: A\nmetadata: {name: a}\n", "`apiVersion` is a number, not a string"),
        ("apiVersion: v1\nkind: [A]\nmetadata: {name: a}\n", "`kind` is a list, not a string"),
        ("apiVersion: v1\nkind: A\nmetadata: [name]\n", "`metadata` is a list, not a mapping"),
        ("apiVersion: v1\nkind: A\nmetadata: {name: a, namespace: 5}\n", "`metadata.namespace` is a number"),
        ("- apiVersion: v1\n- kind: A\n", "is a list, not a mapping"),
        ("just a string\n", "is a string, not a mapping"),
        ("42\n", "is a number, not a mapping"),
        ("apiVersion: v1\nkind: List\nmetadata: {}\nitems: []\n", "is a `kind: List`"),
    ];
    for (doc, want) in cases {
        let yaml = format!("apiVersion: v1\nkind: A\nmetadata: {{name: ok}}\n---\n{doc}");
        match ids("deploy/app.yaml", &yaml) {
            Err(err @ Error::InvalidObject { .. }) => {
                let text = err.to_string();
                assert!(text.starts_with("deploy/app.yaml, document 2: "), "{text}");
                assert!(text.contains(want), "{doc:?}: {text}");
                assert!(
                    text.ends_with(
                        "every document must be a Kubernetes object with apiVersion, kind and metadata.name"
                    )
                );
            }
            other => panic!("{doc:?}: expected InvalidObject, got {other:?}"),
        }
    }
}

#[test]
fn keys_merges_and_anchors_convert_like_kubectl() {
    let yaml = "\
defaults: &labels {app: web, tier: front}
apiVersion: v1
kind: ConfigMap
metadata:
  name: &name web
  namespace: ''
  labels:
    <<: *labels
    tier: back
data:
  80: http
  true: on
  1.5: x
  copy: *name
  both:
    <<: [{a: 1, b: 1}, {a: 2, c: 2}]
";
    // Scalars follow YAML 1.2 (serde_norway): `on`/`yes` stay strings.
    let objects = parse_file(&file("cm.yaml", yaml), LIMIT).unwrap();
    let [object] = objects.as_slice() else { panic!("one object expected: {objects:?}") };
    assert_eq!(object.id.namespace, None, "an empty namespace is unset");
    let want = serde_json::json!({
        "defaults": {"app": "web", "tier": "front"},
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web", "namespace": "", "labels": {"app": "web", "tier": "back"}},
        "data": {"80": "http", "true": "on", "1.5": "x", "copy": "web", "both": {"a": 1, "b": 1, "c": 2}},
    });
    assert_eq!(object.value, want);
}

/// Nine levels of nine aliases: 9^9 (≈ 387 million) strings if expanded.
fn billion_laughs() -> String {
    let mut yaml = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n");
    yaml.push_str("  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(", ");
        yaml.push_str(&format!("  {}: &{} [{refs}]\n", pair[1], pair[1]));
    }
    yaml
}

#[test]
fn alias_bomb_fails_fast_with_expansion_limit() {
    let bomb = file("bomb.yaml", &billion_laughs());
    // The node budget (a small and the default limit), then serde_norway's own bound on alias
    // replays with the budget out of the way: both are the same error to the user.
    for limit in [1_000, LIMIT, usize::MAX] {
        let started = std::time::Instant::now();
        match parse_objects(std::slice::from_ref(&bomb), limit) {
            Err(Error::YamlExpansionLimit { file, document, limit: got }) => {
                assert_eq!((file.as_str(), document, got), ("bomb.yaml", 1, limit));
            }
            other => panic!("limit {limit}: expected YamlExpansionLimit, got {other:?}"),
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "limit {limit}: took {:?}", started.elapsed());
    }
}

#[test]
fn node_budget_counts_alias_replays_and_long_strings() {
    let list = (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let yaml = format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\nspec:\n  a: &a [{list}]\n  b: [*a, *a, *a]\n");
    // Written out the document has under 60 nodes; expanded it has over 80.
    assert!(parse_objects(&[file("x.yaml", &yaml)], 200).is_ok());
    let err = parse_objects(&[file("x.yaml", &yaml)], 60).unwrap_err();
    assert!(matches!(err, Error::YamlExpansionLimit { limit: 60, document: 1, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("x.yaml, document 1: expands to more than 60 YAML nodes"), "{text}");
    assert!(text.contains("package_max_yaml_nodes"), "{text}");

    // One long string aliased many times: few nodes, many bytes.
    let long = "x".repeat(64 * 1024);
    let refs = vec!["*s"; 100].join(", ");
    let yaml = format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\ns: &s {long}\nt: [{refs}]\n");
    let err = parse_objects(&[file("x.yaml", &yaml)], 10_000).unwrap_err();
    assert!(matches!(err, Error::YamlExpansionLimit { .. }), "{err:?}");
}

#[test]
fn small_legit_anchors_pass() {
    let yaml = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: &labels {app: web}
spec:
  selector: {matchLabels: *labels}
  template:
    metadata: {labels: *labels}
";
    let found = ids("web.yaml", yaml).unwrap();
    assert_eq!(summary(&found), [(1, "Deployment", "web", None)]);
}
