/**
 * Host folders behind a group's volumes, bind-mounted into its containers.
 * emptyDir and secret live in the group's folder and go with it; an Azure file
 * share is emulated by a folder per account and share, shared across groups.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { RuntimeProvisionError, type RuntimeVolume } from '../../runtime.js';

const execFileAsync = promisify(execFile);

function safeSegment(value: string, what: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(value) || value === '.' || value === '..') {
    throw new RuntimeProvisionError('InvalidVolume', `${what} '${value}' is not a valid name for a folder`);
  }
  return value;
}

/** Resolves `child` under `parent`, refusing paths that climb out of it. */
function inside(parent: string, child: string, what: string): string {
  const p = resolve(parent, child);
  if (p !== resolve(parent) && !p.startsWith(resolve(parent) + sep)) {
    throw new RuntimeProvisionError('InvalidVolume', `${what} '${child}' leaves the volume`);
  }
  return p;
}

async function cloneGitRepo(
  dir: string,
  repo: { repository: string; directory?: string; revision?: string },
  volumeName: string,
): Promise<void> {
  if (repo.repository.startsWith('-') || repo.revision?.startsWith('-')) {
    throw new RuntimeProvisionError(
      'InvalidVolume',
      `gitRepo volume '${volumeName}' has an invalid repository or revision`,
    );
  }
  const defaultName =
    repo.repository
      .replace(/\/+$/, '')
      .split('/')
      .pop()
      ?.replace(/\.git$/, '') || 'repo';
  const target = repo.directory === '.' ? dir : inside(dir, repo.directory ?? defaultName, 'gitRepo directory');
  try {
    await execFileAsync('git', ['clone', '--quiet', '--', repo.repository, target], { timeout: 120_000 });
    if (repo.revision)
      await execFileAsync('git', ['-C', target, 'checkout', '--quiet', repo.revision, '--'], { timeout: 60_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    const detail = err.code === 'ENOENT' ? 'git is not installed' : (err.stderr ?? err.message).trim();
    throw new RuntimeProvisionError('FailedMount', `gitRepo volume '${volumeName}' could not be cloned: ${detail}`);
  }
}

/** Creates the host folders of every volume; returns volume name → host path. */
export async function prepareVolumes(
  groupDir: string,
  fileSharesDir: string,
  volumes: RuntimeVolume[],
): Promise<Map<string, { hostPath: string; readOnly: boolean }>> {
  const out = new Map<string, { hostPath: string; readOnly: boolean }>();
  // Traversable, not listable: container users must reach their mounts, other host users should not browse.
  mkdirSync(groupDir, { recursive: true, mode: 0o711 });
  for (const v of volumes) {
    const name = safeSegment(v.name, 'volume name');
    if (v.azureFile) {
      const share = join(
        fileSharesDir,
        safeSegment(v.azureFile.storageAccountName, 'storage account'),
        safeSegment(v.azureFile.shareName, 'share'),
      );
      mkdirSync(share, { recursive: true });
      out.set(v.name, { hostPath: share, readOnly: v.azureFile.readOnly ?? false });
      continue;
    }
    const dir = join(groupDir, 'volumes', name);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (v.secret) {
      for (const [file, content] of Object.entries(v.secret)) {
        writeFileSync(join(dir, safeSegment(file, 'secret file name')), content, { mode: 0o644 });
      }
      chmodSync(dir, 0o755);
      out.set(v.name, { hostPath: dir, readOnly: true });
    } else if (v.gitRepo) {
      await cloneGitRepo(dir, v.gitRepo, v.name);
      out.set(v.name, { hostPath: dir, readOnly: false });
    } else {
      out.set(v.name, { hostPath: dir, readOnly: false });
    }
  }
  return out;
}

/**
 * A mount inside another of the same container's read-only volumes (a secret volume for a
 * subdirectory of a projected volume) needs its mount point in the outer volume's folder:
 * the container runtime cannot create it through a read-only mount.
 */
export function nestedMountPoints(
  mounts: readonly { name: string; mountPath: string }[],
  volumes: ReadonlyMap<string, { hostPath: string; readOnly: boolean }>,
): void {
  for (const inner of mounts) {
    for (const outer of mounts) {
      const base = outer.mountPath.replace(/\/+$/, '');
      if (outer === inner || !inner.mountPath.startsWith(`${base}/`)) continue;
      const host = volumes.get(outer.name)?.hostPath;
      if (host)
        mkdirSync(inside(host, inner.mountPath.slice(base.length + 1), 'mount path'), { recursive: true, mode: 0o755 });
    }
  }
}
