/**
 * Pod volumes → ACI volumes.
 *
 * ACI has four volume kinds: emptyDir, secret (a flat map file name → base64
 * content), azureFile and gitRepo. Secret, ConfigMap, downward API and projected
 * volumes all become ACI secret volumes with their files computed here. ACI has no
 * file modes, so defaultMode/mode are not applied (documented in ANNOTATIONS.md).
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

function checkFileName(path: string, field: string): void {
  if (!path || path.includes('/') || path === '.' || path === '..') {
    throw new PodRejectedError(
      'UnsupportedField',
      `${field}: '${path}' — Azure Container Instances secret volumes hold files at their top level only (no '/' in paths)`,
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

function downwardFiles(pod: V1Pod, items: readonly V1DownwardAPIVolumeFile[] | undefined, field: string, into: Files, resources: ResourceLookup): void {
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
      if (token === undefined) throw new TransientProviderError('TokenUnavailable', `no service account token yet for ${f}.serviceAccountToken`);
      into.set(t.path, b64(token));
    } else {
      const kind = Object.entries(s).find(([, val]) => val != null)?.[0] ?? 'unknown';
      throw new PodRejectedError('UnsupportedVolume', `${f}.${kind}: projected source '${kind}' is not supported`, `${f}.${kind}`);
    }
  }
}

function fromFiles(name: string, files: Files): Volume {
  // An empty secret volume is refused by ACI; an empty directory is what the pod expects.
  if (files.size === 0) return { name, emptyDir: {} };
  return { name, secret: Object.fromEntries(files) };
}

/** Maps one pod volume; throws PodRejectedError for kinds ACI cannot provide. */
export async function mapVolume(pod: V1Pod, ctx: PodContext, v: V1Volume, index: number, resources: ResourceLookup): Promise<Volume> {
  const field = `spec.volumes[${index}]`;
  if (v.emptyDir) return { name: v.name, emptyDir: {} };
  if (v.secret) {
    const files: Files = new Map();
    await secretFiles(ctx, v.secret, `${field}.secret`, files);
    return fromFiles(v.name, files);
  }
  if (v.configMap) {
    const files: Files = new Map();
    await configMapFiles(ctx, v.configMap, `${field}.configMap`, files);
    return fromFiles(v.name, files);
  }
  if (v.downwardAPI) {
    const files: Files = new Map();
    downwardFiles(pod, v.downwardAPI.items, `${field}.downwardAPI`, files, resources);
    return fromFiles(v.name, files);
  }
  if (v.projected) {
    const files: Files = new Map();
    await projectedFiles(pod, ctx, v.projected.sources ?? [], `${field}.projected`, files, resources);
    return fromFiles(v.name, files);
  }
  if (v.azureFile) {
    const secret = await ctx.getSecret(v.azureFile.secretName);
    if (!secret) throw new TransientProviderError('SecretNotFound', `secret "${v.azureFile.secretName}" not found (${field}.azureFile.secretName)`);
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
