#!/usr/bin/env bash
# Checks the documentation against the code it describes:
#  - docs/reference.md is what tests/crd-reference.py generates from crds/*.yaml (the CRDs are
#    generated from the Rust types, so a changed field must show in the reference too);
#  - the Argo CD health scripts shown in docs/gitops.md are docs/argocd/*.lua, byte for byte;
#  - every relative link in docs/*.md and README.md points at a file that exists.
# Exits 1 naming what is out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib.sh

python=python3
if ! "$python" -c 'import yaml' 2>/dev/null; then
  apt_install python3-yaml
  python=/usr/bin/python3
fi

status=0
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
"$python" tests/crd-reference.py >"$generated"
if ! diff -u docs/reference.md "$generated" >&2; then
  echo "docs/reference.md is out of date: run python3 tests/crd-reference.py > docs/reference.md" >&2
  status=1
fi

# The argocd-cm example of docs/gitops.md embeds each script under its key, indented by 4 spaces.
if ! "$python" - <<'PY' >&2; then
import sys
doc = open("docs/gitops.md", encoding="utf-8").read().splitlines(keepends=True)
status = 0
for kind, path in (("Pipeline", "docs/argocd/health-pipeline.lua"), ("Release", "docs/argocd/health-release.lua")):
    key = f"  resource.customizations.health.conveyor.dev_{kind}: |\n"
    if key not in doc:
        print(f"docs/gitops.md has no argocd-cm key for {kind} ({key.strip()})")
        status = 1
        continue
    body = []
    for line in doc[doc.index(key) + 1:]:
        if line.strip() and not line.startswith("    "):
            break
        body.append(line[4:] if line.strip() else "\n")
    while body and body[-1] == "\n":
        body.pop()
    if "".join(body) != open(path, encoding="utf-8").read():
        print(f"docs/gitops.md shows a {kind} health script that differs from {path}: copy {path} into it, indented by 4 spaces")
        status = 1
sys.exit(status)
PY
  status=1
fi

# Relative Markdown links: [text](path) or [text](path#anchor), not URLs or pure anchors.
for doc in README.md docs/*.md; do
  dir=$(dirname "$doc")
  while IFS= read -r target; do
    path=${target%%#*}
    [ -n "$path" ] || continue
    # Links leaving the repository (the workspace's ../shared/DESIGN.md) are not the repo's to check.
    case "$(realpath -m "$dir/$path")" in "$PWD"/*) ;; *) continue ;; esac
    if [ ! -e "$dir/$path" ]; then
      echo "$doc links to $target, which does not exist" >&2
      status=1
    fi
  done < <(grep -oE '\]\([^)[:space:]]+\)' "$doc" | sed -E 's/^\]\((.*)\)$/\1/' | grep -vE '^(https?|mailto):|^#' || true)
done

[ "$status" -eq 0 ] && echo "docs: reference up to date, relative links resolve"
exit "$status"
