{{/*
The chart's name.
*/}}
{{- define "wukong.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of the operator's objects: wukong-operator for a release named
wukong, <release>-wukong-operator otherwise, or fullnameOverride.
*/}}
{{- define "wukong.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s-operator" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "wukong.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator's pods.
*/}}
{{- define "wukong.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wukong.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "wukong.labels" -}}
helm.sh/chart: {{ include "wukong.chart" . }}
{{ include "wukong.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wukong
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "wukong.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wukong.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}
