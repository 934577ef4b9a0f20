#!/usr/bin/env bash
# A real Kubernetes 1.20 control plane (etcd + kube-apiserver + kube-controller-manager)
# on loopback, built from Debian's kubernetes source package. No kubelet, no scheduler.
#
#   tests/control-plane.sh install        apt packages + build binaries once into the cache
#   tests/control-plane.sh start DIR      start on free ports; writes DIR/kubeconfig and DIR/pids
#   tests/control-plane.sh stop DIR       stop exactly the processes that `start DIR` started
#
# Cache: $CONVEYOR_CACHE (default ~/.cache/conveyor). Facts: ../shared/notes/control-plane.md.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE="${CONVEYOR_CACHE:-$HOME/.cache/conveyor}"
BIN="$CACHE/k8s-$K8S_VERSION/bin"

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
log() { printf '[control-plane] %s\n' "$*" >&2; }

install_binaries() {
  apt_install etcd-server etcd-client openssl curl ca-certificates
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
    return 0
  fi
  apt_install golang-go golang-github-modern-go-reflect2-dev dpkg-dev make rsync
  local src_list=/etc/apt/sources.list.d/conveyor-deb-src.sources
  if [ ! -f "$src_list" ]; then
    log "adding deb-src for bookworm"
    as_root tee "$src_list" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    as_root apt-get update -qq
  fi
  local work="$CACHE/k8s-build"
  rm -rf "$work"
  mkdir -p "$work"
  log "fetching Debian's kubernetes source (one time, ~3 minutes with the build)"
  (cd "$work" && apt-get source -qq kubernetes >/dev/null 2>&1)
  local src
  src=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)
  [ -n "$src" ] || { log "apt-get source kubernetes produced no source tree"; exit 1; }
  # The vendored reflect2 1.0.1 crashes under Go >= 1.18; Debian ships 1.0.2.
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"
  mkdir -p "$src/.go/src/k8s.io"
  ln -sfn "$src" "$src/.go/src/k8s.io/kubernetes"
  local gopath="$src/.go" pkg="$src/.go/src/k8s.io/kubernetes"
  export GO111MODULE=off GOPATH="$gopath" CGO_ENABLED=0 GOPROXY=off GOFLAGS='' GOCACHE="$work/gocache"
  log "generating openapi"
  (cd "$pkg" && make gen_openapi >/dev/null 2>&1)
  local ldflags="-s -w"
  for p in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean"
  done
  mkdir -p "$BIN.tmp"
  for cmd in kube-apiserver kube-controller-manager; do
    log "building $cmd"
    (cd "$pkg" && go build -trimpath -ldflags "$ldflags" -o "$BIN.tmp/$cmd" "./cmd/$cmd")
  done
  rm -rf "$BIN"
  mv "$BIN.tmp" "$BIN"
  rm -rf "$work"
  log "binaries cached in $BIN"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # description, deadline seconds, command...
  local what=$1 deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then log "timed out waiting for $what"; return 1; fi
    sleep 0.2
  done
}

start() {
  local dir=$1
  install_binaries
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  : >"$dir/pids"
  local pki="$dir/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=conveyor-test-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    # Extensions make v3 certificates; rustls (webpki) refuses v1.
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\n' >apiserver.ext
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  local etcd_port etcd_peer api_port
  etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  log "etcd on 127.0.0.1:$etcd_port"
  etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "default=http://127.0.0.1:$etcd_peer" >"$dir/etcd.log" 2>&1 &
  echo "$!" >>"$dir/pids"
  wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

  log "kube-apiserver on https://127.0.0.1:$api_port"
  "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --authorization-mode RBAC --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 --endpoint-reconciler-type none \
    --cert-dir "$pki" >"$dir/apiserver.log" 2>&1 &
  echo "$!" >>"$dir/pids"

  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: conveyor-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: conveyor-test
  context: {cluster: conveyor-test, user: admin, namespace: default}
current-context: conveyor-test
EOF
  wait_for kube-apiserver 60 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$api_port/readyz"

  if [ "${CONTROL_PLANE_NO_CONTROLLER_MANAGER:-}" != 1 ]; then
    local cm_port
    cm_port=$(free_port)
    "$BIN/kube-controller-manager" --kubeconfig "$dir/kubeconfig" --bind-address 127.0.0.1 \
      --secure-port "$cm_port" --port 0 --leader-elect=false --use-service-account-credentials=false \
      --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
      --controllers '*,-nodeipam,-nodelifecycle,-route,-service,-cloud-node-lifecycle' \
      >"$dir/controller-manager.log" 2>&1 &
    echo "$!" >>"$dir/pids"
  fi
  # The default ServiceAccount shows the controller-manager is working; tests rely on neither.
  log "ready: KUBECONFIG=$dir/kubeconfig"
  echo "$dir/kubeconfig"
}

stop() {
  local dir=$1
  [ -f "$dir/pids" ] || { log "nothing started in $dir"; return 0; }
  local pids
  pids=$(tac "$dir/pids")
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for pid in $pids; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$dir/pids"
  log "stopped"
}

case "${1:-}" in
  install) install_binaries ;;
  start) start "${2:?usage: $0 start DIR}" ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
