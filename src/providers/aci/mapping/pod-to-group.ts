/**
 * A pod → the container group that runs it. Pure apart from reading pull and azureFile
 * Secrets through the PodContext the core hands in; volume files come resolved in it.
 */
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import type {
  Container,
  ContainerGroup,
  ContainerProbe,
  DnsConfiguration,
  EnvironmentVariable,
  ImageRegistryCredential,
  InitContainerDefinition,
  IpAddress,
  Volume,
} from '@azure/arm-containerinstance';
import {
  connectorRunsProbe,
  isSidecar,
  PodRejectedError,
  TransientProviderError,
  type PodContext,
  type ResolvedEnvVar,
} from '../../../core/provider.js';
import { readPodAnnotations, ANNOTATION, type PodAnnotations } from './annotations.js';
import { containerGroupName, groupTags } from '../naming.js';
import { registryCredentialsFromSecret } from './pull-secrets.js';
import type { ImageConfigSource } from '../image-config.js';
import { resolveImageEntrypoints } from '../image-config-pod.js';
import {
  clampMessage,
  mapContainerResources,
  type AciContainerResources,
  type LimitClamp,
  type ResourceDefaults,
  type ResourceMaximums,
} from './resources.js';
import { droppedFieldsMessage, mapSecurityContext } from './security-context.js';
import { validatePodForAci } from './validate.js';
import { mapVolumeParts } from './volumes.js';
import { parseQuantity } from '../../../common/quantity.js';

export interface MappingOptions {
  clusterId: string;
  nodeName: string;
  region: string;
  defaults: ResourceDefaults;
  maximums: ResourceMaximums;
  /** Subnets used for `ip-address-type: Private` when the pod names none. */
  defaultSubnetIds?: string[];
  /** Reads an image's ENTRYPOINT from its registry, for containers with args but no command. */
  imageConfigs?: ImageConfigSource;
}

/** Something the mapping changed or left out that the user should see: an Event once the group is created. */
export interface MappingNote {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface MappedGroup {
  name: string;
  group: ContainerGroup;
  /** Set when the group gets no IP address although the pod did not ask for none: why, for an Event. */
  noIpReason?: string;
  /** Limits lowered, hardening fields dropped: one Event each. */
  notes?: MappingNote[];
}

/** ACI's hard limit: "Number of volumes per container group: 20" (Azure Container Instances quotas and limits). */
export const ACI_MAX_VOLUMES = 20;

/** Per pod volume name, the ACI volumes it became and the subdirectory each is mounted at. */
type VolumeLayout = Map<string, { name: string; subdir: string }[]>;

/**
 * Expands $(VAR) references the way the kubelet does: known names are replaced,
 * `$$` escapes a dollar, unknown references stay as written.
 */
export function expandVars(
  s: string,
  env: ReadonlyMap<string, ResolvedEnvVar>,
  onSensitive: (name: string) => void,
): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    const v = name !== undefined ? env.get(name) : undefined;
    if (!v) return m;
    if (v.sensitive) onSensitive(v.name);
    return v.value;
  });
}

function resolvedEnv(c: V1Container, ctx: PodContext, path: string): readonly ResolvedEnvVar[] {
  const fromCore = ctx.env.get(c.name);
  if (fromCore) return fromCore;
  // The core resolves every valueFrom; without its list only literal values are known.
  const unresolved = (c.env ?? []).findIndex((e) => e.valueFrom !== undefined);
  if (unresolved >= 0 || (c.envFrom?.length ?? 0) > 0) {
    throw new TransientProviderError('EnvNotResolved', `${path}.env: values from other objects are not resolved yet`);
  }
  return (c.env ?? []).map((e) => ({ name: e.name, value: e.value ?? '', sensitive: false }));
}

function mapEnv(env: readonly ResolvedEnvVar[]): EnvironmentVariable[] {
  // Later entries win, as in a kubelet; ACI rejects duplicate names.
  const byName = new Map<string, ResolvedEnvVar>();
  for (const e of env) {
    byName.delete(e.name);
    byName.set(e.name, e);
  }
  return [...byName.values()].map((e) =>
    e.sensitive ? { name: e.name, secureValue: e.value } : { name: e.name, value: e.value },
  );
}

