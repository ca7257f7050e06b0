/**
 * Node identities for connectors under test: a client certificate for
 * `CN=system:node:<name>, O=system:nodes`, signed by the dev cluster's CA, in a
 * kubeconfig of its own. This is what TLS bootstrap gives a kubelet in a real
 * cluster; the dev cluster hands it out directly so every test runs under the
 * Node authorizer and NodeRestriction with the node name it picked.
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority, writePair } from './certs.js';
import { writeKubeconfig } from './kubeconfig.js';

/** What a node identity needs of a running cluster (a subset of ClusterInfo, as cluster.json holds it). */
export interface ClusterForIdentity {
  server: string;
  runDir: string;
  caCert: string;
}

export function nodeUser(nodeName: string): string {
  return `system:node:${nodeName}`;
}

/**
 * The kubeconfig of `system:node:<nodeName>`, issued once per run folder and name.
 * Safe to call from several test processes at once: each writes under a unique
 * name and renames into place, and every result is a valid identity.
 */
export async function nodeKubeconfig(cluster: ClusterForIdentity, nodeName: string): Promise<string> {
  const dir = join(cluster.runDir, 'nodes');
  const path = join(dir, `${nodeName}.kubeconfig`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const pki = join(cluster.runDir, 'pki');
  const ca = await CertificateAuthority.load({
    cert: readFileSync(join(pki, 'ca.crt'), 'utf8'),
    key: readFileSync(join(pki, 'ca.key'), 'utf8'),
  });
  const unique = `${nodeName}.${process.pid}.${Date.now()}`;
  const pair = writePair(
    dir,
    unique,
    await ca.issue({ commonName: nodeUser(nodeName), organizations: ['system:nodes'], client: true }),
  );
  const tmp = join(dir, `${unique}.kubeconfig`);
  writeKubeconfig(tmp, {
    server: cluster.server,
    caFile: cluster.caCert,
    certFile: pair.cert,
    keyFile: pair.key,
    user: nodeUser(nodeName),
  });
  renameSync(tmp, path);
  return path;
}
