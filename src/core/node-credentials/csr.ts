/**
 * One round of the CertificateSigningRequest API, as the kubelet's bootstrap
 * and rotation do it: create a CSR for a fresh key with the kubelet client
 * signer, wait (watch, re-read when the watch ends) until it is approved and
 * issued, and return the certificate with its key.
 */
import * as k8s from '@kubernetes/client-node';
import type { V1CertificateSigningRequest } from '@kubernetes/client-node';
import { sleep } from '../../common/backoff.js';
import { parseNodeCert, type NodeCert } from './cert-store.js';
import { KUBELET_CLIENT_SIGNER, KUBELET_CLIENT_USAGES, newKeyAndRequest } from './key-and-csr.js';
import { errorMessage } from '../../common/errors.js';

export class CsrError extends Error {
  override readonly name = 'CsrError';
  constructor(
    message: string,
    /** Denied or Failed by the cluster: retrying the same request will not help soon. */
    readonly refused = false,
  ) {
    super(message);
  }
}

export interface CsrRequestOptions {
  /** Identity that creates the CSR: the bootstrap credential, or the node's current certificate. */
  kc: k8s.KubeConfig;
  nodeName: string;
  /** spec.expirationSeconds (the API's minimum is 600); undefined: the signer's duration. */
  expirationSeconds?: number;
  /** How long to wait for approval and issuance (the kubelet waits 15 minutes). */
  timeoutMs?: number;
  /** PEM of the cluster CA, to check the issued certificate against. */
  caPem?: string;
  signal?: AbortSignal;
}

export interface IssuedCert extends NodeCert {
  csrName: string;
}

/** One line for an API error: client-node's ApiException message spans lines and carries headers. */
export function apiErrorText(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    const body = (typeof err.body === 'string' ? safeJson(err.body) : err.body) as
      { reason?: string; message?: string } | undefined;
    return `HTTP ${err.code}${body?.reason ? ` ${body.reason}` : ''}${body?.message ? `: ${body.message}` : ''}`;
  }
  return err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}

type Outcome = { cert: string } | { refused: string } | undefined;

function outcome(csr: V1CertificateSigningRequest): Outcome {
  for (const c of csr.status?.conditions ?? []) {
    if (c.status !== 'True') continue;
    if (c.type === 'Denied' || c.type === 'Failed')
      return { refused: `${c.type}${c.reason ? ` (${c.reason})` : ''}${c.message ? `: ${c.message}` : ''}` };
  }
  const cert = csr.status?.certificate;
  return cert ? { cert } : undefined;
}

/** Resolves when the CSR is issued or refused; rejects on timeout or abort. */
async function waitForCsr(
  kc: k8s.KubeConfig,
  name: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Exclude<Outcome, undefined>> {
  const api = kc.makeApiClient(k8s.CertificatesV1Api);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new CsrError(`stopped while waiting for CSR ${name}`);
    // Read first: the approval may have happened before the watch starts.
    try {
      const now = outcome(await api.readCertificateSigningRequest({ name }));
      if (now) return now;
    } catch (err) {
      last = apiErrorText(err);
    }
    const seen = await new Promise<Outcome>((resolve) => {
      let settled = false;
      let controller: AbortController | undefined;
      const finish = (o: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        controller?.abort();
        resolve(o);
      };
      const onAbort = () => finish(undefined);
      // A watch that stays silent is ended and re-read, so a lost event costs at most this long.
      const timer = setTimeout(() => finish(undefined), Math.min(30_000, Math.max(0, deadline - Date.now())));
      signal?.addEventListener('abort', onAbort, { once: true });
      new k8s.Watch(kc)
        .watch(
          '/apis/certificates.k8s.io/v1/certificatesigningrequests',
          { fieldSelector: `metadata.name=${name}`, allowWatchBookmarks: false },
          (_type, obj: V1CertificateSigningRequest) => {
            const o = outcome(obj);
            if (o) finish(o);
          },
          (err: unknown) => {
            if (err) last = apiErrorText(err);
            finish(undefined);
          },
        )
        .then((c) => {
          controller = c;
          if (settled) c.abort();
        })
        .catch((err: unknown) => {
          last = apiErrorText(err);
          finish(undefined);
        });
    });
    if (seen) return seen;
    if (Date.now() < deadline) await sleep(1_000, signal);
  }
  throw new CsrError(
    `CSR ${name} was not approved and issued within ${Math.round(timeoutMs / 1000)} s${last ? ` (last error: ${last})` : ''}`,
  );
}

export async function requestNodeCert(o: CsrRequestOptions): Promise<IssuedCert> {
  const { keyPem, csrPem } = await newKeyAndRequest(o.nodeName);
  const api = o.kc.makeApiClient(k8s.CertificatesV1Api);
  let created: V1CertificateSigningRequest;
  try {
    created = await api.createCertificateSigningRequest({
      body: {
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        // The kubelet's rotation uses the same prefix; names are unique, the node is in the subject.
        metadata: { generateName: 'csr-' },
        spec: {
          request: Buffer.from(csrPem).toString('base64'),
          signerName: KUBELET_CLIENT_SIGNER,
          usages: [...KUBELET_CLIENT_USAGES],
          ...(o.expirationSeconds !== undefined ? { expirationSeconds: o.expirationSeconds } : {}),
        },
      },
    });
  } catch (err) {
    throw new CsrError(`cannot create a CertificateSigningRequest: ${apiErrorText(err)}`);
  }
  const name = created.metadata?.name ?? '';
  const result = await waitForCsr(o.kc, name, o.timeoutMs ?? 15 * 60_000, o.signal);
  if ('refused' in result) throw new CsrError(`CSR ${name} was ${result.refused}`, true);
  const certPem = Buffer.from(result.cert, 'base64').toString('utf8');
  try {
    return { ...parseNodeCert(certPem, keyPem, o.nodeName, o.caPem), csrName: name };
  } catch (err) {
    throw new CsrError(`CSR ${name} was issued a certificate we cannot use: ${errorMessage(err)}`, true);
  }
}
