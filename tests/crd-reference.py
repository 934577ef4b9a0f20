#!/usr/bin/env python3
"""Prints docs/reference.md, the CRD field reference, generated from crds/*.yaml.

The CRDs are generated from the Rust types (with their doc comments as descriptions), so the
reference is generated from the CRDs in turn: one source of truth, and tests/docs.sh fails when
the committed reference drifts from it. The output depends only on the CRD files (sorted by
name; properties sorted by name), never on the clock or the machine.

Usage: python3 tests/crd-reference.py [CRD_DIR] > docs/reference.md
"""

import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("crd-reference.py needs PyYAML: apt-get install python3-yaml (or pip install pyyaml)")

ROOT = Path(__file__).resolve().parent.parent

# "(default 10)", "(default: the repository root)", "(1–100, default 10)", "(defaults to the URL)".
DEFAULT_IN_DESCRIPTION = re.compile(r"\(([^()]*?\b)?defaults?(?: to)?:?\s+([^();]+?)(?::\s[^()]*)?\)")


def cell(text):
    """Text made safe for one Markdown table cell."""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|") if text else ""


def code(text):
    return f"`{text}`"


def type_of(schema):
    """A short type: `string`, `integer (int32)`, `[]object`, `string (date-time)`, `map[string]string`."""
    kind = schema.get("type")
    if kind == "array":
        return "[]" + type_of(schema.get("items", {}))
    if kind == "object" and "additionalProperties" in schema and not schema.get("properties"):
        extra = schema["additionalProperties"]
        return "map[string]" + (type_of(extra) if isinstance(extra, dict) else "any")
    if schema.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    if schema.get("x-kubernetes-preserve-unknown-fields") and not kind:
        return "any"
    text = kind or "any"
    if schema.get("format"):
        text += f" ({schema['format']})"
    return text


def default_of(schema):
    """The schema's `default`, else the default its description states in parentheses."""
    if "default" in schema:
        return code(yaml.safe_dump(schema["default"], default_flow_style=True).strip().removesuffix("..."))
    match = DEFAULT_IN_DESCRIPTION.search(schema.get("description", ""))
    return match.group(2).strip() if match else ""


def rows(schema, path, required):
    """Yields one row per field under `schema` (an object), depth first, properties by name."""
    properties = schema.get("properties", {})
    for name in sorted(properties):
        field = properties[name]
        here = f"{path}.{name}" if path else name
        yield here, field, name in required
        target = field
        suffix = ""
        # Descend through arrays to the item objects: `spec.environments[].name`.
        while target.get("type") == "array":
            target = target.get("items", {})
            suffix += "[]"
        if target.get("properties"):
            yield from rows(target, here + suffix, set(target.get("required", [])))


def field_table(schema, path):
    out = [
        "| Field | Type | Required | Default | Values | Description |",
        "|---|---|---|---|---|---|",
    ]
    for here, field, required in rows(schema, path, set(schema.get("required", []))):
        items = field
        while items.get("type") == "array":
            items = items.get("items", {})
        values = ", ".join(code(v) for v in items.get("enum", []))
        out.append(
            "| {} | {} | {} | {} | {} | {} |".format(
                code(here),
                cell(type_of(field)),
                "yes" if required else "no",
                cell(default_of(field)),
                cell(values),
                cell(field.get("description", "")),
            )
        )
    return out


def anchor(text):
    """GitHub's heading anchor for `text`."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def crd_section(crd):
    spec = crd["spec"]
    names = spec["names"]
    kind = names["kind"]
    out = [f"## {kind}", ""]
    facts = [
        ("API", ", ".join(code(f"{spec['group']}/{v['name']}") for v in spec["versions"])),
        ("Scope", spec.get("scope", "Namespaced")),
        ("Resource", code(f"{names['plural']}.{spec['group']}")),
        ("Singular", code(names.get("singular", kind.lower()))),
        ("Short names", ", ".join(code(n) for n in names.get("shortNames", [])) or "none"),
        ("Categories", ", ".join(code(n) for n in names.get("categories", [])) or "none"),
    ]
    out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts] + [""]
    for version in spec["versions"]:
        schema = version.get("schema", {}).get("openAPIV3Schema", {})
        title = f"{kind} {version['name']}"
        flags = []
        if version.get("served"):
            flags.append("served")
        if version.get("storage"):
            flags.append("storage version")
        subresources = sorted(version.get("subresources", {}))
        if subresources:
            flags.append("subresources: " + ", ".join(subresources))
        out += [f"### {title}", "", cell(schema.get("description", "")), "", f"Version `{version['name']}`: {'; '.join(flags)}.", ""]
        columns = version.get("additionalPrinterColumns", [])
        if columns:
            out += [
                f"#### {title}: printer columns (`kubectl get {names['plural']}`)",
                "",
                "Columns with priority above 0 show only with `-o wide`.",
                "",
                "| Column | Type | JSONPath | Priority | Description |",
                "|---|---|---|---|---|",
            ]
            for c in columns:
                out.append(
                    "| {} | {} | {} | {} | {} |".format(
                        cell(c["name"]),
                        cell(c["type"]),
                        code(c["jsonPath"]),
                        c.get("priority", 0),
                        cell(c.get("description", "")),
                    )
                )
            out.append("")
        properties = schema.get("properties", {})
        for part in ("spec", "status"):
            if part not in properties:
                continue
            sub = properties[part]
            required = part in schema.get("required", [])
            out += [
                f"#### {title}: {part}",
                "",
                cell(sub.get("description", "")) + (" Required." if required else ""),
                "",
            ]
            out += field_table(sub, part)
            out.append("")
    return out


def main():
    crd_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "crds"
    files = sorted(crd_dir.glob("*.yaml"))
    if not files:
        sys.exit(f"crd-reference.py: no CRD files (*.yaml) in {crd_dir}")
    crds = []
    for f in files:
        for doc in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                crds.append((f.name, doc))
    crds.sort(key=lambda c: c[1]["spec"]["names"]["kind"])

    out = [
        "# CRD field reference",
        "",
        "<!-- Generated by tests/crd-reference.py from crds/*.yaml: do not edit by hand. "
        "Regenerate with: python3 tests/crd-reference.py > docs/reference.md -->",
        "",
        "Every field of the Conveyor custom resources, generated from the CRDs in `crds/` (which are",
        "generated from the Rust types, so the descriptions are the code's own). `spec` is yours;",
        "`status` is written only by the controller. A path `a[].b` is field `b` of each item of the",
        "list `a`. *Required* is relative to the enclosing object: `spec.environments[].name` is",
        "required in every environment. *Default* is what applies when the field is left out, as",
        "its description states it. For what the fields mean together, see [concepts](concepts.md).",
        "",
    ]
    for _, crd in crds:
        kind = crd["spec"]["names"]["kind"]
        out.append(f"- [{kind}](#{anchor(kind)}) (`{crd['metadata']['name']}`, from `crds/{_}`)")
    out.append("")
    for _, crd in crds:
        out += crd_section(crd)
    text = "\n".join(out).rstrip("\n") + "\n"
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
