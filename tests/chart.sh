#!/usr/bin/env bash
# tests/chart.sh KUBECONFIG — CI for the Helm chart charts/conveyor, against a running control
# plane (tests/control-plane.sh start gives one; run-tests.sh passes its kubeconfig).
#  1. The chart's CRDs equal crds/ and crds/ equals what target/debug/conveyor generates (`make
#     crds` writes both); appVersion is Cargo.toml's version; the chart's list of config keys
#     equals config/conveyor.yaml's; README.md documents every value.
#  2. `helm lint --strict` with the defaults and with each ci/*.yaml.
#  3. `helm template` with each; the PrometheusRule's groups equal files/prometheus-rules.yaml
#     with the defaults, and its two values change exactly what they should; the dashboard
#     ConfigMap holds files/dashboard.json; bad values fail naming the value.
#  4. `helm install` with ci/all-values.yaml (everything optional on) into namespace
#     conveyor-system. The Prometheus Operator's CRDs are not on the test server: minimal copies
#     of ServiceMonitor and PrometheusRule (schema-less) are installed first, and removed after,
#     so the optional objects are really created. No kubelet runs, so the Pods never start;
#     instead the real controller (target/debug/conveyor) runs here with the chart's ConfigMap as
#     its configuration and a token of the chart's ServiceAccount as its only credentials, and
#     takes a Release from a file:// git repository to Healthy in two environments: one applied
#     with the chart's deploy rights, one through an impersonated ServiceAccount. That proves the
#     RBAC is enough; `kubectl auth can-i` proves what it must not do is refused.
#  5. `helm upgrade` to the default values (cluster-wide mode): the optional objects go, the
#     rights change, and the controller, run again with the new ConfigMap, takes a Release in a
#     namespace no value names to Healthy; `helm uninstall`: no object of the release is left.
# Cleans up what it created, also on failure. Exit 0 when everything held, 1 with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh

