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

{{/*
Where the Secrets are mounted. Whole directories, never subPath: the kubelet then updates a
rotated Secret in place, and the binaries see the new file without a restart.
*/}}
{{- define "heart-risk.kafkaCaDir" -}}/etc/heart-risk/kafka{{- end }}
{{- define "heart-risk.httpTlsDir" -}}/etc/heart-risk/http-tls{{- end }}
{{- define "heart-risk.httpAuthDir" -}}/etc/heart-risk/http-auth{{- end }}

{{/*
The chart's rules for the security and MLflow values; included by the scorer Deployment, so `helm
template` and `helm install` fail with the value to change.
*/}}
{{- define "heart-risk.validateSecurity" -}}
{{- if and (hasPrefix "sasl_" .Values.kafka.securityProtocol) (not .Values.kafka.sasl.existingSecret) }}
{{- fail (printf "kafka.securityProtocol %s needs kafka.sasl.existingSecret (a Secret with keys %s and %s)" .Values.kafka.securityProtocol .Values.kafka.sasl.usernameKey .Values.kafka.sasl.passwordKey) }}
{{- end }}
{{- if and (hasPrefix "sasl_" .Values.kafka.securityProtocol) (not .Values.kafka.saslMechanism) }}
{{- fail (printf "kafka.securityProtocol %s needs kafka.saslMechanism" .Values.kafka.securityProtocol) }}
{{- end }}
{{- $http := .Values.scorer.http }}
{{- if and $http.tls.enabled (not $http.tls.existingSecret) }}
{{- fail "scorer.http.tls.enabled needs scorer.http.tls.existingSecret (a kubernetes.io/tls Secret: tls.crt, tls.key)" }}
{{- end }}
{{- if and $http.auth.enabled (not $http.auth.existingSecret) }}
{{- fail (printf "scorer.http.auth.enabled needs scorer.http.auth.existingSecret (a Secret whose key %s holds one token per line)" $http.auth.key) }}
{{- end }}
{{- if and $http.auth.enabled $http.auth.health }}
{{- fail "scorer.http.auth.health: the kubelet's probes cannot send a bearer token (httpHeaders are literals in the manifest); keep /healthz and /readyz open" }}
{{- end }}
{{- if and .Values.autoscaling.keda.auth.enabled (ne .Values.autoscaling.keda.auth.sasl "plaintext") (not .Values.kafka.sasl.existingSecret) }}
{{- fail "autoscaling.keda.auth.sasl needs kafka.sasl.existingSecret for KEDA's credentials" }}
{{- end }}
{{- $mlflow := .Values.mlflow }}
{{- if and .Values.scorer.shadowFromMlflow (not $mlflow.trackingUri) }}
{{- fail "scorer.shadowFromMlflow needs mlflow.trackingUri (the registry it looks the alias up in)" }}
{{- end }}
{{- if and .Values.scorer.shadowFromMlflow .Values.scorer.shadowModelVersion }}
{{- fail "scorer.shadowFromMlflow and scorer.shadowModelVersion exclude each other: one challenger at a time" }}
{{- end }}
{{- with $mlflow.auth }}
{{- if and .existingSecret (not $mlflow.trackingUri) }}
{{- fail "mlflow.auth.existingSecret is set but mlflow.trackingUri is empty" }}
{{- end }}
{{- if and .existingSecret (not (or .tokenKey .usernameKey)) }}
{{- fail "mlflow.auth.existingSecret needs mlflow.auth.tokenKey (a bearer token) or mlflow.auth.usernameKey and passwordKey" }}
{{- end }}
{{- if and .tokenKey .usernameKey }}
{{- fail "mlflow.auth: set tokenKey or usernameKey and passwordKey, not both (the token would win)" }}
{{- end }}
{{- if or (and .usernameKey (not .passwordKey)) (and .passwordKey (not .usernameKey)) }}
{{- fail "mlflow.auth.usernameKey and mlflow.auth.passwordKey go together" }}
{{- end }}
{{- if and (or .tokenKey .usernameKey) (not .existingSecret) }}
{{- fail "mlflow.auth keys need mlflow.auth.existingSecret (the Secret that holds them)" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Kafka client's Secrets, for every pod that talks to Kafka: SASL credentials as
secretKeyRefs (never a literal) and the CA file's location. Required, not optional: a
missing Secret stops the pod with an event that names it, rather than a client that fails
to authenticate.
*/}}
{{- define "heart-risk.kafkaEnv" -}}
{{- with .Values.kafka.sasl.existingSecret }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kafka.sasl.usernameKey }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kafka.sasl.passwordKey }}
{{- end }}
{{- if .Values.kafka.ca.existingSecret }}
- name: KAFKA_SSL_CA_LOCATION
  value: {{ include "heart-risk.kafkaCaDir" . }}/ca.crt
{{- end }}
{{- end }}

