/**
 * Pod volumes → ACI volumes.
 *
 * ACI has four volume kinds: emptyDir, secret (a flat map file name → base64
 * content), azureFile and gitRepo. Secret, ConfigMap, downward API and projected
 * volumes all become ACI secret volumes with their files computed here. ACI has no
 * file modes, so defaultMode/mode are not applied (documented in ANNOTATIONS.md).
 * An ACI secret volume holds files at its top level only, so files in subdirectories
 * (`items[].path: conf/app.yaml`) go into one more ACI secret volume per directory,
 * mounted at that subdirectory of the pod's mount path (see pod-to-group.ts).
 */
import type {
  V1DownwardAPIVolumeFile,
  V1KeyToPath,
  V1Pod,
  V1Volume,
  V1VolumeProjection,
} from '@kubernetes/client-node';
import type { Volume } from '@azure/arm-containerinstance';
import { PodRejectedError, TransientProviderError, type PodContext } from '../../../core/provider.js';
import { parseQuantity } from '../../../common/quantity.js';

/** Value of a container's resource in base units (cores, bytes), for resourceFieldRef. */
export type ResourceLookup = (container: string, resource: string) => number | undefined;

type Files = Map<string, string>;

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64');
}

/**
 * A file path inside a volume: relative, no empty, '.' or '..' segment. Nested paths
 * (`a/b`) are kept: each directory becomes its own ACI secret volume (see splitByDirectory).
 */
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

function pickItems(
  data: Record<string, string>,
  items: readonly V1KeyToPath[] | undefined,
  optional: boolean,
  what: string,
  field: string,
  into: Files,
): void {
  if (!items || items.length === 0) {
    for (const [k, v] of Object.entries(data)) {
      checkFileName(k, `${field} (key ${k})`);
      into.set(k, v);
    }
    return;
  }
  items.forEach((it, i) => {
    checkFileName(it.path, `${field}.items[${i}].path`);
    const v = data[it.key];
    if (v === undefined) {
      if (optional) return;
      throw new TransientProviderError('KeyNotFound', `${what} has no key '${it.key}' (${field}.items[${i}].key)`);
    }
    into.set(it.path, v);
  });
}

async function secretFiles(
  ctx: PodContext,
  src: { secretName?: string; name?: string; items?: V1KeyToPath[]; optional?: boolean },
  field: string,
  into: Files,
): Promise<void> {
  const name = src.secretName ?? src.name;
  if (!name) throw new PodRejectedError('InvalidPod', `${field}: secret name is empty`, field);
  const secret = await ctx.getSecret(name);
  if (!secret) {
    if (src.optional) return;
    throw new TransientProviderError('SecretNotFound', `secret "${name}" not found (${field})`);
  }
  pickItems(secret.data ?? {}, src.items, src.optional ?? false, `secret "${name}"`, field, into);
}

async function configMapFiles(
  ctx: PodContext,
  src: { name?: string; items?: V1KeyToPath[]; optional?: boolean },
  field: string,
  into: Files,
): Promise<void> {
  const name = src.name;
  if (!name) throw new PodRejectedError('InvalidPod', `${field}: configMap name is empty`, field);
  const cm = await ctx.getConfigMap(name);
  if (!cm) {
    if (src.optional) return;
    throw new TransientProviderError('ConfigMapNotFound', `configmap "${name}" not found (${field})`);
  }
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(cm.data ?? {})) data[k] = b64(v);
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) data[k] = v;
  pickItems(data, src.items, src.optional ?? false, `configmap "${name}"`, field, into);
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
        throw new PodRejectedError(
          'UnsupportedField',
          `${field}.fieldRef.fieldPath: '${p}' is not available before the pod runs on Azure Container Instances`,
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
  field: string,
  into: Files,
  resources: ResourceLookup,
): void {
  (items ?? []).forEach((f, i) => {
    checkFileName(f.path, `${field}.items[${i}].path`);
    into.set(f.path, b64(downwardValue(pod, f, `${field}.items[${i}]`, resources)));
  });
}

