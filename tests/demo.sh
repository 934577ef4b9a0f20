#!/usr/bin/env bash
# `make demo`: the whole story on a local control plane.
#  1. A local control plane, the CRDs, a real Prometheus scraping tests/demo-app.py (a stand-in
#     for the application's telemetry), the controller querying that Prometheus, and the example
#     Pipeline of config/examples/ (development → staging → production, production Manual,
#     automatic rollback).
#  2. A git repository of the example application released as 2.4.1 with
#     `conveyor release --apply`; the release walks development and staging on its own and
#     enters production with `conveyor approve`.
#  3. A second change (a new payment provider, with a new ConfigMap) released as 2.5.0. The
#     stand-in reports a high error ratio for 2.5.0 wherever it runs, so staging's Prometheus
#     check fails, the controller rolls staging back to 2.4.1 (pruning the new ConfigMap) and
#     2.5.0 never reaches production.
#  4. A summary: environments, staging's history, 2.5.0's journey and checks, Events.
# Exits 0 when all of that happened, 1 with the controller's log and the Pipeline's status if not
# (the run directory with every log is then kept; a successful run removes it).
# No kubelet runs on the local control plane: tests/demo-kubelet.sh marks the Pods ready.
# DEMO_KEEP=1 leaves everything running and prints how to reach it.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib.sh
started_at=$(date +%s)

good=2.4.1 bad=2.5.0

need_rust
need_prometheus
apt_install curl
command -v python3 >/dev/null 2>&1 || apt_install python3
# Any kubectl will do; Debian's kubernetes-client (1.20) matches the local server.
command -v kubectl >/dev/null 2>&1 || apt_install kubernetes-client

step "building conveyor"
cargo build --quiet
bin=target/debug/conveyor

step "starting a local control plane (first run builds kube-apiserver 1.20: ~5 minutes, then cached)"
tests/control-plane.sh install
run_dir=$(mktemp -d -t conveyor-demo-XXXXXX)
pids=()
finished=0
cleanup() {
  # Newest first: the kubelet, the controller, Prometheus, the stand-in.
  stop_newest_first "${pids[@]}"
  tests/control-plane.sh stop "$run_dir"
  # The logs and data of a run that went wrong stay for a look.
  if [ "$finished" = 1 ]; then rm -rf "$run_dir"; else printf 'logs and data kept in %s\n' "$run_dir" >&2; fi
}
if [ "${DEMO_KEEP:-}" != 1 ]; then trap cleanup EXIT; fi
tests/control-plane.sh start "$run_dir" >/dev/null
export KUBECONFIG="$run_dir/kubeconfig"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Prints why the demo stopped, the Pipeline's status and the logs, and exits 1.
fail() {
  printf '\ndemo failed: %s\n' "$*" >&2
  kubectl -n checkout get pipeline checkout -o yaml >&2 || true
  printf '\n--- controller log (last 80 lines of %s)\n' "$run_dir/controller.log" >&2
  tail -n 80 "$run_dir/controller.log" >&2 || true
  local f
  for f in demo-app kubelet prometheus prometheus-queries; do
    if [ -s "$run_dir/$f.log" ]; then
      printf '\n--- %s log (last 15 lines of %s)\n' "$f" "$run_dir/$f.log" >&2
      tail -n 15 "$run_dir/$f.log" >&2
    fi
  done
  exit 1
}

step "starting the application's telemetry stand-in, tests/demo-app.py (BROKEN_VERSIONS=$bad; log: $run_dir/demo-app.log)"
BROKEN_VERSIONS=$bad python3 tests/demo-app.py --port-file "$run_dir/demo-app.port" >"$run_dir/demo-app.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$run_dir/demo-app.port" ] && break; sleep 0.1; done
[ -s "$run_dir/demo-app.port" ] || fail "the telemetry stand-in did not start"
app_port=$(cat "$run_dir/demo-app.port")

prom_port=$(free_port)
prometheus_url="http://127.0.0.1:$prom_port"
step "starting Prometheus on $prometheus_url, scraping the stand-in every second (log: $run_dir/prometheus.log)"
cat >"$run_dir/prometheus.yml" <<EOF
global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s,
          query_log_file: "$run_dir/prometheus-queries.log" }
scrape_configs:
  - job_name: checkout
    static_configs: [ { targets: ["127.0.0.1:$app_port"] } ]
EOF
prometheus --config.file="$run_dir/prometheus.yml" --storage.tsdb.path="$run_dir/prometheus" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$run_dir/prometheus.log" 2>&1 &
pids+=($!)

step "installing the CRDs"
"$bin" crds | kubectl apply --server-side -f -
kubectl wait --for=condition=Established crd/pipelines.conveyor.dev crd/releases.conveyor.dev --timeout=60s

