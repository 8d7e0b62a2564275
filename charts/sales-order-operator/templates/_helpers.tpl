{{/* Names and labels, the usual helm-create shapes. */}}
{{- define "sales-order-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sales-order-operator.fullname" -}}
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

{{- define "sales-order-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sales-order-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sales-order-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sales-order-operator.labels" -}}
helm.sh/chart: {{ include "sales-order-operator.chart" . }}
{{ include "sales-order-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "sales-order-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sales-order-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sales-order-operator.leaseName" -}}
{{- default (include "sales-order-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "sales-order-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces watched, comma-separated: watchNamespaces; with
rbac.scope=namespaces and none given, the release's own (so a default install
grants nothing outside it). Empty, i.e. every namespace, only with cluster scope.
*/}}
{{- define "sales-order-operator.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- join "," .Values.watchNamespaces }}
{{- else if eq .Values.rbac.scope "namespaces" }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs in a namespace it watches (or cluster-wide).
Each one is used by the code; see docs/operations.md#rbac.
*/}}
{{- define "sales-order-operator.rules" -}}
# Watch the custom resources (reflector stores: list + watch).
- apiGroups: ["d365.salesops.io"]
  resources: ["salesorderstatuses", "d365connections"]
  verbs: ["list", "watch"]
# Write the outcome: merge patch of the status subresources only (orders;
# connections get a Ready condition saying whether their credentials work).
- apiGroups: ["d365.salesops.io"]
  resources: ["salesorderstatuses/status", "d365connections/status"]
  verbs: ["patch"]
# Secrets: watched as metadata (to notice rotation), and the one a
# D365Connection names is read when its client is (re)built. The operator
# lists, watches and reads only Secrets labelled
# d365.salesops.io/credentials=true, but RBAC cannot restrict by label: these
# verbs reach every Secret in the namespaces bound (cluster scope: all).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Events (kube-runtime Recorder, events.k8s.io/v1): create, and patch to
# count a repeated event in its series.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
