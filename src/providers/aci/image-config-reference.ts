/**
 * An image reference split the way a container runtime reads it (distribution/reference's
 * ParseNormalizedNamed): `nginx` is `docker.io/library/nginx:latest`, the first path
 * component is a registry only when it looks like a host (a dot, a port, or `localhost`),
 * and a digest wins over a tag. The grammar itself is checked by common/image-reference.ts.
 */
import { imageReferenceProblem } from '../../common/image-reference.js';

export const DOCKER_HUB = 'docker.io';
/** Docker Hub's registry API answers on this host, not on docker.io. */
const DOCKER_HUB_API = 'registry-1.docker.io';

export interface ImageReference {
  /** The registry as users and pull secrets name it (docker.io, myreg.azurecr.io, 127.0.0.1:5000). */
  registry: string;
  /** host[:port] the distribution API is served on. */
  apiHost: string;
  /** The repository inside the registry (library/nginx). */
  repository: string;
  /** A digest (sha256:…) when the reference pins one, else the tag (default latest). */
  reference: string;
  /** True when `reference` is a digest: what it names never changes. */
  pinned: boolean;
}

export class ImageReferenceParseError extends Error {
  override readonly name = 'ImageReferenceParseError';
}

export function parseImageReference(image: string): ImageReference {
  const problem = imageReferenceProblem(image);
  if (problem) throw new ImageReferenceParseError(`image reference "${image}" is invalid: ${problem}`);
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  // A tag is what follows the last ':' after the last '/' (a ':' before it is a registry port).
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  let registry = DOCKER_HUB;
  let repository = rest;
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    repository = rest.slice(slash + 1);
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  return {
    registry,
    apiHost: registry === DOCKER_HUB ? DOCKER_HUB_API : registry,
    repository,
    reference: digest ?? tag ?? 'latest',
    pinned: digest !== undefined,
  };
}

/**
 * Whether a registry host is on this machine's loopback (127.0.0.0/8, ::1, localhost). Such a
 * registry is spoken to over plain HTTP, as Docker and containerd treat loopback registries as
 * insecure by default; every other registry only over HTTPS.
 */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

/** Docker Hub is named several ways in docker configs; every other registry by its host. */
export function registryNamesMatch(credentialServer: string, registry: string): boolean {
  const norm = (s: string) => {
    const h = s
      .toLowerCase()
      .replace(/^https?:\/\//, '')
      .replace(/\/.*$/, '');
    return h === 'index.docker.io' || h === DOCKER_HUB_API ? DOCKER_HUB : h;
  };
  const server = norm(credentialServer);
  const reg = norm(registry);
  if (server === reg) return true;
  // A kubelet's credential matching: `*.azurecr.io` stands for one DNS label.
  if (server.startsWith('*.')) {
    const suffix = server.slice(1);
    return reg.endsWith(suffix) && !reg.slice(0, -suffix.length).includes('.');
  }
  return false;
}
