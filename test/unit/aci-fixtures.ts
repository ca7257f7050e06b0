/** Shared fixtures for the ACI provider's unit tests (a fake PodContext and pod builders). */
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { PodContext, ResolvedEnvVar } from '../../src/core/provider.js';
import { resolveVolumeFiles } from '../../src/core/volume-files.js';
import {
  aciContainerResource,
  podToContainerGroup,
  type MappedGroup,
  type MappingOptions,
} from '../../src/providers/aci/mapping/pod-to-group.js';

/** A PodContext plus what the core's volume-file resolver reads (ConfigMaps, a token). */
export interface FakeContext extends PodContext {
  events: { type: string; reason: string; message: string }[];
  getConfigMap(name: string): Promise<V1ConfigMap | undefined>;
  getServiceAccountToken?(audience: string | undefined, expirationSeconds: number): Promise<string | undefined>;
}

export function fakeContext(
  opts: {
    env?: Record<string, ResolvedEnvVar[]>;
    secrets?: Record<string, Record<string, string>>;
    secretTypes?: Record<string, string>;
    configMaps?: Record<string, { data?: Record<string, string>; binaryData?: Record<string, string> }>;
    token?: string;
  } = {},
): FakeContext {
  const events: FakeContext['events'] = [];
  const ctx: FakeContext = {
    env: new Map(Object.entries(opts.env ?? {})),
    volumeFiles: async () => new Map(),
    events,
    getSecret: async (name: string): Promise<V1Secret | undefined> => {
      const data = opts.secrets?.[name];
      if (!data) return undefined;
      const b64: Record<string, string> = {};
      for (const [k, v] of Object.entries(data)) b64[k] = Buffer.from(v).toString('base64');
      return { metadata: { name }, type: opts.secretTypes?.[name] ?? 'Opaque', data: b64 };
    },
    getConfigMap: async (name: string): Promise<V1ConfigMap | undefined> => {
      const cm = opts.configMaps?.[name];
      return cm ? { metadata: { name }, ...cm } : undefined;
    },
    recordEvent: (type, reason, message) => {
      events.push({ type, reason, message });
    },
  };
  if (opts.token !== undefined) {
    const token = opts.token;
    ctx.getServiceAccountToken = async () => token;
  }
  return ctx;
}

export function pod(
  spec: Partial<NonNullable<V1Pod['spec']>> = {},
  meta: Partial<NonNullable<V1Pod['metadata']>> = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'default', uid: '1111-2222', ...meta },
    spec: { containers: [{ name: 'app', image: 'nginx' }], ...spec },
  };
}

export const mappingOptions: MappingOptions = {
  clusterId: 'cluster-a',
  nodeName: 'aci-connector',
  region: 'westus',
  defaults: { cpu: 1, memoryInGB: 1.5 },
  maximums: { cpu: 4, memoryInGB: 16 },
};

/**
 * What the connector does with a pod: the core resolves its volume files (with the ACI provider's
 * resource lookup, as Provider.containerResource hands it), then the ACI mapping maps the pod.
 */
export async function mapPod(p: V1Pod, ctx: FakeContext, o: MappingOptions = mappingOptions): Promise<MappedGroup> {
  const volumeFiles = await resolveVolumeFiles(p, {
    getSecret: (name) => ctx.getSecret(name),
    getConfigMap: (name) => ctx.getConfigMap(name),
    ...(ctx.getServiceAccountToken ? { getServiceAccountToken: ctx.getServiceAccountToken.bind(ctx) } : {}),
    resources: (container, resource) => aciContainerResource(p, o, container, resource),
  });
  return podToContainerGroup(p, { ...ctx, volumeFiles: async () => volumeFiles }, o);
}
