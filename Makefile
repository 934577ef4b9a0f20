# The two commands of the README. Both install what they need (apt, cargo) and cache the
# kube-apiserver build in $(HOME)/.cache/conveyor.
.PHONY: demo test crds bench

## Local control plane + controller + the example Pipeline and Releases, then their status.
demo:
	bash tests/demo.sh

## Every check CI runs: fmt, clippy, shellcheck, unit and integration tests on a real control plane.
test:
	bash tests/run-tests.sh

## Regenerate crds/, the chart's copy charts/conveyor/crds/ and docs/reference.md from the Rust types. Old files go
## first, so a CRD renamed or removed in the code leaves no stale file behind (built beforehand, so
## a build error removes nothing).
crds:
	cargo build --quiet --bin conveyor
	rm -f crds/*.yaml charts/conveyor/crds/*.yaml
	cargo run --quiet --bin conveyor -- crds --dir crds
	cargo run --quiet --bin conveyor -- crds --dir charts/conveyor/crds
	python3 tests/crd-reference.py > docs/reference.md

## Benchmarks, printing figures (BENCH_RUNS=5 each): package 10,000 generated manifests with conveyor
## and with git archive; time automatic rollbacks on a local control plane (CONVEYOR_TEST_KUBECONFIG's,
## else one started for the run).
bench:
	cargo bench --bench package
	cargo bench --bench rollback
