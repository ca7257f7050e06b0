/**
 * The connector's container image for tests: built with podman from a clean clone of this
 * checkout's HEAD (devcluster/image/build.sh, on the local Debian 13 bases of base.sh),
 * in a podman store of its own that persists across runs, so the build's layers (npm ci)
 * are reused while package-lock.json stays the same.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../devcluster/cluster.js';
import { preparePodman } from '../../src/emulator/runtimes/podman/setup.js';
import type { PodmanCli } from '../../src/emulator/runtimes/podman/podman-cli.js';

const exec = promisify(execFile);

/** The podman store the image tests build in and run from (one per machine, like podmanTestStateDir). */
export function imagePodman(): PodmanCli {
  return preparePodman({
    stateDir: process.env.ACI_TEST_IMAGE_PODMAN_DIR ?? join(tmpdir(), 'aci-connector-image-podman'),
  }).cli;
}

export interface BuiltImage {
  image: string;
  /** The commit the clone was checked out at. */
  commit: string;
  /** build.sh's stderr (the podman build log). */
  log: string;
  seconds: number;
}

/**
 * Clones HEAD into a temporary folder (committed files only: what a user's checkout holds)
 * and builds the image from that clone. Uncommitted changes of the working tree are not in it.
 */
export async function buildImageFromCleanClone(cli: PodmanCli, image: string): Promise<BuiltImage> {
  const commit = (await exec('git', ['-C', repoRoot, 'rev-parse', 'HEAD'])).stdout.trim();
  const dir = mkdtempSync(join(tmpdir(), 'aci-connector-clone-'));
  const started = Date.now();
  try {
    await exec('git', ['clone', '--quiet', '--no-checkout', '--no-hardlinks', repoRoot, dir]);
    await exec('git', ['-C', dir, 'checkout', '--quiet', '--detach', commit]);
    const { stdout, stderr } = await exec(
      'bash',
      [join(dir, 'devcluster/image/build.sh'), '-t', image, '-C', dir, '--', ...cli.globalArgs()],
      {
        env: cli.env(),
        maxBuffer: 256 * 1024 * 1024,
        timeout: 25 * 60_000,
      },
    );
    const built = stdout.trim().split('\n').pop() ?? '';
    if (built !== image) throw new Error(`build.sh printed ${built}, not ${image}:\n${stderr}`);
    return { image, commit, log: stderr, seconds: (Date.now() - started) / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
