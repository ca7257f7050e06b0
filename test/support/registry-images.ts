/**
 * Test images for the loopback registry (devcluster/registry): built locally with podman on
 * the busybox base (support/images.ts: busybox-static through `podman import`), with a
 * Containerfile that sets ENTRYPOINT and CMD, then pushed with `podman push`. Nothing here
 * reaches a registry other than the test's own on 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PodmanCli } from '../../src/emulator/runtimes/podman/podman-cli.js';
import { busyboxImage } from './images.js';

export interface ImageRecipe {
  /** Files to COPY into the image: path in the image → content (mode 755, which COPY keeps). */
  files?: Record<string, string>;
  entrypoint?: string[];
  cmd?: string[];
}

function containerfile(base: string, r: ImageRecipe): string {
  const lines = [`FROM ${base}`];
  for (const path of Object.keys(r.files ?? {})) lines.push(`COPY ${fileNameFor(path)} ${path}`);
  if (r.entrypoint) lines.push(`ENTRYPOINT ${JSON.stringify(r.entrypoint)}`);
  if (r.cmd) lines.push(`CMD ${JSON.stringify(r.cmd)}`);
  return `${lines.join('\n')}\n`;
}

const fileNameFor = (path: string) => `f-${createHash('sha256').update(path).digest('hex').slice(0, 12)}`;

/**
 * Builds the recipe on the busybox base in the store behind `cli` (once per store: the tag is a
 * hash of the recipe) and returns the local name. No step runs a container, so the build needs
 * neither network nor a registry.
 */
export async function buildTestImage(cli: PodmanCli, recipe: ImageRecipe): Promise<string> {
  const base = await busyboxImage(cli);
  const file = containerfile(base, recipe);
  const hash = createHash('sha256')
    .update(file)
    .update(JSON.stringify(recipe.files ?? {}))
    .digest('hex')
    .slice(0, 16);
  const name = `localhost/aci-local/registry-test:${hash}`;
  if ((await cli.exec(['image', 'exists', name])).code === 0) return name;
  const ctx = mkdtempSync(join(tmpdir(), 'aci-image-build-'));
  try {
    writeFileSync(join(ctx, 'Containerfile'), file);
    for (const [path, content] of Object.entries(recipe.files ?? {}))
      writeFileSync(join(ctx, fileNameFor(path)), content, { mode: 0o755 });
    await cli.run(
      ['build', '--quiet', '--pull=never', '--network', 'none', '-t', name, '-f', join(ctx, 'Containerfile'), ctx],
      { timeoutMs: 300_000 },
    );
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return name;
}

/** Pushes a local image to `target` (`127.0.0.1:PORT/repo:tag`) over plain HTTP, with a test user's credentials if given. */
export async function pushTestImage(
  cli: PodmanCli,
  local: string,
  target: string,
  creds?: { username: string; password: string },
): Promise<void> {
  if (!/^127\.\d+\.\d+\.\d+:\d+\//.test(target))
    throw new Error(`test images go to loopback registries only, not ${target}`);
  const auth = creds ? ['--creds', `${creds.username}:${creds.password}`] : [];
  await cli.run(['push', '--quiet', '--tls-verify=false', ...auth, local, `docker://${target}`], {
    timeoutMs: 300_000,
  });
}
