#!/usr/bin/env bash
# Captures the fixtures of tests/argocd/ from a real controller: the statuses the Argo CD health
# scripts (docs/argocd/*.lua) are tested against are what Conveyor writes, never hand-made.
#
#   bash tests/argocd-capture.sh            (writes tests/argocd/*.json; ~2 minutes once cached)
#
# It plays the story of `make demo` (tests/demo.sh) on a local control plane: the checkout
# Pipeline of config/examples/, a real Prometheus scraping tests/demo-app.py, release 2.4.1
# walking development → staging → (approved) production, 2.5.0 held by a pause, then rolled
# back in staging by its error-rate check. At each step it saves the object as `kubectl get -o
# json` prints it, without metadata.managedFields. See tests/argocd/README.md for what each
# fixture is. Exits 1, naming the step, when the story does not happen.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib.sh

out=tests/argocd
good=2.4.1 bad=2.5.0

need_rust
need_prometheus
apt_install curl
command -v kubectl >/dev/null 2>&1 || apt_install kubernetes-client

step "building conveyor"
cargo build --quiet
bin=$(mktemp -d -t conveyor-capture-bin-XXXXXX)/conveyor
# A copy: other builds in the same target directory must not change the binary under us.
cp target/debug/conveyor "$bin"

tests/control-plane.sh install
run_dir=$(mktemp -d -t conveyor-capture-XXXXXX)
pids=()
cleanup() {
  stop_newest_first "${pids[@]}"
  tests/control-plane.sh stop "$run_dir"
  rm -rf "$(dirname "$bin")" "$run_dir"
}
trap cleanup EXIT
tests/control-plane.sh start "$run_dir" >/dev/null
export KUBECONFIG="$run_dir/kubeconfig"

fail() {
  printf '\ncapture failed: %s\n' "$*" >&2
  kubectl -n checkout get pipeline checkout -o yaml >&2 || true
  tail -n 40 "$run_dir/controller.log" >&2 || true
  exit 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Saves KIND/NAME of namespace checkout as $out/FILE, without managedFields.
save() { # kind/name, file
  kubectl -n checkout get "$1" -o json |
    python3 -c 'import json,sys; o=json.load(sys.stdin); o["metadata"].pop("managedFields",None); print(json.dumps(o,indent=2,sort_keys=True))' \
      >"$out/$2"
  printf '  saved %s as %s\n' "$1" "$out/$2"
}

# Waits until the jsonpath EXPR of KIND/NAME prints WANT (an extended regex), for TIMEOUT seconds.
until_is() { # kind/name, jsonpath, want, timeout
  local deadline=$(( $(date +%s) + $4 )) got=""
  while :; do
    got=$(kubectl -n checkout get "$1" -o jsonpath="$2" 2>/dev/null) || got=""
    [[ $got =~ ^($3)$ ]] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || fail "$1 $2 is '$got' after $4s (wanted $3)"
    sleep 0.3
  done
}
phase_of() { printf '{.status.environments[?(@.name=="%s")].phase}|{.status.environments[?(@.name=="%s")].current.version}' "$1" "$1"; }

app_port_file="$run_dir/demo-app.port"
BROKEN_VERSIONS=$bad python3 tests/demo-app.py --port-file "$app_port_file" >"$run_dir/demo-app.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$app_port_file" ] && break; sleep 0.1; done
[ -s "$app_port_file" ] || fail "tests/demo-app.py did not start"
prom_port=$(free_port)
cat >"$run_dir/prometheus.yml" <<EOF
global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: checkout
    static_configs: [ { targets: ["127.0.0.1:$(cat "$app_port_file")"] } ]
EOF
prometheus --config.file="$run_dir/prometheus.yml" --storage.tsdb.path="$run_dir/prometheus" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$run_dir/prometheus.log" 2>&1 &
pids+=($!)

"$bin" crds | kubectl apply --server-side -f - >/dev/null
kubectl wait --for=condition=Established crd/pipelines.conveyor.dev crd/releases.conveyor.dev --timeout=60s >/dev/null

port=$(free_port)
NO_COLOR=1 CONVEYOR_METRICS_ADDRESS="127.0.0.1:$port" CONVEYOR_LEASE_NAMESPACE=default \
  CONVEYOR_ARTIFACT_DIR="$run_dir/artifacts" CONVEYOR_PROMETHEUS_ADDRESS="http://127.0.0.1:$prom_port" \
  CONVEYOR_GIT_TIMEOUT=5s "$bin" controller --config config/conveyor.yaml >"$run_dir/controller.log" 2>&1 &
controller=$!
pids+=("$controller")
deadline=$(( $(date +%s) + 60 ))
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the controller did not become ready"
  sleep 0.2
done
until curl -sf "http://127.0.0.1:$prom_port/api/v1/targets" 2>/dev/null | grep -q '"health":"up"'; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "Prometheus did not scrape tests/demo-app.py"
  sleep 0.5
