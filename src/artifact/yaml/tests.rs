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

/// `check_file` (shapes) and `parse_file` (JSON values) reach the same verdict on `content`:
/// the same number of objects, or the same error.
fn assert_check_agrees_with_parse(content: &[u8], limit: usize) {
    let file = ManifestFile { path: "deploy/app.yaml".into(), content: content.to_vec() };
    let checked = check_file(&file, limit);
    let parsed = parse_file(&file, limit).map(|objects| objects.len());
    let text = String::from_utf8_lossy(content);
    match (&checked, &parsed) {
        (Ok(checked), Ok(parsed)) => assert_eq!(checked, parsed, "{text:?} (limit {limit})"),
        (Err(checked), Err(parsed)) => {
            assert_eq!(checked.to_string(), parsed.to_string(), "{text:?} (limit {limit})");
            assert_eq!(format!("{checked:?}"), format!("{parsed:?}"), "{text:?} (limit {limit})");
        }
        _ => panic!("{text:?} (limit {limit}): check_file gave {checked:?}, parse_file {parsed:?}"),
    }
}

/// Inputs on every rule of the conversion and of the identity check, good and bad.
pub(super) const AGREEMENT_CASES: &[&str] = &[
    // Good, with empty documents counted but skipped.
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: prod}\ndata: {k: v}\n",
    "# comment\n---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n---\n~\n---\n# only a comment\n",
    "",
    "---\n---\n",
    "null\n",
    r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"x": null}}"#,
    // Duplicate keys, at the root, deep, and through the string form of other scalars.
    "apiVersion: v1\napiVersion: v2\nkind: A\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {a: {b: {c: 1, c: 2}}}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata: {80: a, '80': b}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata: {1.5: a, 1.50: b}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata: {true: a, 'true': b}\n",
    "\"api\\u0056ersion\": v1\napiVersion: v1\nkind: A\nmetadata: {name: a}\n",
    // Merge keys: providing kind and metadata, explicit keys and earlier sources winning.
    "base: &b {kind: A, metadata: {name: x}}\napiVersion: v1\n<<: *b\n",
    "base: &b {kind: A, metadata: {name: x}}\napiVersion: v1\nkind: B\n<<: [*b]\n",
    "apiVersion: v1\nkind: A\nmetadata: {<<: [{name: ''}, {name: x}]}\n",
    "apiVersion: v1\nkind: A\nmetadata: {<<: [{name: x}, {name: ''}]}\n",
    "apiVersion: v1\nkind: A\nmetadata: {<<: {name: x}, name: ''}\n",
    "apiVersion: v1\nkind: A\nmetadata: {<<: {name: x, namespace: 5}}\n",
    "apiVersion: v1\n<<: {kind: List, items: []}\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n<<: [{x: 1}, 2]\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n<<: text\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {<<: {a: 1}, <<: {b: 2}, a: 3}\n",
    // Tags, and numbers JSON cannot hold.
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: !custom {x: 1}\n",
    "--- !thing\napiVersion: v1\nkind: A\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a, labels: {!k x: y}}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: .inf, y: 1}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: [.nan]\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: 99999999999999999999999}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: -99999999999999999999999}\n",
    // Keys JSON cannot hold.
    "apiVersion: v1\nkind: A\nmetadata: {name: a, labels: {~: x}}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n[k]: v\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n{k: 1}: v\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n.nan: v\n",
    // Lists of items.
    "apiVersion: v1\nkind: List\nmetadata: {name: a}\nitems: []\n",
    "apiVersion: v1\nkind: PodList\nmetadata: {name: a}\nitems: [{a: 1}]\n",
    "apiVersion: v1\nkind: List\nmetadata: {name: a}\nitems: {}\n",
    "apiVersion: v1\nkind: \"Config\\u004cist\"\nmetadata: {name: a}\nitems: []\n",
    "apiVersion: v1\nkind: List\nmetadata: {}\nitems: ~\n",
    // The identity: missing, null, empty, or not strings.
    "kind: A\nmetadata: {name: a}\n",
    "apiVersion: ~\nkind: A\nmetadata: {name: a}\n",
    "apiVersion: ''\nkind: A\nmetadata: {name: a}\n",
    "apiVersion: 1\nkind: A\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: [A]\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: {a: 1}\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: true\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: A\n",
    "apiVersion: v1\nkind: A\nmetadata: ~\n",
    "apiVersion: v1\nkind: A\nmetadata: [name]\n",
    "apiVersion: v1\nkind: A\nmetadata: name\n",
    "apiVersion: v1\nkind: A\nmetadata: {namespace: x}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: ''}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: 1.5}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: {a: 1}}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a, namespace: 5}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a, namespace: [x]}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a, namespace: ''}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a, namespace: ~}\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: >\n    folded\n  namespace: |\n    literal\n",
    "- apiVersion: v1\n- kind: A\n",
    "just a string\n",
    "42\n",
    "true\n",
    // Broken YAML.
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nkey: [unclosed\n",
    "a: b\n  c: d\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nfoo: *nowhere\n",
];

#[test]
fn check_file_agrees_with_parse_file() {
    for case in AGREEMENT_CASES {
        assert_check_agrees_with_parse(case.as_bytes(), LIMIT);
    }
    for content in
        [&b"apiVersion: v1\nkind: A\nmetadata:\n  name: \xff\n"[..], b"apiVersion: v1\n---\nkind: \xc3\n", b"\xfe"]
    {
        assert_check_agrees_with_parse(content, LIMIT);
    }
    // Mappings large enough to find duplicates by hashing, with and without one.
    let keys: String = (0..40).map(|i| format!("  k{i}: {i}\n")).collect();
    let large = format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\ndata:\n{keys}");
    assert_check_agrees_with_parse(large.as_bytes(), LIMIT);
    assert_check_agrees_with_parse(format!("{large}  k7: again\n").as_bytes(), LIMIT);
    assert_check_agrees_with_parse(format!("{keys}{keys}").as_bytes(), LIMIT);
}

