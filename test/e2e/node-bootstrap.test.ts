/**
 * TLS bootstrap against the real control plane: the connector starts with
 * nothing but a ServiceAccount token kubeconfig (whose only rights are the
 * standard bootstrap ClusterRoles) and an empty cert dir, gets
 * `system:node:<name>` through a CSR that the controller-manager approves and
 * signs, registers a Ready node with it, reuses it after a restart, and
 * rotates it with its own identity while the node keeps renewing its Lease;
 * a bootstrap token serves as the bootstrap identity as well.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { CURRENT_FILE } from '../../src/core/node-credentials/index.js';
import { adminKubeConfig, freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import {
  boundPod,
  CONNECTOR_MAIN,
  core,
  startConnector,
  uniqueNodeName,
  type ConnectorHandle,
} from './connector-process.js';

const SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';

function rbac(): k8s.RbacAuthorizationV1Api {
  return adminKubeConfig().makeApiClient(k8s.RbacAuthorizationV1Api);
}

async function bindCluster(t: TestContext, name: string, role: string, subject: k8s.RbacV1Subject): Promise<void> {
  await rbac().createClusterRoleBinding({
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [subject],
    },
  });
  t.after(() =>
    rbac()
      .deleteClusterRoleBinding({ name })
      .then(
        () => undefined,
        () => undefined,
      ),
  );
}

/**
 * A ServiceAccount with exactly the bootstrap rights the manifests give (create CSRs, have node
 * client CSRs auto-approved), and a kubeconfig with a token for it: the only credential the
 * connector gets.
 */
async function bootstrapKubeconfig(t: TestContext, dir: string): Promise<{ path: string; user: string }> {
  const ns = await freshNamespace(t, 'boot');
  const api = core();
  const sa = 'connector';
  await api.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  const subject = { kind: 'ServiceAccount', name: sa, namespace: ns };
  await bindCluster(t, `${ns}-bootstrapper`, 'system:node-bootstrapper', subject);
  await bindCluster(t, `${ns}-nodeclient`, 'system:certificates.k8s.io:certificatesigningrequests:nodeclient', subject);
  const tr = await api.createNamespacedServiceAccountToken({
    name: sa,
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = tr.status?.token ?? '';
  assert.ok(token, 'a ServiceAccount token');
  return { path: tokenKubeconfig(dir, token), user: `system:serviceaccount:${ns}:${sa}` };
}

/** A kubeconfig for the dev cluster that authenticates with a bearer token. */
function tokenKubeconfig(dir: string, token: string, name = 'bootstrap.kubeconfig'): string {
  const cluster = testCluster();
  const path = join(dir, name);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'dev', cluster: { server: cluster.server, 'certificate-authority': cluster.caCert } }],
      users: [{ name: 'bootstrap', user: { token } }],
      contexts: [{ name: 'dev', context: { cluster: 'dev', user: 'bootstrap' } }],
      'current-context': 'dev',
    }),
    { mode: 0o600 },
  );
  return path;
}

/**
 * Under `--authorization-mode=Node,RBAC` the Node authorizer gives system:node:<name> a kubelet's
 * rights. On an API server that runs RBAC alone, nothing does, so the node user then gets the
 * connector's ClusterRole and CSR creation (what the Node authorizer would allow) from this test.
 */
async function grantNodeRightsIfNoNodeAuthorizer(t: TestContext, nodeName: string): Promise<void> {
  const authz = adminKubeConfig().makeApiClient(k8s.AuthorizationV1Api);
  const review = await authz.createSubjectAccessReview({
    body: {
      spec: {
        user: `system:node:${nodeName}`,
        groups: ['system:nodes', 'system:authenticated'],
        resourceAttributes: { verb: 'create', resource: 'certificatesigningrequests', group: 'certificates.k8s.io' },
      },
    },
  });
  if (review.status?.allowed) return;
  const user = { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: `system:node:${nodeName}` };
  await bindCluster(t, `${nodeName}-connector-role`, 'aci-connector', user);
  await bindCluster(t, `${nodeName}-csr`, 'system:node-bootstrapper', user);
}

