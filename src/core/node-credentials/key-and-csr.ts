/**
 * The node's private key and its certificate signing request, as the kubelet
 * makes them: a fresh ECDSA P-256 key per request, subject
 * `CN=system:node:<name>, O=system:nodes`, and no subject alternative names
 * (the kube-apiserver-client-kubelet signer and the approver refuse any SAN).
 * @peculiar/x509 builds the PKCS#10 request (Node's crypto has no CSR builder).
 */
// First: @peculiar/x509 (through tsyringe) needs the polyfill when it loads, and imports run in order.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
// The project's one PKI module: it sets @peculiar/x509 up on Node's WebCrypto.
import { EC_P256 as alg, newEcKeys, pemBlock as pem } from '../../common/pki.js';

export const NODE_GROUP = 'system:nodes';
export const NODE_USER_PREFIX = 'system:node:';
export const KUBELET_CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
/**
 * The usages the kubelet asks for with an EC key. The approver and the signer accept exactly
 * these, or the same plus `key encipherment` (which only makes sense for RSA keys).
 */
export const KUBELET_CLIENT_USAGES = ['digital signature', 'client auth'] as const;

export function nodeUserName(nodeName: string): string {
  return `${NODE_USER_PREFIX}${nodeName}`;
}

export interface KeyAndRequest {
  /** PKCS#8 PEM of the new private key; never logged. */
  keyPem: string;
  /** PEM of the PKCS#10 request. */
  csrPem: string;
}

export async function newKeyAndRequest(nodeName: string): Promise<KeyAndRequest> {
  const keys = await newEcKeys();
  // Names here are DNS subdomains (checked by the CLI), so no DN special characters occur.
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `O=${NODE_GROUP}, CN=${nodeUserName(nodeName)}`,
    signingAlgorithm: alg,
    keys,
  });
  return {
    keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
    csrPem: csr.toString('pem'),
  };
}
