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

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
step "shellcheck"
shellcheck tests/*.sh .ci/run
step "hadolint Dockerfile"
"$(need_hadolint)" Dockerfile

step "control plane (kube-apiserver 1.20 + etcd + kube-controller-manager)"
tests/control-plane.sh install
run_dir=$(mktemp -d -t conveyor-test-XXXXXX)
trap 'tests/control-plane.sh stop "$run_dir"' EXIT
tests/control-plane.sh start "$run_dir" >/dev/null

step "cargo test (unit, CRD drift, integration against the control plane)"
# Benchmarks are measurements, run by `make bench`, not tests.
engines=$(need_kubectl_layer)
CONVEYOR_TEST_KUBECONFIG="$run_dir/kubeconfig" CONVEYOR_TEST_ENGINES="$engines" \
  cargo test --lib --bins --tests --no-fail-fast
