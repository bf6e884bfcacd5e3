{{- define "gitlab-iap.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gitlab-iap.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gitlab-iap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gitlab-iap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gitlab-iap.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gitlab-iap.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "gitlab-iap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "gitlab-iap.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* The proxy's listener: ports.http, else 8080 (standalone) or 8090 (sidecar: 8080 is Puma's port in GitLab's webservice pod). */}}
{{- define "gitlab-iap.httpPort" -}}
{{- if .Values.ports.http -}}{{ int .Values.ports.http }}{{- else if eq .Values.mode "sidecar" -}}8090{{- else -}}8080{{- end -}}
{{- end -}}

{{/* "true" when the main listener serves HTTPS (config.server.tls), else empty. */}}
{{- define "gitlab-iap.tls" -}}
{{- if dig "server" "tls" "" .Values.config -}}true{{- end -}}
{{- end -}}

{{/* The Service port's name (and what the Ingress backend names): https when the proxy serves TLS. */}}
{{- define "gitlab-iap.servicePortName" -}}
{{- if include "gitlab-iap.tls" . -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/* Seconds a pod needs to stop cleanly: the preStop sleep, the drain (config.server.shutdownGraceSeconds,
25 when unset, as in the config schema), and 5 for what follows it (websockets closed, the last access-log
records written: up to about 5 s). */}}
{{- define "gitlab-iap.stopSeconds" -}}
{{- add (int .Values.preStopSleepSeconds) (int (dig "server" "shutdownGraceSeconds" 25 .Values.config)) 5 -}}
{{- end -}}

{{/* Directory of a file access log, where the log volume is mounted; empty for stdout. */}}
{{- define "gitlab-iap.logDir" -}}
{{- $output := dig "accessLog" "output" "stdout" .Values.config -}}
{{- if ne $output "stdout" }}{{ dir $output }}{{ end -}}
{{- end -}}

{{/* Checks that cannot be expressed in values.schema.json. */}}
{{- define "gitlab-iap.validate" -}}
{{- $_ := required "secrets.existingSecret is required: create a Secret with the client secret, session secret and admin token, and name it here (secrets are never inlined)" .Values.secrets.existingSecret -}}
{{- $_ := required "config.entra.tenantId is required (the Entra tenant GUID)" .Values.config.entra.tenantId -}}
{{- $_ := required "config.entra.clientId is required (the app registration's client id)" .Values.config.entra.clientId -}}
{{- $store := default "memory" (dig "session" "store" "memory" .Values.config) -}}
{{- $many := or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled -}}
{{- if and (eq .Values.mode "standalone") $many (ne $store "redis") -}}
{{- fail "more than one replica (replicaCount > 1 or autoscaling) needs config.session.store: redis — with memory sessions a user signed in on one pod is unknown to the others" -}}
{{- end -}}
{{- if and (eq $store "redis") (not (dig "session" "redis" "url" "" .Values.config)) -}}
{{- fail "config.session.store: redis needs config.session.redis.url (your own Redis, or a subchart you choose)" -}}
{{- end -}}
{{- if eq (include "gitlab-iap.httpPort" .) (toString (int .Values.ports.admin)) -}}
{{- fail (printf "ports.http and ports.admin are both %d: the proxy's listener and its admin listener need two ports" (int .Values.ports.admin)) -}}
{{- end -}}
{{- if eq .Values.mode "standalone" -}}
{{- $stop := int (include "gitlab-iap.stopSeconds" .) -}}
{{- if lt (int .Values.terminationGracePeriodSeconds) $stop -}}
{{- fail (printf "terminationGracePeriodSeconds %d is too short: the pod needs preStopSleepSeconds (%d) + config.server.shutdownGraceSeconds (%d) + 5 s to stop, %d in all; Kubernetes kills it at the end of the grace period, cutting requests still draining" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds) (int (dig "server" "shutdownGraceSeconds" 25 .Values.config)) $stop) -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.enabled (not (hasKey .Values.podDisruptionBudget "minAvailable")) (not (hasKey .Values.podDisruptionBudget "maxUnavailable")) -}}
{{- fail "podDisruptionBudget.enabled: set podDisruptionBudget.minAvailable or podDisruptionBudget.maxUnavailable" -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.mode "sidecar" -}}
{{- range $name, $port := dict "ports.http" (include "gitlab-iap.httpPort" .) "ports.admin" (toString .Values.ports.admin) -}}
{{- if has $port (list "8080" "8181" "8083" "9229") -}}
{{- fail (printf "sidecar mode: %s %s is taken in GitLab's webservice pod (Puma 8080, Workhorse 8181, metrics 8083 and 9229); choose another port" $name $port) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $logDir := include "gitlab-iap.logDir" . -}}
{{- if or (has $logDir (list "/" "/tmp" "/etc/gitlab-iap")) (hasPrefix "/etc/gitlab-iap/" $logDir) -}}
{{- fail (printf "config.accessLog.output: put the file in a directory of its own, e.g. /var/log/gitlab-iap/access.log (the chart mounts the log volume at %s)" $logDir) -}}
{{- end -}}
{{- end -}}

{{/* Environment variables carrying secrets: name → Secret key. */}}
{{- define "gitlab-iap.secretEnv" -}}
{{- $keys := .Values.secrets.keys -}}
{{- $map := dict "ENTRA_CLIENT_SECRET" $keys.entraClientSecret "IAP_SESSION_SECRET" $keys.sessionSecret "IAP_ADMIN_TOKEN" $keys.adminToken "IAP_LOG_KEY" $keys.logIntegrityKey "REDIS_PASSWORD" $keys.redisPassword "GITLAB_API_TOKEN" $keys.gitlabApiToken -}}
{{- range $name := keys $map | sortAlpha }}
{{- $key := get $map $name }}
{{- if $key }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* config.yaml: values.config plus what the chart owns (listeners, upstream, secret references). */}}
{{- define "gitlab-iap.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- $keys := .Values.secrets.keys -}}
{{- $server := default dict $c.server -}}
{{- $_ := set $server "listen" (printf "0.0.0.0:%s" (include "gitlab-iap.httpPort" .)) -}}
{{- $_ := set $c "server" $server -}}
{{- $admin := default dict $c.admin -}}
{{- $_ := set $admin "listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) -}}
{{- if $keys.adminToken }}{{ $_ := set $admin "token" "${IAP_ADMIN_TOKEN}" }}{{ end -}}
{{- $_ := set $c "admin" $admin -}}
{{- $upstream := default dict $c.upstream -}}
{{- $_ := set $upstream "url" (ternary .Values.gitlab.sidecarUrl .Values.gitlab.url (eq .Values.mode "sidecar")) -}}
{{- if $keys.gitlabApiToken }}{{ $_ := set $upstream "apiToken" "${GITLAB_API_TOKEN}" }}{{ end -}}
{{- $_ := set $c "upstream" $upstream -}}
{{- if $keys.entraClientSecret }}{{ $_ := set $c.entra "clientSecret" "${ENTRA_CLIENT_SECRET}" }}{{ end -}}
{{- $session := default dict $c.session -}}
{{- if $keys.sessionSecret }}{{ $_ := set $session "secret" "${IAP_SESSION_SECRET}" }}{{ end -}}
{{- if and $keys.redisPassword $session.redis }}{{ $_ := set $session.redis "password" "${REDIS_PASSWORD}" }}{{ end -}}
{{- $_ := set $c "session" $session -}}
{{- $log := default dict $c.accessLog -}}
{{- if $keys.logIntegrityKey }}{{ $_ := set $log "integrity" (dict "key" "${IAP_LOG_KEY}") }}{{ end -}}
{{- $_ := set $c "accessLog" $log -}}
{{- toYaml $c -}}
{{- end -}}

{{/* The proxy container, shared by the Deployment (standalone) and the sidecar snippet. */}}
{{- define "gitlab-iap.container" -}}
name: gitlab-iap
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "/etc/gitlab-iap/config.yaml"]
ports:
  - { name: iap-http, containerPort: {{ include "gitlab-iap.httpPort" . }}, protocol: TCP }
  - { name: iap-admin, containerPort: {{ .Values.ports.admin }}, protocol: TCP }
env:
{{- include "gitlab-iap.secretEnv" . | nindent 2 }}
{{- if and (include "gitlab-iap.logDir" .) .Values.logVolume.existingClaim }}
  - name: POD_NAME
    valueFrom: { fieldRef: { fieldPath: metadata.name } }
{{- end }}
  # Always set: an empty value overrides the image's own NODE_OPTIONS (Node's own sizing).
  - { name: NODE_OPTIONS, value: {{ .Values.nodeOptions | default "" | quote }} }
{{- with .Values.extraEnv }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- if .Values.preStopSleepSeconds }}
# Kubernetes removes the pod from its endpoints while SIGTERM is already on its way: keep serving
# new connections for a moment, then drain (server.shutdownGraceSeconds).
lifecycle:
  preStop:
    exec: { command: ["sleep", {{ .Values.preStopSleepSeconds | quote }}] }
{{- end }}
livenessProbe:
  httpGet: { path: /healthz, port: iap-admin }
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: iap-admin }
  periodSeconds: 5
  failureThreshold: 2
# Startup waits for the process (its admin listener), not for readiness: an Entra, JWKS or Redis outage
# keeps a new pod unready (out of the endpoints) instead of restarting it over and over.
startupProbe:
  httpGet: { path: /healthz, port: iap-admin }
  periodSeconds: 2
  failureThreshold: 60
resources:
{{ toYaml .Values.resources | indent 2 }}
securityContext:
{{ toYaml .Values.securityContext | indent 2 }}
volumeMounts:
  - { name: gitlab-iap-config, mountPath: /etc/gitlab-iap, readOnly: true }
  - { name: gitlab-iap-tmp, mountPath: /tmp }
{{- with .Values.extraVolumeMounts }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- with include "gitlab-iap.logDir" . }}
  - name: gitlab-iap-logs
    mountPath: {{ . }}
    {{- if $.Values.logVolume.existingClaim }}
    subPathExpr: $(POD_NAME)   # one directory per pod on the shared claim: never two writers on one file
    {{- end }}
{{- end }}
{{- end -}}

{{- define "gitlab-iap.volumes" -}}
- name: gitlab-iap-config
  configMap: { name: {{ include "gitlab-iap.fullname" . }} }
- name: gitlab-iap-tmp
  emptyDir: {}
{{- if include "gitlab-iap.logDir" . }}
- name: gitlab-iap-logs
  {{- if .Values.logVolume.existingClaim }}
  persistentVolumeClaim: { claimName: {{ .Values.logVolume.existingClaim }} }
  {{- else if .Values.logVolume.sizeLimit }}
  emptyDir: { sizeLimit: {{ .Values.logVolume.sizeLimit }} }
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}
