import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { CertificateAuthority } from '../../src/common/pki.js';
import { FILE_REREAD_MS, staticAccess } from '../../src/core/kube/access.js';
import { inClusterCredentials, KubeConfigError, loadKubeAccess, parseKubeConfig } from '../../src/core/kube/config.js';
import { makeKubeClients } from '../../src/core/kube-client.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'x',
    contexts: [
      { name: 'other', context: { cluster: 'nope', user: 'nope' } },
      { name: 'x', context: { cluster: 'c', user: 'u' } },
    ],
    clusters: [{ name: 'c', cluster }],
    users: [{ name: 'u', user }],
  });
}

/** An API server stand-in asking for client certificates: records each request's certificate serial and Authorization. */
async function mtlsServer(
  ca: CertificateAuthority,
): Promise<{ server: Server; url: string; seen: Array<{ serial: string; auth?: string }> }> {
  const serving = await ca.issue({ commonName: 'kube', server: true, serverIps: ['127.0.0.1'] });
  const seen: Array<{ serial: string; auth?: string }> = [];
  const server = createServer(
    { cert: serving.cert, key: serving.key, ca: ca.pem.cert, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      seen.push({
        serial: peer?.serialNumber ?? '',
        ...(req.headers.authorization ? { auth: req.headers.authorization } : {}),
      });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ major: '1', minor: '36', gitVersion: 'v1.36.0' }));
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function close(s: Server): Promise<void> {
  s.closeAllConnections();
  return new Promise((r) => s.close(() => r()));
}

test('a kubeconfig: the current context, data fields decoded, file names relative to the kubeconfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  writeFileSync(join(dir, 'ca.pem'), 'CA');
  writeFileSync(join(dir, 'tok'), 'secret-token\n');
  const parsed = parseKubeConfig(
    kubeconfig(
      {
        server: 'https://h:6443',
        'certificate-authority': 'ca.pem',
        'tls-server-name': 'kube',
        'insecure-skip-tls-verify': true,
      },
      { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY'), tokenFile: 'tok' },
    ),
    join(dir, 'config'),
  );
  assert.equal(parsed.kind, 'simple');
  if (parsed.kind !== 'simple') return;
  const c = parsed.credentials;
  assert.equal(c.server, 'https://h:6443');
  assert.equal(c.ca?.toString(), 'CA');
  assert.equal(c.cert?.toString(), 'CERT');
  assert.equal(c.key?.toString(), 'KEY');
  assert.equal(c.tokenFile, join(dir, 'tok'));
  assert.equal(c.tlsServerName, 'kube');
  assert.equal(c.skipTLSVerify, true);
});

test('exec plugins, auth providers, basic auth and proxies are left to client-node; a context without a cluster is an error', () => {
  for (const [cluster, user, why] of [
    [{ server: 'https://h' }, { exec: { command: 'x', apiVersion: 'client.authentication.k8s.io/v1' } }, 'user.exec'],
    [{ server: 'https://h' }, { 'auth-provider': { name: 'oidc' } }, 'user.auth-provider'],
    [{ server: 'https://h' }, { username: 'a', password: 'b' }, 'user.username'],
    [{ server: 'https://h', 'proxy-url': 'http://p:3128' }, { token: 't' }, 'cluster.proxy-url'],
  ] as const) {
    assert.deepEqual(parseKubeConfig(kubeconfig(cluster, user), '/x/config'), { kind: 'fallback', why });
  }
  assert.throws(() => parseKubeConfig(kubeconfig({}, {}), '/x/config'), /no current cluster/);
});

test('loadKubeAccess: a missing file and a kubeconfig without a cluster are KubeConfigErrors naming the file', async () => {
  await assert.rejects(
    loadKubeAccess('/nonexistent/kubeconfig', {}),
    (e: unknown) => e instanceof KubeConfigError && /cannot load kubeconfig \/nonexistent\/kubeconfig/.test(e.message),
  );
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  writeFileSync(join(dir, 'config'), kubeconfig({}, {}));
  await assert.rejects(loadKubeAccess(join(dir, 'config'), {}), /no cluster in kubeconfig/);
});

