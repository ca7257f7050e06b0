/**
 * A pod's secret, configMap, downwardAPI and projected volumes → their files, as a kubelet
 * writes them: item keys and paths, modes, optional sources and keys, the downward API's fields
 * and resources, and projected ServiceAccount tokens. These are Kubernetes semantics, so the core
 * computes them once and every provider gets the same files in `PodContext.volumeFiles`; a provider
 * only maps them to its backend's volumes (decisions.md, "Core: volume files").
 *
 * Errors are the ones a provider would throw: TransientProviderError (SecretNotFound,
 * ConfigMapNotFound, KeyNotFound, TokenUnavailable) for what may appear later, PodRejectedError
 * naming the field for what never will.
 */
import type {
  V1ConfigMap,
  V1DownwardAPIVolumeFile,
  V1KeyToPath,
  V1Pod,
  V1Secret,
  V1Volume,
  V1VolumeProjection,
} from '@kubernetes/client-node';
import { PodRejectedError, TransientProviderError, type VolumeFile, type VolumeFiles } from './provider.js';

export type { VolumeFile, VolumeFiles } from './provider.js';
import { parseQuantity } from '../common/quantity.js';

/** Value of a container's resource in base units (cores, bytes), for resourceFieldRef; undefined when unknown. */
export type ResourceLookup = (container: string, resource: string) => number | undefined;

/** Where the files come from: the pod's own references, as the core's resolver fetched them. */
export interface VolumeFileSources {
  getSecret(name: string): Promise<V1Secret | undefined>;
  getConfigMap(name: string): Promise<V1ConfigMap | undefined>;
  /** A token bound to the pod; absent on a node that cannot mint tokens. */
  getServiceAccountToken?(audience: string | undefined, expirationSeconds: number): Promise<string | undefined>;
  /** What each container gets, for the downward API's resourceFieldRef. */
  resources: ResourceLookup;
}

/** The kubelet's default file mode for secret, configMap, downwardAPI and projected volumes. */
export const DEFAULT_FILE_MODE = 0o644;

type Files = Map<string, VolumeFile>;

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

/** A file path inside a volume: relative, no empty, '.' or '..' segment. Nested paths (`a/b`) are kept. */
function checkFileName(path: string, field: string): void {
  const segments = path.split('/');
  if (!path || path.startsWith('/') || segments.some((x) => x === '' || x === '.' || x === '..')) {
    throw new PodRejectedError(
      'InvalidPod',
      `${field}: '${path}' must be a relative path without '.', '..' or empty segments`,
      field,
    );
  }
}

/** A file and a directory of the same name cannot both exist (the kubelet fails such a pod too). */
function checkTree(files: Files, field: string): void {
  const paths = new Set(files.keys());
  for (const path of paths) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (paths.has(prefix)) {
        throw new PodRejectedError('InvalidPod', `${field}: '${prefix}' is both a file and a directory`, field);
      }
    }
  }
}

interface Pick {
  data: Record<string, string>;
  items: readonly V1KeyToPath[] | undefined;
  optional: boolean;
  mode: number;
  sensitive: boolean;
  what: string;
  field: string;
}

function pickItems(p: Pick, into: Files): void {
  if (!p.items || p.items.length === 0) {
    for (const [k, v] of Object.entries(p.data)) {
      checkFileName(k, `${p.field} (key ${k})`);
      into.set(k, { content: v, mode: p.mode, sensitive: p.sensitive });
    }
    return;
  }
  p.items.forEach((it, i) => {
    checkFileName(it.path, `${p.field}.items[${i}].path`);
    const v = p.data[it.key];
    if (v === undefined) {
      if (p.optional) return;
      throw new TransientProviderError('KeyNotFound', `${p.what} has no key '${it.key}' (${p.field}.items[${i}].key)`);
    }
    into.set(it.path, { content: v, mode: it.mode ?? p.mode, sensitive: p.sensitive });
  });
}

async function secretFiles(
  src: VolumeFileSources,
  s: { secretName?: string; name?: string; items?: V1KeyToPath[]; optional?: boolean },
  mode: number,
  field: string,
  into: Files,
): Promise<void> {
  const name = s.secretName ?? s.name;
  if (!name) throw new PodRejectedError('InvalidPod', `${field}: secret name is empty`, field);
  const secret = await src.getSecret(name);
  if (!secret) {
    if (s.optional) return;
    throw new TransientProviderError('SecretNotFound', `secret "${name}" not found (${field})`);
  }
  const what = `secret "${name}"`;
  pickItems(
    { data: secret.data ?? {}, items: s.items, optional: s.optional ?? false, mode, sensitive: true, what, field },
    into,
  );
}

