import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

/** Writes a kubeconfig that authenticates with a client certificate (paths, not inline data). */
export function writeKubeconfig(
  path: string,
  opts: { server: string; caFile: string; certFile: string; keyFile: string; user: string },
): void {
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'dev', cluster: { server: opts.server, 'certificate-authority': opts.caFile } }],
    users: [{ name: opts.user, user: { 'client-certificate': opts.certFile, 'client-key': opts.keyFile } }],
    contexts: [{ name: 'dev', context: { cluster: 'dev', user: opts.user } }],
    'current-context': 'dev',
  };
  writeFileSync(path, stringify(doc), { mode: 0o600 });
}
