/**
 * The ENTRYPOINTs a pod's mapping needs: for each container that sets `args` without
 * `command` (and whose entrypoint no annotation gives), the image's own, from its registry.
 * Kubernetes runs such a container as `ENTRYPOINT + args` (args replace CMD); an image
 * without ENTRYPOINT runs `args` as the command. ACI can only replace the whole command line,
 * so the connector writes that argv out as ACI's `command`.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { ImageRegistryCredential } from '@azure/arm-containerinstance';
import { TransientProviderError } from '../../core/provider.js';
import { ImageConfigError, type ImageConfigSource, type Platform, type RegistryCredential } from './image-config.js';

/** The reason a kubelet shows for an image it could not fetch; the core retries with backoff. */
export const IMAGE_CONFIG_REASON = 'ErrImagePull';

export function needsImageEntrypoint(c: V1Container, overrides: Readonly<Record<string, string[]>>): boolean {
  return (c.args?.length ?? 0) > 0 && (c.command?.length ?? 0) === 0 && overrides[c.name] === undefined;
}

/** ACI runs Linux groups on linux/amd64 and Windows groups on windows/amd64. */
export function platformFor(osType: 'Linux' | 'Windows'): Platform {
  return { os: osType === 'Windows' ? 'windows' : 'linux', architecture: 'amd64' };
}

/**
 * Container name → the image's ENTRYPOINT (possibly empty), for the containers that need one.
 * Throws TransientProviderError when a registry cannot answer: the pod stays Pending with the
 * reason, and the core retries with backoff, as a kubelet retries a failed pull.
 */
export async function resolveImageEntrypoints(
  pod: V1Pod,
  overrides: Readonly<Record<string, string[]>>,
  credentials: readonly ImageRegistryCredential[],
  osType: 'Linux' | 'Windows',
  source: ImageConfigSource,
): Promise<Record<string, string[]>> {
  const spec = pod.spec;
  const wanted = [
    ...(spec?.initContainers ?? []).map((c, i) => ({ c, path: `spec.initContainers[${i}]` })),
    ...(spec?.containers ?? []).map((c, i) => ({ c, path: `spec.containers[${i}]` })),
  ].filter(({ c }) => c.image && needsImageEntrypoint(c, overrides));
  if (wanted.length === 0) return {};
  const creds: RegistryCredential[] = credentials.flatMap((c) =>
    c.server && c.username && c.password ? [{ server: c.server, username: c.username, password: c.password }] : [],
  );
  const platform = platformFor(osType);
  const out: Record<string, string[]> = {};
  // Side by side: one image's slow registry should not add to another's.
  const results = await Promise.allSettled(
    wanted.map(({ c }) => source.resolve(c.image ?? '', { credentials: creds, platform })),
  );
  results.forEach((r, i) => {
    const { c, path } = wanted[i]!;
    if (r.status === 'fulfilled') {
      out[c.name] = r.value.entrypoint;
      return;
    }
    const why = r.reason instanceof ImageConfigError || r.reason instanceof Error ? r.reason.message : String(r.reason);
    throw new TransientProviderError(
      IMAGE_CONFIG_REASON,
      `${path} (${c.name}) sets args without command, so the connector reads the ENTRYPOINT of image "${c.image}" from its registry ` +
        `(ACI can only replace the whole command line), and that failed: ${why}. ` +
        'Retrying with backoff; setting command as well avoids the lookup.',
      undefined,
      { cause: r.reason },
    );
  });
  return out;
}
