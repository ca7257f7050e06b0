/**
 * Image pulls of the podman runtime, as ACI makes them: an image from a registry is pulled
 * when a group is provisioned. Two kinds of names are treated apart:
 * - a registry on this machine's loopback (`127.0.0.1:PORT/…`, `localhost:PORT/…`, the tests'
 *   distribution registry): always pulled, over plain HTTP (`--tls-verify=false`, for loopback
 *   only, as Docker treats loopback registries as insecure by default), so a test's pull is a
 *   real pull even when a tag was pushed again;
 * - any other name: used when already in the store (the local images of an offline machine,
 *   `localhost/aci-local/…`), pulled otherwise.
 * The group's imageRegistryCredentials for the image's registry go to podman in a private auth
 * file (`--authfile`), never on its command line, where `ps` would show them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PodmanCli } from './podman-cli.js';

export interface PullCredential {
  server: string;
  username: string;
  password: string;
}

/** The registry part of a reference with an explicit port on loopback, else undefined. */
export function loopbackRegistryOf(image: string): string | undefined {
  const slash = image.indexOf('/');
  if (slash < 0) return undefined;
  const first = image.slice(0, slash);
  const m = /^(?:(localhost)|(127(?:\.\d{1,3}){3})|\[(::1)\]):(\d+)$/.exec(first);
  return m ? first : undefined;
}

/** The registry an image name pulls from, as containers/image reads it (docker.io when the name has none). */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  const first = slash >= 0 ? image.slice(0, slash) : '';
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) return first.toLowerCase();
  return 'docker.io';
}

function credentialFor(image: string, credentials: readonly PullCredential[]): PullCredential | undefined {
  const alias = (h: string) => (h === 'index.docker.io' || h === 'registry-1.docker.io' ? 'docker.io' : h);
  const registry = alias(registryOf(image));
  return credentials.find(
    (c) =>
      alias(
        c.server
          .toLowerCase()
          .replace(/^https?:\/\//, '')
          .replace(/\/.*$/, ''),
      ) === registry,
  );
}

/** Resolves undefined when the image is in the store (pulled if need be), else the reason podman gave. */
export async function ensureImage(
  cli: PodmanCli,
  image: string,
  opts: { timeoutMs: number; credentials?: readonly PullCredential[]; tmpDir: string },
): Promise<string | undefined> {
  const loopback = loopbackRegistryOf(image) !== undefined;
  if (!loopback && (await cli.exec(['image', 'exists', image])).code === 0) return undefined;
  const args = ['pull', '--quiet', ...(loopback ? ['--tls-verify=false'] : [])];
  const credential = credentialFor(image, opts.credentials ?? []);
  let authDir: string | undefined;
  if (credential) {
    authDir = mkdtempSync(join(opts.tmpDir, 'auth-'));
    const authFile = join(authDir, 'auth.json');
    const auth = Buffer.from(`${credential.username}:${credential.password}`).toString('base64');
    writeFileSync(authFile, JSON.stringify({ auths: { [registryOf(image)]: { auth } } }), { mode: 0o600 });
    args.push('--authfile', authFile);
  }
  args.push(image);
  try {
    const pull = await cli.exec(args, { timeoutMs: opts.timeoutMs });
    if (pull.code === 0) return undefined;
    const lines = pull.stderr.trim().split('\n');
    return lines[lines.length - 1]?.replace(/^Error:\s*/, '') || `podman pull exited with ${pull.code}`;
  } finally {
    if (authDir) rmSync(authDir, { recursive: true, force: true });
  }
}
