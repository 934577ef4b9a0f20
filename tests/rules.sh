#!/usr/bin/env bash
# Checks the monitoring Conveyor ships in charts/conveyor/files/:
#   - prometheus-rules.yaml: `promtool check rules`, the unit tests in tests/prometheus-rules/
#     (`promtool test rules`), and the conventions promtool cannot see: every alert has `for`,
#     a severity, a summary, a description and a runbook_url to its own section of
#     docs/runbook.md, is tested both firing and not firing, and every recording rule is tested;
#   - dashboard.json: valid JSON with the uid, title and datasource variable the chart relies on,
#     and every PromQL expression (panels, annotations, variables) accepted by a real Prometheus;
#   - both: every conveyor_* metric they read is one the controller defines in src/.
# Prints what it checks; exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib.sh

rules=charts/conveyor/files/prometheus-rules.yaml
dashboard=charts/conveyor/files/dashboard.json
tests_dir=tests/prometheus-rules
runbook=docs/runbook.md
runbook_base=https://github.com/conveyor-dev/conveyor/blob/main/docs/runbook.md

need_prometheus
apt_install jq curl python3

failures=0
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  failures=$((failures + 1))
}

step "promtool check rules $rules"
promtool check rules "$rules" || fail "promtool check rules $rules"

step "promtool test rules $tests_dir/*.yaml"
promtool test rules "$tests_dir"/*.yaml || fail "promtool test rules (the failing test is named above)"

step "alert conventions, test coverage and runbook sections"
# One line per alert: NAME<TAB>the keys its block sets (awk: the rules file has no YAML parser here).
alert_keys=$(awk '
  /^ *- alert: / { if (name != "") print name "\t" keys; name = $3; keys = ""; next }
  /^ *- (record|name): / { if (name != "") print name "\t" keys; name = ""; next }
  name != "" && /^ *(for|severity|summary|description|runbook_url):/ { sub(/^ */, ""); keys = keys " " $0 }
  END { if (name != "") print name "\t" keys }
