/**
 * The node client certificate logic without a cluster: when to rotate, what
 * the CSR contains, which certificates found on disk are reused, and that API
 * clients present a rotated certificate from their next request on (against a
 * real TLS server on loopback that records the client certificate it sees).
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import * as x509 from '@peculiar/x509';
import { CertificateAuthority } from '../../devcluster/certs.js';
import { makeKubeClients } from '../../src/core/kube-client.js';
import { CURRENT_FILE, loadNodeCert, parseNodeCert, saveNodeCert } from '../../src/core/node-credentials/cert-store.js';
import { newKeyAndRequest } from '../../src/core/node-credentials/key-and-csr.js';
import {
  isCurrent,
  jitteredFraction,
  MIN_ROTATION_INTERVAL_MS,
  rotationDeadline,
  rotationDelayMs,
  usableAtStart,
} from '../../src/core/node-credentials/rotation.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const cert100s = { notBefore: t0, notAfter: at(100) };

test('the rotation deadline is the given fraction of notBefore → notAfter', () => {
  assert.equal(rotationDeadline(cert100s, 0.8).getTime(), at(80).getTime());
  assert.equal(rotationDeadline(cert100s, 0.7).getTime(), at(70).getTime());
  // A signer's backdating is part of the life, as the kubelet counts it.
  const backdated = { notBefore: at(-300), notAfter: at(600) };
  assert.equal(rotationDeadline(backdated, 0.5).getTime(), at(150).getTime());
});

test('the jittered fraction stays within the kubelet range of 70–90 %', () => {
  assert.equal(
    jitteredFraction(() => 0),
    0.7,
  );
  assert.ok(Math.abs(jitteredFraction(() => 0.5) - 0.8) < 1e-9);
  assert.ok(jitteredFraction(() => 0.999999) < 0.9);
  for (let i = 0; i < 1000; i++) {
    const f = jitteredFraction();
    assert.ok(f >= 0.7 && f < 0.9, `fraction ${f}`);
  }
});

test('a certificate found at start is reused only while current and before its deadline', () => {
  assert.equal(usableAtStart(cert100s, at(10), 0.8), true);
  assert.equal(usableAtStart(cert100s, at(79), 0.8), true);
  assert.equal(usableAtStart(cert100s, at(80), 0.8), false, 'due for rotation');
  assert.equal(usableAtStart(cert100s, at(100), 0.8), false, 'expired');
  assert.equal(usableAtStart(cert100s, at(-1), 0.8), false, 'not yet valid');
  assert.equal(isCurrent(cert100s, at(99)), true);
  assert.equal(isCurrent(cert100s, at(100)), false);
});

test('the rotation delay counts down to the deadline, floored after a rotation and zero once expired', () => {
  assert.equal(rotationDelayMs(cert100s, at(10), 0.8, at(0)), 70_000);
  assert.equal(rotationDelayMs(cert100s, at(79), 0.8, at(0)), 1_000);
  // Past the deadline: at once, unless this certificate was only just obtained…
  assert.equal(rotationDelayMs(cert100s, at(90), 0.8, at(0)), 0);
  assert.equal(rotationDelayMs(cert100s, at(90), 0.8, at(89)), MIN_ROTATION_INTERVAL_MS - 1_000);
  // …and never later than the expiry itself.
  assert.equal(rotationDelayMs(cert100s, at(98), 0.8, at(98)), 2_000);
  assert.equal(rotationDelayMs(cert100s, at(100), 0.8, at(99)), 0);
  assert.equal(rotationDelayMs(cert100s, at(150), 0.8, at(149)), 0);
});

test('the CSR asks for system:node:<name> in system:nodes, with an EC P-256 key and no SANs', async () => {
  const { csrPem, keyPem } = await newKeyAndRequest('vk-1');
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  assert.equal(csr.subject, 'O=system:nodes, CN=system:node:vk-1');
  assert.equal(await csr.verify(), true, 'self-signed by its key');
  const keyAlg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  assert.equal(keyAlg.name, 'ECDSA');
  assert.equal(keyAlg.namedCurve, 'P-256');
  assert.equal(csr.extensions.length, 0, 'no SAN or other extension');
  assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
});

async function issueNodeCert(ca: CertificateAuthority, commonName: string, organizations = ['system:nodes']) {
  return ca.issue({ commonName, organizations, client: true });
}

test('the cert store writes one 0600 file atomically and reloads only a matching node certificate from our CA', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'node-cert-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await CertificateAuthority.create('test-ca');
  const other = await CertificateAuthority.create('other-ca');
  const pair = await issueNodeCert(ca, 'system:node:vk-1');

  assert.equal(loadNodeCert(dir, 'vk-1', ca.pem.cert).reason, 'no certificate yet');
  const path = saveNodeCert(dir, { certPem: pair.cert, keyPem: pair.key });
  assert.equal(path, join(dir, CURRENT_FILE));
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const loaded = loadNodeCert(dir, 'vk-1', ca.pem.cert);
  assert.ok(loaded.cert, loaded.reason);
  assert.equal(loaded.cert.serialNumber, new X509Certificate(pair.cert).serialNumber);

  assert.match(loadNodeCert(dir, 'vk-2', ca.pem.cert).reason ?? '', /for system:node:vk-1, not system:node:vk-2/);
  assert.match(loadNodeCert(dir, 'vk-1', other.pem.cert).reason ?? '', /not signed by the cluster's CA/);

  const wrongKey = await issueNodeCert(ca, 'system:node:vk-1');
  assert.throws(() => parseNodeCert(pair.cert, wrongKey.key, 'vk-1'), /does not match/);
  const noGroup = await issueNodeCert(ca, 'system:node:vk-1', ['other']);
  assert.throws(() => parseNodeCert(noGroup.cert, noGroup.key, 'vk-1'), /not in the group system:nodes/);

  writeFileSync(path, 'garbage');
  assert.match(loadNodeCert(dir, 'vk-1').reason ?? '', /no certificate PEM block/);
  assert.equal(readFileSync(path, 'utf8'), 'garbage');
});

test('API clients present a swapped-in client certificate from their next request on', async (t) => {
  const ca = await CertificateAuthority.create('test-ca');
  const serving = await ca.issue({ commonName: 'localhost', server: true, serverIps: ['127.0.0.1'] });
  const seen: string[] = [];
  const server: Server = createServer(
    { cert: serving.cert, key: serving.key, ca: ca.pem.cert, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      seen.push((req.socket as TLSSocket).getPeerCertificate().serialNumber);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: {}, items: [] }));
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  const first = await issueNodeCert(ca, 'system:node:vk-1');
  const second = await issueNodeCert(ca, 'system:node:vk-1');
  const kc = new k8s.KubeConfig();
  const load = (p: { cert: string; key: string }) =>
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: `https://127.0.0.1:${port}`, caData: Buffer.from(ca.pem.cert).toString('base64') },
      ],
      users: [
        { name: 'u', certData: Buffer.from(p.cert).toString('base64'), keyData: Buffer.from(p.key).toString('base64') },
      ],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
  load(first);
  const clients = makeKubeClients(kc, { qps: 100, burst: 100 });
  await clients.core.listNode();
  await clients.core.listNode();
  load(second);
  await clients.core.listNode();
  await clients.core.listNode();
  const serial = (pem: string) => new X509Certificate(pem).serialNumber;
  assert.deepEqual(seen, [serial(first.cert), serial(first.cert), serial(second.cert), serial(second.cert)]);
  server.closeAllConnections();
});
