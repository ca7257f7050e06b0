/**
 * Resolves each container's environment the way a kubelet does before start:
 * envFrom first (in order), then env (later entries win), with `$(VAR)`
 * references expanded against what is already defined. Lookups are injected so
 * the logic is testable without an API server.
 */
import type { V1ConfigMap, V1Container, V1EnvVar, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { ResolvedEnvVar } from './provider.js';
import { parseQuantity } from '../common/quantity.js';

export interface EnvLookups {
  getSecret(namespace: string, name: string): V1Secret | undefined;
  getConfigMap(namespace: string, name: string): V1ConfigMap | undefined;
  /** Node allocatable, used for resourceFieldRef when the container sets no limit. */
  nodeAllocatable?: Record<string, string>;
  /** The node's IP (status.hostIP before the pod has one). */
  hostIP?: string;
}

/** A reference the pod cannot start without. */
export interface MissingRef {
  kind: 'Secret' | 'ConfigMap';
  name: string;
  /** The key, when the object exists but the key does not. */
  key?: string;
  container: string;
  /** Field path of the reference, for messages. */
  field: string;
}

/** Something a person should know but that does not block the pod. */
export interface EnvNote {
  reason: string;
  message: string;
}

export interface EnvResolution {
  env: Map<string, ResolvedEnvVar[]>;
  missing: MissingRef[];
  notes: EnvNote[];
  /** Invalid references that no object can fix (bad fieldPath, bad resource). */
  invalid: Array<{ field: string; message: string }>;
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

function decodeSecret(secret: V1Secret, key: string): string | undefined {
  const b64 = secret.data?.[key];
  if (b64 !== undefined) return Buffer.from(b64, 'base64').toString('utf8');
  // stringData is write-only on the server, but fakes and dry runs may carry it.
  return secret.stringData?.[key];
}

function configMapValue(cm: V1ConfigMap, key: string): string | undefined {
  const v = cm.data?.[key];
  if (v !== undefined) return v;
  const b = cm.binaryData?.[key];
  return b !== undefined ? Buffer.from(b, 'base64').toString('utf8') : undefined;
}

/** Expands $(NAME) with already-defined vars; $$ escapes; unknown refs stay literal. */
export function expandVars(value: string, defined: ReadonlyMap<string, string>): string {
  return value.replace(/\$\$|\$\(([^)]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    if (name !== undefined && defined.has(name)) return defined.get(name) as string;
    return match;
  });
}

const LABEL_OR_ANNOTATION = /^metadata\.(labels|annotations)\['(.+)'\]$/;

function fieldRefValue(pod: V1Pod, path: string, hostIP: string | undefined): string | undefined {
  const m = LABEL_OR_ANNOTATION.exec(path);
  if (m) {
    const bag = m[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations;
    return bag?.[m[2] as string] ?? '';
  }
  switch (path) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
      return pod.status?.hostIP ?? hostIP ?? '';
    case 'status.hostIPs':
      return (pod.status?.hostIPs?.map((h) => h.ip) ?? (hostIP ? [hostIP] : [])).join(',');
    // The backend assigns the pod IP when it starts the pod; a kubelet knows it
    // from the sandbox, we do not yet. Empty is what the pod sees then.
    case 'status.podIP':
      return pod.status?.podIP ?? '';
    case 'status.podIPs':
      return (pod.status?.podIPs?.map((p) => p.ip) ?? []).join(',');
    default:
      return undefined;
  }
}

const RESOURCE_FIELDS = new Set([
  'limits.cpu',
  'limits.memory',
  'limits.ephemeral-storage',
  'requests.cpu',
  'requests.memory',
  'requests.ephemeral-storage',
]);

function resourceFieldValue(
  container: V1Container,
  resource: string,
  divisor: string | undefined,
  allocatable: Record<string, string> | undefined,
): string | undefined {
  if (
    !RESOURCE_FIELDS.has(resource) &&
    !resource.startsWith('limits.hugepages-') &&
    !resource.startsWith('requests.hugepages-')
  ) {
    return undefined;
  }
  const [kind, name] = resource.split('.', 2) as ['limits' | 'requests', string];
  const limits = container.resources?.limits;
  const requests = container.resources?.requests;
  let q: string | undefined = kind === 'limits' ? limits?.[name] : (requests?.[name] ?? limits?.[name]);
  // A kubelet reports node allocatable for an unset limit, and 0 for an unset request.
  if (q === undefined) q = kind === 'limits' ? allocatable?.[name] : '0';
  const value = parseQuantity(q ?? '0');
  const div = parseQuantity(divisor && divisor !== '0' ? divisor : '1');
  return String(Math.ceil(value / div - 1e-9));
}

export function resolvePodEnv(pod: V1Pod, lookups: EnvLookups): EnvResolution {
  const ns = pod.metadata?.namespace ?? 'default';
  const out: EnvResolution = { env: new Map(), missing: [], notes: [], invalid: [] };
  const groups: Array<[string, V1Container[]]> = [
    ['spec.initContainers', pod.spec?.initContainers ?? []],
    ['spec.containers', pod.spec?.containers ?? []],
  ];
  for (const [groupPath, containers] of groups) {
    containers.forEach((c, ci) => {
      const vars = new Map<string, ResolvedEnvVar>();
      const set = (name: string, value: string, sensitive: boolean) => {
        vars.delete(name); // re-defining moves it to the end, like a kubelet's ordered list
        vars.set(name, { name, value, sensitive });
      };
      (c.envFrom ?? []).forEach((src, si) => {
        const field = `${groupPath}[${ci}].envFrom[${si}]`;
        const prefix = src.prefix ?? '';
        if (src.configMapRef) {
          const name = src.configMapRef.name ?? '';
          const cm = lookups.getConfigMap(ns, name);
          if (!cm) {
            if (src.configMapRef.optional) {
              out.notes.push({
                reason: 'OptionalConfigMapNotFound',
                message: `optional ConfigMap ${ns}/${name} referenced by ${field} does not exist; skipped`,
              });
            } else out.missing.push({ kind: 'ConfigMap', name, container: c.name, field: `${field}.configMapRef` });
            return;
          }
          const keys = [...Object.keys(cm.data ?? {}), ...Object.keys(cm.binaryData ?? {})];
          for (const k of keys)
            addFromSource(prefix + k, configMapValue(cm, k) ?? '', false, `ConfigMap ${ns}/${name}`);
        } else if (src.secretRef) {
          const name = src.secretRef.name ?? '';
          const s = lookups.getSecret(ns, name);
          if (!s) {
            if (src.secretRef.optional) {
              out.notes.push({
                reason: 'OptionalSecretNotFound',
                message: `optional Secret ${ns}/${name} referenced by ${field} does not exist; skipped`,
              });
            } else out.missing.push({ kind: 'Secret', name, container: c.name, field: `${field}.secretRef` });
            return;
          }
          const keys = [...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})];
          for (const k of keys) addFromSource(prefix + k, decodeSecret(s, k) ?? '', true, `Secret ${ns}/${name}`);
        }
        function addFromSource(envName: string, value: string, sensitive: boolean, from: string) {
          if (!ENV_NAME.test(envName)) {
            out.notes.push({
              reason: 'InvalidEnvironmentVariableNames',
              message: `key ${JSON.stringify(envName)} from ${from} is not a valid environment variable name; skipped`,
            });
            return;
          }
          set(envName, value, sensitive);
        }
      });
      (c.env ?? []).forEach((e: V1EnvVar, ei) => {
        const field = `${groupPath}[${ci}].env[${ei}]`;
        const plain = new Map([...vars.values()].map((v) => [v.name, v.value] as const));
        if (!e.valueFrom) {
          set(e.name, expandVars(e.value ?? '', plain), false);
          return;
        }
        const vf = e.valueFrom;
        if (vf.secretKeyRef) {
          const { name = '', key, optional } = vf.secretKeyRef;
          const s = lookups.getSecret(ns, name);
          const v = s ? decodeSecret(s, key) : undefined;
          if (v === undefined) {
            if (optional) {
              out.notes.push({
                reason: s ? 'OptionalSecretKeyNotFound' : 'OptionalSecretNotFound',
                message: `optional ${s ? `key ${key} of ` : ''}Secret ${ns}/${name} for ${field} (${e.name}) does not exist; skipped`,
              });
            } else
              out.missing.push({
                kind: 'Secret',
                name,
                key: s ? key : undefined,
                container: c.name,
                field: `${field}.valueFrom.secretKeyRef`,
              });
            return;
          }
          set(e.name, v, true);
        } else if (vf.configMapKeyRef) {
          const { name = '', key, optional } = vf.configMapKeyRef;
          const cm = lookups.getConfigMap(ns, name);
          const v = cm ? configMapValue(cm, key) : undefined;
          if (v === undefined) {
            if (optional) {
              out.notes.push({
                reason: cm ? 'OptionalConfigMapKeyNotFound' : 'OptionalConfigMapNotFound',
                message: `optional ${cm ? `key ${key} of ` : ''}ConfigMap ${ns}/${name} for ${field} (${e.name}) does not exist; skipped`,
              });
            } else
              out.missing.push({
                kind: 'ConfigMap',
                name,
                key: cm ? key : undefined,
                container: c.name,
                field: `${field}.valueFrom.configMapKeyRef`,
              });
            return;
          }
          set(e.name, v, false);
        } else if (vf.fieldRef) {
          const v = fieldRefValue(pod, vf.fieldRef.fieldPath, lookups.hostIP);
          if (v === undefined) {
            out.invalid.push({
              field: `${field}.valueFrom.fieldRef.fieldPath`,
              message: `unsupported fieldPath ${JSON.stringify(vf.fieldRef.fieldPath)}`,
            });
            return;
          }
          set(e.name, v, false);
        } else if (vf.resourceFieldRef) {
          const ref = vf.resourceFieldRef;
          const target = ref.containerName ? containers.find((x) => x.name === ref.containerName) : c;
          let v: string | undefined;
          try {
            v = target ? resourceFieldValue(target, ref.resource, ref.divisor, lookups.nodeAllocatable) : undefined;
          } catch {
            v = undefined;
          }
          if (v === undefined) {
            out.invalid.push({
              field: `${field}.valueFrom.resourceFieldRef`,
              message: `cannot resolve resource ${JSON.stringify(ref.resource)} of container ${JSON.stringify(ref.containerName ?? c.name)}`,
            });
            return;
          }
          set(e.name, v, false);
        }
      });
      out.env.set(c.name, [...vars.values()]);
    });
  }
  return out;
}

/** A short human sentence for a missing reference (used in Events and status). */
export function describeMissing(m: MissingRef, namespace: string): string {
  const what = m.kind === 'Secret' ? 'secret' : 'configmap';
  return m.key
    ? `couldn't find key ${m.key} in ${m.kind} ${namespace}/${m.name} (${m.field})`
    : `${what} "${m.name}" not found (${m.field})`;
}
