/**
 * The emulator's TLS material: a CA it generates once per state folder, and a server
 * certificate signed by it for the addresses it listens on. Clients trust the CA file
 * (NODE_EXTRA_CA_CERTS or an explicit `ca`), as MSAL insists on an https authority.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import forge from 'node-forge';

export interface TlsMaterial {
  caCertPath: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

const newKeyPair = (): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } => {
  // Node's native generator: forge's pure-JS RSA key generation takes seconds.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    publicKey: forge.pki.publicKeyFromPem(publicKey),
  };
};

const serial = (): string => '01' + randomBytes(15).toString('hex');

function makeCa(): { certPem: string; keyPem: string } {
  const keys = newKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 24 * 3600_000);
  const attrs = [{ name: 'commonName', value: 'ACI Emulator Local CA' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

function makeServerCert(ca: { certPem: string; keyPem: string }, hosts: string[]): { certPem: string; keyPem: string } {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const keys = newKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 2 * 365 * 24 * 3600_000);
  cert.setSubject([{ name: 'commonName', value: hosts[0] ?? 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** Loads the CA from `dir` (creating it when absent) and issues a fresh server certificate for `hosts`. */
export async function ensureTls(dir: string, hosts: string[]): Promise<TlsMaterial> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caCertPath = path.join(dir, 'ca.pem');
  const caKeyPath = path.join(dir, 'ca-key.pem');
  let ca: { certPem: string; keyPem: string };
  if (existsSync(caCertPath) && existsSync(caKeyPath)) {
    ca = { certPem: await readFile(caCertPath, 'utf8'), keyPem: await readFile(caKeyPath, 'utf8') };
  } else {
    ca = makeCa();
    await writeFile(caKeyPath, ca.keyPem, { mode: 0o600 });
    await writeFile(caCertPath, ca.certPem, { mode: 0o644 });
  }
  const unique = [...new Set(['127.0.0.1', 'localhost', ...hosts])];
  const server = makeServerCert(ca, unique);
  return { caCertPath, caPem: ca.certPem, certPem: server.certPem, keyPem: server.keyPem };
}