async function csrsBy(username: string): Promise<k8s.V1CertificateSigningRequest[]> {
  const certs = adminKubeConfig().makeApiClient(k8s.CertificatesV1Api);
  const list = await certs.listCertificateSigningRequest();
  return list.items.filter((c) => c.spec.username === username);
}

function approval(csr: k8s.V1CertificateSigningRequest): k8s.V1CertificateSigningRequestCondition | undefined {
  return csr.status?.conditions?.find((c) => c.type === 'Approved' && c.status === 'True');
}

function currentCert(certDir: string): X509Certificate {
  return new X509Certificate(readFileSync(join(certDir, CURRENT_FILE), 'utf8'));
}

function issuedSerial(csr: k8s.V1CertificateSigningRequest): string {
  return new X509Certificate(Buffer.from(csr.status?.certificate ?? '', 'base64')).serialNumber;
}

async function waitReady(nodeName: string): Promise<k8s.V1Node> {
  return waitFor(
    `node ${nodeName} Ready`,
    async () => {
      const n = await core().readNode({ name: nodeName });
      return n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? n : undefined;
    },
    { timeoutMs: 30_000 },
  );
}

async function leaseRenewTime(nodeName: string): Promise<number> {
  const coord = adminKubeConfig().makeApiClient(k8s.CoordinationV1Api);
  const lease = await coord.readNamespacedLease({ name: nodeName, namespace: 'kube-node-lease' });
  return new Date(lease.spec?.renewTime ?? 0).getTime();
}

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function stop(h: ConnectorHandle): Promise<void> {
  h.proc.kill('SIGTERM');
  const end = await h.exited;
  assert.equal(end.code, 0, `clean stop:\n${h.output().slice(-2000)}`);
}

test('a connector with only a ServiceAccount bootstrap kubeconfig gets system:node:<name> by CSR, runs a Ready node, and reuses the certificate after a restart', async (t) => {
  const dir = tempDir(t, 'node-bootstrap-');
  const certDir = join(dir, 'pki');
  const boot = await bootstrapKubeconfig(t, dir);
  const nodeName = uniqueNodeName('boot');
  await grantNodeRightsIfNoNodeAuthorizer(t, nodeName);

  const args = ['--bootstrap-kubeconfig', boot.path, '--cert-dir', certDir];
  const first = await startConnector(t, { nodeName, kubeconfig: null, extraArgs: args });
  assert.match(first.output(), /node client certificate: bootstrapping/);

  // One CSR, by the ServiceAccount, for the kubelet client signer, approved the standard way and issued.
  const csrs = await csrsBy(boot.user);
  assert.equal(csrs.length, 1, 'exactly one CSR by the bootstrap identity');
  const csr = csrs[0];
  assert.ok(csr);
  assert.equal(csr.spec.signerName, SIGNER);
  assert.deepEqual([...(csr.spec.usages ?? [])].sort(), ['client auth', 'digital signature']);
  assert.ok(csr.spec.groups?.includes(`system:serviceaccounts:${boot.user.split(':')[2]}`));
  assert.equal(approval(csr)?.reason, 'AutoApproved');
  assert.match(approval(csr)?.message ?? '', /kubelet client certificate/);

  // The certificate in the cert dir is that CSR's, for the node identity, signed by the cluster CA.
  const cert = currentCert(certDir);
  assert.equal(cert.subject.split('\n').sort().join(','), `CN=system:node:${nodeName},O=system:nodes`);
  assert.equal(cert.serialNumber, issuedSerial(csr));
  assert.ok(cert.checkIssued(new X509Certificate(readFileSync(testCluster().caCert))));

  // The ServiceAccount may not register nodes; the Ready node is the node identity's work.
  const authz = adminKubeConfig().makeApiClient(k8s.AuthorizationV1Api);
  const saMayCreateNodes = await authz.createSubjectAccessReview({
    body: {
      spec: { user: boot.user, groups: csr.spec.groups, resourceAttributes: { verb: 'create', resource: 'nodes' } },
    },
  });
  assert.equal(saMayCreateNodes.status?.allowed, false);
  await waitReady(nodeName);

  // Restart: the certificate on disk is reused, no new CSR by anyone for this node.
  await stop(first);
  const second = await startConnector(t, { nodeName, kubeconfig: null, extraArgs: args });
  assert.match(second.output(), /node client certificate: reusing the one in the cert dir/);
  assert.equal(currentCert(certDir).serialNumber, cert.serialNumber);
  assert.equal((await csrsBy(boot.user)).length, 1, 'no second bootstrap CSR');
  assert.equal((await csrsBy(`system:node:${nodeName}`)).length, 0, 'no renewal CSR either');
  const before = await leaseRenewTime(nodeName);
  await waitFor('the Lease renewed by the restarted connector', async () => (await leaseRenewTime(nodeName)) > before, {
    timeoutMs: 30_000,
  });
  await waitReady(nodeName);
});

