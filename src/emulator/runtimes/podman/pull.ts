/**
 * Image pulls of the podman runtime, as ACI makes them: an image from a registry is pulled
 * when a group is provisioned. Two kinds of names are treated apart:
 * - a registry on this machine's loopback (`127.0.0.1:PORT/…`, `localhost:PORT/…`, the tests'
 *   distribution registry): always pulled, over plain HTTP (`--tls-verify=false`, for loopback
 *   only, as Docker treats loopback registries as insecure by default), so a test's pull is a
 *   real pull even when a tag was pushed again;
 * - any other name: used when already in the store (the local images of an offline machine,
 *   `localhost/aci-local/…`), pulled otherwise.
 */
import type { PodmanCli } from './podman-cli.js';

/** The registry part of a reference with an explicit port on loopback, else undefined. */
export function loopbackRegistryOf(image: string): string | undefined {
  const slash = image.indexOf('/');
  if (slash < 0) return undefined;
  const first = image.slice(0, slash);
  const m = /^(?:(localhost)|(127(?:\.\d{1,3}){3})|\[(::1)\]):(\d+)$/.exec(first);
  return m ? first : undefined;
}

/** Resolves undefined when the image is in the store (pulled if need be), else the reason podman gave. */
export async function ensureImage(cli: PodmanCli, image: string, opts: { timeoutMs: number }): Promise<string | undefined> {
  const loopback = loopbackRegistryOf(image) !== undefined;
  if (!loopback && (await cli.exec(['image', 'exists', image])).code === 0) return undefined;
  const args = ['pull', '--quiet', ...(loopback ? ['--tls-verify=false'] : []), image];
  const pull = await cli.exec(args, { timeoutMs: opts.timeoutMs });
  if (pull.code === 0) return undefined;
  const lines = pull.stderr.trim().split('\n');
  return lines[lines.length - 1]?.replace(/^Error:\s*/, '') || `podman pull exited with ${pull.code}`;
}
