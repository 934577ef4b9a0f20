//! The fast path's one promise, tested against the full check: it answers only when it is
//! sure, and then with the full check's own count.

use super::*;
use crate::artifact::ManifestFile;
use crate::artifact::yaml::check_parsed;

/// The default node budget (`package_max_yaml_nodes`).
const LIMIT: usize = 100_000;

fn file(content: &[u8]) -> ManifestFile {
    ManifestFile { path: "deploy/app.yaml".into(), content: content.to_vec() }
}

/// `content` as a Rust literal, escaped byte by byte when it is not UTF-8.
fn shown(content: &[u8]) -> String {
    match std::str::from_utf8(content) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("b\"{}\"", content.escape_ascii()),
    }
}

/// Asserts the contract on `content`: the fast path says nothing, or what the full check says,
/// an `Ok` with the same count. Returns the fast path's answer.
fn agrees(content: &[u8], limit: usize) -> Option<usize> {
    let fast = std::panic::catch_unwind(|| objects(content, limit))
        .unwrap_or_else(|_| panic!("the fast path panicked on {} (limit {limit})", shown(content)));
    if let Some(count) = fast {
        let full = check_parsed(&file(content), limit);
        assert!(
            matches!(full, Ok(n) if n == count),
            "fast path answered Some({count}) but the full check gave {full:?}\non {} (limit {limit})",
            shown(content),
        );
    }
    fast
}