function mapCommand(
  c: V1Container,
  path: string,
  env: readonly ResolvedEnvVar[],
  ann: PodAnnotations,
): string[] | undefined {
  const envMap = new Map(env.map((e) => [e.name, e]));
  const expand = (arr: readonly string[], field: string): string[] =>
    arr.map((s, i) =>
      expandVars(s, envMap, (name) => {
        throw new PodRejectedError(
          'SecretInCommand',
          `${path}.${field}[${i}] references $(${name}), whose value comes from a Secret; ACI stores the command in plain text, so read the variable at run time instead (e.g. sh -c '... $${name}')`,
          `${path}.${field}[${i}]`,
        );
      }),
    );
  const command = c.command?.length ? expand(c.command, 'command') : undefined;
  const args = c.args?.length ? expand(c.args, 'args') : undefined;
  if (command) return args ? [...command, ...args] : command;
  if (!args) return undefined;
  const entrypoint = ann.imageEntrypoints[c.name];
  if (entrypoint) return [...entrypoint, ...args];
  throw new PodRejectedError(
    'ArgsWithoutCommand',
    `${path}.args is set without command: Azure Container Instances can only replace the whole command line, and image lookups are off here, so the image's ENTRYPOINT is not known. Set command too, or give the entrypoint in the ${ANNOTATION.imageEntrypoints} annotation`,
    `${path}.args`,
  );
}

function resolvePort(c: V1Container, port: number | string, field: string): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = c.ports?.find((p) => p.name === port);
  if (!named) throw new PodRejectedError('InvalidProbe', `${field}: container has no port named '${port}'`, field);
  return named.containerPort;
}

function mapProbe(c: V1Container, p: V1Probe | undefined, field: string): ContainerProbe | undefined {
  if (!p) return undefined;
  const timing = {
    ...(p.initialDelaySeconds !== undefined ? { initialDelaySeconds: p.initialDelaySeconds } : {}),
    ...(p.periodSeconds !== undefined ? { periodSeconds: p.periodSeconds } : {}),
    ...(p.failureThreshold !== undefined ? { failureThreshold: p.failureThreshold } : {}),
    ...(p.successThreshold !== undefined ? { successThreshold: p.successThreshold } : {}),
    ...(p.timeoutSeconds !== undefined ? { timeoutSeconds: p.timeoutSeconds } : {}),
  };
  if (p.exec) return { exec: { command: p.exec.command ?? [] }, ...timing };
  if (p.httpGet) {
    const h = p.httpGet;
    return {
      httpGet: {
        port: resolvePort(c, h.port, `${field}.httpGet.port`),
        ...(h.path ? { path: h.path } : {}),
        scheme: (h.scheme ?? 'HTTP').toLowerCase(),
        ...(h.httpHeaders?.length ? { httpHeaders: h.httpHeaders.map((x) => ({ name: x.name, value: x.value })) } : {}),
      },
      ...timing,
    };
  }
  throw new PodRejectedError('InvalidProbe', `${field}: needs exec or httpGet`, field);
}

function mapMounts(
  c: V1Container,
  layout: VolumeLayout,
): { name: string; mountPath: string; readOnly: boolean }[] | undefined {
  if (!c.volumeMounts?.length) return undefined;
  return c.volumeMounts.flatMap((m) => {
    const parts = layout.get(m.name);
    if (!parts)
      throw new PodRejectedError(
        'InvalidPod',
        `container ${c.name} mounts unknown volume '${m.name}'`,
        'spec.containers[*].volumeMounts',
      );
    const base = m.mountPath.replace(/\/+$/, '') || '/';
    return parts.map((p) => ({
      name: p.name,
      mountPath: p.subdir ? `${base === '/' ? '' : base}/${p.subdir}` : m.mountPath,
      readOnly: m.readOnly ?? false,
    }));
  });
}

