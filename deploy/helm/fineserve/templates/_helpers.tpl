{{/* The image reference for a variant (cpu or cuda): repository:tag@digest (the digest pins, the tag is for
people, as kustomize writes it), or repository:tag before a release has written digests. */}}
{{- define "fineserve.image" -}}
{{- $v := index .root.Values.image .variant -}}
{{ .root.Values.image.repository }}:{{ $v.tag }}{{ if $v.digest }}@{{ $v.digest }}{{ end }}
{{- end -}}

{{/* service.health_probe's arguments for this release: TLS, the Service's name as the server name, mTLS. */}}
{{- define "fineserve.probeArgs" -}}
--target 127.0.0.1:{{ .Values.settings.FINESERVE_PORT }}
{{- if .Values.tls.enabled }} --tls --ca /etc/fineserve/tls/ca.crt --server-name "fineserve.$POD_NAMESPACE.svc"{{ end }}
{{- if and .Values.tls.enabled .Values.tls.mutual }} --cert /etc/fineserve/probe/tls.crt --key /etc/fineserve/probe/tls.key{{ end }}
{{- end -}}

{{/* The settings ConfigMap's data: the settings, plus the TLS files when TLS is on. */}}
{{- define "fineserve.settings" -}}
{{- $s := deepCopy .Values.settings -}}
{{- if .Values.tls.enabled -}}
{{- $_ := set $s "FINESERVE_TLS_CERT" "/etc/fineserve/tls/tls.crt" -}}
{{- $_ := set $s "FINESERVE_TLS_KEY" "/etc/fineserve/tls/tls.key" -}}
{{- if .Values.tls.mutual -}}
{{- $_ := set $s "FINESERVE_TLS_CLIENT_CA" "/etc/fineserve/client-ca/ca.crt" -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := $s }}
{{ $k }}: {{ $v | toString | quote }}
{{- end -}}
{{- end -}}

{{/* A Ray pod template (head or worker group): the fineserve image, its entrypoint, the shared volume. */}}
{{- define "fineserve.rayPod" -}}
metadata:
  labels:
    app.kubernetes.io/name: fineserve-ray
    app.kubernetes.io/part-of: fineserve
    app.kubernetes.io/component: {{ .component }}
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  {{- with .tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ include "fineserve.image" (dict "root" .root "variant" .variant) }}
      command: ["tini", "--", "fineserve-raynode"]
      {{- with .ports }}
      ports:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: data
          mountPath: {{ .root.Values.settings.FINESERVE_DATA_DIR }}
        - name: dshm
          mountPath: /dev/shm
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: fineserve-data
    - name: dshm
      emptyDir:
        medium: Memory
{{- end -}}