#[test]
fn check_file_runs_out_of_nodes_where_parse_file_does() {
    let list = (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let aliases =
        format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\nspec:\n  a: &a [{list}]\n  b: [*a, *a, *a]\n");
    let merges = "apiVersion: v1\nkind: A\nd: &d {x: 1, y: [1, 2, 3]}\nmetadata: {<<: [*d, {name: a}], z: *d}\n";
    let long =
        format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\ns: &s {}\nt: [*s, *s, *s]\n", "x".repeat(2_000));
    // Every limit around the documents' sizes: the same verdict at each.
    for yaml in [aliases.as_str(), merges, long.as_str()] {
        for limit in 0..120 {
            assert_check_agrees_with_parse(yaml.as_bytes(), limit);
        }
    }
    for limit in [1_000, LIMIT, usize::MAX] {
        assert_check_agrees_with_parse(billion_laughs().as_bytes(), limit);
    }
}

mod generated {
    //! Random documents built from the pieces the rules are about.
    use proptest::prelude::*;

    use super::*;

    fn scalar() -> impl Strategy<Value = &'static str> {
        let plain = prop::sample::select(vec![
            "v1",
            "A",
            "x",
            "''",
            "List",
            "SecretList",
            "~",
            "1",
            "-7",
            "1.5",
            "true",
            "\"esc\\u0061ped\"",
        ]);
        let refused = prop::sample::select(vec![".inf", ".nan", "99999999999999999999", "!tag x"]);
        let alias = prop::sample::select(vec!["*a", "*b"]);
        prop_oneof![12 => plain, 1 => refused, 2 => alias]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        let plain = prop::sample::select(vec![
            "name",
            "namespace",
            "kind",
            "metadata",
            "<<",
            "<<",
            "x",
            "y",
            "80",
            "'80'",
            "1.5",
        ]);
        let refused = prop::sample::select(vec!["~", "true", "!k x", "[k]", ".nan"]);
        prop_oneof![8 => plain, 1 => refused]
    }

    /// A flow node, sometimes anchored.
    fn node() -> impl Strategy<Value = String> {
        let leaf = scalar().prop_map(str::to_owned);
        let tree = leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
                prop::collection::vec((key(), inner), 0..4).prop_map(|entries| {
                    let entries: Vec<_> = entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    format!("{{{}}}", entries.join(", "))
                }),
            ]
        });
        (prop::sample::select(vec!["", "", "&a ", "&b "]), tree).prop_map(|(anchor, node)| format!("{anchor}{node}"))
    }

    /// `key: value` with a good value, a random one, or no entry at all.
    fn entry(key: &'static str, good: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            1 => Just(None),
            6 => prop::sample::select(good).prop_map(move |value| Some(format!("{key}: {value}"))),
            2 => node().prop_map(move |value| Some(format!("{key}: {value}"))),
        ]
    }

    /// Anchors for the aliases and merge keys below to refer to.
    fn anchors() -> impl Strategy<Value = Vec<&'static str>> {
        let anchors = vec![
            "base1: &a {kind: A, metadata: {name: m}}",
            "base2: &a {name: n, namespace: ''}",
            "base3: &a [{name: n}, {kind: List}]",
            "base4: &a x",
            "base5: &b {apiVersion: v1, items: [], namespace: 5}",
            "base6: &b {metadata: {<<: {name: ''}}}",
            "base7: &b [1, 2]",
        ];
        prop::sample::subsequence(anchors, 0..3)
    }

    /// A mapping, mostly with the identity's entries, then a few random ones.
    fn document() -> impl Strategy<Value = String> {
        let extra = || prop::collection::vec((key(), node()).prop_map(|(k, v)| format!("{k}: {v}")), 0..3);
        let metadata = (entry("name", &["a", "''", "~"]), entry("namespace", &["prod", "''", "~"]), extra()).prop_map(
            |(name, namespace, extra)| {
                let entries: Vec<_> = [name, namespace].into_iter().flatten().chain(extra).collect();
                format!("metadata: {{{}}}", entries.join(", "))
            },
        );
        let metadata = prop_oneof![3 => metadata.prop_map(Some), 1 => entry("metadata", &["~", "{name: a}"])];
        (
            anchors(),
            entry("apiVersion", &["v1", "apps/v1"]),
            entry("kind", &["A", "List", "SecretList"]),
            metadata,
            entry("items", &["[]", "{}"]),
            extra(),
        )
            .prop_map(|(anchors, api_version, kind, metadata, items, extra)| {
                let entries = [api_version, kind, metadata, items].into_iter().flatten().chain(extra);
                anchors.into_iter().map(str::to_owned).chain(entries).collect::<Vec<_>>().join("\n")
            })
    }

    proptest! {
        // Failures found are kept as cases in the table above, not in a regressions file.
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn check_file_agrees_with_parse_file_on_generated_documents(
            documents in prop::collection::vec(document(), 1..3),
            limit in prop_oneof![Just(LIMIT), 0..60usize],
        ) {
            assert_check_agrees_with_parse(documents.join("\n---\n").as_bytes(), limit);
        }
    }
}
