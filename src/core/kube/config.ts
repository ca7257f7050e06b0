/**
 * Loads the connector's API credentials without @kubernetes/client-node: importing that library costs
 * 0.6 s and ~75 MB of RSS before the node can register (its KubeConfig module pulls in all 2,556
 * generated API and model files). A node's kubeconfig uses a small part of the format, read here:
 * - --kubeconfig (else $KUBECONFIG, else ~/.kube/config): the current context's cluster (`server`,
 *   `certificate-authority[-data]`, `insecure-skip-tls-verify`, `tls-server-name`) and user
 *   (`client-certificate[-data]`, `client-key[-data]`, `token`, `tokenFile`); relative paths are relative
 *   to the kubeconfig's directory, as in client-go;
 * - in a pod (KUBERNETES_SERVICE_HOST/PORT): the ServiceAccount's CA and token, the token file re-read
 *   as client-go re-reads it (it is rotated).
 * Anything else (an exec plugin, an auth provider, basic auth, a proxy-url, several files in $KUBECONFIG)
 * falls back to client-node's KubeConfig, imported only then (`await import`), which knows them all.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { isIPv6 } from 'node:net';
import yaml from 'js-yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { errorMessage } from '../../common/errors.js';
import { clientNodeAccess, staticAccess, type ClusterCredentials, type KubeAccess } from './access.js';

export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A kubeconfig this module reads, or why it needs client-node. */
export type Parsed = { kind: 'simple'; credentials: ClusterCredentials } | { kind: 'fallback'; why: string };

function named(list: unknown, field: string, name: string | undefined): Record<string, unknown> | undefined {
  if (!Array.isArray(list) || name === undefined) return undefined;
  const entry = (list as Array<Record<string, unknown> | null>).find((e) => e?.name === name);
  const v = entry?.[field];
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
}

function str(o: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The current context's cluster and user from a kubeconfig's text; `path` resolves relative file
 * names. Files named are read now (certificate and token files are read again later, see access.ts).
 */
export function parseKubeConfig(text: string, path: string): Parsed {
  const doc = yaml.load(text) as Record<string, unknown> | null | undefined;
  if (!doc || typeof doc !== 'object') throw new Error('not a kubeconfig (empty or not a mapping)');
  const contextName = str(doc, 'current-context');
  const context = named(doc.contexts, 'context', contextName);
  const cluster = named(doc.clusters, 'cluster', str(context, 'cluster'));
  const user = named(doc.users, 'user', str(context, 'user')) ?? {};
  if (!cluster || !str(cluster, 'server')) throw new NoClusterError('no current cluster');
  for (const key of ['exec', 'auth-provider', 'username', 'password', 'as', 'as-groups'])
    if (user[key] !== undefined) return { kind: 'fallback', why: `user.${key}` };
  if (cluster['proxy-url'] !== undefined) return { kind: 'fallback', why: 'cluster.proxy-url' };
  const base = dirname(path);
  const file = (p: string | undefined) => (p === undefined ? undefined : isAbsolute(p) ? p : join(base, p));
  const data = (b64: string | undefined) => (b64 === undefined ? undefined : Buffer.from(b64, 'base64'));
  const caFile = file(str(cluster, 'certificate-authority'));
  const certFile = file(str(user, 'client-certificate'));
  const keyFile = file(str(user, 'client-key'));
  const tokenFile = file(str(user, 'tokenFile') ?? str(user, 'token-file'));
  const skip = cluster['insecure-skip-tls-verify'];
  const c: ClusterCredentials = {
    server: str(cluster, 'server') as string,
    ...(skip === true || skip === 'true' ? { skipTLSVerify: true } : {}),
  };
  const tlsServerName = str(cluster, 'tls-server-name');
  if (tlsServerName) c.tlsServerName = tlsServerName;
  const ca = data(str(cluster, 'certificate-authority-data')) ?? (caFile ? readFileSync(caFile) : undefined);
  if (ca) c.ca = ca;
  const certData = data(str(user, 'client-certificate-data'));
  const keyData = data(str(user, 'client-key-data'));
  if (certData) c.cert = certData;
  else if (certFile) {
    c.cert = readFileSync(certFile);
    c.certFile = certFile;
  }
  if (keyData) c.key = keyData;
  else if (keyFile) {
    c.key = readFileSync(keyFile);
    c.keyFile = keyFile;
  }
  const token = str(user, 'token');
  if (token) c.token = token;
  else if (tokenFile) {
    readFileSync(tokenFile); // fails now, not at the first request
    c.tokenFile = tokenFile;
  }
  return { kind: 'simple', credentials: c };
}

class NoClusterError extends Error {}

/** In a pod: the API server's Service address, the ServiceAccount's CA and token (re-read: it is rotated). */
export function inClusterCredentials(
  env: NodeJS.ProcessEnv = process.env,
  dir: string = SERVICE_ACCOUNT_DIR,
): ClusterCredentials {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '';
  // As client-node's loadFromCluster: these ports are plain HTTP.
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  const tokenFile = join(dir, 'token');
  readFileSync(tokenFile); // fails now, not at the first request
  return {
    server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt')),
    tokenFile,
  };
}

function inCluster(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT);
}

/**
 * --kubeconfig, else in-cluster, else $KUBECONFIG (or ~/.kube/config): the API server's address and
 * credentials. Errors are KubeConfigErrors naming the file.
 */
export async function loadKubeAccess(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<KubeAccess> {
  const shown = path ?? env.KUBECONFIG ?? '(default)';
  try {
    if (!path && inCluster(env)) return staticAccess(inClusterCredentials(env));
    const files = path ? [path] : (env.KUBECONFIG ?? '').split(':').filter(Boolean);
    if (files.length > 1) return clientNodeAccess(await clientNodeKubeConfig(path, shown));
    const file = files[0] ?? join(homedir(), '.kube', 'config');
    const parsed = parseKubeConfig(readFileSync(file, 'utf8'), file);
    if (parsed.kind === 'simple') return staticAccess(parsed.credentials);
    return clientNodeAccess(await clientNodeKubeConfig(file, shown));
  } catch (err) {
    if (err instanceof KubeConfigError) throw err;
    if (err instanceof NoClusterError)
      throw new KubeConfigError(`no cluster in kubeconfig ${shown}: pass --kubeconfig or set KUBECONFIG`);
    throw new KubeConfigError(`cannot load kubeconfig ${shown}: ${errorMessage(err)}`);
  }
}

/**
 * client-node's KubeConfig for the same sources (TLS bootstrap's CSR client, and the fallback above):
 * imported here, lazily, so the normal path never loads the library.
 */
export async function clientNodeKubeConfig(path: string | undefined, shown = path ?? '(default)'): Promise<KubeConfig> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else if (inCluster(process.env)) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new KubeConfigError(`cannot load kubeconfig ${shown}: ${errorMessage(err)}`);
  }
  if (!kc.getCurrentCluster())
    throw new KubeConfigError(`no cluster in kubeconfig ${shown}: pass --kubeconfig or set KUBECONFIG`);
  return kc;
}
