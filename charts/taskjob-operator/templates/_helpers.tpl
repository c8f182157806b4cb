{{/* Names, labels and the RBAC rules shared by the templates. */}}

{{- define "taskjob-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; cluster-scoped objects (ClusterRoles, peering) carry it too. */}}
{{- define "taskjob-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "taskjob-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "taskjob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskjob-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "taskjob-operator.labels" -}}
helm.sh/chart: {{ include "taskjob-operator.chart" . }}
{{ include "taskjob-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: taskjob
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "taskjob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taskjob-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when kopf peering is on: more than one replica. */}}
{{- define "taskjob-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* The Service name: the webhook's TLS certificate and the webhook configuration both name it. */}}
{{- define "taskjob-operator.serviceName" -}}
{{- include "taskjob-operator.fullname" . }}
{{- end }}

{{- define "taskjob-operator.webhookHost" -}}
{{- printf "%s.%s.svc" (include "taskjob-operator.serviceName" .) .Release.Namespace }}
{{- end }}

{{- define "taskjob-operator.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "taskjob-operator.fullname" .)) .Values.webhook.tls.existingSecret }}
{{- end }}

{{/*
The ValidatingWebhookConfiguration kopf manages (settings.admission.managed): the operator's default name.
The chart owns the object so that `helm uninstall` removes it; kopf fills in its webhooks.
*/}}
{{- define "taskjob-operator.webhookConfigName" -}}
taskjob.dev
{{- end }}

{{/*
What the operator does with the objects it runs: granted cluster-wide (a ClusterRole) or in each
watched namespace (a Role). Exactly the verbs it uses; no Secrets, no wildcards.
*/}}
{{- define "taskjob-operator.workloadRules" -}}
# TaskJobs: watched; kopf patches its bookkeeping annotations; deleted after ttlSecondsAfterFinished;
# created by CronTaskJobs on schedule, and deleted beyond their history limits.
- apiGroups: [taskjob.dev]
  resources: [taskjobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [taskjob.dev]
  resources: [taskjobs/status]
  verbs: [get, patch, update]
# CronTaskJobs: read and watched; only their status is written.
- apiGroups: [taskjob.dev]
  resources: [crontaskjobs]
  verbs: [get, list, watch]
- apiGroups: [taskjob.dev]
  resources: [crontaskjobs/status]
  verbs: [get, patch]
# One Job per task attempt; watched by label, stopped on timeout or deadline.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# Read-only: why a task's pod cannot start (image pull errors, unschedulable ...).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# Task outputs, in a ConfigMap owned by the TaskJob.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, update, delete]
# Kubernetes Events on TaskJobs (task started, retried, failed ...), from the operator and from kopf.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* Cluster-scoped reads kopf needs in every mode, and the webhook configuration it manages. */}}
{{- define "taskjob-operator.clusterRules" -}}
# kopf scans the CRDs at startup and follows changes to them.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- if .Values.watchNamespaces }}
# Namespaced mode only: kopf lists and follows namespaces to know which watched ones exist
# (cluster-wide, it watches every namespace at once and needs no namespace list).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}
{{- if .Values.webhook.enabled }}
# kopf creates the webhook configuration if it is missing (create cannot be limited by name) ...
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations]
  verbs: [create]
# ... and keeps its webhooks and CA bundle current: this one object only.
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations]
  resourceNames: [{{ include "taskjob-operator.webhookConfigName" . }}]
  verbs: [get, patch]
{{- end }}
{{- end }}

{{/* Peering (HA): each replica writes its heartbeat into the peering object named after the release. */}}
{{- define "taskjob-operator.clusterPeeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}

{{- define "taskjob-operator.namespacedPeeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}

{{/*
Consistency checks that span several values (values.schema.json checks each value on its own).
Included from the Deployment so every render runs them.
*/}}
{{- define "taskjob-operator.validate" -}}
{{- $ports := dict }}
{{- $_ := set $ports (toString .Values.health.port) "health.port" }}
{{- if .Values.metrics.enabled }}
{{- if hasKey $ports (toString .Values.metrics.port) }}
{{- fail (printf "metrics.port %v is already used by %s: give each port its own number" .Values.metrics.port (get $ports (toString .Values.metrics.port))) }}
{{- end }}
{{- $_ := set $ports (toString .Values.metrics.port) "metrics.port" }}
{{- end }}
{{- if .Values.webhook.enabled }}
{{- if hasKey $ports (toString .Values.webhook.port) }}
{{- fail (printf "webhook.port %v is already used by %s: give each port its own number" .Values.webhook.port (get $ports (toString .Values.webhook.port))) }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled: the ServiceMonitor scrapes the metrics port" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) }}
{{- fail "metrics.serviceMonitor.enabled needs the Prometheus Operator's ServiceMonitor CRD (monitoring.coreos.com/v1), which this cluster does not serve: install it first or leave the value false" }}
{{- end }}
{{- end }}

{{/* The dashboard: its own name label, so neither the operator's Deployment nor its Service selects it. */}}
{{- define "taskjob-operator.dashboardSelectorLabels" -}}
app.kubernetes.io/name: {{ include "taskjob-operator.name" . }}-dashboard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "taskjob-operator.dashboardLabels" -}}
helm.sh/chart: {{ include "taskjob-operator.chart" . }}
{{ include "taskjob-operator.dashboardSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: dashboard
app.kubernetes.io/part-of: taskjob
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* What the dashboard may do: read TaskJobs, their Jobs, pods, pod logs and Events; with actions, also patch
     and delete TaskJobs. Nothing else. */}}
{{- define "taskjob-operator.dashboardRules" -}}
- apiGroups: [taskjob.dev]
  resources: [taskjobs]
  {{- if .Values.dashboard.actions.enabled }}
  # dashboard.actions.enabled: retry and suspend/resume patch the TaskJob; delete deletes it.
  verbs: [get, list, watch, patch, delete]
  {{- else }}
  verbs: [get, list, watch]
  {{- end }}
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods, pods/log, events]
  verbs: [get, list, watch]
{{- end }}
