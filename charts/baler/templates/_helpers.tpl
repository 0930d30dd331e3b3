{{/*
Names. The full name is cut to 45 characters: the worker StatefulSet adds "-worker" and
Kubernetes adds "-" and a 10-character revision hash to a label value of at most 63.
*/}}
{{- define "baler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "baler.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "baler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "baler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "baler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "baler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "baler.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
Fixed places: the ports and paths here are what baler.toml says (listen, metrics_listen,
data_dir), so probes, Services and mounts cannot drift from the config.
*/}}
{{- define "baler.httpPort" -}}8080{{- end -}}
{{- define "baler.metricsPort" -}}9464{{- end -}}
{{- define "baler.dataDir" -}}/var/lib/baler{{- end -}}
{{- define "baler.configDir" -}}/etc/baler{{- end -}}
{{- define "baler.configFile" -}}/etc/baler/baler.toml{{- end -}}
{{- define "baler.signingDir" -}}/etc/baler-signing{{- end -}}
{{- define "baler.signingPasswordVar" -}}BALER_SIGNING_PASSWORD{{- end -}}

{{/*
baler.toml: `config` with the chart's own settings over it (the schema refuses those keys in
`config`, so nothing is silently overridden).
*/}}
{{- define "baler.configToml" -}}
{{- $v := .Values -}}
{{- $storage := dict "kind" $v.storage.kind -}}
{{- if eq $v.storage.kind "s3" -}}
{{- $s3 := $v.storage.s3 -}}
{{- $_ := set $storage "bucket" $s3.bucket -}}
{{- range $key, $value := dict "endpoint" $s3.endpoint "region" $s3.region "prefix" $s3.prefix "downloads" $s3.downloads -}}
{{- if $value }}{{ $_ := set $storage $key $value }}{{ end -}}
{{- end -}}
{{- if $s3.presignSeconds }}{{ $_ := set $storage "presign_seconds" $s3.presignSeconds }}{{ end -}}
{{- end -}}
{{- $chart := dict
      "listen" (printf "0.0.0.0:%s" (include "baler.httpPort" .))
      "metrics_listen" (printf "0.0.0.0:%s" (include "baler.metricsPort" .))
      "data_dir" (include "baler.dataDir" .)
      "storage" $storage -}}
{{- if $v.signing.existingSecret -}}
{{- $signing := dict "minisign_key_file" (printf "%s/baler.key" (include "baler.signingDir" .)) -}}
{{- if $v.signing.passwordKey }}{{ $_ := set $signing "password_env" (include "baler.signingPasswordVar" .) }}{{ end -}}
{{- $_ := set $chart "signing" $signing -}}
{{- end -}}
{{- $config := mergeOverwrite (deepCopy $v.config) $chart -}}
{{- if and $v.web.ingress.enabled $v.web.ingress.host (not (hasKey $v.config "public_url")) -}}
{{- $_ := set $config "public_url" (printf "%s://%s" (ternary "https" "http" (gt (len $v.web.ingress.tls) 0)) $v.web.ingress.host) -}}
{{- end -}}
{{- include "baler.toml.document" $config | trim -}}
{{- end -}}

{{/*
What the chart's own Secret holds, as JSON: only values given inline (an existingSecret is
used in place). `admin` and `s3` say whether the admin token and the S3 keys belong: the
migration hook's copy leaves them out, as `baler migrate` uses neither (baler reads S3 keys
when it opens the bucket, not when it checks the config).
*/}}
{{- define "baler.secretData" -}}
{{- $v := .root.Values -}}
{{- $data := dict -}}
{{- if and $v.database.url (not $v.database.existingSecret) -}}
{{- $_ := set $data $v.database.key $v.database.url -}}
{{- end -}}
{{- if and .admin $v.adminToken.value (not $v.adminToken.existingSecret) -}}
{{- $_ := set $data $v.adminToken.key $v.adminToken.value -}}
{{- end -}}
{{- $s3 := $v.storage.s3 -}}
{{- if and .s3 (eq $v.storage.kind "s3") $s3.accessKeyId (not $s3.existingSecret) -}}
{{- $_ := set $data $s3.accessKeyIdKey $s3.accessKeyId -}}
{{- $_ := set $data $s3.secretAccessKeyKey $s3.secretAccessKey -}}
{{- end -}}
{{- range $name, $value := $v.webhookSecrets.values -}}
{{- $_ := set $data $name $value -}}
{{- end -}}
{{- toJson $data -}}
{{- end -}}

{{/*
The environment of every baler container. `secret` is the chart-made Secret to read inline
values from (the main one, or the migration hook's copy); `admin` adds BALER_ADMIN_TOKEN
(web only) and `s3` the S3 keys (not for migrate). The conditions match baler.secretData's,
so a key is read from the chart's Secret exactly when the chart wrote it there.
*/}}
{{- define "baler.env" -}}
{{- $v := .root.Values -}}
{{- $secret := .secret -}}
- name: BALER_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.database.existingSecret | default $secret }}
      key: {{ $v.database.key }}
{{- if and .admin (or $v.adminToken.existingSecret $v.adminToken.value) }}
- name: BALER_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $v.adminToken.existingSecret | default $secret }}
      key: {{ $v.adminToken.key }}
{{- end }}
{{- $s3 := $v.storage.s3 }}
{{- if and .s3 (eq $v.storage.kind "s3") (or $s3.existingSecret $s3.accessKeyId) }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret | default $secret }}
      key: {{ $s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret | default $secret }}
      key: {{ $s3.secretAccessKeyKey }}
{{- end }}
{{- if and $v.signing.existingSecret $v.signing.passwordKey }}
- name: {{ include "baler.signingPasswordVar" .root }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.signing.existingSecret }}
      key: {{ $v.signing.passwordKey }}
{{- end }}
{{- range $name, $_ := $v.webhookSecrets.values }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $name }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "baler.envFrom" -}}
{{- with .Values.webhookSecrets.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- with .Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Every container runs as the image's user 10001 on a read-only root; what baler writes goes to
/var/lib/baler (data_dir) and /tmp, both volumes.
*/}}
{{- define "baler.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "baler.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
/var/lib/baler: with local storage, the shared claim (web serves what workers write); with
S3, a scratch emptyDir (nothing there outlives the pod).
*/}}
{{- define "baler.dataVolume" -}}
- name: data
{{- if eq .Values.storage.kind "local" }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (printf "%s-data" (include "baler.fullname" .)) }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}


{{/*
The signing key (signing.existingSecret), for the pods that sign: workers only (web pods serve
the public key the workers record, and never hold the secret one). Readable by the pods' group
(fsGroup) only.
*/}}
{{- define "baler.signingVolume" -}}
{{- with .Values.signing.existingSecret }}
- name: signing-key
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.signing.keyKey }}
        path: baler.key
{{- end }}
{{- end -}}

{{- define "baler.signingMount" -}}
{{- if .Values.signing.existingSecret }}
- name: signing-key
  mountPath: {{ include "baler.signingDir" . }}
  readOnly: true
{{- end }}
{{- end -}}