step "starting the controller, CONVEYOR_PROMETHEUS_ADDRESS=$prometheus_url (log: $run_dir/controller.log)"
port=$(free_port)
NO_COLOR=1 CONVEYOR_METRICS_ADDRESS="127.0.0.1:$port" CONVEYOR_LEASE_NAMESPACE=default \
  CONVEYOR_ARTIFACT_DIR="$run_dir/artifacts" CONVEYOR_PROMETHEUS_ADDRESS="$prometheus_url" \
  "$bin" controller --config config/conveyor.yaml >"$run_dir/controller.log" 2>&1 &
pids+=($!)
deadline=$(( $(date +%s) + 60 ))
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the controller did not become ready"
  sleep 0.2
done

step "applying config/examples/ (the checkout Pipeline and a broken Release)"
kubectl apply --server-side -f config/examples/

step "the application's git repository: config/examples/checkout-app/deploy, committed in $run_dir/checkout"
repo="$run_dir/checkout"
example_repo "$repo"
sed -i 's/one-click: "false"/one-click: "true"/' "$repo/deploy/config.yaml"
git -C "$repo" commit -q -am "feat(checkout): one-click purchase"
git -C "$repo" log --oneline

step "waiting until Prometheus has scraped the stand-in (the staging and production checks query it)"
deadline=$(( $(date +%s) + 60 ))
until curl -sf "$prometheus_url/api/v1/targets" 2>/dev/null | grep -q '"health":"up"'; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "Prometheus did not scrape the stand-in at 127.0.0.1:$app_port"
  sleep 0.5
done
printf '  target 127.0.0.1:%s is up\n' "$app_port"

step "conveyor release --version $good --apply (tags v$good, writes CHANGELOG.md, applies the Release)"
CONVEYOR_CONFIG=config/conveyor.yaml "$bin" release --repo "$repo" --version "$good" --pipeline checkout \
  --path deploy --namespace checkout --apply
kubectl -n checkout wait --for=condition=Ready "release/checkout-$good" --timeout=120s
t0=$(date +%s)
kubectl -n checkout wait --for=condition=Stalled release/checkout-broken --timeout=60s

step "conveyor package: the same digest, computed from the repository by hand"
"$bin" package --repo "$repo" --ref "v$good" --path deploy

step "kubectl get conveyor -n checkout -o wide"
kubectl get conveyor -n checkout -o wide

step "conditions"
for obj in "release/checkout-$good" release/checkout-broken; do
  printf '%s\n' "$obj"
  kubectl -n checkout get "$obj" -o jsonpath='{range .status.conditions[*]}  {.type}={.status}  {.reason}: {.message}{"\n"}{end}'
done

step "release notes of checkout-$good (status.notes)"
kubectl -n checkout get "release/checkout-$good" -o jsonpath='{.status.notes}{"\n"}'

# --- Following the releases through the environments --------------------------------------

# Follows ENVIRONMENT of the checkout Pipeline, printing every phase and version it passes
# through with the seconds since t0 (and the reason or the check messages when they change),
# until it is in a phase matching PHASES (an extended regex) running VERSION (any if empty).
# Fails after TIMEOUT seconds, when the environment is Failed, or when "PHASE VERSION" matches
# AVOID (an extended regex; optional).
shown="" said=""
follow() { # environment, phases, version, timeout seconds[, avoid]
  local env=$1 want=$2 version=$3 deadline=$(( $(date +%s) + $4 )) avoid=${5:-} state
  local phase cur checks reason say
  while :; do
    state=$(kubectl -n checkout get pipeline checkout -o jsonpath="{range .status.environments[?(@.name==\"$env\")]}\
{.phase}{\"|\"}{.current.version}{\"|\"}{range .checks[?(@.type==\"Prometheus\")]}{.name}: {.message}; {end}{\"|\"}{.reason}{end}" \
      2>/dev/null) || state=""
    IFS='|' read -r phase cur checks reason <<<"$state"
    if [ "$env $phase $cur" != "$shown" ]; then
      printf '  +%3ss  %-12s %-17s %s\n' "$(( $(date +%s) - t0 ))" "$env" "${phase:--}" "$cur"
      shown="$env $phase $cur"
    fi
    say=${reason:-${checks%; }}
    say=${say%" "}
    if [ -n "$say" ] && [[ $say != *: ]] && [ "$env $say" != "$said" ]; then
      printf '  +%3ss  %-12s   %s\n' "$(( $(date +%s) - t0 ))" "" "$say"
      said="$env $say"
    fi
    if [[ $phase =~ ^($want)$ ]] && { [ -z "$version" ] || [ "$cur" = "$version" ]; }; then return 0; fi
    if [ "$phase" = Failed ]; then fail "$env is Failed (wanted $want${version:+ running $version})"; fi
    if [ -n "$avoid" ] && [[ "$phase $cur" =~ ^($avoid)$ ]]; then fail "$env is $phase running $cur"; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      fail "$env is ${phase:-not reported} running ${cur:-nothing} after $4s (wanted $want${version:+ running $version})"
    fi
    sleep 0.5
  done
}

step "development: the controller deploys checkout-$good (the newest Packaged release) and verifies it"
follow development Verifying "$good" 60
kubectl -n checkout-dev get deploy,pods
printf '\nNo kubelet runs here, so the Pods stay Pending and development stays Verifying.\n' >&2