async function configMapFiles(
  src: VolumeFileSources,
  c: { name?: string; items?: V1KeyToPath[]; optional?: boolean },
  mode: number,
  field: string,
  into: Files,
): Promise<void> {
  const name = c.name;
  if (!name) throw new PodRejectedError('InvalidPod', `${field}: configMap name is empty`, field);
  const cm = await src.getConfigMap(name);
  if (!cm) {
    if (c.optional) return;
    throw new TransientProviderError('ConfigMapNotFound', `configmap "${name}" not found (${field})`);
  }
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(cm.data ?? {})) data[k] = b64(v);
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) data[k] = v;
  const what = `configmap "${name}"`;
  pickItems({ data, items: c.items, optional: c.optional ?? false, mode, sensitive: false, what, field }, into);
}

/** Go's %q-style quoting as the kubelet writes label/annotation files. */
function quote(v: string): string {
  return JSON.stringify(v);
}

function formatMap(m: Record<string, string> | undefined): string {
  return Object.keys(m ?? {})
    .sort()
    .map((k) => `${k}=${quote((m ?? {})[k] ?? '')}`)
    .join('\n');
}

function downwardValue(pod: V1Pod, f: V1DownwardAPIVolumeFile, field: string, resources: ResourceLookup): string {
  if (f.fieldRef) {
    const p = f.fieldRef.fieldPath;
    const md = pod.metadata ?? {};
    const lbl = /^metadata\.labels\['(.+)'\]$/.exec(p);
    if (lbl) return md.labels?.[lbl[1] ?? ''] ?? '';
    const ann = /^metadata\.annotations\['(.+)'\]$/.exec(p);
    if (ann) return md.annotations?.[ann[1] ?? ''] ?? '';
    switch (p) {
      case 'metadata.name':
        return md.name ?? '';
      case 'metadata.namespace':
        return md.namespace ?? '';
      case 'metadata.uid':
        return md.uid ?? '';
      case 'metadata.labels':
        return formatMap(md.labels);
      case 'metadata.annotations':
        return formatMap(md.annotations);
      case 'spec.nodeName':
        return pod.spec?.nodeName ?? '';
      case 'spec.serviceAccountName':
        return pod.spec?.serviceAccountName ?? '';
      default:
        // Files are written before the pod runs, so status fields (podIP, hostIP) have no value yet.
        throw new PodRejectedError(
          'UnsupportedField',
          `${field}.fieldRef.fieldPath: '${p}' is not available to volume files, which are written before the pod runs`,
          `${field}.fieldRef.fieldPath`,
        );
    }
  }
  if (f.resourceFieldRef) {
    const r = f.resourceFieldRef;
    const container = r.containerName ?? pod.spec?.containers[0]?.name ?? '';
    const value = resources(container, r.resource);
    if (value === undefined) {
      throw new PodRejectedError(
        'UnsupportedField',
        `${field}.resourceFieldRef: resource '${r.resource}' of container '${container}' is not known`,
        `${field}.resourceFieldRef`,
      );
    }
    const divisor = r.divisor ? parseQuantity(String(r.divisor)) : 1;
    return String(Math.ceil(value / (divisor || 1)));
  }
  throw new PodRejectedError('InvalidPod', `${field}: needs fieldRef or resourceFieldRef`, field);
}

function downwardFiles(
  pod: V1Pod,
  items: readonly V1DownwardAPIVolumeFile[] | undefined,
  mode: number,
  field: string,
  into: Files,
  resources: ResourceLookup,
): void {
  (items ?? []).forEach((f, i) => {
    checkFileName(f.path, `${field}.items[${i}].path`);
    const content = b64(downwardValue(pod, f, `${field}.items[${i}]`, resources));
    into.set(f.path, { content, mode: f.mode ?? mode, sensitive: false });
  });
}