function mapContainer(
  pod: V1Pod,
  c: V1Container,
  path: string,
  ctx: PodContext,
  ann: PodAnnotations,
  res: AciContainerResources,
  layout: VolumeLayout,
  dropped: string[],
): Container {
  if (!c.image) throw new PodRejectedError('InvalidPod', `${path}.image is empty`, `${path}.image`);
  const env = resolvedEnv(c, ctx, path);
  const command = mapCommand(c, path, env, ann);
  const out: Container = {
    name: c.name,
    image: c.image,
    resources: res,
  };
  if (command) out.command = command;
  const envVars = mapEnv(env);
  if (envVars.length) out.environmentVariables = envVars;
  if (c.ports?.length) out.ports = c.ports.map((p) => ({ port: p.containerPort, protocol: p.protocol ?? 'TCP' }));
  const mounts = mapMounts(c, layout);
  if (mounts) out.volumeMounts = mounts;
  const sec = mapSecurityContext(c, pod.spec?.securityContext, path);
  if (sec.securityContext) out.securityContext = sec.securityContext;
  dropped.push(...sec.dropped);
  // The probes the connector runs (tcpSocket, gRPC, and all of a container with a startupProbe) stay out of the group.
  const liveness = connectorRunsProbe(c, 'liveness')
    ? undefined
    : mapProbe(c, c.livenessProbe, `${path}.livenessProbe`);
  if (liveness) out.livenessProbe = liveness;
  const readiness = connectorRunsProbe(c, 'readiness')
    ? undefined
    : mapProbe(c, c.readinessProbe, `${path}.readinessProbe`);
  if (readiness) out.readinessProbe = readiness;
  return out;
}

function mapInitContainer(
  pod: V1Pod,
  c: V1Container,
  i: number,
  ctx: PodContext,
  ann: PodAnnotations,
  layout: VolumeLayout,
  dropped: string[],
): InitContainerDefinition {
  const path = `spec.initContainers[${i}]`;
  if (!c.image) throw new PodRejectedError('InvalidPod', `${path}.image is empty`, `${path}.image`);
  const env = resolvedEnv(c, ctx, path);
  const command = mapCommand(c, path, env, ann);
  const out: InitContainerDefinition = { name: c.name, image: c.image };
  if (command) out.command = command;
  const envVars = mapEnv(env);
  if (envVars.length) out.environmentVariables = envVars;
  const mounts = mapMounts(c, layout);
  if (mounts) out.volumeMounts = mounts;
  const sec = mapSecurityContext(c, pod.spec?.securityContext, path);
  if (sec.securityContext) out.securityContext = sec.securityContext;
  dropped.push(...sec.dropped);
  return out;
}

/** The pod's volumes as ACI volumes, at most ACI's 20, and where each is mounted. */
async function mapVolumes(pod: V1Pod, ctx: PodContext): Promise<{ volumes: Volume[]; layout: VolumeLayout }> {
  const podVolumes = pod.spec?.volumes ?? [];
  const taken = new Set(podVolumes.map((v) => v.name));
  const volumes: Volume[] = [];
  const layout: VolumeLayout = new Map();
  for (const [i, v] of podVolumes.entries()) {
    const parts = await mapVolumeParts(ctx, v, i);
    const placed: { name: string; subdir: string }[] = [];
    let n = 0;
    for (const part of parts) {
      let name = v.name;
      if (placed.length > 0 || part.subdir !== '') {
        // One more ACI volume for a subdirectory: a name no pod volume has.
        do name = `${v.name.slice(0, 55)}-d${++n}`;
        while (taken.has(name));
        taken.add(name);
      }
      volumes.push({ name, ...part.volume });
      placed.push({ name, subdir: part.subdir });
    }
    layout.set(v.name, placed);
  }
  if (volumes.length > ACI_MAX_VOLUMES) {
    const split =
      volumes.length > podVolumes.length
        ? ` (${podVolumes.length} in the pod; files in subdirectories take one more each directory)`
        : '';
    throw new PodRejectedError(
      'TooManyVolumes',
      `spec.volumes: the pod needs ${volumes.length} Azure Container Instances volumes${split}; a container group allows at most ${ACI_MAX_VOLUMES} (ACI's limit, which cannot be raised). Mounting one volume at several paths counts once`,
      'spec.volumes',
    );
  }
  return { volumes, layout };
}

