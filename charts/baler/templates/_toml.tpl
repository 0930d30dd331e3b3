{{/*
A map written as a TOML document. Helm's own toToml writes every number as a float, because
values arrive as JSON numbers: `workers = 2.0`, which baler (like any serde integer) refuses.
This writer puts whole numbers as integers. Keys whose value is null are left out (TOML has
no null), so `--set config.KEY=null` removes a key. Scalars and arrays of scalars come first
in each table, then sub-tables ([a.b]) and arrays of tables ([[projects]]), as TOML needs.
*/}}
{{- define "baler.toml.document" -}}
{{- include "baler.toml.table" (dict "table" . "prefix" "") -}}
{{- end -}}

{{- define "baler.toml.table" -}}
{{- $prefix := .prefix -}}
{{- range $key, $value := .table }}
{{- if not (or (kindIs "invalid" $value) (kindIs "map" $value) (include "baler.toml.isTableArray" $value)) }}
{{ include "baler.toml.key" $key }} = {{ include "baler.toml.value" $value }}
{{- end }}
{{- end }}
{{- range $key, $value := .table }}
{{- $path := include "baler.toml.key" $key }}
{{- if $prefix }}{{ $path = printf "%s.%s" $prefix $path }}{{ end }}
{{- if kindIs "map" $value }}

[{{ $path }}]
{{- include "baler.toml.table" (dict "table" $value "prefix" $path) }}
{{- else if include "baler.toml.isTableArray" $value }}
{{- range $value }}

[[{{ $path }}]]
{{- include "baler.toml.table" (dict "table" . "prefix" $path) }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* "true" for a non-empty list of maps: written as [[name]] tables, not inline. */}}
{{- define "baler.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) -}}
{{- $all := true -}}
{{- range . }}{{ if not (kindIs "map" .) }}{{ $all = false }}{{ end }}{{ end -}}
{{- if $all }}true{{ end -}}
{{- end -}}
{{- end -}}

{{- define "baler.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end -}}
{{- end -}}

{{/* A JSON string is a valid TOML basic string (same escapes, \uXXXX included). */}}
{{- define "baler.toml.value" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- . -}}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 .) (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "int32" .) (kindIs "uint64" .) -}}
{{- . -}}
{{- else if kindIs "slice" . -}}
[{{ range $i, $item := . }}{{ if $i }}, {{ end }}{{ include "baler.toml.value" $item }}{{ end }}]
{{- else if kindIs "map" . -}}
{{- $map := . -}}
{ {{- range $i, $key := keys . | sortAlpha }}{{ if $i }},{{ end }} {{ include "baler.toml.key" $key }} = {{ include "baler.toml.value" (index $map $key) }}{{ end }} }
{{- else -}}
{{- fail (printf "config: %v (%s) cannot be written as TOML" . (kindOf .)) -}}
{{- end -}}
{{- end -}}