async function projectedFiles(
  pod: V1Pod,
  src: VolumeFileSources,
  sources: readonly V1VolumeProjection[],
  mode: number,
  field: string,
  into: Files,
): Promise<void> {
  for (const [i, s] of sources.entries()) {
    const f = `${field}.sources[${i}]`;
    if (s.secret) await secretFiles(src, s.secret, mode, `${f}.secret`, into);
    else if (s.configMap) await configMapFiles(src, s.configMap, mode, `${f}.configMap`, into);
    else if (s.downwardAPI) downwardFiles(pod, s.downwardAPI.items, mode, `${f}.downwardAPI`, into, src.resources);
    else if (s.serviceAccountToken) {
      const t = s.serviceAccountToken;
      checkFileName(t.path, `${f}.serviceAccountToken.path`);
      if (!src.getServiceAccountToken) {
        throw new PodRejectedError(
          'UnsupportedField',
          `${f}.serviceAccountToken: this node cannot mint service account tokens`,
          `${f}.serviceAccountToken`,
        );
      }
      const token = await src.getServiceAccountToken(t.audience, t.expirationSeconds ?? 3600);
      if (token === undefined)
        throw new TransientProviderError(
          'TokenUnavailable',
          `no service account token yet for ${f}.serviceAccountToken`,
        );
      into.set(t.path, { content: b64(token), mode, sensitive: true });
    } else {
      const kind = Object.entries(s).find(([, val]) => val != null)?.[0] ?? 'unknown';
      throw new PodRejectedError(
        'UnsupportedVolume',
        `${f}.${kind}: projected source '${kind}' is not supported`,
        `${f}.${kind}`,
      );
    }
  }
}

/** One volume's files, or undefined for a volume not made of files (emptyDir, azureFile, …). */
export async function resolveVolume(
  pod: V1Pod,
  v: V1Volume,
  index: number,
  src: VolumeFileSources,
): Promise<VolumeFiles | undefined> {
  const field = `spec.volumes[${index}]`;
  const files: Files = new Map();
  if (v.secret) await secretFiles(src, v.secret, v.secret.defaultMode ?? DEFAULT_FILE_MODE, `${field}.secret`, files);
  else if (v.configMap) {
    const mode = v.configMap.defaultMode ?? DEFAULT_FILE_MODE;
    await configMapFiles(src, v.configMap, mode, `${field}.configMap`, files);
  } else if (v.downwardAPI) {
    const mode = v.downwardAPI.defaultMode ?? DEFAULT_FILE_MODE;
    downwardFiles(pod, v.downwardAPI.items, mode, `${field}.downwardAPI`, files, src.resources);
  } else if (v.projected) {
    const mode = v.projected.defaultMode ?? DEFAULT_FILE_MODE;
    await projectedFiles(pod, src, v.projected.sources ?? [], mode, `${field}.projected`, files);
  } else return undefined;
  checkTree(files, field);
  return files;
}

/**
 * Every file volume of the pod, by volume name, in spec order. Throws the first volume's error
 * (the core turns it into a wait and retry, or the pod's rejection).
 */
export async function resolveVolumeFiles(pod: V1Pod, src: VolumeFileSources): Promise<Map<string, VolumeFiles>> {
  const out = new Map<string, VolumeFiles>();
  for (const [i, v] of (pod.spec?.volumes ?? []).entries()) {
    const files = await resolveVolume(pod, v, i, src);
    if (files) out.set(v.name, files);
  }
  return out;
}

/**
 * The kubelet's rule for a resourceFieldRef, for a backend that does not say what a container
 * gets: the declared value; an unset limit is node allocatable, an unset request the limit, else 0.
 */
export function kubeletResources(pod: V1Pod, allocatable: Record<string, string> | undefined): ResourceLookup {
  return (container, resource) => {
    const c = pod.spec?.containers.find((x) => x.name === container);
    const [kind, name] = resource.split('.', 2) as [string, string | undefined];
    if (!c || !name || (kind !== 'limits' && kind !== 'requests')) return undefined;
    if (!['cpu', 'memory', 'ephemeral-storage'].includes(name) && !name.startsWith('hugepages-')) return undefined;
    const limits = c.resources?.limits;
    const q =
      kind === 'limits'
        ? (limits?.[name] ?? allocatable?.[name])
        : (c.resources?.requests?.[name] ?? limits?.[name] ?? '0');
    return q === undefined ? undefined : parseQuantity(q);
  };
}