function mapDns(pod: V1Pod): DnsConfiguration | undefined {
  const policy = pod.spec?.dnsPolicy;
  const cfg = pod.spec?.dnsConfig;
  // ClusterFirst cannot reach the cluster's DNS from ACI: it behaves as Default
  // (the group resolves with Azure DNS); see ANNOTATIONS.md.
  if (!cfg) {
    if (policy === 'None')
      throw new PodRejectedError('InvalidPod', 'spec.dnsConfig is required with dnsPolicy None', 'spec.dnsConfig');
    return undefined;
  }
  const nameServers = cfg.nameservers ?? [];
  if (nameServers.length === 0) {
    if ((cfg.searches?.length ?? 0) > 0 || (cfg.options?.length ?? 0) > 0) {
      throw new PodRejectedError(
        'UnsupportedField',
        'spec.dnsConfig.nameservers: Azure Container Instances applies searches and options only together with at least one nameserver',
        'spec.dnsConfig.nameservers',
      );
    }
    return undefined;
  }
  const out: DnsConfiguration = { nameServers };
  if (cfg.searches?.length) out.searchDomains = cfg.searches.join(' ');
  if (cfg.options?.length)
    out.options = cfg.options.map((o) => (o.value !== undefined ? `${o.name}:${o.value}` : (o.name ?? ''))).join(' ');
  return out;
}

/**
 * ACI requires at least one port on a group's IP address. A pod in a VNet that declares none
 * gets this one, so it still gets a private IP (a kubelet gives every pod one). It opens
 * nothing: the ports list configures only what ACI's public frontend forwards, and a private
 * IP is reachable from the VNet on every port anyway (NSGs decide), so declaring one changes
 * no reachability; and nothing listens on it unless the app itself does.
 */
export const PLACEHOLDER_PORT = { port: 65535, protocol: 'TCP' } as const;

/** Why a pod has no IP address, when the mapping could not give it one (for an Event). */
export const NO_POD_IP_MESSAGE =
  'Azure Container Instances gives a container group outside a virtual network an IP address only for declared ports, ' +
  'and this pod declares no containerPort: it has no pod IP. Configure a subnet (ACI_SUBNET_IDS, or the annotation ' +
  `${ANNOTATION.subnetIds}) so that every pod gets a private IP, or declare a containerPort for a public one.`;

function mapIpAddress(
  ann: PodAnnotations,
  containers: Container[],
): { ip?: IpAddress; subnets?: string[]; noIpReason?: string } {
  const seen = new Set<string>();
  const ports: { port: number; protocol: string }[] = [];
  for (const c of containers) {
    for (const p of c.ports ?? []) {
      const key = `${p.port}/${p.protocol ?? 'TCP'}`;
      if (seen.has(key)) continue;
      seen.add(key);
      ports.push({ port: p.port, protocol: p.protocol ?? 'TCP' });
    }
  }
  // In a VNet (a subnet configured) every group is private, as ACI allows no public IP there.
  const type = ann.ipAddressType ?? (ann.subnetIds.length > 0 ? 'Private' : ports.length > 0 ? 'Public' : 'None');
  const field = `metadata.annotations['${ANNOTATION.ipAddressType}']`;
  if (type === 'None') {
    if (ann.dnsNameLabel) {
      throw new PodRejectedError(
        'InvalidAnnotation',
        `${ANNOTATION.dnsNameLabel} needs a public IP address, but ${ANNOTATION.ipAddressType} is None`,
        `metadata.annotations['${ANNOTATION.dnsNameLabel}']`,
      );
    }
    return ann.ipAddressType === undefined ? { noIpReason: NO_POD_IP_MESSAGE } : {};
  }
  if (type === 'Private') {
    const subnets = ann.subnetIds;
    if (subnets.length === 0) {
      throw new PodRejectedError(
        'InvalidAnnotation',
        `${field}: a Private IP address needs a subnet (annotation ${ANNOTATION.subnetIds})`,
        field,
      );
    }
    if (ann.dnsNameLabel) {
      throw new PodRejectedError(
        'InvalidAnnotation',
        `${ANNOTATION.dnsNameLabel} is only available with a Public IP address`,
        `metadata.annotations['${ANNOTATION.dnsNameLabel}']`,
      );
    }
    if (ports.length === 0 && containers[0]) {
      // The IP's ports must be ports of the containers (ACI's rule), so the first container declares it too.
      containers[0].ports = [{ ...PLACEHOLDER_PORT }];
      ports.push({ ...PLACEHOLDER_PORT });
    }
    return { ip: { type: 'Private', ports }, subnets };
  }
  if (ports.length === 0) {
    throw new PodRejectedError(
      'InvalidAnnotation',
      `${field}: a Public IP address needs at least one containerPort in the pod (a port would be opened to the internet)`,
      field,
    );
  }
  return { ip: { type: 'Public', ports, ...(ann.dnsNameLabel ? { dnsNameLabel: ann.dnsNameLabel } : {}) } };
}