test('the node certificate rotates with the node identity before it expires, and the connector keeps working on the new one', async (t) => {
  const dir = tempDir(t, 'node-rotate-');
  const certDir = join(dir, 'pki');
  const boot = await bootstrapKubeconfig(t, dir);
  const nodeName = uniqueNodeName('rot');
  await grantNodeRightsIfNoNodeAuthorizer(t, nodeName);

  // 600 s is the API's minimum life. The signer backdates short certificates' notBefore by 5 min,
  // so the life it reports is 900 s of which 300 s are past: rotating at 34 % of it means about
  // 6 s after issuance (never sooner than 5 s after the last rotation), instead of 8 minutes.
  const h = await startConnector(t, {
    nodeName,
    kubeconfig: null,
    extraArgs: [
      '--bootstrap-kubeconfig',
      boot.path,
      '--cert-dir',
      certDir,
      '--node-cert-expiration-seconds',
      '600',
      '--node-cert-rotation-fraction',
      '0.34',
    ],
  });
  const bootstrapCert = currentCert(certDir);
  const life = (new Date(bootstrapCert.validTo).getTime() - Date.now()) / 1000;
  assert.ok(life > 500 && life <= 600, `the CSR's expirationSeconds shortened the life (${life} s left)`);

  // Two rotations, each a CSR by the node itself, approved as a self node client renewal.
  const renewals = await waitFor(
    'two renewal CSRs issued',
    async () => {
      const mine = (await csrsBy(`system:node:${nodeName}`)).filter((c) => c.status?.certificate);
      return mine.length >= 2 ? mine : undefined;
    },
    { timeoutMs: 90_000 },
  );
  for (const r of renewals) {
    assert.equal(r.spec.signerName, SIGNER);
    assert.ok(r.spec.groups?.includes('system:nodes'));
    assert.match(approval(r)?.message ?? '', /self kubelet client certificate/);
  }
  const rotatedAt = Date.now();
  const serials = new Set(renewals.map(issuedSerial));
  await waitFor('the cert dir holding a renewed certificate', () => serials.has(currentCert(certDir).serialNumber));
  assert.notEqual(currentCert(certDir).serialNumber, bootstrapCert.serialNumber);
  assert.equal((await csrsBy(boot.user)).length, 1, 'renewals do not use the bootstrap identity');
  assert.match(h.output(), /"msg":"node client certificate rotated"/);

  // Still working after the switch: the Lease is renewed and a new pod reaches Running.
  await waitFor('a Lease renewal after the rotations', async () => (await leaseRenewTime(nodeName)) > rotatedAt, {
    timeoutMs: 30_000,
  });
  const ns = await freshNamespace(t, 'rot');
  await core().createNamespacedPod({ namespace: ns, body: boundPod(nodeName, 'after-rotation') });
  await waitFor(
    'the pod Running',
    async () => {
      const p = await core().readNamespacedPod({ namespace: ns, name: 'after-rotation' });
      return p.status?.phase === 'Running';
    },
    { timeoutMs: 30_000 },
  );
  await waitReady(nodeName);
  assert.doesNotMatch(h.output(), /rotation failed/);
});

