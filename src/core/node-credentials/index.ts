/**
 * The connector's node identity, `system:node:<name>` in `system:nodes`, got
 * and kept the way a kubelet gets and keeps it (TLS bootstrap, certificate
 * rotation):
 *
 * - At start, a current certificate for this node in the cert dir (signed by
 *   the cluster's CA and before its rotation deadline) is reused; otherwise the
 *   bootstrap identity (a bootstrap token kubeconfig or the pod's
 *   ServiceAccount) creates a CSR for a fresh key, which the cluster's
 *   csrapproving controller approves (`…:nodeclient`) and csrsigning signs.
 * - The KubeConfig handed to the rest of the connector names the API server
 *   from the bootstrap kubeconfig and this certificate, held in memory.
 * - With rotation on, at a jittered 70–90 % of the certificate's life a new
 *   CSR is made with the current certificate (approved as `…:selfnodeclient`);
 *   the new pair is written to the cert dir, then swapped into the same
 *   KubeConfig object, so every client built from it uses it from its next
 *   request. A failed rotation retries with backoff; once the current
 *   certificate has expired, the bootstrap identity is used again.
 */
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { backoffDelay, sleep } from '../../common/backoff.js';
import type { Logger } from '../../common/logger.js';
import { loadNodeCert, saveNodeCert, type NodeCert } from './cert-store.js';
import { CsrError, requestNodeCert } from './csr.js';
import { nodeUserName } from './key-and-csr.js';
import { isCurrent, jitteredFraction, rotationDelayMs, usableAtStart } from './rotation.js';
import { errorMessage } from '../../common/errors.js';

export { CsrError } from './csr.js';
export { CURRENT_FILE, loadNodeCert, NodeCertError, parseNodeCert, saveNodeCert } from './cert-store.js';
export { KUBELET_CLIENT_SIGNER, KUBELET_CLIENT_USAGES, nodeUserName } from './key-and-csr.js';

export class NodeCredentialsError extends Error {
  override readonly name = 'NodeCredentialsError';
}

export interface NodeCredentialsOptions {
  nodeName: string;
  certDir: string;
  /** Who asks for the first certificate (and for a new one once ours expired). */
  bootstrap: k8s.KubeConfig;
  rotate: boolean;
  /**
   * Fraction of the life at which to rotate; default: drawn in 70–90 % for each
   * certificate. Tests set it low to see rotations within seconds.
   */
  rotationFraction?: number;
  /** spec.expirationSeconds of our CSRs (min 600); default: the signer's duration. */
  expirationSeconds?: number;
  /** Wait for approval and issuance (default 15 min, the kubelet's). */
  csrTimeoutMs?: number;
  log: Logger;
}

function clusterCaPem(cluster: k8s.Cluster): string | undefined {
  if (cluster.caData) return Buffer.from(cluster.caData, 'base64').toString('utf8');
  if (cluster.caFile) return readFileSync(cluster.caFile, 'utf8');
  return undefined;
}

export class NodeCredentials {
  /** The node's KubeConfig; the same object for the process's life, credentials swapped inside. */
  readonly kubeConfig = new k8s.KubeConfig();
  private readonly cluster: k8s.Cluster;
  private readonly caPem: string | undefined;
  private current: NodeCert | undefined;
  private obtainedAt = new Date();
  private fraction: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly stopper = new AbortController();
  private rotating: Promise<void> | undefined;
  private listeners: ((cert: NodeCert) => void)[] = [];

  constructor(private readonly o: NodeCredentialsOptions) {
    const cluster = o.bootstrap.getCurrentCluster();
    if (!cluster) throw new NodeCredentialsError('the bootstrap kubeconfig names no cluster');
    this.cluster = cluster;
    try {
      this.caPem = clusterCaPem(cluster);
    } catch (err) {
      throw new NodeCredentialsError(`cannot read the cluster CA ${cluster.caFile ?? ''}: ${errorMessage(err)}`);
    }
    this.fraction = this.drawFraction();
  }

  get certificate(): NodeCert | undefined {
    return this.current;
  }

  /** Called after each rotation, with the new certificate. */
  onRotated(fn: (cert: NodeCert) => void): void {
    this.listeners.push(fn);
  }

  private drawFraction(): number {
    return this.o.rotationFraction ?? jitteredFraction();
  }

  private get user(): string {
    return nodeUserName(this.o.nodeName);
  }

