/**
 * TLS material of the kubelet API: the serving certificate and key (from files,
 * or a self-signed pair made at start when none is given) and the CA that signs
 * the API server's kubelet-client certificate.
 */
import { readFileSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import type { KeyPairPem } from '../common/pki.js';
import { errorMessage } from '../common/errors.js';

export class KubeletTlsError extends Error {
  override readonly name = 'KubeletTlsError';
}

export interface KubeletTls {
  cert: string;
  key: string;
  /** PEM of the CA client certificates must chain to; undefined: every caller is refused. */
  clientCA?: string;
  /** True when the serving pair was generated here (the API server must then skip verification). */
  selfSigned: boolean;
}

export interface KubeletTlsFiles {
  certFile?: string;
  keyFile?: string;
  clientCAFile?: string;
}

function readPem(path: string, what: string, marker: RegExp): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KubeletTlsError(`cannot read the ${what} ${path}: ${errorMessage(err)}`);
  }
  if (!marker.test(text)) throw new KubeletTlsError(`the ${what} ${path} holds no PEM block of the expected kind`);
  return text;
}

/** A self-signed serving certificate for the node's names and addresses, valid one year. */
export async function selfSignedServingPair(names: string[]): Promise<KeyPairPem> {
  // Loaded only when no certificate is given: the X.509 library costs about 0.1 s of start-up.
  const { selfSignedPair } = await import('../common/pki.js');
  return selfSignedPair({ commonName: names[0] ?? 'aci-connector', hosts: names.filter(Boolean), server: true });
}

/**
 * Reads the configured files. Certificate and key come as a pair; without them a
 * self-signed pair for `names` is made.
 */
export async function loadKubeletTls(files: KubeletTlsFiles, names: string[]): Promise<KubeletTls> {
  if (Boolean(files.certFile) !== Boolean(files.keyFile)) {
    throw new KubeletTlsError('--kubelet-tls-cert and --kubelet-tls-key must be given together');
  }
  const clientCA = files.clientCAFile
    ? readPem(files.clientCAFile, 'kubelet client CA file', /-----BEGIN CERTIFICATE-----/)
    : undefined;
  if (files.certFile && files.keyFile) {
    return {
      cert: readPem(files.certFile, 'kubelet serving certificate', /-----BEGIN CERTIFICATE-----/),
      key: readPem(files.keyFile, 'kubelet serving key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/),
      clientCA,
      selfSigned: false,
    };
  }
  return { ...(await selfSignedServingPair(names)), clientCA, selfSigned: true };
}

/**
 * Go's secure suites, which is what a kubelet offers: TLS 1.3's three, and for
 * TLS 1.2 only ECDHE with an AEAD cipher (no CBC, no SHA-1 MAC, no static RSA).
 * Node's default list for 1.2 also has CBC-SHA256/SHA384 and CBC-SHA suites.
 */
export const SECURE_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

/** The hardened server options for a listener serving `tls` (the kubelet API, and the secure operations endpoint). */
export function secureServerOptions(
  tls: KubeletTls,
): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  return {
    cert: tls.cert,
    key: tls.key,
    ca: tls.clientCA,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: SECURE_CIPHERS.join(':'),
    honorCipherOrder: true,
    // Asked for, then checked per request, so a caller without one can still use a token or get a 401 body, not a TLS alert.
    requestCert: tls.clientCA !== undefined,
    rejectUnauthorized: false,
  };
}