if [ $# -ne 1 ] || [ ! -r "$1" ]; then
  echo "usage: tests/chart.sh KUBECONFIG (a readable kubeconfig of a running cluster)" >&2
  exit 2
fi
KUBECONFIG=$(realpath "$1")
export KUBECONFIG

chart=charts/conveyor
system_ns=conveyor-system
started_at=$(date +%s)
work=$(mktemp -d -t conveyor-chart-XXXXXX)
# Helm keeps its caches and repository config here, not in the user's home.
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"

checks=0
fail() {
  printf '\nchart test FAILED: %s\n' "$*" >&2
  if [ -s "$work/controller.log" ]; then
    printf '\n--- controller log (last 60 lines)\n' >&2
    tail -n 60 "$work/controller.log" >&2
  fi
  exit 1
}
ok() { checks=$((checks + 1)); printf '  ok  %s\n' "$*"; }

# --- Tools ---------------------------------------------------------------------------------
step "tools: kubectl and helm (need_kubectl_layer), python3 with yaml"
layer=$(need_kubectl_layer)
helm="$layer/helm"
kubectl="$layer/kubectl"
command -v curl >/dev/null 2>&1 || apt_install curl
command -v git >/dev/null 2>&1 || apt_install git
py=python3
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  apt_install python3-yaml
  py=/usr/bin/python3
fi
"$helm" version --short
"$kubectl" version --client | sed -n 1p
server_version=$("$kubectl" version -o json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') ||
  fail "cannot reach the cluster of $KUBECONFIG"
printf 'cluster: %s\n' "$server_version"

# --- Cleanup -------------------------------------------------------------------------------
release="" controller_pid="" created_crds=() created_namespaces=()
cleanup() {
  local rc=$?
  set +e
  if [ -n "$controller_pid" ]; then
    kill "$controller_pid" 2>/dev/null && wait "$controller_pid" 2>/dev/null
  fi
  if [ -n "$release" ] && "$helm" status "$release" -n "$system_ns" >/dev/null 2>&1; then
    "$helm" uninstall "$release" -n "$system_ns" >/dev/null 2>&1
  fi
  if [ "${#created_namespaces[@]}" -gt 0 ]; then
    "$kubectl" delete namespace "${created_namespaces[@]}" --wait=false >/dev/null 2>&1
  fi
  if [ "${#created_crds[@]}" -gt 0 ]; then
    "$kubectl" delete crd "${created_crds[@]}" --wait=false >/dev/null 2>&1
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# --- 1. Sources agree ------------------------------------------------------------------------
step "1. the chart's CRDs, config keys and README agree with their sources"
diff -r crds "$chart/crds" >"$work/crds.diff" 2>&1 ||
  fail "charts/conveyor/crds/ differs from crds/ (the chart must install the same CRDs): run \`make crds\`
$(cat "$work/crds.diff")"
ok "charts/conveyor/crds/ equals crds/ ($(find crds -name '*.yaml' | wc -l) files)"
# The controller run below writes status the installed CRDs must accept. Built here so the binary
# is never older than the sources (a no-op when it is current).
need_rust
cargo build --quiet --bin conveyor || fail "cargo build --bin conveyor failed"
bin=target/debug/conveyor
"$bin" crds --dir "$work/crds" >/dev/null
diff -r crds "$work/crds" >"$work/crds.diff" 2>&1 ||
  fail "crds/ differs from what $bin generates (the Rust types changed): run \`make crds\`
$(cat "$work/crds.diff")"
ok "crds/ equals what $bin crds generates"

app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")
cargo_version=$(awk -F'"' '/^version = /{print $2; exit}' Cargo.toml)
[ "$app_version" = "$cargo_version" ] ||
  fail "Chart.yaml appVersion is '$app_version' but Cargo.toml's version is '$cargo_version': set appVersion to it"
ok "Chart.yaml appVersion $app_version equals Cargo.toml's version"

"$py" - "$chart/templates/_helpers.tpl" config/conveyor.yaml <<'EOF' || fail "the chart's known config keys differ from config/conveyor.yaml (see above)"
import re, sys, yaml
helpers, config = sys.argv[1], sys.argv[2]
line = next(l for l in open(helpers) if l.lstrip().startswith('{{- $known := list'))
chart = set(re.findall(r'"([a-z_]+)"', line))
conveyor = set(yaml.safe_load(open(config)))
if chart != conveyor:
    print(f"keys only in config/conveyor.yaml: {sorted(conveyor - chart)}; only in the chart's list "
          f"($known in templates/_helpers.tpl): {sorted(chart - conveyor)}", file=sys.stderr)
    sys.exit(1)
print(f"  {len(chart)} keys")
EOF
ok "the chart's known config keys equal config/conveyor.yaml's"

"$py" - "$chart/values.yaml" "$chart/README.md" <<'EOF' || fail "charts/conveyor/README.md does not document every value (see above)"
import sys, yaml
values, readme = yaml.safe_load(open(sys.argv[1])), open(sys.argv[2]).read()
def leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1]
# A value is documented by its own row or by its parent's (securityContext covers its fields).
def documented(key):
    parts = key.split(".")
    return any(f"`{'.'.join(parts[:i])}`" in readme for i in range(1, len(parts) + 1))
missing = [k for k in leaves(values) if not documented(k)]
if missing:
    print(f"values not in README.md's table: {missing}", file=sys.stderr)
    sys.exit(1)
print(f"  {sum(1 for _ in leaves(values))} values")
EOF
ok "README.md documents every value of values.yaml"

# --- 2. Lint ---------------------------------------------------------------------------------
step "2. helm lint --strict"
values_files=("$chart"/ci/*.yaml)
for f in "${values_files[@]}"; do
  "$helm" lint --strict "$chart" -f "$f" >"$work/lint.log" 2>&1 || { cat "$work/lint.log" >&2; fail "helm lint --strict -f $f"; }
  ok "helm lint --strict -f $f"
done

# --- 3. Template -----------------------------------------------------------------------------
step "3. helm template"
# Prints the kinds rendered, one "Kind name" per line.
kinds() { "$py" -c 'import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d: print(d["kind"], d["metadata"]["name"])'; }
for f in "${values_files[@]}"; do
  "$helm" template conveyor "$chart" -n "$system_ns" -f "$f" >"$work/rendered.yaml" 2>"$work/template.log" ||
    { cat "$work/template.log" >&2; fail "helm template -f $f"; }
  ok "helm template -f $f: $(kinds <"$work/rendered.yaml" | awk '{print $1}' | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')"
done

rules=$chart/files/prometheus-rules.yaml
[ -f "$rules" ] || fail "$rules is missing (the alert rules the PrometheusRule is built from)"
"$helm" template conveyor "$chart" --set prometheusRule.enabled=true --show-only templates/prometheusrule.yaml \
  >"$work/rule-default.yaml" || fail "helm template with prometheusRule.enabled=true"
"$helm" template conveyor "$chart" --set prometheusRule.enabled=true --set prometheusRule.promotionStuckSeconds=900 \
  --set prometheusRule.job=platform-conveyor --set prometheusRule.alertLabels.team=platform \
  --show-only templates/prometheusrule.yaml >"$work/rule-custom.yaml" || fail "helm template with custom prometheusRule values"
"$py" - "$rules" "$work/rule-default.yaml" "$work/rule-custom.yaml" <<'EOF' || fail "the PrometheusRule does not match $rules (see above)"
import copy, sys, yaml
plain = yaml.safe_load(open(sys.argv[1]))["groups"]
default = yaml.safe_load(open(sys.argv[2]))
custom = yaml.safe_load(open(sys.argv[3]))["spec"]["groups"]
assert default["kind"] == "PrometheusRule" and default["apiVersion"] == "monitoring.coreos.com/v1"
if default["spec"]["groups"] != plain:
    print("with default values the PrometheusRule's groups differ from the plain rules file", file=sys.stderr)
    sys.exit(1)
print("  default values: spec.groups equals the file's groups "
      f"({sum(len(g['rules']) for g in plain)} rules in {len(plain)} groups)")
expected = copy.deepcopy(plain)
changed = set()
for group in expected:
    for rule in group["rules"]:
        if rule.get("alert") == "ConveyorPromotionStuck":
            assert "> 7200" in rule["expr"], rule["expr"]
            rule["expr"] = rule["expr"].replace("> 7200", "> 900")
            changed.add("stuck")
        if 'job="conveyor"' in rule["expr"]:
            rule["expr"] = rule["expr"].replace('job="conveyor"', 'job="platform-conveyor"')
            changed.add(rule.get("alert"))
        if "alert" in rule:
            rule["labels"] = {**rule.get("labels", {}), "team": "platform"}
assert "stuck" in changed and "ConveyorControllerDown" in changed, changed
if custom != expected:
    print("with promotionStuckSeconds=900, job=platform-conveyor, alertLabels.team=platform the rules "
          "differ from the file by more than those three changes", file=sys.stderr)
    sys.exit(1)
print("  promotionStuckSeconds=900 gives '> 900' in ConveyorPromotionStuck, job=platform-conveyor "
      "changes ConveyorControllerDown's selector, alertLabels reach every alert; nothing else changes")
EOF
ok "PrometheusRule: equals $rules by default; its values change only the threshold, the job and the labels"

dashboard=$chart/files/dashboard.json
[ -f "$dashboard" ] || fail "$dashboard is missing (the Grafana dashboard the chart ships)"
"$helm" template conveyor "$chart" --set grafanaDashboard.enabled=true --show-only templates/dashboard.yaml \
  >"$work/dashboard.yaml" || fail "helm template with grafanaDashboard.enabled=true"
"$py" - "$dashboard" "$work/dashboard.yaml" <<'EOF' || fail "the dashboard ConfigMap does not hold $dashboard"
import json, sys, yaml
cm = yaml.safe_load(open(sys.argv[2]))
assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1", cm["metadata"]
assert json.loads(cm["data"]["conveyor.json"]) == json.load(open(sys.argv[1]))
EOF
ok "dashboard ConfigMap: label grafana_dashboard=\"1\", data conveyor.json equals $dashboard"

# Values that cannot work are refused when rendering, naming the value and the fix.
refused() { # expected message part, then helm template arguments
  local want=$1
  shift
  if "$helm" template conveyor "$chart" "$@" >/dev/null 2>"$work/refused.log"; then
    fail "helm template $* rendered; it should have been refused ($want)"
  fi
  grep -qF -- "$want" "$work/refused.log" || { cat "$work/refused.log" >&2; fail "helm template $*: the error does not say '$want'"; }
  ok "refused: $* → …$want…"
}
refused "config.lease_time is not a Conveyor configuration key" --set config.lease_time=10s
refused "config.artifact_dir is set by the chart; set artifacts.mountPath instead" --set config.artifact_dir=/data
refused "keep leader election on or set replicaCount to 1" --set config.leader_election=false
refused "artifacts.ephemeral.enabled needs Kubernetes 1.21 or newer" --set artifacts.ephemeral.enabled=true --kube-version 1.20.2
ephemeral=$("$helm" template conveyor "$chart" --set artifacts.ephemeral.enabled=true --kube-version 1.25.0 \
  --show-only templates/deployment.yaml)
grep -q 'volumeClaimTemplate:' <<<"$ephemeral" || fail "no ephemeral volume on Kubernetes 1.25"
ok "artifacts.ephemeral.enabled renders a generic ephemeral volume on Kubernetes 1.25"
"$helm" template conveyor "$chart" --set replicaCount=1 --set config.leader_election=false >"$work/single.yaml" ||
  fail "one replica without leader election does not render"
if grep -q 'kind: PodDisruptionBudget\|kind: Role$' "$work/single.yaml"; then
  fail "one replica without leader election still renders a PodDisruptionBudget or the Lease Role"
fi
ok "replicaCount=1, leader_election=false: no PodDisruptionBudget, no Lease Role"

# --- 4. Install --------------------------------------------------------------------------------
step "4. helm install into $server_version"
suffix=$(tr -dc 'a-z0-9' </dev/urandom | head -c 5 || true)
release="conveyor-ci-$suffix"
apps="chart-apps-$suffix"    # the watched namespace: Pipelines, Releases, first environment
second="chart-second-$suffix" # the second environment, applied through impersonation
sa="system:serviceaccount:$system_ns:$release"

# A namespace left Terminating by an earlier run cannot take new objects: wait until it is gone.
if [ "$("$kubectl" get namespace "$system_ns" -o jsonpath='{.status.phase}' 2>/dev/null)" = Terminating ]; then
  "$kubectl" wait --for=delete "namespace/$system_ns" --timeout=120s >/dev/null ||
    fail "namespace $system_ns is still Terminating after 120s"
fi
if ! "$kubectl" get namespace "$system_ns" >/dev/null 2>&1; then created_namespaces+=("$system_ns"); fi
for crd in servicemonitors prometheusrules; do
  "$kubectl" get crd "$crd.monitoring.coreos.com" >/dev/null 2>&1 && continue
  kind=$([ "$crd" = servicemonitors ] && echo ServiceMonitor || echo PrometheusRule)
  created_crds+=("$crd.monitoring.coreos.com")
  # A schema-less stand-in: enough for the apiserver to store the chart's objects.
  "$kubectl" apply -f - >/dev/null <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: $crd.monitoring.coreos.com }
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: { plural: $crd, singular: ${crd%s}, kind: $kind, listKind: ${kind}List }
  versions:
    - name: v1
      served: true
      storage: true
      schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } }
EOF
done
if [ "${#created_crds[@]}" -gt 0 ]; then
  "$kubectl" wait --for=condition=Established "${created_crds[@]/#/crd/}" --timeout=60s >/dev/null
  printf 'installed stand-in CRDs (removed at the end): %s\n' "${created_crds[*]}"
fi

created_namespaces+=("$apps" "$second")
"$kubectl" create namespace "$apps" >/dev/null
"$kubectl" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $second
  labels: { conveyor.dev/allow-from: $apps }
---
# The second environment's owners let Conveyor apply ConfigMaps here as conveyor-deployer.
apiVersion: v1
kind: ServiceAccount
metadata: { name: conveyor-deployer, namespace: $second }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: conveyor-deployer, namespace: $second }
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, create, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: conveyor-deployer, namespace: $second }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: conveyor-deployer }
subjects: [ { kind: ServiceAccount, name: conveyor-deployer, namespace: $second } ]
EOF

# Helm creates CRDs only when they are absent. On a cluster that has them (other tests install
# them too) the chart's copies are applied first, as README.md's upgrade says; they are left in
# place at the end either way: deleting a CRD deletes every object of its kind.
if "$kubectl" get crd pipelines.conveyor.dev releases.conveyor.dev >/dev/null 2>&1; then
  "$kubectl" apply --server-side --force-conflicts -f "$chart/crds/" >/dev/null
  crds_by="kubectl apply --server-side -f $chart/crds/ (they were installed already)"
else
  crds_by="helm install (from $chart/crds/)"
fi
"$helm" install "$release" "$chart" -n "$system_ns" --create-namespace -f "$chart/ci/all-values.yaml" \
  --set config.watch_namespace="$apps" --set "rbac.deployNamespaces={$apps}" --set config.lease_name="$release" \
  >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "helm install $release"; }
ok "helm install $release -n $system_ns -f ci/all-values.yaml (watch_namespace=$apps, deployNamespaces=[$apps], lease_name=$release)"
sed -n '/^NOTES:/,$p' "$work/install.log"
for crd in pipelines.conveyor.dev releases.conveyor.dev; do
  "$kubectl" wait --for=condition=Established "crd/$crd" --timeout=60s >/dev/null || fail "CRD $crd is not Established"
done
ok "CRDs pipelines.conveyor.dev, releases.conveyor.dev Established, by $crds_by"

instance="app.kubernetes.io/instance=$release"
"$kubectl" get deploy,svc,cm,sa,pdb,servicemonitor,prometheusrule,role,rolebinding -n "$system_ns" -l "$instance" \
  -o name >"$work/objects.txt"
for want in deployment.apps/"$release" service/"$release" configmap/"$release" configmap/"$release-dashboard" \
  serviceaccount/"$release" poddisruptionbudget.policy/"$release" servicemonitor.monitoring.coreos.com/"$release" \
  prometheusrule.monitoring.coreos.com/"$release" role.rbac.authorization.k8s.io/"$release-leader-election"; do
  grep -qx "$want" "$work/objects.txt" || fail "$want is missing in $system_ns after the install"
done
ok "in $system_ns: $(wc -l <"$work/objects.txt") objects (Deployment, Service, ConfigMaps, ServiceAccount, PDB, ServiceMonitor, PrometheusRule, Lease Role, …)"
# Read the whole list first: `grep -q` stops reading at the first match, and with pipefail the
# writer's SIGPIPE would fail the check.
apps_rbac=$("$kubectl" get role,rolebinding -n "$apps" -l "$instance" -o name)
grep -qx "role.rbac.authorization.k8s.io/$release" <<<"$apps_rbac" ||
  fail "no Role $release in the watched namespace $apps"
ok "Role and RoleBindings in the watched namespace $apps"
pdb_api=$("$helm" get manifest "$release" -n "$system_ns" | "$py" -c 'import sys, yaml
print(next(d["apiVersion"] for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "PodDisruptionBudget"))')
if grep -qx policy/v1 <<<"$("$kubectl" api-versions)"; then want_pdb=policy/v1; else want_pdb=policy/v1beta1; fi
[ "$pdb_api" = "$want_pdb" ] || fail "the PodDisruptionBudget is $pdb_api; this server wants $want_pdb"
ok "PodDisruptionBudget uses $pdb_api, the version this server serves"

# Asks the API server whether the chart's ServiceAccount may do something (`yes` or `no`).
may() { # yes|no, then kubectl auth can-i arguments
  local want=$1 got
  shift
  got=$("$kubectl" auth can-i "$@" --as="$sa" 2>/dev/null || true)
  [ "$got" = "$want" ] || fail "can-i $* as $sa: wanted $want, got ${got:-an error}"
  ok "can-i $*: $want"
}
step "the ServiceAccount's rights (watch-namespace mode)"
may yes list pipelines.conveyor.dev -n "$apps"
may yes watch releases.conveyor.dev -n "$apps"
may yes patch releases.conveyor.dev --subresource=status -n "$apps"
may yes create events.events.k8s.io -n "$apps"
may yes get secrets -n "$apps"
may yes watch namespaces
may yes watch deployments.apps --all-namespaces
may yes create leases.coordination.k8s.io -n "$system_ns"
may yes patch leases.coordination.k8s.io/"$release" -n "$system_ns"
may yes patch configmaps -n "$apps"
may yes impersonate serviceaccounts/conveyor-deployer -n "$second"
may no list pipelines.conveyor.dev -n default
may no patch pipelines.conveyor.dev -n "$apps"
may no update releases.conveyor.dev -n "$apps"
may no get secrets -n default
may no list secrets -n "$apps"
may no patch leases.coordination.k8s.io/another-lease -n "$system_ns"
may no create leases.coordination.k8s.io -n default
may no patch configmaps -n "$second"
may no patch configmaps -n default
may no impersonate serviceaccounts/default -n kube-system
may no create clusterroles.rbac.authorization.k8s.io
may no delete namespaces
may no create pods -n "$apps"

step "the real controller, acting as the chart's ServiceAccount with the chart's configuration"
token=$("$kubectl" create token "$release" -n "$system_ns" --duration=1h) ||
  fail "cannot get a token for ServiceAccount $release (kubectl create token)"
cp "$KUBECONFIG" "$work/sa-kubeconfig"
"$kubectl" --kubeconfig "$work/sa-kubeconfig" config set-credentials chart-sa --token="$token" >/dev/null
"$kubectl" --kubeconfig "$work/sa-kubeconfig" config set-context --current --user=chart-sa >/dev/null
# The token is the ServiceAccount's (an admin could list Secrets in default; it cannot).
if [ "$("$kubectl" --kubeconfig "$work/sa-kubeconfig" auth can-i list pipelines.conveyor.dev -n "$apps" 2>&1)" != yes ] ||
  [ "$("$kubectl" --kubeconfig "$work/sa-kubeconfig" auth can-i list secrets -n default 2>&1)" != no ]; then
  fail "the kubeconfig with the ServiceAccount's token does not act as $sa"
fi
ok "kubeconfig with a token of ServiceAccount $release (kubectl create token) acts as $sa"

# Starts the controller with the configuration in the release's ConfigMap and the
# ServiceAccount's token (plus environment variables given as arguments, NAME=VALUE), and waits
# until it is ready.
start_controller() {
  "$kubectl" get configmap "$release" -n "$system_ns" -o jsonpath='{.data.conveyor\.yaml}' >"$work/conveyor.yaml"
  printf 'configuration from ConfigMap %s:\n' "$release"
  sed 's/^/    /' "$work/conveyor.yaml"
  local port deadline=$(($(date +%s) + 60))
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Only what must differ on this machine is overridden: where the store lives and the address
  # (the chart's /var/lib/conveyor and 0.0.0.0:8080 belong to the Pod). The Pod's downward API
  # is played by POD_NAME and POD_NAMESPACE.
  KUBECONFIG="$work/sa-kubeconfig" NO_COLOR=1 CONVEYOR_CONFIG="$work/conveyor.yaml" \
    CONVEYOR_ARTIFACT_DIR="$work/artifacts" CONVEYOR_METRICS_ADDRESS="127.0.0.1:$port" \
    POD_NAME="$release-local" POD_NAMESPACE="$system_ns" \
    env "$@" "$bin" controller >"$work/controller.log" 2>&1 &
  controller_pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$controller_pid" 2>/dev/null || fail "the controller exited"
    [ "$(date +%s)" -lt "$deadline" ] || fail "the controller did not become ready within 60s"
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || fail "/healthz does not answer"
  ok "controller ready (/readyz, /healthz on 127.0.0.1:$port)"
}

# Stops the controller after checking that the API server refused none of its calls.
stop_controller() {
  # A 403 as a status, not digits of a timestamp (`08.740392Z` once failed this check).
  if grep -Ei 'forbidden|(^|[^0-9.])403([^0-9]|$)' "$work/controller.log" >"$work/forbidden.log"; then
    head -n 5 "$work/forbidden.log" >&2
    fail "the controller's log shows refused API calls (above)"
  fi
  ok "no refused API call in the controller's log"
  kill "$controller_pid"
  wait "$controller_pid" 2>/dev/null || true
  controller_pid=""
}

# Waits until environment ENV of Pipeline NAMESPACE/app is Healthy running 1.0.0.
healthy() { # namespace, environment
  local ns=$1 env=$2 state t0 deadline
  t0=$(date +%s)
  deadline=$((t0 + 120))
  while :; do
    state=$("$kubectl" -n "$ns" get pipeline app -o jsonpath="{range .status.environments[?(@.name==\"$env\")]}{.phase} {.current.version}{end}" 2>/dev/null || true)
    [ "$state" = "Healthy 1.0.0" ] && break
    case $state in Failed*) fail "$ns/app $env is Failed: $("$kubectl" -n "$ns" get pipeline app -o jsonpath='{.status.environments}')" ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || fail "$ns/app $env is '${state:-not reported}' after 120s, wanted 'Healthy 1.0.0' (Release: $("$kubectl" -n "$ns" get release app-1.0.0 -o jsonpath='{.status.conditions}' 2>/dev/null))"
    sleep 0.5
  done
  ok "$ns/app $env Healthy running 1.0.0 (waited $(($(date +%s) - t0))s)"
}

# The ConfigMap the release applies, rendered for the environment.
applied() { # namespace, environment
  local got
  got=$("$kubectl" -n "$1" get configmap chart-app-settings -o jsonpath='{.data.environment} {.data.version}') ||
    fail "ConfigMap chart-app-settings missing in $1"
  [ "$got" = "$2 1.0.0" ] || fail "ConfigMap chart-app-settings in $1 holds '$got', wanted '$2 1.0.0'"
}

# A Release of the application in NAMESPACE, from the repository below.
release_manifest() { # namespace
  cat <<EOF
apiVersion: conveyor.dev/v1alpha1
kind: Release
metadata: { name: app-1.0.0, namespace: $1 }
spec:
  pipeline: app
  version: 1.0.0
  source:
    git: { url: "file://$repo", ref: { commit: "$commit" } }
    path: deploy
EOF
}

repo="$work/app"
git init -q -b main "$repo"
mkdir "$repo/deploy"
cat >"$repo/deploy/settings.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: chart-app-settings
data:
  environment: ${CONVEYOR_ENVIRONMENT}
  version: ${CONVEYOR_VERSION}
EOF
git -C "$repo" add deploy
git -C "$repo" -c user.name=CI -c user.email=ci@example.com commit -q -m "feat: settings"
commit=$(git -C "$repo" rev-parse HEAD)

start_controller
{
  cat <<EOF
apiVersion: conveyor.dev/v1alpha1
kind: Pipeline
metadata: { name: app, namespace: $apps }
spec:
  environments:
    - name: development
      namespace: $apps
      healthChecks: { timeout: 2m }
    - name: staging
      namespace: $second
      serviceAccountName: conveyor-deployer
      healthChecks: { timeout: 2m }
  rollback: { automatic: true }
---
EOF
  release_manifest "$apps"
} | "$kubectl" apply -f - >/dev/null
healthy "$apps" development
healthy "$apps" staging
applied "$apps" development
applied "$second" staging
ok "ConfigMap applied in $apps (the chart's deploy rights) and in $second (as conveyor-deployer: the chart's own rights there are refused above)"
holder=$("$kubectl" -n "$system_ns" get lease "$release" -o jsonpath='{.spec.holderIdentity}')
[ "$holder" = "$release-local" ] || fail "Lease $system_ns/$release is held by '$holder'"
ok "Lease $system_ns/$release held by $holder"
events=$("$kubectl" -n "$apps" get events.events.k8s.io -o jsonpath='{range .items[?(@.reportingController=="conveyor")]}{.reason}{" "}{end}')
[ -n "$events" ] || fail "no Events from conveyor in $apps"
ok "Events recorded in $apps: $events"
stop_controller

# --- 5. Upgrade and uninstall ------------------------------------------------------------------
step "5. helm upgrade to the default values (cluster-wide mode), then helm uninstall"
"$helm" upgrade "$release" "$chart" -n "$system_ns" --reset-values >"$work/upgrade.log" 2>&1 ||
  { cat "$work/upgrade.log" >&2; fail "helm upgrade $release"; }
revision=$("$helm" status "$release" -n "$system_ns" -o json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["version"])')
[ "$revision" = 2 ] || fail "after the upgrade the release is at revision $revision"
ok "helm upgrade $release --reset-values: revision 2"
for gone in servicemonitor.monitoring.coreos.com/"$release" prometheusrule.monitoring.coreos.com/"$release" configmap/"$release-dashboard"; do
  if "$kubectl" get -n "$system_ns" "$gone" >/dev/null 2>&1; then fail "$gone is still there after the upgrade"; fi
done
if "$kubectl" get role "$release" -n "$apps" >/dev/null 2>&1; then fail "Role $release is still in $apps"; fi
ok "ServiceMonitor, PrometheusRule, dashboard and the watched namespace's Role removed"
may yes list pipelines.conveyor.dev --all-namespaces
may yes get secrets -n default
may yes patch configmaps -n default
may no impersonate serviceaccounts/conveyor-deployer -n "$second"
may no list secrets -n default

step "the real controller again, with the default values: a Pipeline in a namespace no value names"
third="chart-third-$suffix"
created_namespaces+=("$third")
"$kubectl" create namespace "$third" >/dev/null
# The chart watches all namespaces now. The test cluster is shared with other tests whose
# Pipelines this controller must not touch: it watches only the new namespace here, while its
# rights stay cluster-wide (the ClusterRoles, nothing bound in $third) and can-i showed the
# cluster-wide list above.
start_controller CONVEYOR_WATCH_NAMESPACE="$third"
{
  cat <<EOF
apiVersion: conveyor.dev/v1alpha1
kind: Pipeline
metadata: { name: app, namespace: $third }
spec:
  environments:
    - name: development
      namespace: $third
      healthChecks: { timeout: 2m }
---
EOF
  release_manifest "$third"
} | "$kubectl" apply -f - >/dev/null
healthy "$third" development
applied "$third" development
ok "ConfigMap applied in $third with the cluster-wide deploy rights"
stop_controller

"$helm" uninstall "$release" -n "$system_ns" >/dev/null || fail "helm uninstall $release"
left=$("$kubectl" get deploy,svc,cm,sa,pdb,role,rolebinding,servicemonitor,prometheusrule -n "$system_ns" -l "$instance" -o name)
left+=$("$kubectl" get clusterrole,clusterrolebinding -l "$instance" -o name)
left+=$("$kubectl" get role,rolebinding -n "$apps" -l "$instance" -o name)
[ -z "$left" ] || fail "left after helm uninstall: $left"
ok "helm uninstall $release: no object labelled $instance is left (namespaced or cluster-wide)"
release=""

printf '\nchart test passed: %s checks in %ss (helm %s, kubectl client %s, cluster %s)\n' "$checks" \
  "$(($(date +%s) - started_at))" "$("$helm" version --template '{{.Version}}')" \
  "$("$kubectl" version --client -o json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')" \
  "$server_version"
