/**
 * ACI's semantic checks on a container group, beyond its JSON shape, with the service's
 * error codes where they are known (see docs/decisions.md for the ones we had to name),
 * and the translation of a valid group into the runtime's spec.
 */
import { badRequest } from './errors.js';
import { imageReferenceProblem } from '../common/image-reference.js';
import type { ContainerGroupPropertiesInput, ContainerInput, InitContainerInput } from './schema.js';
import type {
  RuntimeContainerSpec,
  RuntimeGroupSpec,
  RuntimeProbe,
  RuntimeSecurity,
  RuntimeVolume,
} from './runtime.js';

type ProbeInput = NonNullable<ContainerInput['properties']['livenessProbe']>;
type SecurityInput = NonNullable<ContainerInput['properties']['securityContext']>;

/** ACI's hard limit: "Number of volumes per container group: 20" (ACI quotas and limits). */
export const MAX_VOLUMES_PER_GROUP = 20;
// Linux capability names, with or without the CAP_ prefix (as runtimes accept them), or ALL.
const CAPABILITY = /^(CAP_)?[A-Z][A-Z0-9_]*$/;

// ACI names: 1-63 of [a-z0-9-], not starting or ending with '-', no '--'.
const ACI_NAME = /^(?!-)(?!.*--)[a-z0-9-]{1,63}$/;
const isAciName = (name: string): boolean => ACI_NAME.test(name) && !name.endsWith('-');
const RESOURCE_GROUP = /^[-\w._()]{1,90}$/;
const DNS_LABEL = /^[a-z][a-z0-9-]{3,61}[a-z0-9]$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function checkContainerGroupName(name: string): void {
  if (!isAciName(name)) {
    throw badRequest(
      'InvalidContainerGroupName',
      `The container group name '${name}' is invalid. A container group name must contain no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').`,
    );
  }
}

export function checkResourceGroupName(name: string): void {
  if (!RESOURCE_GROUP.test(name) || name.endsWith('.')) {
    throw badRequest('InvalidResourceGroupName', `The resource group name '${name}' is invalid.`);
  }
}

function checkContainerName(name: string): void {
  if (!isAciName(name)) {
    throw badRequest(
      'InvalidContainerName',
      `The container name '${name}' is invalid. A container name must contain no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').`,
    );
  }
}

const isPositive = (n: number | undefined): boolean => typeof n === 'number' && Number.isFinite(n) && n > 0;

