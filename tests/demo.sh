#!/usr/bin/env bash
# `make demo`: a local control plane, the CRDs, the controller, the example Pipeline from
# config/examples/, a git repository of the example application released with
# `conveyor release --apply`, the packaged Release and a broken one, as kubectl shows them;
# then the release walking through development and staging on its own, production waiting
# for `conveyor approve`, and where everything ended up.
# No kubelet runs on the local control plane: tests/demo-kubelet.sh marks the Pods ready.
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
kubelet_pid=""
cleanup() {
  [ -n "$kubelet_pid" ] && kill "$kubelet_pid" 2>/dev/null && wait "$kubelet_pid" 2>/dev/null
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
NO_COLOR=1 CONVEYOR_METRICS_ADDRESS="127.0.0.1:$port" CONVEYOR_LEASE_NAMESPACE=default \
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
packaged_at=$(date +%s)
kubectl -n checkout wait --for=condition=Stalled release/checkout-broken --timeout=60s

step "conveyor package: the same digest, computed from the repository by hand"
"$bin" package --repo "$repo" --ref v2.4.1 --path deploy

step "kubectl get conveyor -n checkout -o wide"
kubectl get conveyor -n checkout -o wide

step "conditions"
for obj in release/checkout-2.4.1 release/checkout-broken; do
  printf '%s\n' "$obj"
  kubectl -n checkout get "$obj" -o jsonpath='{range .status.conditions[*]}  {.type}={.status}  {.reason}: {.message}{"\n"}{end}'
done

step "release notes of checkout-2.4.1 (status.notes) and the artifact store"
kubectl -n checkout get release/checkout-2.4.1 -o jsonpath='{.status.notes}{"\n"}'
ls -l "$run_dir/artifacts/sha256"

# --- The release walks through the environments -------------------------------------------

# Prints why the demo stopped, the Pipeline's status and the logs, and exits 1.
fail() {
  printf '\ndemo failed: %s\n' "$*" >&2
  kubectl -n checkout get pipeline checkout -o yaml >&2 || true
  printf '\n--- controller log (last 80 lines of %s)\n' "$run_dir/controller.log" >&2
  tail -n 80 "$run_dir/controller.log" >&2
  if [ -f "$run_dir/kubelet.log" ]; then
    printf '\n--- demo kubelet log (last 20 lines)\n' >&2
    tail -n 20 "$run_dir/kubelet.log" >&2
  fi
  exit 1
}

# Waits until ENVIRONMENT of the checkout Pipeline is in a phase matching PHASES (an extended
# regex), failing after TIMEOUT seconds or as soon as it is Failed.
wait_phase() { # environment, phases, timeout seconds
  local env=$1 want=$2 deadline=$(( $(date +%s) + $3 )) phase
  while :; do
    phase=$(kubectl -n checkout get pipeline checkout \
      -o jsonpath="{.status.environments[?(@.name==\"$env\")].phase}" 2>/dev/null) || phase=""
    if [[ $phase =~ ^($want)$ ]]; then break; fi
    if [ "$phase" = Failed ]; then fail "$env is Failed (wanted $want)"; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then fail "$env is ${phase:-not reported} after $3s (wanted $want)"; fi
    sleep 0.5
  done
  printf '  %-12s %-17s +%ss after packaging\n' "$env" "$phase" "$(( $(date +%s) - packaged_at ))"
}

step "development: the controller deploys checkout-2.4.1 (newest Packaged release) and verifies it"
wait_phase development 'Verifying' 60
kubectl -n checkout-dev get deploy,pods
printf '\nNo kubelet runs here, so the Pods stay Pending and development stays Verifying.\n' >&2

step "starting the demo kubelet: marks Pending Pods in checkout-* Running and Ready (log: $run_dir/kubelet.log)"
tests/demo-kubelet.sh 'checkout-*' >"$run_dir/kubelet.log" 2>&1 &
kubelet_pid=$!

step "waiting: development Healthy, staging Healthy (after its 15s soak), production AwaitingApproval"
wait_phase development Healthy 90
wait_phase staging Healthy 120
wait_phase production AwaitingApproval 60

step "kubectl get pipeline checkout -n checkout -o wide"
kubectl get pipeline checkout -n checkout -o wide
kubectl -n checkout get pipeline checkout \
  -o jsonpath='{range .status.environments[?(@.name=="production")]}production awaits approval for: {.awaitingApproval}{"\n"}{end}'

step "$bin approve checkout production -n checkout"
"$bin" approve checkout production -n checkout
wait_phase production Healthy 90
pods_marked=$(grep -c 'Running, Ready' "$run_dir/kubelet.log" || true)
printf '  (the demo kubelet marked %s Pods ready)\n' "$pods_marked"

step "where checkout-2.4.1 went: the Pipeline's environments and the Release's journey"
kubectl get pipeline/checkout release/checkout-2.4.1 -n checkout -o json | python3 -c '
import json, sys

def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())

items = {o["kind"]: o for o in json.load(sys.stdin)["items"]}
pipeline, release = items["Pipeline"], items["Release"]
status = pipeline.get("status", {})
ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
print("Pipeline checkout: Ready=%s (%s)  %s" % (ready.get("status"), ready.get("reason"), status.get("summary", "")))
namespaces = {e["name"]: e["namespace"] for e in pipeline["spec"]["environments"]}
rows = []
for env in status.get("environments", []):
    cur = env.get("current") or {}
    last = (env.get("history") or [{}])[0]
    rows.append([env["name"], namespaces.get(env["name"], "-"), env["phase"],
                 cur.get("release", "-"), cur.get("version", "-"), cur.get("deploymentId", "-"),
                 last.get("startedAt", "-"), last.get("finishedAt", "-"), last.get("result", "-")])
table(["ENVIRONMENT", "NAMESPACE", "PHASE", "RELEASE", "VERSION", "DEPLOYMENT", "STARTED", "FINISHED", "RESULT"], rows)
print()
rs = release.get("status", {})
print("Release %s (version %s, %s): reached %s" % (release["metadata"]["name"], release["spec"]["version"],
      rs.get("phase"), rs.get("environment", "-")))
rows = [[j["name"], j.get("phase", "-"), j.get("deploymentId", "-"), j.get("startedAt", "-"),
         j.get("finishedAt", "-"), j.get("reason", "")] for j in rs.get("environments", [])]
table(["ENVIRONMENT", "PHASE", "DEPLOYMENT", "STARTED", "FINISHED", "REASON"], rows)
'

step "what Conveyor applied in each environment (label conveyor.dev/release)"
for ns in checkout-dev checkout-staging checkout-prod; do
  printf '%s\n' "$ns"
  kubectl -n "$ns" get deploy,cm,svc -l conveyor.dev/pipeline=checkout -L conveyor.dev/release,conveyor.dev/environment
  echo
done

step "kubectl get events -n checkout (deployments, promotions, the approval gate, the broken Release)"
kubectl get events -n checkout --sort-by=.metadata.creationTimestamp

step "metrics (http://127.0.0.1:$port/metrics)"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^conveyor_(leader|reconcile_duration_seconds_count|packaging_duration_seconds_count)'

if [ "${DEMO_KEEP:-}" = 1 ]; then
  printf '\nStill running. export KUBECONFIG=%s\nStop with: kill %s %s; tests/control-plane.sh stop %s\n' \
    "$run_dir/kubeconfig" "$kubelet_pid" "$controller_pid" "$run_dir"
else
  printf '\nDone; stopping the demo kubelet, the controller and the control plane (DEMO_KEEP=1 keeps them running).\n'
fi