test('a bootstrap token works as the bootstrap identity too', async (t) => {
  const dir = tempDir(t, 'node-token-');
  const certDir = join(dir, 'pki');
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const pick = (n: number) =>
    Array.from({ length: n }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
  const id = pick(6);
  const secret = pick(16);
  const api = core();
  await api.createNamespacedSecret({
    namespace: 'kube-system',
    body: {
      metadata: { name: `bootstrap-token-${id}` },
      type: 'bootstrap.kubernetes.io/token',
      stringData: {
        'token-id': id,
        'token-secret': secret,
        'usage-bootstrap-authentication': 'true',
        expiration: new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      },
    },
  });
  t.after(() =>
    api.deleteNamespacedSecret({ namespace: 'kube-system', name: `bootstrap-token-${id}` }).then(
      () => undefined,
      () => undefined,
    ),
  );
  const path = tokenKubeconfig(dir, `${id}.${secret}`);
  const nodeName = uniqueNodeName('tok');
  await grantNodeRightsIfNoNodeAuthorizer(t, nodeName);

  await startConnector(t, {
    nodeName,
    kubeconfig: null,
    extraArgs: ['--bootstrap-kubeconfig', path, '--cert-dir', certDir],
  });
  const csrs = await csrsBy(`system:bootstrap:${id}`);
  assert.equal(csrs.length, 1);
  assert.ok(csrs[0]?.spec.groups?.includes('system:bootstrappers'));
  assert.equal(csrs[0] && approval(csrs[0])?.reason, 'AutoApproved');
  assert.equal(currentCert(certDir).serialNumber, csrs[0] && issuedSerial(csrs[0]));
  await waitReady(nodeName);
});

test('TLS bootstrap misconfiguration ends with one clear line', async (t) => {
  const dir = tempDir(t, 'node-bootstrap-bad-');
  // A ServiceAccount without the bootstrap bindings: the API server refuses its CSR.
  const ns = await freshNamespace(t, 'noboot');
  await core().createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'nobody' } } });
  const tr = await core().createNamespacedServiceAccountToken({
    name: 'nobody',
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const unbound = tokenKubeconfig(dir, tr.status?.token ?? '', 'unbound.kubeconfig');
  const certDir = join(dir, 'pki');
  const cases: Array<[string[], RegExp]> = [
    [
      ['--cert-dir', certDir, '--kubeconfig', testCluster().connectorKubeconfig],
      /--kubeconfig cannot be combined with --cert-dir/,
    ],
    [['--cert-dir', certDir], /--cert-dir outside a cluster needs --bootstrap-kubeconfig/],
    [['--bootstrap-kubeconfig', unbound], /--bootstrap-kubeconfig needs --cert-dir/],
    [['--node-cert-expiration-seconds', '599'], /at least 600/],
    [['--node-cert-rotation-fraction', '1'], /between 0 and 1/],
    [
      ['--bootstrap-kubeconfig', unbound, '--cert-dir', certDir],
      /TLS bootstrap: cannot create a CertificateSigningRequest.*403/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = spawnSync(process.execPath, [CONNECTOR_MAIN, '--provider', 'mock', '--node-name', 'bad-boot', ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, KUBERNETES_SERVICE_HOST: undefined, KUBERNETES_SERVICE_PORT: undefined },
    });
    assert.notEqual(r.status, 0, `${args.join(' ')} must fail`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line on stderr for ${args.join(' ')}:\n${r.stderr}`);
    assert.match(lines[0] ?? '', pattern, args.join(' '));
  }
});