function osTypeOf(pod: V1Pod): 'Linux' | 'Windows' {
  const sel = pod.spec?.nodeSelector?.['kubernetes.io/os'] ?? pod.spec?.nodeSelector?.['beta.kubernetes.io/os'];
  if (sel === 'windows' || pod.spec?.os?.name === 'windows') return 'Windows';
  return 'Linux';
}

async function pullCredentials(pod: V1Pod, ctx: PodContext): Promise<ImageRegistryCredential[]> {
  const out: ImageRegistryCredential[] = [];
  for (const ref of pod.spec?.imagePullSecrets ?? []) {
    if (!ref.name) continue;
    const secret = await ctx.getSecret(ref.name);
    if (!secret) {
      // A kubelet goes on without a missing pull secret (the pull may still work).
      ctx.recordEvent(
        'Warning',
        'FailedToRetrieveImagePullSecret',
        `Unable to retrieve image pull secret ${ref.name}; pulling without it`,
      );
      continue;
    }
    for (const c of registryCredentialsFromSecret(secret)) {
      if (!out.some((o) => o.server === c.server)) out.push(c);
    }
  }
  return out;
}

export async function podToContainerGroup(pod: V1Pod, ctx: PodContext, opts: MappingOptions): Promise<MappedGroup> {
  validatePodForAci(pod);
  const spec = pod.spec!;
  const md = pod.metadata ?? {};
  if (!md.name || !md.namespace || !md.uid)
    throw new PodRejectedError('InvalidPod', 'pod needs metadata.name, namespace and uid', 'metadata');
  const ann = readPodAnnotations(pod);
  const osType = osTypeOf(pod);
  if (osType === 'Windows' && spec.initContainers?.length) {
    throw new PodRejectedError(
      'UnsupportedField',
      'spec.initContainers: Azure Container Instances runs init containers only in Linux groups',
      'spec.initContainers',
    );
  }

  const creds = await pullCredentials(pod, ctx);
  // args without command: the image's ENTRYPOINT from its registry (the annotation overrides it).
  if (opts.imageConfigs) {
    const resolved = await resolveImageEntrypoints(pod, ann.imageEntrypoints, creds, osType, opts.imageConfigs);
    ann.imageEntrypoints = { ...resolved, ...ann.imageEntrypoints };
  }

  // Native sidecars run as regular containers of the group, after the app containers in the
  // list: ACI starts a group's containers together and cannot start them first (decisions.md).
  const sidecars = (spec.initContainers ?? []).map((c, i) => ({ c, i })).filter(({ c }) => isSidecar(c));
  const clamps: LimitClamp[] = [];
  const resources = mapContainerResources(
    [...spec.containers, ...sidecars.map((s) => s.c)],
    opts.defaults,
    opts.maximums,
    (c) => clamps.push(c),
  );
  const { volumes, layout } = await mapVolumes(pod, ctx);
  const dropped: string[] = [];
  const containers = [
    ...spec.containers.map((c, i) =>
      mapContainer(pod, c, `spec.containers[${i}]`, ctx, ann, resources[i]!, layout, dropped),
    ),
    ...sidecars.map(({ c, i }, k) =>
      mapContainer(
        pod,
        c,
        `spec.initContainers[${i}]`,
        ctx,
        ann,
        resources[spec.containers.length + k]!,
        layout,
        dropped,
      ),
    ),
  ];
  const initContainers = (spec.initContainers ?? []).flatMap((c, i) =>
    isSidecar(c) ? [] : [mapInitContainer(pod, c, i, ctx, ann, layout, dropped)],
  );
  const notes: MappingNote[] = [];
  const clamped = clampMessage(clamps);
  if (clamped) notes.push({ type: 'Warning', reason: 'LimitLowered', message: clamped });
  const droppedMsg = droppedFieldsMessage(pod, dropped);
  if (droppedMsg) notes.push({ type: 'Warning', reason: 'SecurityContextNotApplied', message: droppedMsg });

  const restartPolicy = spec.restartPolicy ?? 'Always';
  const { ip, subnets, noIpReason } = mapIpAddress(
    { ...ann, subnetIds: ann.subnetIds.length ? ann.subnetIds : (opts.defaultSubnetIds ?? []) },
    containers,
  );
  const dns = mapDns(pod);

  const group: ContainerGroup = {
    location: opts.region,
    tags: groupTags({
      clusterId: opts.clusterId,
      nodeName: opts.nodeName,
      namespace: md.namespace,
      podName: md.name,
      podUid: md.uid,
    }),
    osType,
    restartPolicy,
    containers,
  };
  if (initContainers.length) group.initContainers = initContainers;
  if (volumes.length) group.volumes = volumes;
  if (ip) group.ipAddress = ip;
  if (subnets?.length) group.subnetIds = subnets.map((id) => ({ id }));
  if (dns) group.dnsConfig = dns;
  if (creds.length) group.imageRegistryCredentials = creds;
  if (ann.priority) group.priority = ann.priority;
  if (ann.sku) group.sku = ann.sku;

  const name = containerGroupName({
    clusterId: opts.clusterId,
    namespace: md.namespace,
    podName: md.name,
    podUid: md.uid,
  });
  const out: MappedGroup = { name, group };
  if (noIpReason) out.noIpReason = noIpReason;
  if (notes.length) out.notes = notes;
  return out;
}

