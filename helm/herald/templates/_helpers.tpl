{{/*
The four components, in a fixed order.
*/}}
{{- define "herald.components" -}}
ingest matcher executor scheduler
{{- end }}

{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.fullname" -}}
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

{{/* A component's object name: <fullname>-<component>. Call with (dict "root" $ "component" "ingest"). */}}
{{- define "herald.componentName" -}}
{{- printf "%s-%s" (include "herald.fullname" .root | trunc 52 | trimSuffix "-") .component }}
{{- end }}

{{- define "herald.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herald
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component's objects. Call with (dict "root" $ "component" "ingest"). */}}
{{- define "herald.componentLabels" -}}
{{ include "herald.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "herald.componentSelectorLabels" -}}
{{ include "herald.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "herald.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "herald.existingSecret" -}}
{{- required "existingSecret must name the Secret holding the database URL, the AMQP URL, the encryption key and the admin token" .Values.existingSecret }}
{{- end }}

{{/*
The environment every Herald container gets: where its configuration file is, and the
secrets from the existing Secret (environment variables win over the file).
*/}}
{{- define "herald.secretEnv" -}}
- name: HERALD_DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "herald.existingSecret" . }}
      key: {{ .Values.secretKeys.databaseUrl }}
- name: HERALD_AMQP__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "herald.existingSecret" . }}
      key: {{ .Values.secretKeys.amqpUrl }}
- name: HERALD_SECURITY__ENCRYPTION_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "herald.existingSecret" . }}
      key: {{ .Values.secretKeys.encryptionKey }}
- name: HERALD_SECURITY__PREVIOUS_ENCRYPTION_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "herald.existingSecret" . }}
      key: {{ .Values.secretKeys.previousEncryptionKeys }}
      optional: true
{{- end }}

{{/*
One TOML value: Helm hands numbers to templates as float64, so whole numbers are written as
integers (Herald's integer settings refuse 1.0e+06, and its one fractional setting accepts 1).
*/}}
{{- define "herald.tomlValue" -}}
{{- if kindIs "string" . -}}
{{ toJson . }}
{{- else if kindIs "bool" . -}}
{{ . }}
{{- else if kindIs "float64" . -}}
{{- if eq . (floor .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if kindIs "slice" . -}}
[{{ range $i, $item := . }}{{ if $i }}, {{ end }}{{ include "herald.tomlValue" $item }}{{ end }}]
{{- else if kindIs "map" . -}}
{{- $table := . -}}
{ {{- range $i, $key := keys $table | sortAlpha }}{{ if $i }},{{ end }} {{ $key }} = {{ include "herald.tomlValue" (index $table $key) }}{{ end }} }
{{- else -}}
{{ . }}
{{- end -}}
{{- end }}

{{/*
One component's configuration file: the shared `config`, that component's `config` over it,
and the listen addresses from the ports. Call with (dict "root" $ "component" "ingest").
*/}}
{{- define "herald.configToml" -}}
{{- $values := index .root.Values .component }}
{{- $config := mergeOverwrite (deepCopy .root.Values.config) (deepCopy $values.config) }}
{{- if eq .component "ingest" }}
{{- $_ := set $config "http" (dict "listen" (printf "0.0.0.0:%d" (int $values.httpPort))) }}
{{- end }}
{{- $_ := set $config "ops" (dict "listen" (printf "0.0.0.0:%d" (int $values.opsPort))) }}
# herald-{{ .component }}: rendered by the Helm chart from values `config` and `{{ .component }}.config`.
# Secrets come from the environment (HERALD_DATABASE__URL, HERALD_AMQP__URL, ...).
{{- range $section := keys $config | sortAlpha }}

[{{ $section }}]
{{- $keys := index $config $section }}
{{- range $key := keys $keys | sortAlpha }}
{{ $key }} = {{ include "herald.tomlValue" (index $keys $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The queues a component's KEDA trigger watches. */}}
{{- define "herald.queues" -}}
{{- if eq . "matcher" }}herald.matcher.events
{{- else if eq . "executor" }}herald.executor.first herald.executor.retry
{{- else if eq . "scheduler" }}herald.scheduler.delayed
{{- end }}
{{- end }}

{{/* Whether any component scales with KEDA ("true" or empty). */}}
{{- define "herald.anyKeda" -}}
{{- range $component := splitList " " (include "herald.components" .) }}
{{- if eq (index $.Values $component).autoscaling.type "keda" }}true{{ end }}
{{- end }}
{{- end }}
