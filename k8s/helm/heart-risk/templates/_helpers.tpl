{{/* Chart name, truncated to the 63 characters a label value may hold. */}}
{{- define "heart-risk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name when it already contains the chart name
(release `heart-risk` gives `heart-risk`), else `<release>-<chart>`.
*/}}
{{- define "heart-risk.fullname" -}}
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
Per-component names: the fullname without its "-risk" suffix, plus the component, so
release `heart-risk` gives `heart-scorer` and `heart-trainer`. The scorer's Service name
is Prometheus' `job` label, which prometheus/rules and the dashboard select on.
*/}}
{{- define "heart-risk.scorer.fullname" -}}
{{- printf "%s-scorer" (include "heart-risk.fullname" . | trimSuffix "-risk") | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "heart-risk.trainer.fullname" -}}
{{- printf "%s-trainer" (include "heart-risk.fullname" . | trimSuffix "-risk") | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "heart-risk.configName" -}}
{{- printf "%s-config" (include "heart-risk.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "heart-risk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "heart-risk.labels" -}}
helm.sh/chart: {{ include "heart-risk.chart" . }}
{{ include "heart-risk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: heart-risk
{{- end }}

{{/* Selector labels; each component adds app.kubernetes.io/component. */}}
{{- define "heart-risk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "heart-risk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "heart-risk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "heart-risk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "heart-risk.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Restricted-PSS pod and container security contexts, shared by every pod. */}}
{{- define "heart-risk.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- define "heart-risk.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end }}

{{/* Kafka credentials from the Secret; optional, so PLAINTEXT clusters need no Secret. */}}
{{- define "heart-risk.kafkaEnv" -}}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.secretName }}
      key: sasl-username
      optional: true
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.secretName }}
      key: sasl-password
      optional: true
{{- end }}

{{- define "heart-risk.kafkaCaVolume" -}}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.secretName }}
    optional: true
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}

{{/*
Every change of replica count is a rebalance that pauses consumption: scale up quickly
but in steps, scale down slowly. Shared by the ScaledObject and the CPU HPA.
*/}}
{{- define "heart-risk.scalingBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
    - type: Pods
      value: 2
      periodSeconds: 60
scaleDown:
  stabilizationWindowSeconds: 300
  policies:
    - type: Pods
      value: 1
      periodSeconds: 120
{{- end }}
