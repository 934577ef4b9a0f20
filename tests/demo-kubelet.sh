#!/usr/bin/env bash
# The demo's kubelet. The local control plane (tests/control-plane.sh) has no scheduler and no
# kubelet, so Pods never run and Deployments never become ready. This loop plays the kubelet's
# part for `make demo`: once a second it marks every Pending Pod in the namespaces matching the
# given patterns Running and Ready (PATCH pods/<name>/status, as a kubelet reports it);
# kube-controller-manager then counts them and the Deployments report their replicas available.
#
#   KUBECONFIG=… tests/demo-kubelet.sh [NAMESPACE-PATTERN…]     (default: 'checkout-*')
#
# Runs until SIGTERM or SIGINT and then exits 0. Debian's kubectl 1.20 cannot patch
# subresources (no --subresource), so the status PATCH goes through curl with the kubeconfig's
# client certificate.
set -euo pipefail

log() { printf '[demo-kubelet] %s\n' "$*"; }

patterns=("$@")
[ "${#patterns[@]}" -gt 0 ] || patterns=('checkout-*')

stopping=0
trap 'stopping=1' TERM INT

# The API server and credentials of the current context (kubectl resolves relative paths).
kc() { kubectl config view --minify --raw -o jsonpath="$1"; }
server=$(kc '{.clusters[0].cluster.server}')
auth=()
add_file() { # curl option, kubeconfig field holding a path, field holding base64 data
  local path data
  path=$(kc "{$2}")
  data=$(kc "{$3}")
  if [ -n "$path" ]; then
    auth+=("$1" "$path")
  elif [ -n "$data" ]; then
    tmp=${tmp:-$(mktemp -d -t demo-kubelet-XXXXXX)}
    printf '%s' "$data" | base64 -d >"$tmp/${1#--}"
    auth+=("$1" "$tmp/${1#--}")
  fi
}
add_file --cacert .clusters[0].cluster.certificate-authority .clusters[0].cluster.certificate-authority-data
add_file --cert .users[0].user.client-certificate .users[0].user.client-certificate-data
add_file --key .users[0].user.client-key .users[0].user.client-key-data
token=$(kc '{.users[0].user.token}')
[ -z "$token" ] || auth+=(-H "Authorization: Bearer $token")
if [ "${tmp:-}" ]; then trap 'rm -rf "$tmp"' EXIT; fi

wanted() { # namespace: does it match one of the patterns?
  local p
  for p in "${patterns[@]}"; do
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    [[ $1 == $p ]] && return 0
  done
  return 1
}

# The status a kubelet reports for a started Pod whose containers passed their readiness probes.
status_patch() { # now, container names…
  local now=$1 statuses="" c
  shift
  for c in "$@"; do
    statuses+="${statuses:+,}{\"name\":\"$c\",\"ready\":true,\"started\":true,\"restartCount\":0,"
    statuses+="\"image\":\"demo\",\"imageID\":\"\",\"state\":{\"running\":{\"startedAt\":\"$now\"}}}"
  done
  local conditions="" t
  for t in PodScheduled Initialized ContainersReady Ready; do
    conditions+="${conditions:+,}{\"type\":\"$t\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}"
  done
  printf '{"status":{"phase":"Running","startTime":"%s","conditions":[%s],"containerStatuses":[%s]}}' \
    "$now" "$conditions" "$statuses"
}

log "marking Pending Pods in namespaces ${patterns[*]} Running and Ready (API server $server)"
while [ "$stopping" = 0 ]; do
  pods=$(kubectl get pods --all-namespaces --field-selector status.phase=Pending \
    -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.spec.containers[*].name}{"\n"}{end}' \
    2>&1) || { log "listing Pods failed: $pods"; pods=""; }
  while read -r ns name containers; do
    if [ -z "$name" ] || ! wanted "$ns"; then continue; fi
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    # shellcheck disable=SC2086 # container names are DNS labels: split them into arguments
    body=$(status_patch "$now" $containers)
    if out=$(curl -sS --fail-with-body --max-time 10 "${auth[@]}" -X PATCH \
      -H 'Content-Type: application/merge-patch+json' --data "$body" \
      "$server/api/v1/namespaces/$ns/pods/$name/status" 2>&1); then
      log "$ns/$name: Running, Ready"
    else
      # The Pod may have gone meanwhile (a rollout, a prune): the next pass sees what is left.
      log "$ns/$name: status patch failed: ${out:0:300}"
    fi
  done <<<"$pods"
  sleep 1 &
  wait $! || true
done
log "stopped"
