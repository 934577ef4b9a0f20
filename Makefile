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

## Package 10,000 generated manifests with conveyor and with git archive; print both (BENCH_RUNS=5).
bench:
	cargo bench --bench package
