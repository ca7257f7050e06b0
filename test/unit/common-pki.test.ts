import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, connect } from 'node:tls';
import { CertificateAuthority, selfSignedPair } from '../../src/common/pki.js';

test('a CA issues P-256 certificates it verifies, with DNS and IP names sorted into their SAN types', async () => {
  const ca = await CertificateAuthority.create('test CA');
  const leaf = await ca.issue({
    commonName: 'svc',
    organizations: ['o1'],
    hosts: ['localhost', '127.0.0.1', 'localhost'],
    client: true,
    server: true,
    validDays: 2,
  });
  const caCert = new X509Certificate(ca.pem.cert);
  const cert = new X509Certificate(leaf.cert);
  assert.equal(caCert.ca, true);
  assert.equal(cert.ca, false);
  assert.ok(cert.verify(caCert.publicKey), 'signed by the CA');
  assert.equal(cert.checkIssued(caCert), true);
  assert.equal(cert.subject, 'CN=svc\nO=o1');
  assert.equal(cert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
  assert.deepEqual(cert.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.equal(createPrivateKey(leaf.key).asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
  assert.ok(days > 1.9 && days <= 2, `valid for ${days} days`);
  // A loaded CA issues certificates that chain to the same root.
  const again = await (await CertificateAuthority.load(ca.pem)).issue({ commonName: 'later' });
  assert.ok(new X509Certificate(again.cert).verify(caCert.publicKey));
});

test('loading a CA whose key is not P-256 fails (the emulator then makes a new one)', async () => {
  const ca = await CertificateAuthority.create('x');
  await assert.rejects(
    CertificateAuthority.load({
      cert: ca.pem.cert,
      key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    }),
  );
});

test('a self-signed serving pair serves TLS to a client that trusts it, for its IP name', async () => {
  const pair = await selfSignedPair({ commonName: 'node-a', hosts: ['node-a', '127.0.0.1'], server: true });
  const server = createServer({ cert: pair.cert, key: pair.key }, (s) => s.end('hello'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const socket = connect({ host: '127.0.0.1', port, ca: pair.cert });
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString()));
    await once(socket, 'end');
    assert.equal(socket.authorized, true, String(socket.authorizationError));
    assert.equal(got, 'hello');
  } finally {
    server.close();
  }
});
