/**
 * The emulator's TLS material: a CA it generates once per state folder, and a server
 * certificate signed by it for the addresses it listens on. Clients trust the CA file
 * (NODE_EXTRA_CA_CERTS or an explicit `ca`), as MSAL insists on an https authority.
 * Both come from the project's one PKI module (src/common/pki.ts, ECDSA P-256).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CertificateAuthority } from '../common/pki.js';

export interface TlsMaterial {
  caCertPath: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

const CA_NAME = 'ACI Emulator Local CA';

/** The CA kept in `dir`; a new one when there is none, or one this module cannot use (an RSA CA of an older emulator). */
async function loadOrCreateCa(caCertPath: string, caKeyPath: string): Promise<CertificateAuthority> {
  if (existsSync(caCertPath) && existsSync(caKeyPath)) {
    try {
      return await CertificateAuthority.load({
        cert: await readFile(caCertPath, 'utf8'),
        key: await readFile(caKeyPath, 'utf8'),
      });
    } catch {
      // Made by an earlier emulator with an RSA key: replace it (clients read ca.pem afresh).
    }
  }
  const ca = await CertificateAuthority.create(CA_NAME, { validDays: 10 * 365 });
  await writeFile(caKeyPath, ca.pem.key, { mode: 0o600 });
  await writeFile(caCertPath, ca.pem.cert, { mode: 0o644 });
  return ca;
}

/** Loads the CA from `dir` (creating it when absent) and issues a fresh server certificate for `hosts`. */
export async function ensureTls(dir: string, hosts: string[]): Promise<TlsMaterial> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caCertPath = path.join(dir, 'ca.pem');
  const caKeyPath = path.join(dir, 'ca-key.pem');
  const ca = await loadOrCreateCa(caCertPath, caKeyPath);
  const unique = [...new Set(['127.0.0.1', 'localhost', ...hosts])];
  const server = await ca.issue({
    commonName: unique[0] ?? 'localhost',
    hosts: unique,
    server: true,
    validDays: 2 * 365,
  });
  return { caCertPath, caPem: ca.pem.cert, certPem: server.cert, keyPem: server.key };
}
