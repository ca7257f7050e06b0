/**
 * Store record + runtime view → the ARM JSON the service returns. Secrets never leave:
 * secureValue, storage account keys, registry passwords, secret volume contents,
 * extension protectedSettings and diagnostics (which carry a workspace key) are dropped,
 * as the real service does.
 */
import type { RuntimeContainerState, RuntimeContainerView, RuntimeEvent, RuntimeGroupView } from './runtime.js';
import type { ContainerInput, InitContainerInput } from './schema.js';
import type { GroupRecord } from './store.js';

export const GROUP_TYPE = 'Microsoft.ContainerInstance/containerGroups';

type Json = Record<string, unknown>;

const iso = (d: Date | undefined): string | undefined => (d ? d.toISOString() : undefined);

function state(s: RuntimeContainerState): Json {
  const out: Json = { state: s.state };
  if (s.startTime) out.startTime = iso(s.startTime);
  if (s.exitCode !== undefined) out.exitCode = s.exitCode;
  if (s.finishTime) out.finishTime = iso(s.finishTime);
  out.detailStatus = s.detailStatus ?? '';
  return out;
}

const events = (list: RuntimeEvent[]): Json[] =>
  list.map((e) => ({
    count: e.count,
    firstTimestamp: iso(e.firstTimestamp),
    lastTimestamp: iso(e.lastTimestamp),
    name: e.name,
    message: e.message,
    type: e.type,
  }));

function containerView(v: RuntimeContainerView | undefined): Json | undefined {
  if (!v) return undefined;
  const out: Json = { restartCount: v.restartCount, currentState: state(v.currentState) };
  if (v.previousState) out.previousState = state(v.previousState);
  out.events = events(v.events);
  return out;
}

const publicEnv = (env: { name: string; value?: string; secureValue?: string }[] | undefined): Json[] | undefined =>
  env?.map((e) => (e.secureValue !== undefined ? { name: e.name } : { name: e.name, value: e.value ?? '' }));

function renderContainer(c: ContainerInput, view: RuntimeContainerView | undefined, withView: boolean): Json {
  const { environmentVariables, ...rest } = c.properties;
  const props: Json = {
    ...rest,
    command: rest.command ?? [],
    environmentVariables: publicEnv(environmentVariables) ?? [],
  };
  if (withView) {
    const iv = containerView(view);
    if (iv) props.instanceView = iv;
  }
  return { name: c.name, properties: props };
}

function renderInit(c: InitContainerInput, view: RuntimeContainerView | undefined, withView: boolean): Json {
  const { environmentVariables, ...rest } = c.properties;
  const props: Json = { ...rest, environmentVariables: publicEnv(environmentVariables) ?? [] };
  if (withView) {
    const iv = containerView(view);
    if (iv) props.instanceView = iv;
  }
  return { name: c.name, properties: props };
}

/** `withView` false for list results, which carry no instanceView. */
export function renderGroup(record: GroupRecord, view: RuntimeGroupView | undefined, withView: boolean): Json {
  const input = record.input;
  const p = input.properties;
  const props: Json = {
    provisioningState: record.provisioningState,
    containers: p.containers.map((c) => renderContainer(c, view?.containers[c.name], withView)),
    initContainers: (p.initContainers ?? []).map((c) => renderInit(c, view?.initContainers[c.name], withView)),
    imageRegistryCredentials: (p.imageRegistryCredentials ?? []).map(({ password: _password, ...rest }) => rest),
    restartPolicy: p.restartPolicy ?? 'Always',
    osType: p.osType,
    sku: p.sku ?? 'Standard',
  };
  if (p.ipAddress) {
    const ip: Json = { ...p.ipAddress };
    if (view?.ip) ip.ip = view.ip;
    if (p.ipAddress.dnsNameLabel) ip.fqdn = `${p.ipAddress.dnsNameLabel}.${record.location}.azurecontainer.io`;
    props.ipAddress = ip;
  }
  if (p.volumes) {
    props.volumes = p.volumes.map((v) => {
      const out: Json = { name: v.name };
      if (v.azureFile) {
        const { storageAccountKey: _key, ...file } = v.azureFile;
        out.azureFile = file;
      }
      if (v.emptyDir) out.emptyDir = {};
      if (v.secret) out.secret = {};
      if (v.gitRepo) out.gitRepo = v.gitRepo;
      return out;
    });
  }
  if (p.subnetIds) props.subnetIds = p.subnetIds;
  if (p.dnsConfig) props.dnsConfig = p.dnsConfig;
  if (p.encryptionProperties) props.encryptionProperties = p.encryptionProperties;
  if (p.extensions) {
    props.extensions = p.extensions.map((e) => {
      if (!e.properties) return { name: e.name };
      const { protectedSettings: _secret, ...rest } = e.properties;
      return { name: e.name, properties: rest };
    });
  }
  if (p.confidentialComputeProperties) props.confidentialComputeProperties = p.confidentialComputeProperties;
  if (p.priority) props.priority = p.priority;
  if (withView) {
    props.instanceView = {
      events: events(view?.events ?? []),
      state: view?.state ?? (record.provisioningState === 'Failed' ? 'Failed' : 'Pending'),
    };
  }
  const out: Json = { id: record.id, name: record.name, type: GROUP_TYPE, location: record.location };
  if (input.tags) out.tags = input.tags;
  if (input.zones) out.zones = input.zones;
  if (input.identity) {
    const identity: Json = { ...input.identity };
    if (input.identity.type?.includes('SystemAssigned')) {
      identity.principalId = syntheticGuid(record.key, 'principal');
      identity.tenantId = syntheticGuid(record.subscriptionId, 'tenant');
    }
    if (input.identity.userAssignedIdentities) {
      identity.userAssignedIdentities = Object.fromEntries(
        Object.keys(input.identity.userAssignedIdentities).map((k) => [
          k,
          { principalId: syntheticGuid(k, 'principal'), clientId: syntheticGuid(k, 'client') },
        ]),
      );
    }
    out.identity = identity;
  }
  out.properties = props;
  return out;
}

/** A stable GUID-shaped id derived from a name, for identities the emulator does not really create. */
function syntheticGuid(seed: string, salt: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  const text = `${salt}:${seed}`;
  for (let i = 0; i < text.length; i++) {
    h1 = Math.imul(h1 ^ text.charCodeAt(i), 16777619) >>> 0;
    h2 = Math.imul(h2 ^ text.charCodeAt(i), 2246822519) >>> 0;
  }
  const hex = (h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0')).repeat(2);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