  /** Loads or bootstraps the certificate; resolves once the KubeConfig works. */
  async start(): Promise<k8s.KubeConfig> {
    const now = new Date();
    const found = loadNodeCert(this.o.certDir, this.o.nodeName, this.caPem);
    const log = this.o.log;
    // Without rotation a certificate is kept for its whole life, as the kubelet keeps it.
    if (
      found.cert &&
      (usableAtStart(found.cert, now, this.fraction) || (!this.o.rotate && isCurrent(found.cert, now)))
    ) {
      log.info(
        { user: this.user, serial: found.cert.serialNumber, notAfter: found.cert.notAfter.toISOString() },
        'node client certificate: reusing the one in the cert dir',
      );
      this.use(found.cert, now);
    } else if (found.cert && isCurrent(found.cert, now) && this.o.rotate) {
      // Still valid but due: run on it and rotate within seconds, as the kubelet does.
      log.info(
        { user: this.user, serial: found.cert.serialNumber },
        'node client certificate: the one in the cert dir is due for rotation',
      );
      this.use(found.cert, now);
    } else {
      log.info({ user: this.user, reason: found.reason ?? 'expired or due' }, 'node client certificate: bootstrapping');
      const issued = await this.request(this.o.bootstrap);
      log.info(
        { user: this.user, csr: issued.csrName, serial: issued.serialNumber, notAfter: issued.notAfter.toISOString() },
        'node client certificate issued',
      );
    }
    if (this.o.rotate) this.schedule();
    return this.kubeConfig;
  }

  stop(): void {
    this.stopper.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Requests a new certificate now (tests, and the timer); one at a time. */
  rotateNow(): Promise<void> {
    this.rotating ??= this.rotateWithRetries().finally(() => {
      this.rotating = undefined;
    });
    return this.rotating;
  }

  private async request(kc: k8s.KubeConfig): Promise<NodeCert & { csrName: string }> {
    const issued = await requestNodeCert({
      kc,
      nodeName: this.o.nodeName,
      expirationSeconds: this.o.expirationSeconds,
      timeoutMs: this.o.csrTimeoutMs,
      caPem: this.caPem,
      signal: this.stopper.signal,
    });
    saveNodeCert(this.o.certDir, issued);
    this.use(issued, new Date());
    return issued;
  }

  private use(cert: NodeCert, at: Date): void {
    this.current = cert;
    this.obtainedAt = at;
    this.fraction = this.drawFraction();
    // loadFromOptions replaces the content of this same object, so every API client built
    // from it (and the keep-alive agent in kube-client.ts) sees the new pair on its next request.
    this.kubeConfig.loadFromOptions({
      clusters: [this.cluster],
      users: [
        {
          name: this.user,
          certData: Buffer.from(cert.certPem).toString('base64'),
          keyData: Buffer.from(cert.keyPem).toString('base64'),
        },
      ],
      contexts: [{ name: this.user, cluster: this.cluster.name, user: this.user }],
      currentContext: this.user,
    });
  }

  private schedule(): void {
    if (this.stopper.signal.aborted || !this.current) return;
    const delay = rotationDelayMs(this.current, new Date(), this.fraction, this.obtainedAt);
    this.o.log.debug({ inSeconds: Math.round(delay / 1000) }, 'next node client certificate rotation');
    // setTimeout's limit is 2^31-1 ms (~24.8 days); a longer wait re-plans at that point.
    const capped = Math.min(delay, 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      if (capped < delay) return this.schedule();
      void this.rotateNow().then(() => this.schedule());
    }, capped);
    this.timer.unref();
  }

  private async rotateWithRetries(): Promise<void> {
    for (let failures = 0; !this.stopper.signal.aborted;) {
      const cur = this.current;
      // Our own certificate asks while it is valid (…:selfnodeclient); after that only the bootstrap identity can.
      const expired = !cur || !isCurrent(cur, new Date());
      try {
        const issued = await this.request(expired ? this.o.bootstrap : this.kubeConfig);
        this.o.log.info(
          {
            user: this.user,
            csr: issued.csrName,
            serial: issued.serialNumber,
            previousSerial: cur?.serialNumber,
            notAfter: issued.notAfter.toISOString(),
            via: expired ? 'bootstrap' : 'node',
          },
          'node client certificate rotated',
        );
        for (const fn of this.listeners) fn(issued);
        return;
      } catch (err) {
        if (this.stopper.signal.aborted) return;
        failures++;
        const wait = backoffDelay({ baseMs: 2_000, maxMs: 5 * 60_000 }, failures);
        this.o.log.warn(
          {
            err: errorMessage(err),
            refused: err instanceof CsrError && err.refused,
            retryInSeconds: Math.round(wait / 1000),
          },
          'node client certificate rotation failed',
        );
        await sleep(wait, this.stopper.signal);
      }
    }
  }
}