{{- define "heart-risk.kafkaCaMount" -}}
{{- if .Values.kafka.ca.existingSecret }}
- name: kafka-ca
  mountPath: {{ include "heart-risk.kafkaCaDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "heart-risk.kafkaCaVolume" -}}
{{- with .Values.kafka.ca.existingSecret }}
- name: kafka-ca
  secret:
    secretName: {{ . }}
    items:
      - key: {{ $.Values.kafka.ca.key }}
        path: ca.crt
{{- end }}
{{- end }}

{{/*
MLflow's credentials, as secretKeyRefs, for the pods that talk to the tracking server (the
trainer with mlflow.trackingUri, the scorer with scorer.shadowFromMlflow).
*/}}
{{- define "heart-risk.mlflowEnv" -}}
{{- $auth := .Values.mlflow.auth }}
{{- if and .Values.mlflow.trackingUri $auth.existingSecret }}
{{- with $auth.tokenKey }}
- name: MLFLOW_TRACKING_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ . }}
{{- end }}
{{- with $auth.usernameKey }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ . }}
{{- end }}
{{- with $auth.passwordKey }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The trainer container's env: where it publishes (the scorer's models topic and model name,
so the two cannot disagree), Kafka's Secrets, and MLflow's settings and Secrets.
*/}}
{{- define "heart-risk.trainer.env" -}}
- name: TRAINER_TOPIC
  value: {{ .Values.topicNames.models | quote }}
- name: TRAINER_NAME
  value: {{ .Values.scorer.modelName | quote }}
{{- include "heart-risk.kafkaEnv" . }}
{{- if .Values.mlflow.trackingUri }}
- name: TRAINER_MLFLOW_OPTIONAL
  value: {{ .Values.trainer.mlflow.optional | quote }}
- name: TRAINER_MLFLOW_MODEL_NAME
  value: {{ .Values.trainer.mlflow.modelName | default .Values.scorer.modelName | quote }}
- name: TRAINER_MLFLOW_ALIAS
  value: {{ .Values.trainer.mlflow.alias | quote }}
{{- include "heart-risk.mlflowEnv" . }}
{{- end }}
{{- end }}

{{/* The scorer's sidecar: TLS and bearer-token files from Secrets, the rate limit. */}}
{{- define "heart-risk.scorer.httpEnv" -}}
{{- $http := .Values.scorer.http }}
{{- if $http.tls.enabled }}
- name: SCORER_HTTP_TLS_CERT
  value: {{ include "heart-risk.httpTlsDir" . }}/tls.crt
- name: SCORER_HTTP_TLS_KEY
  value: {{ include "heart-risk.httpTlsDir" . }}/tls.key
{{- end }}
{{- if $http.auth.enabled }}
- name: SCORER_HTTP_AUTH_TOKEN_FILE
  value: {{ include "heart-risk.httpAuthDir" . }}/tokens
- name: SCORER_HTTP_AUTH_HEALTH
  value: {{ $http.auth.health | quote }}
- name: SCORER_HTTP_AUTH_METRICS
  value: {{ $http.auth.metrics | quote }}
{{- end }}
{{- with $http.rateLimit.perSecond }}
- name: SCORER_HTTP_RATE_LIMIT_PER_S
  value: {{ . | quote }}
{{- end }}
{{- with $http.rateLimit.burst }}
- name: SCORER_HTTP_RATE_LIMIT_BURST
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "heart-risk.scorer.httpMounts" -}}
{{- if .Values.scorer.http.tls.enabled }}
- name: http-tls
  mountPath: {{ include "heart-risk.httpTlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.scorer.http.auth.enabled }}
- name: http-auth
  mountPath: {{ include "heart-risk.httpAuthDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* 0440 with the pod's fsGroup 10001: readable by the scorer's user, by nobody else. */}}
{{- define "heart-risk.scorer.httpVolumes" -}}
{{- $http := .Values.scorer.http }}
{{- if $http.tls.enabled }}
- name: http-tls
  secret:
    secretName: {{ $http.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if $http.auth.enabled }}
- name: http-auth
  secret:
    secretName: {{ $http.auth.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $http.auth.key }}
        path: tokens
{{- end }}
{{- end }}

{{/* The scorer container's env: Kafka's Secrets, the registry's, MLflow's, the sidecar's. */}}
{{- define "heart-risk.scorer.env" -}}
{{- include "heart-risk.kafkaEnv" . }}
{{- with .Values.schemaRegistry.basicAuth.existingSecret }}
- name: SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.schemaRegistry.basicAuth.userInfoKey }}
{{- end }}
{{- if .Values.scorer.shadowFromMlflow }}
{{- include "heart-risk.mlflowEnv" . }}
{{- end }}
{{- include "heart-risk.scorer.httpEnv" . }}
{{- end }}

{{/* http or https: the probes' and Prometheus' scheme follow scorer.http.tls. */}}
{{- define "heart-risk.scorer.scheme" -}}
{{- if .Values.scorer.http.tls.enabled }}https{{ else }}http{{ end }}
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
