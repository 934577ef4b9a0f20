//! Kubernetes-like multi-document YAML from a grammar of what the fast path must judge
//! (layouts, scalars, keys, flow, block scalars, markers, encodings), then mutated.
//!
//! Each case draws a risk first. At risk 0 the grammar keeps to well-formed YAML, mostly
//! inside what the fast path reads, so that its answers (counts, duplicate keys, the
//! identity, the node budget) are compared often; higher risks mix in every kind of input
//! the fast path must decline.

use std::fmt::Debug;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::*;

/// One node of a block-context document, rendered to text by [`render`].
#[derive(Clone, Debug)]
enum Node {
    /// Text written after `key:` or `-` on the same line (nothing at all: a null); each
    /// `\n` in it continues on a new line one column right of the parent.
    Inline(String),
    /// A `|`/`>` block scalar, its body `step` columns right of the parent.
    Block { header: &'static str, step: usize, body: Vec<BodyLine> },
    /// A block mapping.
    Map { layout: Layout, entries: Vec<(String, Node)> },
    /// A block sequence.
    Seq { layout: Layout, items: Vec<Node> },
}

/// Where a block collection's entries go.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Columns right of the parent: 0 gives `key:\n- a`, or a mapping that is not nested.
    step: usize,
    /// In a sequence item, start on the dash's line: `- key: v` or `- - a`.
    compact: bool,
    /// One entry moved this many columns (wrong, uneven indentation).
    shifted: Option<(Index, isize)>,
    /// An anchor or tag written before the collection.
    properties: &'static str,
}

