{{- define "aci-connector.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /*
One setting under its two names: the chart's own (credentials.clientId, region) and
the original chart's (env.azureClientId, env.aciRegion). Either may be given; both
with different values is an error rather than a silent choice.
Argument: list structuredValue structuredName seedValue seedName.
*/ -}}
{{- define "aci-connector.setting" -}}
{{- $a := index . 0 | default "" | toString -}}
{{- $b := index . 2 | default "" | toString -}}
{{- if and $a $b (ne $a $b) -}}
{{- fail (printf "%s and %s name the same setting and are set to different values: set only one" (index . 1) (index . 3)) -}}
{{- end -}}
{{- $a | default $b -}}
{{- end -}}

{{- /* The credentials the chart puts in its Secret, resolved and checked; a dict of env name to value (empty ones left out). */ -}}
{{- define "aci-connector.inlineCredentials" -}}
{{- $c := .Values.credentials -}}
{{- $e := .Values.env -}}
{{- $all := dict
  "AZURE_CLIENT_ID" (include "aci-connector.setting" (list $c.clientId "credentials.clientId" $e.azureClientId "env.azureClientId"))
  "AZURE_CLIENT_KEY" (include "aci-connector.setting" (list $c.clientKey "credentials.clientKey" $e.azureClientKey "env.azureClientKey"))
  "AZURE_TENANT_ID" (include "aci-connector.setting" (list $c.tenantId "credentials.tenantId" $e.azureTenantId "env.azureTenantId"))
  "AZURE_SUBSCRIPTION_ID" (include "aci-connector.setting" (list $c.subscriptionId "credentials.subscriptionId" $e.azureSubscriptionId "env.azureSubscriptionId"))
  "ACI_RESOURCE_GROUP" (include "aci-connector.setting" (list $c.resourceGroup "credentials.resourceGroup" $e.aciResourceGroup "env.aciResourceGroup"))
-}}
{{- $set := dict -}}
{{- range $k, $v := $all }}{{ if $v }}{{ $_ := set $set $k $v }}{{ end }}{{ end -}}
{{- if $c.existingSecret -}}
  {{- if $set -}}
  {{- fail (printf "credentials.existingSecret is set, so the chart creates no Secret: leave out the inline values that would go in it (%s); put them in that Secret instead" (keys $set | sortAlpha | join ", ")) -}}
  {{- end -}}
{{- else -}}
  {{- if not (and $all.AZURE_SUBSCRIPTION_ID $all.ACI_RESOURCE_GROUP) -}}
  {{- fail "the connector needs a subscription and a resource group: set credentials.existingSecret (recommended), or credentials.subscriptionId and credentials.resourceGroup (the original chart's env.azureSubscriptionId and env.aciResourceGroup)" -}}
  {{- end -}}
  {{- if and $all.AZURE_CLIENT_KEY (not (and $all.AZURE_CLIENT_ID $all.AZURE_TENANT_ID)) -}}
  {{- fail "a client key (credentials.clientKey or env.azureClientKey) is only usable with the client id and tenant id: set credentials.clientId and credentials.tenantId (env.azureClientId, env.azureTenantId) too" -}}
  {{- end -}}
{{- end -}}
{{- if and .Values.workloadIdentity.enabled (or $all.AZURE_CLIENT_ID $all.AZURE_CLIENT_KEY) -}}
{{- fail "with workloadIdentity.enabled the identity is workloadIdentity.clientId: leave out the service principal's client id and key (credentials.clientId/clientKey, env.azureClientId/azureClientKey)" -}}
{{- end -}}
{{- toJson $set -}}
{{- end -}}

{{- define "aci-connector.secretName" -}}
{{- if .Values.credentials.existingSecret -}}
{{- .Values.credentials.existingSecret -}}
{{- else -}}
{{- include "aci-connector.name" . }}-credentials
{{- end -}}
{{- end -}}

{{- define "aci-connector.region" -}}
{{- include "aci-connector.setting" (list .Values.region "region" .Values.env.aciRegion "env.aciRegion") | default "westus" -}}
{{- end -}}
