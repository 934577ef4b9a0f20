#!/usr/bin/env bash
# `make demo`: a local control plane, the CRDs, the controller, the example Pipeline from
# config/examples/, a git repository of the example application released with
# `conveyor release --apply`, the packaged Release and a broken one, as kubectl shows them.
# DEMO_KEEP=1 leaves everything running and prints how to reach it.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib.sh

need_rust
apt_install curl
# Any kubectl will do; Debian's kubernetes-client (1.20) matches the local server.
command -v kubectl >/dev/null 2>&1 || apt_install kubernetes-client

step "building conveyor"
cargo build --quiet
bin=target/debug/conveyor

step "starting a local control plane (first run builds kube-apiserver 1.20: ~5 minutes, then cached)"
tests/control-plane.sh install
run_dir=$(mktemp -d -t conveyor-demo-XXXXXX)
controller_pid=""
cleanup() {
  [ -n "$controller_pid" ] && kill "$controller_pid" 2>/dev/null && wait "$controller_pid" 2>/dev/null
  tests/control-plane.sh stop "$run_dir"
}
if [ "${DEMO_KEEP:-}" != 1 ]; then trap cleanup EXIT; fi
tests/control-plane.sh start "$run_dir" >/dev/null
export KUBECONFIG="$run_dir/kubeconfig"

step "installing the CRDs"
"$bin" crds | kubectl apply --server-side -f -
kubectl wait --for=condition=Established crd/pipelines.conveyor.dev crd/releases.conveyor.dev --timeout=60s

step "starting the controller (logs: $run_dir/controller.log)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CONVEYOR_METRICS_ADDRESS="127.0.0.1:$port" CONVEYOR_LEASE_NAMESPACE=default \
  CONVEYOR_ARTIFACT_DIR="$run_dir/artifacts" \
  "$bin" controller --config config/conveyor.yaml >"$run_dir/controller.log" 2>&1 &
controller_pid=$!
deadline=$(( $(date +%s) + 60 ))
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then echo "controller did not become ready; log:" >&2; cat "$run_dir/controller.log" >&2; exit 1; fi
  sleep 0.2
done

step "applying config/examples/ (the checkout Pipeline and a broken Release)"
kubectl apply --server-side -f config/examples/

step "the application's git repository: config/examples/checkout-app/deploy, committed in $run_dir/checkout"
repo="$run_dir/checkout"
git init -q -b main "$repo"
git -C "$repo" config user.name "Demo Developer"
git -C "$repo" config user.email "dev@example.com"
cp -r config/examples/checkout-app/deploy "$repo/deploy"
git -C "$repo" add deploy
git -C "$repo" commit -q -m "feat: checkout service with settings"
sed -i 's/one-click: "false"/one-click: "true"/' "$repo/deploy/config.yaml"
git -C "$repo" commit -q -am "feat(checkout): one-click purchase"
git -C "$repo" log --oneline

step "conveyor release --version 2.4.1 --apply (tags v2.4.1, writes CHANGELOG.md, applies the Release)"
CONVEYOR_CONFIG=config/conveyor.yaml "$bin" release --repo "$repo" --version 2.4.1 --pipeline checkout \
  --path deploy --namespace checkout --apply
kubectl -n checkout wait --for=condition=Ready release/checkout-2.4.1 --timeout=120s
kubectl -n checkout wait --for=condition=Stalled release/checkout-broken --timeout=60s

step "conveyor package: the same digest, computed from the repository by hand"
"$bin" package --repo "$repo" --ref v2.4.1 --path deploy

step "kubectl get conveyor -n checkout -o wide"
kubectl get conveyor -n checkout -o wide

step "conditions"
for obj in pipeline/checkout release/checkout-2.4.1 release/checkout-broken; do
  printf '%s\n' "$obj"
  kubectl -n checkout get "$obj" -o jsonpath='{range .status.conditions[*]}  {.type}={.status}  {.reason}: {.message}{"\n"}{end}'
done

step "release notes of checkout-2.4.1 (status.notes) and the artifact store"
kubectl -n checkout get release/checkout-2.4.1 -o jsonpath='{.status.notes}{"\n"}'
ls -l "$run_dir/artifacts/sha256"

step "events"
kubectl -n checkout get events --field-selector type=Warning

step "metrics (http://127.0.0.1:$port/metrics)"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^conveyor_(leader|reconcile_duration_seconds_count|packaging_duration_seconds_count)'

if [ "${DEMO_KEEP:-}" = 1 ]; then
  printf '\nStill running. export KUBECONFIG=%s\nStop with: kill %s; tests/control-plane.sh stop %s\n' "$run_dir/kubeconfig" "$controller_pid" "$run_dir"
else
  printf '\nDone; stopping the controller and the control plane (DEMO_KEEP=1 keeps them running).\n'
fi