done

step "the example Pipeline and the application's repository"
kubectl apply --server-side -f config/examples/10-checkout.yaml >/dev/null
repo="$run_dir/checkout"
example_repo "$repo"

step "Releases that do not package: invalid, a missing tag, an unreachable repository"
kubectl apply --server-side -f config/examples/20-broken-release.yaml >/dev/null
kubectl apply --server-side -f - >/dev/null <<EOF
apiVersion: conveyor.dev/v1alpha1
kind: Release
metadata: { name: checkout-0.9.0, namespace: checkout }
spec:
  pipeline: checkout
  version: 0.9.0
  source: { git: { url: "file://$repo", ref: { tag: v0.9.0 } }, path: deploy }
---
apiVersion: conveyor.dev/v1alpha1
kind: Release
metadata: { name: checkout-0.9.1, namespace: checkout }
spec:
  pipeline: checkout
  version: 0.9.1
  # Port 9 (discard) on loopback: nothing listens, every fetch is refused.
  source: { git: { url: "http://127.0.0.1:9/checkout.git", ref: { tag: v0.9.1 } }, path: deploy }
EOF
kubectl -n checkout wait --for=condition=Stalled release/checkout-broken --timeout=60s >/dev/null
save release/checkout-broken release-invalid.json
kubectl -n checkout wait --for=condition=Stalled release/checkout-0.9.0 --timeout=60s >/dev/null
save release/checkout-0.9.0 release-failed.json
until_is release/checkout-0.9.1 '{.status.conditions[?(@.type=="Reconciling")].reason}' GitUnreachable 60
save release/checkout-0.9.1 release-packaging.json
kubectl -n checkout delete release checkout-broken checkout-0.9.0 checkout-0.9.1 >/dev/null

step "release $good: development deploys it (no kubelet yet: it stays Verifying)"
CONVEYOR_CONFIG=config/conveyor.yaml "$bin" release --repo "$repo" --version "$good" --pipeline checkout \
  --path deploy --namespace checkout --apply >/dev/null
kubectl -n checkout wait --for=condition=Ready "release/checkout-$good" --timeout=120s >/dev/null
until_is pipeline/checkout "$(phase_of development)" "Verifying\|$good" 60
save pipeline/checkout pipeline-progressing.json

step "the demo kubelet marks the Pods ready: development, staging, then production awaits approval"
tests/demo-kubelet.sh 'checkout-*' >"$run_dir/kubelet.log" 2>&1 &
pids+=($!)
until_is pipeline/checkout "$(phase_of staging)" "Healthy\|$good" 120
until_is pipeline/checkout "$(phase_of production)" "AwaitingApproval\|" 60
save pipeline/checkout pipeline-suspended-approval.json

step "approved: production takes $good; every environment Healthy"
"$bin" approve checkout production -n checkout >/dev/null
until_is pipeline/checkout "$(phase_of production)" "Healthy\|$good" 90
kubectl -n checkout wait --for=condition=Ready pipeline/checkout --timeout=30s >/dev/null
save pipeline/checkout pipeline-healthy.json
save "release/checkout-$good" release-packaged.json

step "paused, then release $bad: the pause holds it back"
"$bin" pause checkout -n checkout >/dev/null
cp config/examples/checkout-app/payment-provider.yaml "$repo/deploy/payment-provider.yaml"
git -C "$repo" add deploy
git -C "$repo" commit -q -m "feat(checkout): new payment provider"
CONVEYOR_CONFIG=config/conveyor.yaml "$bin" release --repo "$repo" --version "$bad" --pipeline checkout \
  --path deploy --namespace checkout --apply >/dev/null
kubectl -n checkout wait --for=condition=Ready "release/checkout-$bad" --timeout=120s >/dev/null
until_is pipeline/checkout '{.status.conditions[?(@.type=="Stalled")].reason}' Paused 60
save pipeline/checkout pipeline-paused.json

step "resumed: staging's error-rate check fails $bad and rolls it back to $good"
"$bin" resume checkout -n checkout >/dev/null
until_is pipeline/checkout "$(phase_of staging)" "RollingBack\|$good" 90
save pipeline/checkout pipeline-rolling-back.json
until_is pipeline/checkout "$(phase_of staging)" "Healthy\|$good" 90
kubectl -n checkout wait --for=condition=Stalled pipeline/checkout --timeout=30s >/dev/null
save pipeline/checkout pipeline-degraded-rolled-back.json

step "a spec change the controller has not seen yet (controller stopped): status is of an older generation"
kill "$controller"
wait "$controller" 2>/dev/null || true
kubectl -n checkout patch pipeline checkout --type merge -p '{"spec":{"historyLimit":11}}' >/dev/null
save pipeline/checkout pipeline-stale-generation.json

printf '\nfixtures written to %s\n' "$out"
