/**
 * The connector's normal start-up never loads @kubernetes/client-node (0.6 s and ~75 MB: issue 15).
 * The real CLI is started with a module loader hook that writes down every module URL it loads, with
 * a certificate kubeconfig against a closed loopback port: it loads its whole static graph (run.ts
 * imports the connector, informers, node controller, events, leases, reviews), fails at the first
 * call, and exits. A kubeconfig with an exec plugin is the control: there the fallback must load
 * client-node, and the hook must see it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../devcluster/cluster.js';
import { CertificateAuthority } from '../../src/common/pki.js';

const HOOKS = `
import { appendFileSync } from 'node:fs';
let out;
export async function initialize(data) { out = data.out; }
export async function load(url, context, next) {
  appendFileSync(out, url + '\\n');
  return next(url, context);
}
`;

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Runs the CLI with the hook; the URLs it loaded and what it printed. */
async function startCli(
  dir: string,
  kubeconfig: string,
): Promise<{ loaded: string[]; stderr: string; code: number | null }> {
  const log = join(dir, `loaded-${Math.random().toString(16).slice(2)}.txt`);
  writeFileSync(log, '');
  writeFileSync(join(dir, 'hooks.mjs'), HOOKS);
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';\nregister('./hooks.mjs', { parentURL: import.meta.url, data: { out: process.env.LOAD_LOG } });\n`,
  );
  const proc = spawn(
    process.execPath,
    [
      '--import',
      join(dir, 'register.mjs'),
      join(repoRoot, 'dist/src/cli/main.js'),
      '--kubeconfig',
      kubeconfig,
      '--provider',
      'mock',
      '--node-name',
      'no-client-node',
      '--kubelet-port',
      '0',
      '--kubelet-address',
      '127.0.0.1',
      '--mock-state-file',
      join(dir, 'mock-state.json'),
    ],
    {
      env: { ...process.env, LOAD_LOG: log, KUBERNETES_SERVICE_HOST: '', KUBECONFIG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  proc.stdout.resume();
  const code = await new Promise<number | null>((r) => proc.on('exit', r));
  return { loaded: readFileSync(log, 'utf8').split('\n').filter(Boolean), stderr, code };
}

function kubeconfig(server: string, ca: string, user: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'x',
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
    users: [{ name: 'u', user }],
  });
}

const fromClientNode = (urls: string[]) => urls.filter((u) => u.includes('/node_modules/@kubernetes/client-node/'));

test(
  'starting with a certificate kubeconfig loads the connector but not @kubernetes/client-node',
  { timeout: 30_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'no-client-node-'));
    const ca = await CertificateAuthority.create('test-ca');
    const client = await ca.issue({
      commonName: 'system:node:no-client-node',
      organizations: ['system:nodes'],
      client: true,
    });
    const server = `https://127.0.0.1:${await closedPort()}`;
    const cfg = join(dir, 'kubeconfig');
    writeFileSync(
      cfg,
      kubeconfig(server, ca.pem.cert, {
        'client-certificate-data': Buffer.from(client.cert).toString('base64'),
        'client-key-data': Buffer.from(client.key).toString('base64'),
      }),
    );
    const run = await startCli(dir, cfg);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`cannot reach the API server at ${server.replace(/\./g, '\\.')}`));
    for (const m of [
      'dist/src/cli/run.js',
      'dist/src/core/connector.js',
      'dist/src/core/kube/reflector.js',
      '/node_modules/js-yaml/',
    ])
      assert.ok(
        run.loaded.some((u) => u.includes(m)),
        `the hook saw ${m} load (it sees the connector's modules)`,
      );
    assert.deepEqual(fromClientNode(run.loaded), [], 'client-node modules loaded on the normal path');

    // The control: an exec plugin goes to client-node's KubeConfig, and the hook sees the library load.
    const plugin = join(dir, 'plugin.mjs');
    writeFileSync(plugin, `process.stdout.write('{}');\n`);
    const execCfg = join(dir, 'kubeconfig-exec');
    writeFileSync(
      execCfg,
      kubeconfig(server, ca.pem.cert, {
        exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [plugin] },
      }),
    );
    const control = await startCli(dir, execCfg);
    assert.equal(control.code, 1);
    assert.ok(
      fromClientNode(control.loaded).length > 100,
      'the exec fallback loads client-node (and the hook sees it)',
    );
  },
);
