/**
 * imagePullSecrets (.dockercfg and .dockerconfigjson) → ACI imageRegistryCredentials.
 */
import type { V1Secret } from '@kubernetes/client-node';
import type { ImageRegistryCredential } from '@azure/arm-containerinstance';

interface DockerAuth {
  username?: string;
  password?: string;
  auth?: string;
}

function toCredential(server: string, a: DockerAuth): ImageRegistryCredential | undefined {
  let { username, password } = a;
  if ((!username || !password) && a.auth) {
    const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  }
  if (!username || !password) return undefined;
  // ACI wants a bare registry host; docker configs often carry a scheme and path.
  const host = server.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return { server: host, username, password };
}

/** Credentials in one pull secret; an unknown type or malformed content yields none. */
export function registryCredentialsFromSecret(secret: V1Secret): ImageRegistryCredential[] {
  const data = secret.data ?? {};
  let auths: Record<string, DockerAuth> | undefined;
  try {
    if (data['.dockerconfigjson']) {
      const parsed = JSON.parse(Buffer.from(data['.dockerconfigjson'], 'base64').toString('utf8')) as {
        auths?: Record<string, DockerAuth>;
      };
      auths = parsed.auths;
    } else if (data['.dockercfg']) {
      auths = JSON.parse(Buffer.from(data['.dockercfg'], 'base64').toString('utf8')) as Record<string, DockerAuth>;
    }
  } catch {
    return [];
  }
  const out: ImageRegistryCredential[] = [];
  for (const [server, a] of Object.entries(auths ?? {})) {
    if (typeof a !== 'object' || a === null) continue;
    const c = toCredential(server, a);
    if (c) out.push(c);
  }
  return out;
}
