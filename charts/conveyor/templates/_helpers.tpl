{{/*
Chart name, or nameOverride; also the `app.kubernetes.io/name` label and the Prometheus job.
*/}}
{{- define "conveyor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else <release>-<name>, or just the
release name when it already contains the chart name (`helm install conveyor …`).
*/}}
{{- define "conveyor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value: name-version.
*/}}
{{- define "conveyor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object carries.
*/}}
{{- define "conveyor.labels" -}}
helm.sh/chart: {{ include "conveyor.chart" . }}
{{ include "conveyor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: conveyor
{{- end }}

{{/*
Labels that select the controller Pods (never change them: a Deployment's selector is immutable).
*/}}
{{- define "conveyor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conveyor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/*
The controller's ServiceAccount name.
*/}}
{{- define "conveyor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "conveyor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name an existing ServiceAccount" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository:tag, or repository@digest when a digest is set.
*/}}
{{- define "conveyor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Namespace Pipelines and Releases are watched in; empty means all namespaces.
*/}}
{{- define "conveyor.watchNamespace" -}}
{{- get .Values.config "watch_namespace" }}
{{- end }}

{{/*
Namespace of the leader-election Lease: config.lease_namespace, else the release's namespace
(the controller falls back to its Pod's namespace, POD_NAMESPACE, which is the same).
*/}}
{{- define "conveyor.leaseNamespace" -}}
{{- default .Release.Namespace (get .Values.config "lease_namespace") }}
{{- end }}

{{/*
Name of the leader-election Lease (the controller's default when config.lease_name is unset).
*/}}
{{- define "conveyor.leaseName" -}}
{{- default "conveyor-controller" (get .Values.config "lease_name") }}
{{- end }}

{{/*
Whether leader election is on: the controller's default is true.
*/}}
{{- define "conveyor.leaderElection" -}}
{{- if hasKey .Values.config "leader_election" }}{{ .Values.config.leader_election }}{{ else }}true{{ end }}
{{- end }}

{{/*
The configuration file: the keys the user set in `config`, checked against the keys Conveyor
knows (an unknown key would stop the controller at start), plus the keys the chart owns.
The list is Conveyor's config/conveyor.yaml; tests/chart.sh fails when the two differ.
*/}}
{{- define "conveyor.configFile" -}}
{{- $known := list "environments" "rollback_enabled" "allow_cluster_scoped" "allow_link_local_checks" "validation_timeout" "git_timeout" "tag_prefix" "changelog_file" "notification_webhooks" "notification_timeout" "metrics_address" "artifact_dir" "prometheus_address" "log_format" "leader_election" "lease_name" "lease_namespace" "lease_duration" "watch_namespace" "package_max_files" "package_max_file_bytes" "package_max_bytes" "package_max_yaml_nodes" "kustomize_binary" "helm_binary" "render_timeout" }}
{{- $owned := dict "artifact_dir" "artifacts.mountPath" "metrics_address" "metrics.port" }}
{{- range $key, $_ := .Values.config }}
{{- if not (has $key $known) }}
{{- fail (printf "config.%s is not a Conveyor configuration key; known keys: %s" $key (join ", " $known)) }}
{{- end }}
{{- if hasKey $owned $key }}
{{- fail (printf "config.%s is set by the chart; set %s instead" $key (get $owned $key)) }}
{{- end }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (ne (include "conveyor.leaderElection" .) "true") }}
{{- fail (printf "config.leader_election is false with replicaCount %d: replicas would reconcile at once; keep leader election on or set replicaCount to 1" (int .Values.replicaCount)) }}
{{- end }}
{{- $file := deepCopy .Values.config }}
{{- /* Helm reads YAML numbers as floats and writes big ones as 1e+06, which Conveyor does not
read as a count: the sizes and counts go out as exact integer strings, which it accepts. */}}
{{- range $key, $value := $file }}
{{- if and (hasPrefix "package_max_" $key) (or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value)) }}
{{- $_ := set $file $key (printf "%d" (int64 $value)) }}
{{- end }}
{{- end }}
{{- $_ := set $file "artifact_dir" .Values.artifacts.mountPath }}
{{- $_ := set $file "metrics_address" (printf "0.0.0.0:%d" (int .Values.metrics.port)) }}
{{- $_ := set $file "leader_election" (eq (include "conveyor.leaderElection" .) "true") }}
{{- toYaml $file }}
{{- end }}

{{/*
The PodDisruptionBudget API: policy/v1 where the cluster serves it (1.21+; helm template without
a cluster assumes a recent one), else policy/v1beta1
(Kubernetes 1.20).
*/}}
{{- define "conveyor.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1" }}policy/v1{{ else }}policy/v1beta1{{ end }}
{{- end }}

{{/*
The Prometheus job name of Conveyor's scrape target: prometheusRule.job, else the chart name,
which the ServiceMonitor makes the job through its jobLabel.
*/}}
{{- define "conveyor.job" -}}
{{- default (include "conveyor.name" .) .Values.prometheusRule.job }}
{{- end }}

{{/*
Rules on Conveyor's own kinds and what comes with them, cluster-wide or in watch_namespace.
*/}}
{{- define "conveyor.rbac.resourceRules" -}}
- apiGroups: [conveyor.dev]
  resources: [pipelines, releases]
  verbs: [get, list, watch]
- apiGroups: [conveyor.dev]
  resources: [pipelines/status, releases/status]
  verbs: [patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
