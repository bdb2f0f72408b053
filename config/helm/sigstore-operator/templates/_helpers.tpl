{{/* The chart name, or nameOverride. */}}
{{- define "sigstore-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: fullnameOverride, else the release name
when it already contains the chart name, else `<release>-<name>`.
*/}}
{{- define "sigstore-operator.fullname" -}}
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

{{- define "sigstore-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: fixed for the life of the Deployment. The operator's own
objects carry `app.kubernetes.io/managed-by: sigstore-operator` and it
watches that label, so the chart's objects must keep Helm's value.
*/}}
{{- define "sigstore-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sigstore-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "sigstore-operator.labels" -}}
helm.sh/chart: {{ include "sigstore-operator.chart" . }}
{{ include "sigstore-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sigstore-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The operator's image. The Deployment runs it and passes it on as
OPERATOR_IMAGE to the stage Jobs, so both come from this one place.
*/}}
{{- define "sigstore-operator.image" -}}
{{- $repository := .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "sigstore-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sigstore-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The names of stacks.imagePullSecrets, comma-separated. */}}
{{- define "sigstore-operator.stackPullSecrets" -}}
{{- $names := list }}
{{- range .Values.stacks.imagePullSecrets }}
{{- $names = append $names .name }}
{{- end }}
{{- join "," $names }}
{{- end }}