' "$rules")
[ -n "$alert_keys" ] || fail "no alert found in $rules"
# Which alerts the unit tests expect to fire (exp_alerts with entries) and not to fire (exp_alerts: []).
tested=$(awk '
  /alertname: / { alert = $NF }
  /exp_alerts: *\[\]/ { print alert " quiet"; next }
  /exp_alerts:/ { print alert " firing" }
' "$tests_dir"/*.yaml | sort -u)
[ -f "$runbook" ] || fail "$runbook is missing: every alert's runbook_url points at a section of it"
while IFS=$'\t' read -r alert keys; do
  for key in for severity summary description; do
    [[ " $keys" == *" $key:"* ]] || fail "$alert in $rules has no '$key:'"
  done
  anchor=$(printf '%s' "$alert" | tr '[:upper:]' '[:lower:]')
  [[ "$keys" == *"runbook_url: \"$runbook_base#$anchor\""* ]] \
    || fail "$alert in $rules: runbook_url must be \"$runbook_base#$anchor\""
  for state in firing quiet; do
    grep -qx "$alert $state" <<<"$tested" \
      || fail "$alert has no unit test where it is $state ($tests_dir: alertname: $alert with exp_alerts$([ "$state" = quiet ] && echo ': []'))"
  done
  if [ -f "$runbook" ]; then
    grep -qx "## $alert" "$runbook" || fail "$runbook has no '## $alert' section (the alert's runbook_url anchor)"
  fi
  printf '  %s: for, severity, summary, description, runbook_url; tested firing and quiet\n' "$alert"
done <<<"$alert_keys"
while read -r record; do
  grep -qE "^ *- expr: *$record\$" "$tests_dir"/*.yaml \
    || fail "recording rule $record has no promql_expr_test in $tests_dir"
  printf '  %s: tested\n' "$record"
done < <(sed -n 's/^ *- record: *//p' "$rules")

step "dashboard $dashboard"
if ! jq empty "$dashboard"; then
  fail "$dashboard is not valid JSON"
else
  # `jq -e` exits non-zero when the expression is false: each line is one requirement.
  require() {
    jq -e "$1" "$dashboard" >/dev/null || fail "$dashboard: $2"
  }
  require '.uid == "conveyor" and .title == "Conveyor"' 'uid must be "conveyor" and title "Conveyor"'
  require '.schemaVersion >= 36' 'schemaVersion must be 36 or newer'
  require 'any(.templating.list[]; .name == "datasource" and .type == "datasource" and .query == "prometheus")' \
    'needs a template variable "datasource" of type datasource, query "prometheus"'
  for var in namespace pipeline environment; do
    require "any(.templating.list[]; .name == \"$var\" and .type == \"query\" and (.definition | startswith(\"label_values(\")))" \
      "needs a query variable \"$var\" from label_values(…)"
  done
  require '[.. | objects | select(has("gridPos")) | .id] | length == (unique | length)' 'panel ids must be unique'
  # shellcheck disable=SC2016 # ${datasource} is Grafana's, not the shell's.
  require '[.. | objects | select(has("gridPos") and .type != "row")] | all(.datasource.uid == "${datasource}" and all(.targets[]; .datasource.uid == "${datasource}"))' \
    'every panel and target must use the datasource variable: "datasource": {"type": "prometheus", "uid": "${datasource}"}'
  require '[.. | objects | select(has("gridPos") and .type != "row")] | all((.targets | length) > 0 and all(.targets[]; (.expr | length) > 0))' \
    'every panel needs at least one target with an expr'
  printf '  valid JSON, uid conveyor, variables datasource/namespace/pipeline/environment, %s panels\n' \
    "$(jq '[.. | objects | select(has("gridPos") and .type != "row")] | length' "$dashboard")"
  recorded=$(sed -n 's/^ *- record: *//p' "$rules")
  for used in $(jq -r '.. | objects | .expr? // empty' "$dashboard" | grep -oE 'conveyor:[a-z0-9_:]+' | sort -u); do
    grep -qx "$used" <<<"$recorded" || fail "$dashboard uses $used, which $rules does not record"
  done
fi

step "conveyor_* metrics read by the rules and the dashboard are defined in src/"
while read -r metric; do
  grep -rqF "\"$metric\"" src \
    || fail "$metric is read by $rules or $dashboard but no string \"$metric\" in src/ defines it (a typo, or a metric not implemented yet)"
done < <(cat "$rules" "$dashboard" | grep -oE 'conveyor_[a-z_]+' | sed -E 's/_(bucket|count|sum)$//' | sort -u)

step "every dashboard expression parses in a real Prometheus"
prom_dir=$(mktemp -d -t conveyor-rules-XXXXXX)
prom_pid=
cleanup() {
  if [ -n "$prom_pid" ]; then
    kill "$prom_pid" 2>/dev/null || true
    wait "$prom_pid" 2>/dev/null || true
  fi
  rm -rf "$prom_dir"
}
trap cleanup EXIT
# Grafana's variables become what they could hold: the interval ones a duration, the others
# (namespace, pipeline, environment, datasource) the regex of All.
# shellcheck disable=SC2016 # the dollars are Grafana's, matched literally
grafana_to_promql() {
  sed -E 's/\$__rate_interval/5m/g; s/\$__interval/1m/g; s/\$__range/1h/g; s/\$\{?[a-zA-Z_]+\}?/.*/g'
}
printf 'global: {}\n' >"$prom_dir/prometheus.yml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
url="http://127.0.0.1:$port"
prometheus --config.file="$prom_dir/prometheus.yml" --storage.tsdb.path="$prom_dir/data" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$prom_dir/prometheus.log" 2>&1 &
prom_pid=$!
ready=
for _ in $(seq 300); do
  if curl -sf "$url/-/ready" >/dev/null 2>&1; then ready=1 && break; fi
  kill -0 "$prom_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  cat "$prom_dir/prometheus.log" >&2
  fail "prometheus on $url was not ready within 30 s (its log is above)"
else
  exprs=$(
    {
      jq -r '.. | objects | .expr? // empty | gsub("\n"; " ")' "$dashboard"
      jq -r '.templating.list[] | select(.type == "query") | .definition' "$dashboard" \
        | sed -E 's/^label_values\((.*), *[a-zA-Z_]+\)$/\1/'
    } | grafana_to_promql
  )
  count=0
  while IFS= read -r expr; do
    answer=$(curl -sS -G --data-urlencode "query=$expr" "$url/api/v1/query" || true)
    if [ "$(jq -r '.status' <<<"$answer" 2>/dev/null)" = success ]; then
      count=$((count + 1))
    else
      fail "Prometheus rejects a dashboard expression: $expr
      $(jq -r '.error // empty' <<<"$answer" 2>/dev/null || printf '%s' "$answer")"
    fi
  done <<<"$exprs"
  printf '  %s expressions accepted by Prometheus %s\n' "$count" "$(prometheus --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p')"
fi

if [ "$failures" -gt 0 ]; then
  printf '\nrules.sh: %s check(s) failed\n' "$failures" >&2
  exit 1
fi
printf '\nrules.sh: rules, unit tests and dashboard OK\n' >&2