step "starting the demo kubelet: marks Pending Pods in checkout-* Running and Ready (log: $run_dir/kubelet.log)"
tests/demo-kubelet.sh 'checkout-*' >"$run_dir/kubelet.log" 2>&1 &
pids+=($!)

step "$good: development Healthy; staging checks its error ratio and soaks 10s; production awaits approval"
follow development Healthy "$good" 90
follow staging Healthy "$good" 120
follow production AwaitingApproval "" 60
kubectl -n checkout get pipeline checkout \
  -o jsonpath='{range .status.environments[?(@.name=="production")]}  production awaits approval for: {.awaitingApproval}{"\n"}{end}'

step "$bin approve checkout production -n checkout"
"$bin" approve checkout production -n checkout
follow production Healthy "$good" 90

step "kubectl get pipeline checkout -n checkout -o wide"
kubectl get pipeline checkout -n checkout -o wide

# --- The second release fails in staging --------------------------------------------------

step "a new change: config/examples/checkout-app/payment-provider.yaml, a new ConfigMap"
cp config/examples/checkout-app/payment-provider.yaml "$repo/deploy/payment-provider.yaml"
git -C "$repo" add deploy
git -C "$repo" commit -q -m "feat(checkout): new payment provider"
git -C "$repo" log --oneline -1

step "conveyor release --version $bad --apply (the stand-in reports $bad as broken: ~21% of requests fail)"
CONVEYOR_CONFIG=config/conveyor.yaml "$bin" release --repo "$repo" --version "$bad" --pipeline checkout \
  --path deploy --namespace checkout --apply
kubectl -n checkout wait --for=condition=Ready "release/checkout-$bad" --timeout=120s
t0=$(date +%s)
kubectl -n checkout get "release/checkout-$bad" -o jsonpath='{.status.notes}{"\n"}'

step "$bad: development has no metrics gate and takes it; staging's error-rate check fails and rolls back"
follow development Healthy "$bad" 90
follow staging RollingBack "" 60 "Healthy $bad"
follow staging Healthy "$good" 90 "Healthy $bad"
kubectl -n checkout wait --for=condition=Stalled pipeline/checkout --timeout=30s >/dev/null ||
  fail "the Pipeline is not Stalled after the rollback"

# ============================================================================================
step "summary"
kubectl get pipelines,releases -n checkout -o json |
  python3 tests/demo-summary.py --good "$good" --bad "$bad" --failing-in staging ||
  fail "the summary found the story incomplete"

printf '\nConfigMaps Conveyor applied (%s added checkout-payment-provider; the rollback pruned it from staging)\n' "$bad"
kubectl get configmaps --all-namespaces -l conveyor.dev/pipeline=checkout -L conveyor.dev/release
kubectl -n checkout-dev get configmap checkout-payment-provider >/dev/null 2>&1 ||
  fail "checkout-payment-provider is missing from checkout-dev, which runs $bad"
if kubectl -n checkout-staging get configmap checkout-payment-provider >/dev/null 2>&1; then
  fail "checkout-payment-provider is still in checkout-staging after the rollback"
fi

printf '\nEvents of the Pipeline (kubectl get events -n checkout --field-selector involvedObject.kind=Pipeline)\n'
events=$(kubectl get events -n checkout --field-selector involvedObject.kind=Pipeline --sort-by=.metadata.creationTimestamp \
  -o custom-columns='TYPE:.type,REASON:.reason,MESSAGE:.message')
printf '%s\n' "$events"
for reason in RollingBack RolledBack; do
  grep -Eq "^Warning +$reason " <<<"$events" || fail "no Warning Event $reason on the Pipeline"
done

printf '\nkubectl get conveyor -n checkout\n'
kubectl get conveyor -n checkout

printf '\nController metrics (http://127.0.0.1:%s/metrics)\n' "$port"
# Health per environment, deployments by result and the rollback (zero-valued counters left out).
metrics=$(curl -s "http://127.0.0.1:$port/metrics")
grep -E '^conveyor_(environment_healthy|environment_release_info|deployments_total|rollbacks_total|check_failures_total)\{' \
  <<<"$metrics" | grep -Ev ' 0$' || true
grep -E '^conveyor_(lead_time|time_to_restore)_seconds_(sum|count)\{' <<<"$metrics" | grep -Ev ' 0$' || true

printf '\nThe demo took %ss.\n' "$(( $(date +%s) - started_at ))"
finished=1
if [ "${DEMO_KEEP:-}" = 1 ]; then
  printf 'Still running. export KUBECONFIG=%s (Prometheus: %s)\nStop with: kill %s; tests/control-plane.sh stop %s\n' \
    "$run_dir/kubeconfig" "$prometheus_url" "${pids[*]}" "$run_dir"
else
  printf 'Stopping the demo kubelet, the controller, Prometheus, the stand-in and the control plane (DEMO_KEEP=1 keeps them running).\n'
fi
