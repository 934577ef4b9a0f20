# The two commands of the README. Both install what they need (apt, cargo) and cache the
# kube-apiserver build in $(HOME)/.cache/conveyor.
.PHONY: demo test crds bench

## Local control plane + controller + the example Pipeline and Releases, then their status.
demo:
	bash tests/demo.sh

## Every check CI runs: fmt, clippy, shellcheck, unit and integration tests on a real control plane.
test:
	bash tests/run-tests.sh

## Regenerate crds/ from the Rust types.
crds:
	cargo run --quiet -- crds --dir crds

## Benchmarks, printing figures (BENCH_RUNS=5 each): package 10,000 generated manifests with conveyor
## and with git archive; time automatic rollbacks on a local control plane (CONVEYOR_TEST_KUBECONFIG's,
## else one started for the run).
bench:
	cargo bench --bench package
	cargo bench --bench rollback