/// One line of a block scalar's body.
#[derive(Clone, Debug)]
enum BodyLine {
    /// Text this many columns right of the body's indentation.
    Text(usize, &'static str),
    /// A line of this many spaces only.
    Blank(usize),
    /// Text one column left of the body's indentation, which ends the block scalar.
    Dedented(&'static str),
}

// The tables are kept a row per kind of input; rustfmt would give each string its own line.
// SAFE_ ones are well-formed YAML (not always a valid object); RISKY_ ones often are not, or
// are outside what the fast path reads.
#[rustfmt::skip]
const SAFE_PLAIN: &[&str] = &[
    "web", "v1", "apps/v1", "nginx:1.25", "registry.example.com/shop/web:1.4.2", "Hello world", "a.b-c_d",
    "${VERSION}", "a,b", "a]", "a}", "a[b", "a{b", "-x", "x?", "x-", "?x", ":x", "?-", ":-", "-?", "::", "<<", "=",
    "a:b", "a :b", "a#b",
    "value # comment", "http://example.com:8080/a?b=c#d", "é", "日本語", "naïve café", "a  b",
    "0", "80", "-7", "007", "1.5", "-0.0", "1e3", "1E-3", ".5", "+1", "1_000", "0X1F", "1e999", "inf", "nan",
    "123456789012345678", "-123456789012345678",
    "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "FALSE", "yes", "no", "on", "off", "y", "n",
    "1.2.3", "2024-01-31", "2001-12-14t21:59:43.10-05:00", "12:30:00", "50m", "64Mi", "25%",
];

#[rustfmt::skip]
const RISKY_PLAIN: &[&str] = &[
    "1234567890123456789", "9223372036854775807", "-9223372036854775808", "18446744073709551615", "0x1F", "0o17", "0b101", "0xG", "123456789012345678901234567890", "-99999999999999999999",
    "9223372036854775808", "-9223372036854775809", "18446744073709551616", ".inf", "-.inf", "+.INF", ".Inf",
    ".nan", ".NaN", "a: b", "ends:", "a :", "- x", "-", "?", "? x", "@x", "`x", "%x", "|x", ">x", "a\tb", "a\t",
    "a\u{1}b", "a\u{7f}b", "a\u{85}b", "a\u{2028}b", "a\u{feff}b", "a\u{fffe}b", "&a x", "&b {k: v}", "&a [1, 2]",
    "&a", "*a", "*b", "* a", "!custom x", "!!str 5", "!!int 5", "!!int x", "!!binary aGVsbG8=", "!!map {}",
    "!<tag:x> y", "! x",
];

#[rustfmt::skip]
const SAFE_QUOTED: &[&str] = &[
    "''", "\"\"", "'web'", "\"web\"", "'it''s'", "''''", "'a # b'", "\"a: b\"", "\"1.2\"", "'true'", "\"80\"",
    "'a\\b'", "\"tab\\there\"", "\"line\\nbreak\"", "\"quote \\\" inside\"", "\"\\x41\\u00e9\\U0001F600\"",
    "\"\\/\\0\\a\\e\"", "\"\\N\\_\\L\\P\"", "\"\\ \"", "\"trailing\\\\\"", "\"é\"", "'a' # c", "\"#\"",
];

#[rustfmt::skip]
const RISKY_QUOTED: &[&str] = &[
    "\"bad \\q escape\"", "\"\\xZZ\"", "\"\\u12\"", "\"\\ud800\"", "\"\\u0000\"", "\"trailing\\\"",
    "'unterminated", "\"unterminated", "'a'b'", "\"a\"b", "\"a\"# c", "\"a\" x", "'\u{1}'", "\"\u{1}\"",
    "\"a\tb\"",
];

#[rustfmt::skip]
const SAFE_FLOW: &[&str] = &[
    "{}", "[]", "{a: b, c: d}", "[x, \"y\", 'z']", "{a: [1, {b: c}], d: {}}", "[[], [[]]]", "[a,b]",
    "{a: b,c: d}", "{\"a\": 1}", "{'a': 1, b: 'c'}", "[a, {b: c}, [d]]", "{a: b} # c", "[-a, b]", "{\"\": a}",
    "{name: web, namespace: prod}", "{name: \"w\\x65b\"}", "[1.5, ~, true, -7]", "{a: ~, b: null}",
];

#[rustfmt::skip]
const RISKY_FLOW: &[&str] = &[
    "[a, b,]", "{a: b,}", "{a}", "{a:b}", "{\"a\":1}", "{'a':1}", "{a: b", "[a, b", "{a: b}}", "[a]]",
    "{a: 1, a: 2}", "{a: 1, 'a': 2}", "{80: a, '80': b}", "{a: b}#c", "{a: b} x", "[a] [b]", "{? a: b}", "[a: b]",
    "{a: *a}", "{<<: {x: 1}}", "[.inf]", "[1e999]", "{x: 99999999999999999999}", "{~: a}", "{[a]: b}",
    "{a: !t b}", "[,]", "{,}", "[a,,b]", "{a: b c: d}", "{a: }", "{: a}", "[-a, -]", "[- a]", "[&a x, *a]",
    "[a #b]",
];

/// Scalars and flow collections spanning lines; the renderer indents each continuation.
#[rustfmt::skip]
const MULTI_LINE: &[&str] = &[
    "first\nsecond", "first\n\nthird", "first\n  second: x", "first\n# comment", "first\n- x",
    "\"first\n second\"", "\"first\\\n second\"", "\"first\n\n second\"", "'first\n second'", "'first\n\n'",
    "\"a\n---\nb\"", "[a,\n b]", "[a, # c\n b]", "{a: b,\n c: d}", "{a: b\n}", "[a\n, b]", "{a: 1,\n a: 2}",
    "\"unterminated\nnext: x",
];

/// Keys; the quoted forms of `app` and `port` make duplicates the fast path must see.
#[rustfmt::skip]
const SAFE_KEYS: &[&str] = &[
    "app", "image", "port", "replicas", "data", "spec", "labels", "selector", "template", "containers", "env",
    "value", "ports", "args", "x", "y", "z", "app.kubernetes.io/name", "a b", "a:b", "a#b", "a[b", "é", "日本",
    "yes", "key ", "=", "?x", ":x", "-:", "\"quoted\"", "'single'", "'it''s'", "'app'", "\"port\"", "''", "\"\"",
];

#[rustfmt::skip]
const RISKY_KEYS: &[&str] = &[
    "name", "namespace", "kind", "'kind'", "apiVersion", "\"metadata\"", "metadata", "items", "\"tab\\tkey\"",
    "\"n\\u0061me\"", "\"\\q\"", "'unterminated", "80", "'80'", "0x50", "1.5", "true", "'true'", "~", "null", "<<",
    "'<<'", "[a]", "{a: b}", "a #b", "-a", "- a", "? a", "&k a", "*a", "!t k", "x\t",
];

const SAFE_HEADERS: &[&str] = &["|", "|-", "|+", ">", ">-", ">+", "| # c"];
const RISKY_HEADERS: &[&str] = &["|2", "|1-", ">2+", "|-2", "|0", "|x", "|#", "|  ", ">\t"];

#[rustfmt::skip]
const SAFE_BODY: &[&str] = &[
    "line", "two words", "key: not a key", "---", "...", "# not a comment", "- not an item", "{not: flow}",
    "é 日本", "a \" b", "'", "ends with space ",
];

const RISKY_BODY: &[&str] = &["\tx", "a\u{85}b", "a\u{1}b", "x\t"];

/// Documents that are not a block mapping.
#[rustfmt::skip]
const SAFE_DOCUMENTS: &[&str] = &[
    "", "# only a comment", "~", "null", "just text", "42", "[1, 2]", "- a\n- b",
    "{apiVersion: v1, kind: A, metadata: {name: a}}",
];

#[rustfmt::skip]
const RISKY_DOCUMENTS: &[&str] = &[
    "  # indented comment", "!!null", "{apiVersion: v1, kind: A, metadata: {name: a}",
    "{apiVersion: v1,\n kind: A,\n metadata: {name: a}}", "? a\n: b", "&a\n", "|\n  text", "'quoted'",
    "%YAML 1.2", "\t", "\u{feff}",
];

const SAFE_PREFIXES: &[&str] = &["", "", "", "# header\n", "# header\n---\n", "---\n", "--- # c\n", "\n\n"];

#[rustfmt::skip]
const RISKY_PREFIXES: &[&str] = &[
    "\u{feff}", "%YAML 1.2\n---\n", "%YAML 1.1\n---\n", "%YAML 1.2\n", "%TAG ! tag:example.com,2000:\n---\n",
    "%FOO bar\n---\n",
];

const SAFE_SEPARATORS: &[&str] = &["---", "---", "--- # c", "---  ", "\n---"];

#[rustfmt::skip]
const RISKY_SEPARATORS: &[&str] = &[
    "...\n---", "--- |\n  text", "--- x", "--- {a: b}", "---\t#c", "----", " ---", "---#", "...", "\u{feff}---",
    "---\r",
];

const SAFE_SUFFIXES: &[&str] = &["", "\n", "\n", "\n# trailing\n", "\n\n\n", "\n---\n"];
const RISKY_SUFFIXES: &[&str] = &["\n...\n", "\n--- ", "  ", "\n  "];

/// Characters a mutation inserts: YAML's indicators and whitespace.
#[rustfmt::skip]
const INSERTED: &[char] = &[
    ':', '-', '#', '\'', '"', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>', '?', '%', '@', '`', '\t', '\r', ' ',
    '\n',
];

/// Bytes a mutation inserts: control characters and bytes that are not UTF-8 on their own.
const INSERTED_BYTES: &[u8] = &[0x00, 0x01, 0x1b, 0x7f, 0x85, 0xc3, 0xe2, 0xff];

/// `safe`; or, with weight `risk` against 12, `risky`.
fn mostly<T: Debug + 'static>(
    risk: u32,
    safe: impl Strategy<Value = T> + 'static,
    risky: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if risk == 0 { safe.boxed() } else { prop_oneof![12 => safe, risk => risky].boxed() }
}

/// One of `safe`, or of `risky` as [`mostly`] says.
fn pick(risk: u32, safe: &'static [&'static str], risky: &'static [&'static str]) -> BoxedStrategy<&'static str> {
    mostly(risk, select(safe), select(risky))
}

fn inline(risk: u32) -> BoxedStrategy<String> {
    let safe = prop_oneof![
        10 => select(SAFE_PLAIN).prop_map(str::to_owned),
        3 => select(SAFE_QUOTED).prop_map(str::to_owned),
        3 => select(SAFE_FLOW).prop_map(str::to_owned),
        1 => Just(String::new()),
        // Long strings, which cost a node per SCALAR_BYTES_PER_NODE bytes.
        1 => (200..800usize).prop_map(|n| "x".repeat(n)),
    ];
    let risky = prop_oneof![
        select(RISKY_PLAIN).prop_map(str::to_owned),
        select(RISKY_QUOTED).prop_map(str::to_owned),
        select(RISKY_FLOW).prop_map(str::to_owned),
        select(MULTI_LINE).prop_map(str::to_owned),
    ];
    mostly(risk, safe, risky)
}

fn key(risk: u32) -> BoxedStrategy<String> {
    // libyaml takes at most 1024 characters for a simple key.
    let long = (990..1030usize).prop_map(|n| "k".repeat(n));
    let risky = prop_oneof![20 => select(RISKY_KEYS).prop_map(str::to_owned), 1 => long];
    mostly(risk, select(SAFE_KEYS).prop_map(str::to_owned), risky)
}

/// Entries of a mapping, with keys from the pools: they sometimes repeat.
fn entries(risk: u32, value: BoxedStrategy<Node>, len: std::ops::Range<usize>) -> BoxedStrategy<Vec<(String, Node)>> {
    prop::collection::vec((key(risk), value), len).boxed()
}

fn layout(risk: u32, seq: bool) -> BoxedStrategy<Layout> {
    // A sequence may stand at its key's column; a mapping there is not nested at all.
    let step = if seq {
        select(&[0, 0, 2, 2, 4, 1][..]).boxed()
    } else {
        mostly(risk, select(&[2, 2, 2, 4, 1, 3][..]), Just(0))
    };
    let shifted = mostly(risk, Just(None), (any::<Index>(), select(&[-2, -1, 1, 2][..])).prop_map(Some));
    let properties = mostly(risk, Just(""), select(&["&a", "&b", "!!map", "!!seq", "!custom", "&a !!map"][..]));
    // `- - a` is rarer than `- key: v`.
    let compact = if seq { prop::bool::weighted(0.25).boxed() } else { any::<bool>().boxed() };
    (step, compact, shifted, properties)
        .prop_map(|(step, compact, shifted, properties)| Layout { step, compact, shifted, properties })
        .boxed()
}

fn block_scalar(risk: u32) -> BoxedStrategy<Node> {
    let safe_line = prop_oneof![
        8 => (select(&[0, 0, 0, 1, 2][..]), select(SAFE_BODY)).prop_map(|(extra, text)| BodyLine::Text(extra, text)),
        1 => Just(BodyLine::Blank(0)),
    ];
    let risky_line = prop_oneof![
        select(RISKY_BODY).prop_map(|text| BodyLine::Text(0, text)),
        (1..6usize).prop_map(BodyLine::Blank),
        select(SAFE_BODY).prop_map(BodyLine::Dedented),
    ];
    // The first line with text sets the body's indentation; blank lines before it only at risk.
    let leading = mostly(risk, Just(Vec::new()), prop::collection::vec((0..6usize).prop_map(BodyLine::Blank), 1..3));
    let first = select(SAFE_BODY).prop_map(|text| BodyLine::Text(0, text));
    let rest = prop::collection::vec(mostly(risk, safe_line, risky_line), 0..4);
    let lines = (leading, first, rest)
        .prop_map(|(leading, first, rest)| leading.into_iter().chain([first]).chain(rest).collect());
    let body = prop_oneof![1 => Just(Vec::new()), 9 => lines];
    let step = mostly(risk, select(&[2, 2, 4, 1][..]), Just(0));
    (pick(risk, SAFE_HEADERS, RISKY_HEADERS), step, body)
        .prop_map(|(header, step, body)| Node::Block { header, step, body })
        .boxed()
}

fn node(risk: u32) -> BoxedStrategy<Node> {
    let leaf = prop_oneof![8 => inline(risk).prop_map(Node::Inline), 1 => block_scalar(risk)];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        prop_oneof![
            (layout(risk, false), entries(risk, inner.clone(), 0..5))
                .prop_map(|(layout, entries)| Node::Map { layout, entries }),
            (layout(risk, true), prop::collection::vec(inner, 0..5))
                .prop_map(|(layout, items)| Node::Seq { layout, items }),
        ]
    })
    .boxed()
}

/// `key: value` with a good value (weight 40), one the identity check refuses (2), any
/// node (at risk), or no entry (1).
fn entry(
    risk: u32,
    key: &'static str,
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> BoxedStrategy<Option<(String, Node)>> {
    let value = prop_oneof![40 => select(good), 2 => select(bad)].prop_map(|v| Node::Inline(v.to_owned()));
    let value = mostly(risk, value, node(risk));
    prop_oneof![1 => Just(None), 42 => value.prop_map(move |v| Some((key.to_owned(), v)))].boxed()
}

fn metadata(risk: u32) -> BoxedStrategy<Option<(String, Node)>> {
    #[rustfmt::skip]
    let name = entry(risk, "name", &["web", "web", "web-1", "web-1", "'web'", "\"web\"", "a.b", "\"w\\x65b\""], &[
        "", "''", "\"\"", "~", "null", "5", "1.5", "true", "[a]", "{a: b}", ".inf",
    ]);
    #[rustfmt::skip]
    let namespace = entry(risk, "namespace", &["prod", "default", "'prod'", "''", "~", ""], &[
        "5", "[x]", "{}", "true",
    ]);
    let labels = entry(risk, "labels", &["{app: web}", "{\"app\": 'web', tier: \"front\"}", "{}"], &["[a]", "x"]);
    let block = (layout(risk, false), name, namespace, labels, entries(risk, node(risk), 0..2)).prop_map(
        |(layout, name, namespace, labels, extra)| {
            let entries = [name, namespace, labels].into_iter().flatten().chain(extra).collect();
            Node::Map { layout: Layout { compact: false, ..layout }, entries }
        },
    );
    let flow = select(&["{name: web}", "{name: web, namespace: prod}", "{name: 'web', labels: {a: b}}"][..]);
    let bad = select(&["{name: ''}", "{namespace: x}", "{name: 5}", "{name: web, name: x}", "web", "~", "[web]"][..]);
    let flow = prop_oneof![8 => flow, 1 => bad].prop_map(|v| Node::Inline(v.to_owned()));
    let value = mostly(risk, prop_oneof![2 => block, 1 => flow], node(risk));
    prop_oneof![1 => Just(None), 42 => value.prop_map(|v| Some(("metadata".to_owned(), v)))].boxed()
}

fn items(risk: u32) -> BoxedStrategy<Option<(String, Node)>> {
    let value = select(&["[]", "{}", "~", "[{a: 1}]", "x"][..]).prop_map(|v| Node::Inline(v.to_owned()));
    let value = mostly(risk, value, node(risk));
    prop_oneof![6 => Just(None), 1 => value.prop_map(|v| Some(("items".to_owned(), v)))].boxed()
}

/// A mapping document: the identity's entries (each good, bad or missing) and a few
/// others, in random order, at the root's indentation.
fn object(risk: u32) -> BoxedStrategy<String> {
    #[rustfmt::skip]
    let api_version = entry(risk, "apiVersion", &["v1", "apps/v1", "rbac.authorization.k8s.io/v1", "\"v1\""], &[
        "", "''", "~", "1", "[v1]",
    ]);
    #[rustfmt::skip]
    let kind = entry(risk, "kind", &[
        "ConfigMap", "Deployment", "Service", "ConfigMap", "Deployment", "'Secret'", "\"Secret\"", "FooList",
        "ConfigMapList",
    ], &[
        "", "''", "~", "5", "true", "{a: b}", "List",
    ]);
    let entries = (api_version, kind, metadata(risk), items(risk), entries(risk, node(risk), 0..4))
        .prop_map(|(api_version, kind, metadata, items, extra)| {
            [api_version, kind, metadata, items].into_iter().flatten().chain(extra).collect::<Vec<_>>()
        })
        .prop_shuffle();
    let indent = mostly(risk, Just(0), select(&[1, 2][..]));
    (indent, layout(risk, false), entries)
        .prop_map(|(indent, layout, entries)| {
            let mut out = Vec::new();
            render_entries(&entries, indent, None, layout.shifted, &mut out);
            out.join("\n")
        })
        .boxed()
}

fn document(risk: u32) -> BoxedStrategy<String> {
    let other = pick(risk, SAFE_DOCUMENTS, RISKY_DOCUMENTS).prop_map(str::to_owned);
    prop_oneof![20 => object(risk), 1 => other].boxed()
}

/// A file's bytes, shown as text when a case fails.
#[derive(Clone)]
struct Content(Vec<u8>);

impl Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&shown(&self.0))
    }
}

/// A stream of documents with its markers, line endings and encoding quirks.
fn stream(risk: u32) -> BoxedStrategy<Content> {
    let separators = prop::collection::vec(pick(risk, SAFE_SEPARATORS, RISKY_SEPARATORS), 3);
    // CRLF is a line break to libyaml as LF is; a CR alone is one too.
    let line_ends = mostly(risk, select(&["\n", "\n", "\n", "\r\n", "mixed"][..]), Just("\r"));
    (
        pick(risk, SAFE_PREFIXES, RISKY_PREFIXES),
        prop::collection::vec(document(risk), 1..4),
        separators,
        pick(risk, SAFE_SUFFIXES, RISKY_SUFFIXES),
        line_ends,
    )
        .prop_map(|(prefix, documents, separators, suffix, line_ends)| {
            let mut text = prefix.to_owned();
            for (i, document) in documents.iter().enumerate() {
                if i > 0 {
                    text.push('\n');
                    text.push_str(separators[i - 1]);
                    text.push('\n');
                }
                text.push_str(document);
            }
            text.push_str(suffix);
            let text = match line_ends {
                // Every other line ends in CRLF.
                "mixed" => text
                    .split('\n')
                    .enumerate()
                    .map(|(i, line)| if i % 2 == 0 { format!("{line}\r") } else { line.to_owned() })
                    .collect::<Vec<_>>()
                    .join("\n"),
                ending => text.replace('\n', ending),
            };
            Content(text.into_bytes())
        })
        .boxed()
}

/// Writes `node` as the value of `head` (a line so far, ending in `key:` or `-`) whose
/// indentation is `indent`.
fn render(node: &Node, head: String, indent: usize, out: &mut Vec<String>) {
    match node {
        Node::Inline(text) if text.is_empty() => out.push(head),
        Node::Inline(text) => {
            let mut lines = text.split('\n');
            out.push(format!("{head} {}", lines.next().unwrap_or_default()));
            out.extend(lines.map(|line| format!("{}{line}", " ".repeat(indent + 1))));
        }
        Node::Block { header, step, body } => {
            out.push(format!("{head} {header}"));
            let body_indent = indent + step;
            out.extend(body.iter().map(|line| match line {
                BodyLine::Text(extra, text) => format!("{}{text}", " ".repeat(body_indent + extra)),
                BodyLine::Blank(spaces) => " ".repeat(*spaces),
                BodyLine::Dedented(text) => format!("{}{text}", " ".repeat(body_indent.saturating_sub(1))),
            }));
        }
        Node::Map { entries, .. } if entries.is_empty() => out.push(format!("{head} {{}}")),
        Node::Seq { items, .. } if items.is_empty() => out.push(format!("{head} []")),
        Node::Map { layout, entries } => {
            let head = with_properties(head, layout.properties);
            if layout.compact && head.ends_with('-') {
                let column = head.len() + 1;
                render_entries(entries, column, Some(head), layout.shifted, out);
            } else {
                out.push(head);
                render_entries(entries, indent + layout.step, None, layout.shifted, out);
            }
        }
        Node::Seq { layout, items } => {
            let head = with_properties(head, layout.properties);
            let (column, mut first) = if layout.compact && head.ends_with('-') {
                (head.len() + 1, Some(head))
            } else {
                out.push(head);
                (indent + layout.step, None)
            };
            let shifted = shift(layout.shifted, items.len());
            for (i, item) in items.iter().enumerate() {
                let head = match first.take() {
                    Some(head) => format!("{head} -"),
                    None => format!("{}-", " ".repeat(column.saturating_add_signed(shifted(i)))),
                };
                render(item, head, column, out);
            }
        }
    }
}

/// Entries of a block mapping at `indent`; the first continues `first_head` when given.
fn render_entries(
    entries: &[(String, Node)],
    indent: usize,
    mut first_head: Option<String>,
    shifted: Option<(Index, isize)>,
    out: &mut Vec<String>,
) {
    let shifted = shift(shifted, entries.len());
    for (i, (key, value)) in entries.iter().enumerate() {
        let head = match first_head.take() {
            Some(head) => format!("{head} {key}:"),
            None => format!("{}{key}:", " ".repeat(indent.saturating_add_signed(shifted(i)))),
        };
        render(value, head, indent, out);
    }
}

/// The column offset of each of `len` entries: all 0 but the one chosen.
fn shift(shifted: Option<(Index, isize)>, len: usize) -> impl Fn(usize) -> isize {
    let chosen = shifted.filter(|_| len > 0).map(|(index, by)| (index.index(len), by));
    move |i| match chosen {
        Some((at, by)) if at == i => by,
        _ => 0,
    }
}

/// `head` with an anchor or tag after it (a `- &a` item anchors what follows on the line).
fn with_properties(head: String, properties: &str) -> String {
    if properties.is_empty() { head } else { format!("{head} {properties}") }
}

/// A small edit of the text, to reach what the grammar does not.
#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Indent(Index, usize),
    Dedent(Index, usize),
    InsertChar(Index, char),
    InsertByte(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::DeleteLine),
        1 => any::<Index>().prop_map(Mutation::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        1 => (any::<Index>(), 1..4usize).prop_map(|(at, n)| Mutation::Indent(at, n)),
        1 => (any::<Index>(), 1..4usize).prop_map(|(at, n)| Mutation::Dedent(at, n)),
        3 => (any::<Index>(), select(INSERTED)).prop_map(|(at, c)| Mutation::InsertChar(at, c)),
        1 => (any::<Index>(), select(INSERTED_BYTES)).prop_map(|(at, b)| Mutation::InsertByte(at, b)),
    ]
}

fn mutate(content: &[u8], mutation: &Mutation) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = content.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let count = lines.len();
    let line = |at: &Index| at.index(count);
    match mutation {
        Mutation::DeleteLine(at) => {
            lines.remove(line(at));
        }
        Mutation::DuplicateLine(at) => {
            let i = line(at);
            lines.insert(i, lines[i].clone());
        }
        Mutation::SwapLines(a, b) => lines.swap(line(a), line(b)),
        Mutation::Indent(at, n) => {
            lines[line(at)].splice(0..0, std::iter::repeat_n(b' ', *n));
        }
        Mutation::Dedent(at, n) => {
            let i = line(at);
            let spaces = lines[i].iter().take(*n).take_while(|&&b| b == b' ').count();
            lines[i].drain(..spaces);
        }
        Mutation::InsertChar(at, c) => {
            let mut content = content.to_vec();
            let i = at.index(content.len() + 1);
            content.splice(i..i, c.encode_utf8(&mut [0; 4]).bytes());
            return content;
        }
        Mutation::InsertByte(at, byte) => {
            let mut content = content.to_vec();
            content.insert(at.index(content.len() + 1), *byte);
            return content;
        }
    }
    lines.join(&b'\n')
}

/// A case: the risk it was drawn at, the stream, the edits made to it, and the node budget.
fn case() -> impl Strategy<Value = (u32, Content, Vec<Mutation>, usize)> {
    let risk = prop_oneof![2 => Just(0), 2 => Just(1), 1 => Just(6)];
    let mutations = prop_oneof![1 => Just(Vec::new()), 2 => prop::collection::vec(mutation(), 1..4)];
    let limit = prop_oneof![Just(LIMIT), 0..60usize];
    (risk.prop_flat_map(|risk| (Just(risk), stream(risk))), mutations, limit)
        .prop_map(|((risk, content), mutations, limit)| (risk, content, mutations, limit))
}

/// More cases than proptest's default 256 unless PROPTEST_CASES says otherwise: one case
/// takes about a millisecond in a debug build.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { 1024 };
    // Failures found are kept as cases in the tables above, not in a regressions file.
    ProptestConfig { cases, failure_persistence: None, ..default }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fast_path_agrees_with_the_full_check_on_generated_streams((_risk, content, mutations, limit) in case()) {
        agrees(&content.0, limit);
        let mutated = mutations.iter().fold(content.0, |content, mutation| mutate(&content, mutation));
        agrees(&mutated, limit);
    }
}

/// How often, on generated streams, the full check accepts and the fast path answers: a
/// generator that seldom reached the fast path's answers would test little. The figures are
/// printed with `cargo test --lib generated_streams -- --nocapture`.
#[test]
fn generated_streams_reach_the_fast_path() {
    // Rows: risk 0, 1, 6, then every mutated stream. Columns: streams, accepted by the full
    // check, answered by the fast path, panics of the fast path.
    let mut figures = [[0usize; 4]; 4];
    let mut runner = TestRunner::new(config());
    for _ in 0..config().cases {
        let (risk, content, mutations, limit) = case().new_tree(&mut runner).expect("a case").current();
        let row = match risk {
            0 => 0,
            1 => 1,
            _ => 2,
        };
        let mutated = mutations.iter().fold(content.0.clone(), |content, mutation| mutate(&content, mutation));
        for (row, content) in [(row, content.0), (3, mutated)] {
            let row = &mut figures[row];
            row[0] += 1;
            row[1] += usize::from(check_parsed(&file(&content), limit).is_ok());
            match std::panic::catch_unwind(|| objects(&content, limit)) {
                Ok(answer) => row[2] += usize::from(answer.is_some()),
                Err(_) => row[3] += 1,
            }
        }
    }
    for (what, [streams, accepted, answered, panics]) in ["risk 0", "risk 1", "risk 6", "mutated"].iter().zip(figures) {
        println!(
            "{what}: {streams} streams, full check accepts {accepted}, fast path answers {answered}, panics {panics}"
        );
        assert_eq!(panics, 0, "{what}: the fast path panicked");
    }
    // Well-formed streams: the fast path must answer a good share of those the full check accepts.
    let [_, accepted, answered, _] = figures[0];
    assert!(accepted > 0 && answered * 5 >= accepted, "risk 0: {answered} answered of {accepted} accepted");
}
