/**
 * The node client certificate on disk: one PEM file with the certificate (and
 * any chain the signer returned) followed by the private key, like the
 * kubelet's `kubelet-client-current.pem`. One file, replaced by rename, so a
 * reader never sees a new certificate next to an old key.
 */
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { nodeUserName, NODE_GROUP } from './key-and-csr.js';
import type { Validity } from './rotation.js';
import { errorMessage } from '../../common/errors.js';

export const CURRENT_FILE = 'aci-connector-client-current.pem';

export interface NodeCert extends Validity {
  /** PEM of the certificate and any chain, as issued. */
  certPem: string;
  /** PEM of the private key; never logged. */
  keyPem: string;
  serialNumber: string;
}

export class NodeCertError extends Error {
  override readonly name = 'NodeCertError';
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;
const KEY_BLOCK = /-----BEGIN (?:EC |RSA )?PRIVATE KEY-----[\s\S]+?-----END (?:EC |RSA )?PRIVATE KEY-----\n?/;

/** Node's X509Certificate prints the subject as "CN=…\nO=…" lines. */
function subjectValues(cert: X509Certificate, attr: string): string[] {
  return cert.subject
    .split('\n')
    .filter((l) => l.startsWith(`${attr}=`))
    .map((l) => l.slice(attr.length + 1));
}

/**
 * Checks a certificate and key belong together and name this node, and (when the CA
 * is known) that the CA signed it; returns them parsed. Throws NodeCertError.
 */
export function parseNodeCert(certPem: string, keyPem: string, nodeName: string, caPem?: string): NodeCert {
  const first = certPem.match(CERT_BLOCK)?.[0];
  if (!first) throw new NodeCertError('no certificate PEM block');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(first);
  } catch (err) {
    throw new NodeCertError(`unreadable certificate: ${errorMessage(err)}`);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new NodeCertError(`unreadable private key: ${errorMessage(err)}`);
  }
  if (!cert.checkPrivateKey(key)) throw new NodeCertError('the private key does not match the certificate');
  const cn = subjectValues(cert, 'CN');
  if (cn.length !== 1 || cn[0] !== nodeUserName(nodeName)) {
    throw new NodeCertError(`the certificate is for ${cn.join(',') || '(no CN)'}, not ${nodeUserName(nodeName)}`);
  }
  if (!subjectValues(cert, 'O').includes(NODE_GROUP))
    throw new NodeCertError(`the certificate is not in the group ${NODE_GROUP}`);
  if (caPem) {
    const cas = (caPem.match(CERT_BLOCK) ?? []).map((p) => new X509Certificate(p));
    if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
      throw new NodeCertError("the certificate is not signed by the cluster's CA");
    }
  }
  return {
    certPem,
    keyPem,
    serialNumber: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/** The current certificate in certDir, or undefined with the reason it cannot be used. */
export function loadNodeCert(certDir: string, nodeName: string, caPem?: string): { cert?: NodeCert; reason?: string } {
  let text: string;
  try {
    text = readFileSync(join(certDir, CURRENT_FILE), 'utf8');
  } catch (err) {
    return {
      reason:
        (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no certificate yet' : `unreadable: ${errorMessage(err)}`,
    };
  }
  const certs = text.match(CERT_BLOCK)?.join('') ?? '';
  const key = text.match(KEY_BLOCK)?.[0] ?? '';
  try {
    return { cert: parseNodeCert(certs, key, nodeName, caPem) };
  } catch (err) {
    return { reason: errorMessage(err) };
  }
}

/** Writes certificate and key as the current file: temp file (0600), fsync, rename. */
export function saveNodeCert(certDir: string, cert: Pick<NodeCert, 'certPem' | 'keyPem'>): string {
  mkdirSync(certDir, { recursive: true, mode: 0o700 });
  const target = join(certDir, CURRENT_FILE);
  const tmp = join(certDir, `.${CURRENT_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const body = `${cert.certPem.trimEnd()}\n${cert.keyPem.trimEnd()}\n`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return target;
}
