{{- define "k3scert.labels" -}}
app.kubernetes.io/name: k3scert
app.kubernetes.io/part-of: k3scert
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "k3scert.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "k3scert.program" -}}
{{- if not (has .Values.program (list "k3s" "rke2")) -}}
{{- fail "program must be k3s or rke2" -}}
{{- end -}}
{{- .Values.program -}}
{{- end -}}
