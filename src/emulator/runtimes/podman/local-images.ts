/**
 * A local busybox image for machines without a container registry (the demo and
 * the tests): a rootfs from Debian's busybox-static, imported with `podman import`.
 * The tag is a hash of everything that goes into the image, so each podman store
 * builds it once.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type { PodmanCli } from './podman-cli.js';

const BUSYBOX = '/bin/busybox';
/** Bump when the recipe below changes. */
const RECIPE = 'busybox-rootfs-v1';
const IMAGE_CONFIG = ['CMD ["/bin/sh"]', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

function busyboxApplets(): string[] {
  return execFileSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' })
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && !s.includes('..'));
}

function contentHash(applets: string[]): string {
  return createHash('sha256')
    .update(RECIPE)
    .update(readFileSync(BUSYBOX))
    .update(applets.join('\n'))
    .update(IMAGE_CONFIG.join('\n'))
    .digest('hex')
    .slice(0, 16);
}

/** Writes the rootfs tarball, once per machine, and returns its path. */
function busyboxTarball(hash: string, applets: string[]): string {
  const cacheDir = join(tmpdir(), 'aci-connector-images');
  const tarball = join(cacheDir, `busybox-${hash}.tar`);
  if (existsSync(tarball)) return tarball;
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, 'build-'));
  try {
    const root = join(work, 'rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    writeFileSync(join(root, 'bin', 'busybox'), readFileSync(BUSYBOX), { mode: 0o755 });
    for (const applet of applets) {
      const path = join(root, applet);
      if (existsSync(path)) continue;
      mkdirSync(dirname(path), { recursive: true });
      symlinkSync(relative(dirname(path), join(root, 'bin', 'busybox')), path);
    }
    for (const dir of ['tmp', 'etc', 'root', 'www', 'proc', 'sys', 'dev'])
      mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(
      join(root, 'etc', 'passwd'),
      'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
    );
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    execFileSync('chmod', ['1777', join(root, 'tmp')]);
    const partial = join(work, 'rootfs.tar');
    execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', partial, '.']);
    renameSync(partial, tarball);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return tarball;
}

/** Ensures the busybox test image is in the podman store behind `cli`; returns its name. */
export async function busyboxImage(cli: PodmanCli): Promise<string> {
  if (!existsSync(BUSYBOX))
    throw new Error(`${BUSYBOX} is missing: install Debian's busybox-static (scripts/lib.sh does)`);
  const applets = busyboxApplets();
  const hash = contentHash(applets);
  const image = `localhost/aci-local/busybox:${hash}`;
  if ((await cli.exec(['image', 'exists', image])).code === 0) return image;
  const tarball = busyboxTarball(hash, applets);
  const args = ['import', '--quiet'];
  for (const c of IMAGE_CONFIG) args.push('--change', c);
  args.push(tarball, image);
  await cli.run(args, { timeoutMs: 300_000 });
  return image;
}
