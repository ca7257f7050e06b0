/**
 * Pod volumes → ACI volumes.
 *
 * ACI has four volume kinds: emptyDir, secret (a flat map file name → base64
 * content), azureFile and gitRepo. Secret, ConfigMap, downward API and projected
 * volumes all become ACI secret volumes holding the files the core resolved
 * (PodContext.volumeFiles, src/core/volume-files.ts). ACI has no file modes, so the
 * files' modes are not applied (documented in ANNOTATIONS.md).
 * An ACI secret volume holds files at its top level only, so files in subdirectories
 * (`items[].path: conf/app.yaml`) go into one more ACI secret volume per directory,
 * mounted at that subdirectory of the pod's mount path (see pod-to-group.ts).
 */
import type { V1Volume } from '@kubernetes/client-node';
import type { Volume } from '@azure/arm-containerinstance';
import {
  isFileVolume,
  PodRejectedError,
  TransientProviderError,
  type PodContext,
  type VolumeFiles,
} from '../../../core/provider.js';

type Files = Map<string, string>;

/**
 * One pod volume as ACI volumes: `subdir` '' is the pod's mount path itself, 'a/b' the
 * directory under it where that ACI volume is mounted. The first part is named as the pod's
 * volume; pod-to-group.ts names the others.
 */
export interface VolumePart {
  subdir: string;
  volume: Omit<Volume, 'name'>;
}

/**
 * Files by directory (flat names in each), parents before children. The core already refused a
 * path that is both a file and a directory.
 */
function splitByDirectory(files: VolumeFiles): Map<string, Files> {
  const dirs = new Map<string, Files>();
  for (const [path, { content }] of files) {
    const cut = path.lastIndexOf('/');
    const dir = cut < 0 ? '' : path.slice(0, cut);
    let m = dirs.get(dir);
    if (!m) dirs.set(dir, (m = new Map<string, string>()));
    m.set(path.slice(cut + 1), content);
  }
  return new Map([...dirs].sort(([a], [b]) => a.split('/').length - b.split('/').length || a.localeCompare(b)));
}

function fromFiles(files: VolumeFiles): VolumePart[] {
  // An empty secret volume is refused by ACI; an empty directory is what the pod expects.
  if (files.size === 0) return [{ subdir: '', volume: { emptyDir: {} } }];
  return [...splitByDirectory(files)].map(([subdir, f]) => ({
    subdir,
    volume: { secret: Object.fromEntries(f) },
  }));
}

/** Maps one pod volume to one ACI volume or, for files in subdirectories, several. */
export async function mapVolumeParts(ctx: PodContext, v: V1Volume, index: number): Promise<VolumePart[]> {
  const files = (await ctx.volumeFiles()).get(v.name);
  if (files) return fromFiles(files);
  // The core resolves every file volume before it calls the provider; a missing entry is a bug.
  if (isFileVolume(v)) throw new Error(`spec.volumes[${index}] (${v.name}): the core handed no resolved files`);
  const { name: _name, ...volume } = await mapVolume(ctx, v, index);
  return [{ subdir: '', volume }];
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