export function checkGroupProperties(name: string, p: ContainerGroupPropertiesInput): void {
  if (p.containers.length === 0) {
    throw badRequest(
      'NoContainersInContainerGroup',
      `The container group '${name}' must contain at least one container.`,
    );
  }
  const seen = new Set<string>();
  const all: (ContainerInput | InitContainerInput)[] = [...(p.initContainers ?? []), ...p.containers];
  for (const c of all) {
    checkContainerName(c.name);
    if (seen.has(c.name)) {
      throw badRequest(
        'DuplicateContainerName',
        `The container name '${c.name}' in container group '${name}' is duplicated.`,
      );
    }
    seen.add(c.name);
  }
  for (const c of p.initContainers ?? []) {
    if (!c.properties.image) {
      throw badRequest('InvalidInitContainerImage', `The init container '${c.name}' must specify an image.`);
    }
  }
  // A reference no registry client can parse can never be pulled: ACI's code and text for an
  // image it cannot access (see docs/decisions.md).
  for (const c of all) {
    const image = c.properties.image ?? '';
    if (image.trim() && imageReferenceProblem(image)) {
      throw badRequest(
        'InaccessibleImage',
        `The image '${image}' in container group '${name}' is not accessible. Please check the image and registry credential.`,
      );
    }
  }

  let totalCpu = 0;
  let totalMemory = 0;
  for (const c of p.containers) {
    const { requests } = c.properties.resources;
    if (!c.properties.image.trim()) {
      throw badRequest(
        'InvalidContainerImage',
        `The image of container '${c.name}' in container group '${name}' must not be empty.`,
      );
    }
    if (!isPositive(requests.cpu) || !isPositive(requests.memoryInGB)) {
      throw badRequest(
        'InvalidContainerResourceRequests',
        `The resource requests of container '${c.name}' must have positive 'cpu' and 'memoryInGB'.`,
      );
    }
    totalCpu += requests.cpu;
    totalMemory += requests.memoryInGB;
    for (const port of c.properties.ports ?? []) {
      if (port.port < 1 || port.port > 65535) {
        throw badRequest(
          'InvalidContainerPort',
          `The port '${port.port}' of container '${c.name}' is invalid; it must be between 1 and 65535.`,
        );
      }
    }
  }
  for (const c of p.containers) {
    const limits = c.properties.resources.limits;
    if (!limits) continue;
    for (const v of [limits.cpu, limits.memoryInGB]) {
      if (v !== undefined && !isPositive(v)) {
        throw badRequest(
          'InvalidContainerResourceLimits',
          `The resource limits of container '${c.name}' must be positive.`,
        );
      }
    }
    if (
      (limits.cpu !== undefined && limits.cpu > totalCpu) ||
      (limits.memoryInGB !== undefined && limits.memoryInGB > totalMemory)
    ) {
      throw badRequest(
        'ContainerLimitGreaterThanContainerGroupTotalRequest',
        `The resource limits of container '${c.name}' (cpu ${limits.cpu ?? '-'}, memoryInGB ${limits.memoryInGB ?? '-'}) exceed the container group's total requests (cpu ${totalCpu}, memoryInGB ${totalMemory}).`,
      );
    }
  }

  if (p.ipAddress) {
    const containerPorts = new Set(p.containers.flatMap((c) => (c.properties.ports ?? []).map((x) => x.port)));
    for (const port of p.ipAddress.ports) {
      if (!containerPorts.has(port.port)) {
        throw badRequest(
          'InvalidIpAddressPorts',
          `The port '${port.port}' in the IP address of container group '${name}' is not exposed by any container. The ports of the IP address must be a subset of the containers' ports.`,
        );
      }
    }
    const label = p.ipAddress.dnsNameLabel;
    if (label !== undefined && !DNS_LABEL.test(label)) {
      throw badRequest(
        'InvalidDnsNameLabel',
        `The DNS name label '${label}' in container group '${name}' is invalid. It can contain only lowercase letters, numbers and hyphens. The first character must be a letter. The last character must be a letter or number. The value must be between 5 and 63 characters long.`,
      );
    }
  }

  for (const c of all) checkSecurityContext(c.name, c.properties.securityContext);

  if ((p.volumes?.length ?? 0) > MAX_VOLUMES_PER_GROUP) {
    throw badRequest(
      'ContainerGroupVolumeCountExceeded',
      `The container group '${name}' has ${p.volumes?.length} volumes; a container group can have at most ${MAX_VOLUMES_PER_GROUP}.`,
    );
  }
  const volumes = new Map<string, (typeof p.volumes & object)[number]>();
  for (const v of p.volumes ?? []) {
    if (volumes.has(v.name)) throw badRequest('DuplicateVolumeName', `The volume name '${v.name}' is duplicated.`);
    const kinds = [v.azureFile, v.emptyDir, v.secret, v.gitRepo].filter((k) => k !== undefined).length;
    if (kinds !== 1) {
      throw badRequest(
        'InvalidVolume',
        `The volume '${v.name}' must specify exactly one of 'azureFile', 'emptyDir', 'secret' or 'gitRepo'.`,
      );
    }
    for (const [file, value] of Object.entries(v.secret ?? {})) {
      if (!BASE64.test(value)) {
        throw badRequest(
          'InvalidSecretVolumeValue',
          `The value of secret '${file}' in volume '${v.name}' must be base64 encoded.`,
        );
      }
    }
    volumes.set(v.name, v);
  }
  for (const c of all) {
    for (const m of c.properties.volumeMounts ?? []) {
      if (!volumes.has(m.name)) {
        throw badRequest(
          'VolumeMountNotFound',
          `The volume mount '${m.name}' of container '${c.name}' refers to a volume that is not defined in the container group.`,
        );
      }
      if (!m.mountPath.startsWith('/') && p.osType === 'Linux') {
        throw badRequest(
          'InvalidVolumeMountPath',
          `The mount path '${m.mountPath}' of container '${c.name}' must be absolute.`,
        );
      }
    }
  }
}

