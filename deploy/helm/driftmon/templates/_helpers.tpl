{{/*
Named templates. Everything below takes the chart's own context (`.` inside this chart,
`.Subcharts.driftmon` from a host chart), except driftmon.sidecar and
driftmon.sidecar.volumes, which take the host chart's root context.
*/}}

{{- define "driftmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftmon.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "driftmon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftmon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "driftmon.labels" -}}
helm.sh/chart: {{ include "driftmon.chart" . }}
{{ include "driftmon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: monitor
{{- end -}}

{{- define "driftmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftmon.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "driftmon.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap holding driftmon.yaml, and the one holding baselines (may be yours). */}}
{{- define "driftmon.configMapName" -}}
{{- printf "%s-config" (include "driftmon.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftmon.baselinesConfigMapName" -}}
{{- if .Values.baselines.existingConfigMap -}}
{{- .Values.baselines.existingConfigMap -}}
{{- else if .Values.baselines.files -}}
{{- printf "%s-baselines" (include "driftmon.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A hash of the configuration, as a pod annotation: a config change rolls the pods. */}}
{{- define "driftmon.configChecksum" -}}
checksum/driftmon-config: {{ list .Values.config .Values.baselines | toYaml | sha256sum }}
{{- end -}}

{{/* Secret name -> env var name and file name the daemon reads (monitor/settings.py). */}}
{{- define "driftmon.secretRefs" -}}
{{- $refs := list -}}
{{- with .Values.secrets.redisPassword.existingSecret -}}
{{- $refs = append $refs (dict "secret" . "key" $.Values.secrets.redisPassword.key "file" "redis__password") -}}
{{- end -}}
{{- with .Values.secrets.kafkaSaslPassword.existingSecret -}}
{{- $refs = append $refs (dict "secret" . "key" $.Values.secrets.kafkaSaslPassword.key "file" "kafka__sasl_password") -}}
{{- end -}}
{{- with .Values.secrets.pagerdutyRoutingKey.existingSecret -}}
{{- $refs = append $refs (dict "secret" . "key" $.Values.secrets.pagerdutyRoutingKey.key "file" "alerting__pagerduty__routing_key") -}}
{{- end -}}
{{- toJson $refs -}}
{{- end -}}

{{/* The driftmon container (a map, without the list dash). */}}
{{- define "driftmon.container" -}}
{{- $refs := include "driftmon.secretRefs" . | fromJsonArray -}}
name: driftmon
image: {{ include "driftmon.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["run", "--config", "/etc/driftmon/config/driftmon.yaml"]
env:
  - name: NUMBA_CACHE_DIR
    value: /tmp/numba-cache
  - name: DRIFTMON_SECRETS_DIR
    value: /run/secrets/driftmon
  {{- if eq .Values.secrets.mountAs "env" }}
  {{- range $refs }}
  - name: {{ printf "DRIFTMON_%s" (upper .file) }}
    valueFrom:
      secretKeyRef:
        name: {{ .secret }}
        key: {{ .key }}
  {{- end }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - name: driftmon-http
    containerPort: {{ .Values.config.http.port }}
    protocol: TCP
startupProbe:
  httpGet:
    path: /livez
    port: driftmon-http
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /livez
    port: driftmon-http
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: driftmon-http
  {{- toYaml .Values.probes.readiness | nindent 2 }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: driftmon-config
    mountPath: /etc/driftmon/config
    readOnly: true
  {{- if include "driftmon.baselinesConfigMapName" . }}
  - name: driftmon-baselines
    mountPath: /etc/driftmon/baselines
    readOnly: true
  {{- end }}
  {{- if and (eq .Values.secrets.mountAs "files") $refs }}
  - name: driftmon-secrets
    mountPath: /run/secrets/driftmon
    readOnly: true
  {{- end }}
  - name: driftmon-tmp
    mountPath: /tmp
{{- end -}}

{{/* The volumes the container mounts (a list). */}}
{{- define "driftmon.volumes" -}}
{{- $refs := include "driftmon.secretRefs" . | fromJsonArray -}}
- name: driftmon-config
  configMap:
    name: {{ include "driftmon.configMapName" . }}
{{- with include "driftmon.baselinesConfigMapName" . }}
- name: driftmon-baselines
  configMap:
    name: {{ . }}
{{- end }}
{{- if and (eq .Values.secrets.mountAs "files") $refs }}
- name: driftmon-secrets
  projected:
    # Readable by the container user even when the pod sets no fsGroup (sidecar mode).
    defaultMode: 0444
    sources:
      {{- range $refs }}
      - secret:
          name: {{ .secret }}
          items:
            - key: {{ .key }}
              path: {{ .file }}
      {{- end }}
{{- end }}
- name: driftmon-tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{/* The host chart's root context -> driftmon's own (the dependency named "driftmon"). */}}
{{- define "driftmon.hostContext" -}}
{{- if eq .Chart.Name "driftmon" -}}
{{- fail "driftmon.sidecar is meant for a host chart that depends on driftmon" -}}
{{- end -}}
{{- if not (and .Subcharts (hasKey .Subcharts "driftmon")) -}}
{{- fail "driftmon.sidecar: add driftmon to the host chart's dependencies (name: driftmon)" -}}
{{- end -}}
{{- end -}}

{{/*
For a host chart (a model server) that lists driftmon as a dependency with
`mode: sidecar`. In the host's pod spec:
  containers:
    - name: model
      ...
    {{- include "driftmon.sidecar" . | nindent 4 }}
  volumes:
    {{- include "driftmon.sidecar.volumes" . | nindent 4 }}
and `{{ include "driftmon.sidecar.annotations" . }}` in the pod annotations to roll the
pods on a configuration change.
*/}}
{{- define "driftmon.sidecar" -}}
{{- include "driftmon.hostContext" . -}}
{{- $ctx := index .Subcharts "driftmon" -}}
- {{ include "driftmon.container" $ctx | nindent 2 | trim }}
{{- end -}}

{{- define "driftmon.sidecar.volumes" -}}
{{- include "driftmon.hostContext" . -}}
{{- include "driftmon.volumes" (index .Subcharts "driftmon") }}
{{- end -}}

{{- define "driftmon.sidecar.annotations" -}}
{{- include "driftmon.hostContext" . -}}
{{- include "driftmon.configChecksum" (index .Subcharts "driftmon") }}
{{- end -}}
