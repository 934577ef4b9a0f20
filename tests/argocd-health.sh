#!/usr/bin/env bash
# Tests the Argo CD health scripts shipped in docs/argocd/ with a real Lua 5.1 interpreter (Argo CD
# runs gopher-lua, a Lua 5.1) against statuses a real Conveyor controller wrote
# (tests/argocd/*.json, captured by tests/argocd-capture.sh; see tests/argocd/README.md).
# Each case names the script, the fixture, the health status expected and a part of the message
# expected. Prints one line per case and exits 1 when any case does not hold.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib.sh

if ! lua5.1 -e 'require("cjson")' >/dev/null 2>&1; then
  apt_install lua5.1 lua-cjson
fi

pipeline=docs/argocd/health-pipeline.lua
release=docs/argocd/health-release.lua

# script | fixture (in tests/argocd/) | option | expected status | expected part of the message
cases=$(cat <<'EOF'
pipeline|pipeline-healthy.json||Healthy|development=2.4.1 staging=2.4.1 production=2.4.1
pipeline|pipeline-progressing.json||Progressing|Deploying: development: Verifying checkout-2.4.1
pipeline|pipeline-rolling-back.json||Progressing|staging: RollingBack checkout-2.4.1
pipeline|pipeline-suspended-approval.json||Suspended|production: AwaitingApproval: checkout-2.4.1
pipeline|pipeline-paused.json||Suspended|Paused: paused: checkout-2.5.0 waits to enter development
pipeline|pipeline-degraded-rolled-back.json||Degraded|RolledBack: staging: checkout-2.5.0 failed
pipeline|pipeline-stale-generation.json||Progressing|observe generation 2
pipeline|pipeline-healthy.json|--without-status|Progressing|Waiting for the Conveyor controller
release|release-packaged.json||Healthy|Packaged: packaged
release|release-packaging.json||Progressing|Packaging: GitUnreachable
release|release-failed.json||Degraded|Failed: RefNotFound
release|release-invalid.json||Degraded|Pending: InvalidVersion
release|release-packaged.json|--without-status|Progressing|Waiting for the Conveyor controller
EOF
)

passed=0 failed=0
while IFS='|' read -r which fixture option want_status want_message; do
  script=$pipeline
  [ "$which" = release ] && script=$release
  args=("$script" "tests/argocd/$fixture")
  [ -n "$option" ] && args+=("$option")
  if ! output=$(lua5.1 tests/argocd/run.lua "${args[@]}" 2>&1); then
    printf 'FAIL %s on %s %s: the script failed: %s\n' "$script" "$fixture" "$option" "$output"
    failed=$((failed + 1))
    continue
  fi
  got_status=$(sed -n 1p <<<"$output")
  got_message=$(sed -n '2,$p' <<<"$output")
  if [ "$got_status" = "$want_status" ] && [[ $got_message == *"$want_message"* ]]; then
    printf 'ok   %-34s %-16s %-11s %s\n' "$fixture" "$option" "$got_status" "$got_message"
    passed=$((passed + 1))
  else
    printf 'FAIL %s on %s %s: got %s "%s", wanted %s with "%s"\n' \
      "$script" "$fixture" "$option" "$got_status" "$got_message" "$want_status" "$want_message"
    failed=$((failed + 1))
  fi
done <<<"$cases"

printf '%s passed, %s failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