function checkSecurityContext(container: string, sc: SecurityInput | undefined): void {
  if (!sc) return;
  for (const cap of [...(sc.capabilities?.add ?? []), ...(sc.capabilities?.drop ?? [])]) {
    if (cap !== 'ALL' && !CAPABILITY.test(cap)) {
      throw badRequest(
        'InvalidContainerSecurityContext',
        `The capability '${cap}' in the security context of container '${container}' is invalid.`,
      );
    }
  }
  for (const [field, v] of [
    ['runAsUser', sc.runAsUser],
    ['runAsGroup', sc.runAsGroup],
  ] as const) {
    if (v !== undefined && v < 0) {
      throw badRequest(
        'InvalidContainerSecurityContext',
        `The ${field} '${v}' in the security context of container '${container}' must not be negative.`,
      );
    }
  }
  if (sc.seccompProfile !== undefined) {
    let ok = BASE64.test(sc.seccompProfile);
    if (ok) {
      try {
        const parsed: unknown = JSON.parse(Buffer.from(sc.seccompProfile, 'base64').toString('utf8'));
        ok = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      throw badRequest(
        'InvalidContainerSecurityContext',
        `The seccompProfile of container '${container}' must be a base64 encoded JSON seccomp profile.`,
      );
    }
  }
}

/** What the runtime applies; `privileged` is not among it: the connector never asks for it (see docs/decisions.md). */
function toRuntimeSecurity(sc: SecurityInput | undefined): RuntimeSecurity | undefined {
  if (!sc) return undefined;
  const out: RuntimeSecurity = {};
  if (sc.allowPrivilegeEscalation !== undefined) out.allowPrivilegeEscalation = sc.allowPrivilegeEscalation;
  if (sc.capabilities?.add?.length || sc.capabilities?.drop?.length) {
    out.capabilities = {};
    if (sc.capabilities.add?.length) out.capabilities.add = sc.capabilities.add;
    if (sc.capabilities.drop?.length) out.capabilities.drop = sc.capabilities.drop;
  }
  if (sc.runAsUser !== undefined) out.runAsUser = sc.runAsUser;
  if (sc.runAsGroup !== undefined) out.runAsGroup = sc.runAsGroup;
  if (sc.seccompProfile !== undefined) out.seccompProfile = Buffer.from(sc.seccompProfile, 'base64').toString('utf8');
  return Object.keys(out).length ? out : undefined;
}

function toRuntimeEnv(
  env: { name: string; value?: string; secureValue?: string }[] | undefined,
): RuntimeContainerSpec['env'] {
  return (env ?? []).map((e) =>
    e.secureValue !== undefined
      ? { name: e.name, value: e.secureValue, secure: true }
      : { name: e.name, value: e.value ?? '', secure: false },
  );
}

const toMounts = (
  m: { name: string; mountPath: string; readOnly?: boolean }[] | undefined,
): RuntimeContainerSpec['volumeMounts'] =>
  (m ?? []).map((x) => ({ name: x.name, mountPath: x.mountPath, readOnly: x.readOnly ?? false }));

function toRuntimeProbe(p: ProbeInput): RuntimeProbe {
  const { exec, httpGet, ...timing } = p;
  const out: RuntimeProbe = { ...timing };
  if (exec) out.exec = { command: exec.command ?? [] };
  if (httpGet) {
    const { httpHeaders, ...rest } = httpGet;
    out.httpGet = { ...rest };
    if (httpHeaders) out.httpGet.httpHeaders = httpHeaders.map((h) => ({ name: h.name ?? '', value: h.value ?? '' }));
  }
  return out;
}

export function toRuntimeSpec(id: string, name: string, p: ContainerGroupPropertiesInput): RuntimeGroupSpec {
  const containers: RuntimeContainerSpec[] = p.containers.map((c) => {
    const q = c.properties;
    const spec: RuntimeContainerSpec = {
      name: c.name,
      image: q.image,
      env: toRuntimeEnv(q.environmentVariables),
      ports: (q.ports ?? []).map((x) => ({ port: x.port, protocol: x.protocol ?? 'TCP' })),
      cpu: q.resources.requests.cpu,
      memoryInGB: q.resources.requests.memoryInGB,
      volumeMounts: toMounts(q.volumeMounts),
    };
    if (q.command && q.command.length > 0) spec.command = q.command;
    if (q.resources.limits) {
      spec.limits = {};
      if (q.resources.limits.cpu !== undefined) spec.limits.cpu = q.resources.limits.cpu;
      if (q.resources.limits.memoryInGB !== undefined) spec.limits.memoryInGB = q.resources.limits.memoryInGB;
    }
    if (q.livenessProbe) spec.livenessProbe = toRuntimeProbe(q.livenessProbe);
    if (q.readinessProbe) spec.readinessProbe = toRuntimeProbe(q.readinessProbe);
    const security = toRuntimeSecurity(q.securityContext);
    if (security) spec.security = security;
    return spec;
  });
  const initContainers: RuntimeContainerSpec[] = (p.initContainers ?? []).map((c) => {
    const spec: RuntimeContainerSpec = {
      name: c.name,
      image: c.properties.image ?? '',
      env: toRuntimeEnv(c.properties.environmentVariables),
      ports: [],
      cpu: 0,
      memoryInGB: 0,
      volumeMounts: toMounts(c.properties.volumeMounts),
    };
    if (c.properties.command && c.properties.command.length > 0) spec.command = c.properties.command;
    const security = toRuntimeSecurity(c.properties.securityContext);
    if (security) spec.security = security;
    return spec;
  });
  const volumes: RuntimeVolume[] = (p.volumes ?? []).map((v) => {
    const out: RuntimeVolume = { name: v.name };
    if (v.emptyDir) out.emptyDir = {};
    if (v.secret)
      out.secret = Object.fromEntries(Object.entries(v.secret).map(([k, b64]) => [k, Buffer.from(b64, 'base64')]));
    if (v.gitRepo) out.gitRepo = v.gitRepo;
    if (v.azureFile) {
      out.azureFile = { shareName: v.azureFile.shareName, storageAccountName: v.azureFile.storageAccountName };
      if (v.azureFile.readOnly !== undefined) out.azureFile.readOnly = v.azureFile.readOnly;
    }
    return out;
  });
  const spec: RuntimeGroupSpec = {
    id,
    name,
    osType: p.osType,
    restartPolicy: p.restartPolicy ?? 'Always',
    initContainers,
    containers,
    volumes,
  };
  const creds = (p.imageRegistryCredentials ?? []).flatMap((c) =>
    c.username && c.password ? [{ server: c.server, username: c.username, password: c.password }] : [],
  );
  if (creds.length) spec.registryCredentials = creds;
  if (p.ipAddress) {
    spec.ipAddress = {
      type: p.ipAddress.type,
      ports: p.ipAddress.ports.map((x) => ({ port: x.port, protocol: x.protocol ?? 'TCP' })),
    };
  }
  return spec;
}

/** Total cores a group requests (quota accounting). */
export const groupCores = (p: ContainerGroupPropertiesInput): number =>
  p.containers.reduce((sum, c) => sum + c.properties.resources.requests.cpu, 0);