async function projectedFiles(
  pod: V1Pod,
  ctx: PodContext,
  sources: readonly V1VolumeProjection[],
  field: string,
  into: Files,
  resources: ResourceLookup,
): Promise<void> {
  for (const [i, s] of sources.entries()) {
    const f = `${field}.sources[${i}]`;
    if (s.secret) await secretFiles(ctx, s.secret, `${f}.secret`, into);
    else if (s.configMap) await configMapFiles(ctx, s.configMap, `${f}.configMap`, into);
    else if (s.downwardAPI) downwardFiles(pod, s.downwardAPI.items, `${f}.downwardAPI`, into, resources);
    else if (s.serviceAccountToken) {
      const t = s.serviceAccountToken;
      checkFileName(t.path, `${f}.serviceAccountToken.path`);
      if (!ctx.getServiceAccountToken) {
        throw new PodRejectedError(
          'UnsupportedField',
          `${f}.serviceAccountToken: this node cannot mint service account tokens`,
          `${f}.serviceAccountToken`,
        );
      }
      const token = await ctx.getServiceAccountToken(t.audience, t.expirationSeconds ?? 3600);
      if (token === undefined)
        throw new TransientProviderError(
          'TokenUnavailable',
          `no service account token yet for ${f}.serviceAccountToken`,
        );
      into.set(t.path, b64(token));
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

/**
 * One pod volume as ACI volumes: `subdir` '' is the pod's mount path itself, 'a/b' the
 * directory under it where that ACI volume is mounted. The first part is named as the pod's
 * volume; pod-to-group.ts names the others.
 */
export interface VolumePart {
  subdir: string;
  volume: Omit<Volume, 'name'>;
}

/** Files by directory (flat names in each), parents before children. */
function splitByDirectory(files: Files, field: string): Map<string, Files> {
  const dirs = new Map<string, Files>();
  for (const [path, content] of files) {
    const cut = path.lastIndexOf('/');
    const dir = cut < 0 ? '' : path.slice(0, cut);
    let m = dirs.get(dir);
    if (!m) dirs.set(dir, (m = new Map<string, string>()));
    m.set(path.slice(cut + 1), content);
  }
  // A file and a directory of the same name cannot both exist (the kubelet fails such a pod too).
  for (const dir of dirs.keys()) {
    const parts = dir.split('/');
    for (let i = 1; i <= parts.length && dir !== ''; i++) {
      const parent = parts.slice(0, i - 1).join('/');
      const name = parts[i - 1] ?? '';
      if (dirs.get(parent)?.has(name)) {
        throw new PodRejectedError(
          'InvalidPod',
          `${field}: '${parent ? `${parent}/` : ''}${name}' is both a file and a directory`,
          field,
        );
      }
    }
  }
  return new Map([...dirs].sort(([a], [b]) => a.split('/').length - b.split('/').length || a.localeCompare(b)));
}

function fromFiles(files: Files, field: string): VolumePart[] {
  // An empty secret volume is refused by ACI; an empty directory is what the pod expects.
  if (files.size === 0) return [{ subdir: '', volume: { emptyDir: {} } }];
  return [...splitByDirectory(files, field)].map(([subdir, f]) => ({
    subdir,
    volume: { secret: Object.fromEntries(f) },
  }));
}

/** Maps one pod volume to one ACI volume or, for files in subdirectories, several. */
export async function mapVolumeParts(
  pod: V1Pod,
  ctx: PodContext,
  v: V1Volume,
  index: number,
  resources: ResourceLookup,
): Promise<VolumePart[]> {
  const field = `spec.volumes[${index}]`;
  const files: Files = new Map();
  if (v.secret) await secretFiles(ctx, v.secret, `${field}.secret`, files);
  else if (v.configMap) await configMapFiles(ctx, v.configMap, `${field}.configMap`, files);
  else if (v.downwardAPI) downwardFiles(pod, v.downwardAPI.items, `${field}.downwardAPI`, files, resources);
  else if (v.projected)
    await projectedFiles(pod, ctx, v.projected.sources ?? [], `${field}.projected`, files, resources);
  else {
    const { name: _name, ...volume } = await mapVolume(ctx, v, index);
    return [{ subdir: '', volume }];
  }
  return fromFiles(files, field);
}

/** Maps one pod volume that is not made of files (emptyDir, azureFile, gitRepo); throws PodRejectedError for kinds ACI cannot provide. */
async function mapVolume(ctx: PodContext, v: V1Volume, index: number): Promise<Volume> {
  const field = `spec.volumes[${index}]`;
  if (v.emptyDir) return { name: v.name, emptyDir: {} };
  if (v.azureFile) {
    const secret = await ctx.getSecret(v.azureFile.secretName);
    if (!secret)
      throw new TransientProviderError(
        'SecretNotFound',
        `secret "${v.azureFile.secretName}" not found (${field}.azureFile.secretName)`,
      );
    const account = secret.data?.['azurestorageaccountname'];
    const key = secret.data?.['azurestorageaccountkey'];
    if (!account || !key) {
      throw new PodRejectedError(
        'InvalidVolume',
        `${field}.azureFile: secret "${v.azureFile.secretName}" must hold azurestorageaccountname and azurestorageaccountkey`,
        `${field}.azureFile.secretName`,
      );
    }
    return {
      name: v.name,
      azureFile: {
        shareName: v.azureFile.shareName,
        readOnly: v.azureFile.readOnly ?? false,
        storageAccountName: Buffer.from(account, 'base64').toString('utf8'),
        storageAccountKey: Buffer.from(key, 'base64').toString('utf8'),
      },
    };
  }
  if (v.gitRepo) {
    return {
      name: v.name,
      gitRepo: {
        repository: v.gitRepo.repository,
        ...(v.gitRepo.directory ? { directory: v.gitRepo.directory } : {}),
        ...(v.gitRepo.revision ? { revision: v.gitRepo.revision } : {}),
      },
    };
  }
  const kind = Object.entries(v).find(([k, val]) => k !== 'name' && val != null)?.[0] ?? 'unknown';
  throw new PodRejectedError(
    'UnsupportedVolume',
    `${field}.${kind}: volume type '${kind}' is not supported by Azure Container Instances (supported: emptyDir, secret, configMap, downwardAPI, projected, azureFile, gitRepo)`,
    `${field}.${kind}`,
  );
}