/// Realistic valid manifests inside the subset the fast path knows: it must answer all of them,
/// or it would be a fast path that never runs.
const REALISTIC: &[&str] = &[
    "\
# Web front end: the Deployment the rest of the file serves.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app.kubernetes.io/name: web
    app.kubernetes.io/version: \"1.4.2\"
    tier: 'frontend'
  annotations:
    description: serves the shop's pages # a trailing comment
spec:
  replicas: 3
  revisionHistoryLimit: 10
  selector:
    matchLabels: {app.kubernetes.io/name: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}
  template:
    metadata:
      labels: {app.kubernetes.io/name: web, tier: frontend}
    spec:
      containers:
      - name: web
        image: registry.example.com/shop/web:1.4.2
        args: [\"--port=8080\", --log-level, info]
        env:
        - {name: MODE, value: production}
        - {name: WORKERS, value: \"4\"}
        - name: DATABASE_URL
          valueFrom: {secretKeyRef: {name: db, key: url}}
        ports:
        - {name: http, containerPort: 8080, protocol: TCP}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 5
        livenessProbe: {tcpSocket: {port: 8080}, initialDelaySeconds: 10}
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {cpu: '1', memory: 256Mi}
      nodeSelector: {}
      tolerations: []
",
    "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: web
  ports:
    - name: http
      port: 80
      targetPort: http
      protocol: TCP
",
    "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  LOG_LEVEL: info
  nginx.conf: |
    server {
      listen 8080;

      location / { root /srv; }  # served as is
    }
  motd: >-
    Welcome to the shop,
    have a nice day.
  empty: \"\"
",
    "\
# RBAC for the web front end.
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: web-reader
rules:
  - apiGroups: [\"\"]
    resources: [configmaps, secrets]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: web-reader
subjects:
- kind: ServiceAccount
  name: web
roleRef:
  kind: Role
  name: web-reader
  apiGroup: rbac.authorization.k8s.io
",
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    // Saved on Windows.
    "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: windows\r\ndata:\r\n  k: v\r\n",
    "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\ntype: Opaque\nstringData: {url: 'postgres://db:5432/shop'}\n",
];

#[test]
fn fast_path_answers_realistic_manifests() {
    let mut missed = Vec::new();
    for manifest in REALISTIC {
        if agrees(manifest.as_bytes(), LIMIT).is_none() {
            missed.push(*manifest);
        }
    }
    // The example application's manifests are what users copy.
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/checkout-app/deploy");
    let examples = manifests_under(&deploy);
    assert!(!examples.is_empty(), "no manifests under {}", deploy.display());
    for (path, content) in &examples {
        if agrees(content, LIMIT).is_none() {
            missed.push(path.as_str());
        }
    }
    assert!(missed.is_empty(), "the fast path gave no answer on these valid manifests:\n{}", missed.join("\n----\n"));
}

/// Inputs the full check rejects, one per rule the fast path must not miss.
const REJECTED: &[&str] = &[
    // Duplicate keys: plain, through an escape, through the string form of a number or boolean.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  name: b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  \"n\\x61me\": b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\ndata:\n  80: a\n  '80': b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\ndata:\n  0x50: a\n  '80': b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\ndata:\n  true: a\n  'true': b\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a, name: b}\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  - {x: 1, x: 2}\n",
    // A value that is itself a mapping on one line.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a: b\n",
    // A plain scalar continued on a more indented line, then used as a key.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n    b: c\n",
    // A continuation that makes the kind a `…List` holding items.
    "apiVersion: v1\nkind: Config\n  List\nmetadata: {name: a}\nitems: []\n",
    // Indentation that matches nothing above.
    "apiVersion: v1\nkind: A\nmetadata:\n    name: a\n  namespace: b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n spec: x\n",
    // A block scalar ended by a less-indented line that is not an entry.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\ndata:\n  k: |\n    line\n   less\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: |\n   \n  a\n",
    // Numbers JSON cannot hold.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  replicas: 18446744073709551616\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  x: -9223372036854775809\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  x: 0x10000000000000000\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  x: .inf\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  x: -.Inf\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  x: .nan\n",
    // Lists of items.
    "apiVersion: v1\nkind: ConfigMapList\nmetadata:\n  name: a\nitems:\n- a: 1\n",
    "apiVersion: v1\nkind: List\nmetadata: {name: a}\nitems: []\n",
    // The identity: missing, empty, null or not a string.
    "apiVersion: v1\nkind: A\nmetadata:\n  namespace: b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: ''\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name:\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: null\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: 5\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: true\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  namespace: 5\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  namespace: [x]\n",
    "apiVersion: v1\nkind: A\nmetadata: a\n",
    "apiVersion: v1\nkind: A\nmetadata:\n- name: a\n",
    "apiVersion: v1\nkind: A\nmetadata:\n",
    "apiVersion: v1\nkind: A\n",
    "apiVersion: 1\nkind: A\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: ~\nmetadata: {name: a}\n",
    "kind: A\nmetadata: {name: a}\n",
    "- apiVersion: v1\n  kind: A\n  metadata: {name: a}\n",
    "text\n",
    // Keys JSON cannot hold.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  labels:\n    ~: x\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n[k]: v\n",
    // Tabs as indentation, control characters, Unicode line breaks inside a plain scalar.
    "apiVersion: v1\nkind: A\nmetadata:\n\tname: a\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\u{1}b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: \"a\u{1b}b\"\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\u{85}b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\u{2028}b\n",
    // Tags, aliases without anchors, broken quoting and flow.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: !custom a\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: *nowhere\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: \"a\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: 'a\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: \"a\\q\"\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: [a, b\n",
    // A good document, then a bad one.
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: A\nmetadata: {}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n--- x\napiVersion: v1\n",
];

#[test]
fn fast_path_never_accepts_what_the_full_check_rejects() {
    for case in REJECTED {
        let full = check_parsed(&file(case.as_bytes()), LIMIT);
        assert!(full.is_err(), "the full check accepts {case:?} ({full:?}): the table is wrong");
        agrees(case.as_bytes(), LIMIT);
    }
    for content in [
        &b"apiVersion: v1\nkind: A\nmetadata:\n  name: \xff\n"[..],
        b"apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nkind: \xc3\n",
        b"\xef\xbb",
    ] {
        assert!(check_parsed(&file(content), LIMIT).is_err(), "the full check accepts {}", shown(content));
        agrees(content, LIMIT);
    }
}

/// Inputs whose count a line-by-line reader could easily get wrong, valid or not.
const TRICKY: &[&str] = &[
    // Documents that hold nothing still count as documents, not objects.
    "",
    "\n\n",
    "---\n",
    "---\n---\n...\n",
    "# only a comment\n",
    "~\n",
    "null\n",
    "--- !!null\n",
    "---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n...\n---\n# c\n---\n~\n",
    "--- # comment\napiVersion: v1\nkind: A\nmetadata: {name: a}\n",
    "%YAML 1.2\n---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n",
    "\u{feff}apiVersion: v1\nkind: A\nmetadata: {name: a}\n",
    "--- {apiVersion: v1, kind: A, metadata: {name: a}}\n",
    // Markers that are not markers.
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata:\n  k: |\n    ---\n    # not a comment\n    ...\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata:\n  k: |\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\ndata:\n  k: \"a\n---\n  b\"\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n----\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n--- \n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n ---\n",
    // Scalars that continue on the next line, or look empty but are not.
    "apiVersion: v1\nkind: A\nmetadata:\n  name:\n    web\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: web\n    more\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: |\n    web\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: \"\n  \"\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: ''\n  name2: x\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a #b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a#b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: '#'\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\u{feff}b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\tb\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\t\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\r\n",
    "apiVersion: v1\rkind: A\rmetadata: {name: a}\r",
    // Numbers that look out of range but are strings to the full check.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  x: 1e999\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  x: -1e999\n",
    // Found by the generator: a lone `-` item with its content below (the fast path panicked).
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec:\n  -\n    x: 1\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec:\n- x\n-\n",
    // Inside the subset the fast path reads: layouts where a line-by-line reader could slip.
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  - |\n   x\n  - >-\n\n    y\n\n    z\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n- |\n x\n- k: |\n   x\n  j: |\n  x\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n- k: |\n  x\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  k: |\n    x\n  # c\n    y\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  k: |\n    x\n   # c\n  j: y\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  k: |\n\n\n  j: y\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  k: |\n  j: y\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  k:\n  - x\n  j:\n  - y\n  -\n  k: z\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n- a: 1\n  b:\n  - x\n  c: 2\n- a: 1\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n- a: 1\n- a: 2\n  a: 3\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n- a: 1\nspec2:\n- spec: 1\nspec: 2\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  a: b\n c: d\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  a: b\n   c: d\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  a: b\n\n   c\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  a: 'b' \n  c: \"d\" # e\n  f: [g] \n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  a:   \n    b: c\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  'a': 1\n  a: 2\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  \"a\" : 1\n  a : 2\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  'it''s': 1\n  \"it's\": 2\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  a:b: 1\n  a: 2\n  a:b : 3\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  {a: 1}\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec: {a : 1, b: [c ,d], e: {}, f: [ ], g: \"\"}\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec: [a?b, a*b, a&b, a!b, a@b, a`b, a|b, a>b, a%b]\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec: {a: 1}, b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  namespace: ''\n  labels: {name: x, namespace: 5}\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  namespace: null\n  namespace2: 5\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: 'List'\nitems: []\n",
    "apiVersion: v1\nkind: 'a''List'\nmetadata: {name: a}\nitems: []\n",
    "apiVersion: v1\nkind: 'List'''\nmetadata: {name: a}\nitems: []\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: -.nan, y: +nan, z: Infinity, w: 0X1F}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: 9223372036854775807, y: -9223372036854775808}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: 18446744073709551615, y: 000000000000000000001}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nspec: {x: 1234567890123456789012345678901234567890}\n",
    // Keys a reader might not recognise as the identity's, or might take for it.
    "apiVersion: v1\nkind: A\n\"metadata\": {\"name\": a}\n",
    "apiVersion: v1\nkind: A\n? metadata\n: {name: a}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nmetadata : {name: b}\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\nmetadata\t: x\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  labels:\n  - x\n",
    "apiVersion: v1\nkind: ConfigMapList\nmetadata: {name: a}\nitems: {}\n",
    "apiVersion: v1\nkind: ConfigMapList\nmetadata: {name: a}\nitems:\n",
    "apiVersion: v1\nkind: ConfigMapList\nmetadata: {name: a}\nitems:\n- x\n",
    "apiVersion: v1\nkind: 'List'\nmetadata: {name: a}\nitems: [x]\n",
    // Anchors and merges, which the fast path has no reason to know.
    "apiVersion: v1\nkind: A\nmetadata: &m {name: a}\nother: *m\n",
    "apiVersion: v1\nkind: A\nm: &m {name: a}\nmetadata:\n  <<: *m\n",
];

#[test]
fn fast_path_agrees_on_tricky_inputs() {
    for case in TRICKY {
        agrees(case.as_bytes(), LIMIT);
    }
    // Keys around the 1024 characters libyaml takes for a simple key, plain, quoted and in flow.
    for length in [1000, 1019, 1020, 1021, 1022, 1023, 1024, 1025, 1030] {
        let key = "k".repeat(length);
        for entry in [format!("  {key}: v"), format!("  '{key}': v"), format!("  x: {{{key}: v}}")] {
            agrees(format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\ndata:\n{entry}\n").as_bytes(), LIMIT);
        }
    }
}

#[test]
fn fast_path_keeps_to_the_node_budget() {
    // Each realistic manifest, at every budget up to past its size: the same verdict as the
    // full check, which refuses the file below its node count.
    for manifest in REALISTIC {
        for limit in 0..200 {
            agrees(manifest.as_bytes(), limit);
        }
    }
    // An empty document is a null, which costs a node too (found by the generator: the fast
    // path answered Some(0) on "" with a budget of 0).
    for content in ["", "# only a comment\n", "---\n", "---\n---\n"] {
        agrees(content.as_bytes(), 0);
    }
    // Long strings cost one node per SCALAR_BYTES_PER_NODE bytes, keys as well as values.
    let long = "x".repeat(3 * crate::artifact::yaml::SCALAR_BYTES_PER_NODE + 7);
    let cases = [
        format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\ndata:\n  k: {long}\n"),
        format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\ndata:\n  {long}: v\n"),
        format!("apiVersion: v1\nkind: A\nmetadata: {{name: a}}\ndata:\n  k: |\n    {long}\n    {long}\n"),
    ];
    for case in &cases {
        for limit in 0..30 {
            agrees(case.as_bytes(), limit);
        }
    }
}

/// `(path, content)` of every manifest file under `dir`, recursively, in path order.
fn manifests_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        let name = path.to_string_lossy().into_owned();
        if path.is_dir() {
            found.extend(manifests_under(&path));
        } else if crate::artifact::is_manifest(&name) {
            found.push((name, std::fs::read(&path).expect("readable manifest")));
        }
    }
    found.sort();
    found
}

#[test]
fn fast_path_agrees_on_the_repository_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The example application, the test fixtures, and every other YAML or JSON file we ship:
    // CRDs, the chart (its templates are not YAML until rendered, which makes them good
    // inputs too), the JSON schema of the status report.
    let files: Vec<_> = ["examples", "config", "tests", "crds", "charts", "docs"]
        .iter()
        .flat_map(|dir| manifests_under(&root.join(dir)))
        .collect();
    assert!(files.len() >= 20, "only {} manifest files found under {}", files.len(), root.display());
    let cases = crate::artifact::yaml::tests::AGREEMENT_CASES.iter().map(|case| case.as_bytes());
    for content in files.iter().map(|(_, content)| content.as_slice()).chain(cases) {
        for limit in [LIMIT, 0, 1, 7, 40, 150] {
            agrees(content, limit);
        }
    }
}

mod generated;