/** The containers the group runs, in the group's order: app containers, then native sidecars. */
function groupContainers(pod: V1Pod): { c: V1Container; i: number }[] {
  const spec = pod.spec;
  return [
    ...(spec?.containers ?? []).map((c, i) => ({ c, i })),
    ...(spec?.initContainers ?? []).map((c, i) => ({ c, i })).filter(({ c }) => isSidecar(c)),
  ];
}

/**
 * What a container gets on ACI, in base units (cores, bytes), for a downward API volume's
 * resourceFieldRef (Provider.containerResource): the declared value, else what the mapping gives
 * it (the configured defaults). App containers only; undefined for anything else.
 */
export function aciContainerResource(
  pod: V1Pod,
  opts: Pick<MappingOptions, 'defaults' | 'maximums'>,
  container: string,
  resource: string,
): number | undefined {
  const i = pod.spec?.containers.findIndex((c) => c.name === container) ?? -1;
  const c = pod.spec?.containers[i];
  if (!c) return undefined;
  const [kind, name] = resource.split('.') as [string, string | undefined];
  const declared = kind === 'limits' ? c.resources?.limits : kind === 'requests' ? c.resources?.requests : undefined;
  if (name !== 'cpu' && name !== 'memory') return undefined;
  const q = declared?.[name];
  if (q !== undefined) return parseQuantity(q);
  // Unset: report what the container actually gets on ACI.
  const r: AciContainerResources | undefined = mapContainerResources(
    groupContainers(pod).map(({ c }) => c),
    opts.defaults,
    opts.maximums,
  )[i];
  if (!r) return undefined;
  const eff =
    kind === 'limits'
      ? name === 'cpu'
        ? (r.limits?.cpu ?? r.requests.cpu)
        : (r.limits?.memoryInGB ?? r.requests.memoryInGB)
      : name === 'cpu'
        ? r.requests.cpu
        : r.requests.memoryInGB;
  return name === 'memory' ? eff * 1e9 : eff;
}