test('client certificate files: the CA is checked, the certificate presented, and a rotated file used within a minute', async (t) => {
  const ca = await CertificateAuthority.create('test-ca');
  const api = await mtlsServer(ca);
  t.after(() => close(api.server));
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  const first = await ca.issue({ commonName: 'system:node:n', client: true });
  const second = await ca.issue({ commonName: 'system:node:n', client: true });
  writeFileSync(join(dir, 'ca.crt'), ca.pem.cert);
  writeFileSync(join(dir, 'client.crt'), first.cert);
  writeFileSync(join(dir, 'client.key'), first.key);
  writeFileSync(
    join(dir, 'config'),
    kubeconfig(
      { server: api.url, 'certificate-authority': 'ca.crt' },
      { 'client-certificate': 'client.crt', 'client-key': 'client.key' },
    ),
  );
  const parsed = parseKubeConfig(
    (await import('node:fs')).readFileSync(join(dir, 'config'), 'utf8'),
    join(dir, 'config'),
  );
  assert.equal(parsed.kind, 'simple');
  if (parsed.kind !== 'simple') return;
  let now = 1_000_000;
  const access = staticAccess(parsed.credentials, () => now);
  t.after(() => access.close());
  const clients = makeKubeClients(access, { qps: 100, burst: 100 });
  assert.equal((await clients.version.getCode()).gitVersion, 'v1.36.0');
  writeFileSync(join(dir, 'client.crt'), second.cert);
  writeFileSync(join(dir, 'client.key'), second.key);
  await clients.version.getCode();
  now += FILE_REREAD_MS;
  await clients.version.getCode();
  const serial = (pem: string) => new X509Certificate(pem).serialNumber;
  assert.deepEqual(
    api.seen.map((s) => s.serial),
    [serial(first.cert), serial(first.cert), serial(second.cert)],
  );

  // The same file through loadKubeAccess (the CLI's path).
  const loaded = await loadKubeAccess(join(dir, 'config'), {});
  t.after(() => loaded.close());
  await makeKubeClients(loaded, { qps: 1, burst: 1 }).version.getCode();
  assert.equal(api.seen.at(-1)?.serial, serial(second.cert));
});

test('in a pod: the Service address (IPv6 in brackets), the ServiceAccount CA, and its token file re-read each minute', async (t) => {
  const ca = await CertificateAuthority.create('test-ca');
  const api = await mtlsServer(ca);
  t.after(() => close(api.server));
  const dir = mkdtempSync(join(tmpdir(), 'sa-'));
  writeFileSync(join(dir, 'ca.crt'), ca.pem.cert);
  writeFileSync(join(dir, 'token'), 'tok-1\n');
  assert.equal(
    inClusterCredentials({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir).server,
    'https://[fd00::1]:443',
  );
  const port = new URL(api.url).port;
  const creds = inClusterCredentials({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, dir);
  let now = 5_000_000;
  const access = staticAccess(creds, () => now);
  t.after(() => access.close());
  const clients = makeKubeClients(access, { qps: 100, burst: 100 });
  await clients.version.getCode();
  writeFileSync(join(dir, 'token'), 'tok-2\n');
  await clients.version.getCode();
  now += FILE_REREAD_MS;
  await clients.version.getCode();
  assert.deepEqual(
    api.seen.map((s) => s.auth),
    ['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-2'],
  );
  assert.throws(
    () => inClusterCredentials({ KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '443' }, join(dir, 'none')),
    /ENOENT/,
  );
});

test('an exec plugin kubeconfig works through the client-node fallback', async (t) => {
  const ca = await CertificateAuthority.create('test-ca');
  const api = await mtlsServer(ca);
  t.after(() => close(api.server));
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  const plugin = join(dir, 'plugin.mjs');
  writeFileSync(
    plugin,
    `#!${process.execPath}\nprocess.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } }));\n`,
  );
  chmodSync(plugin, 0o755);
  writeFileSync(
    join(dir, 'config'),
    kubeconfig(
      { server: api.url, 'certificate-authority-data': b64(ca.pem.cert) },
      { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, interactiveMode: 'Never' } },
    ),
  );
  const access = await loadKubeAccess(join(dir, 'config'), {});
  t.after(() => access.close());
  await makeKubeClients(access, { qps: 1, burst: 1 }).version.getCode();
  assert.equal(api.seen.at(-1)?.auth, 'Bearer from-exec');
});
