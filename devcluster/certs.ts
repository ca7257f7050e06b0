/**
 * The dev cluster's PKI: one CA that signs the API server's serving certificate, every
 * client certificate (admin, controllers, the connector, the API server's kubelet client)
 * and a kubelet serving certificate for connectors under test. The certificates come from
 * the project's one PKI module (src/common/pki.ts, ECDSA P-256); this file writes them.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export { CertificateAuthority, type CertRequest, type KeyPairPem } from '../src/common/pki.js';
import type { KeyPairPem } from '../src/common/pki.js';

/** Writes NAME.crt and NAME.key into dir and returns their paths. */
export function writePair(dir: string, name: string, pair: KeyPairPem): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key, { mode: 0o600 });
  return { cert, key };
}

/** The service-account token signing key pair (ES256). */
export function serviceAccountKeys(dir: string): { key: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const key = join(dir, 'sa.key');
  const pub = join(dir, 'sa.pub');
  writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { key, pub };
}
