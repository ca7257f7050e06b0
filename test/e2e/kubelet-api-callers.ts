/**
 * Callers of a node's kubelet API for the authorization tests, each with the
 * credentials a real cluster hands out: a client certificate the cluster
 * issued through the CSR API, a ServiceAccount token from the TokenRequest API,
 * and no credentials at all.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import type { TestContext } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import * as x509 from '@peculiar/x509';
import WebSocket from 'ws';
import { adminKubeConfig, testCluster, waitFor } from '../support/cluster.js';
import { kubectl } from './kubelet-api-support.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

let ca: string | undefined;
/** The dev cluster's CA (it signs the kubelet serving certificate the connectors under test use). */
export function clusterCa(): string {
  return (ca ??= readFileSync(testCluster().caCert, 'utf8'));
}

/** How a request authenticates: a client certificate, a bearer token, or nothing. */
export type Credentials = { cert: string; key: string } | { token: string } | null;

export interface Answer {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
}

function tlsOf(who: Credentials): { cert?: string; key?: string; headers: Record<string, string> } {
  if (who === null) return { headers: {} };
  if ('token' in who) return { headers: { Authorization: `Bearer ${who.token}` } };
  return { cert: who.cert, key: who.key, headers: {} };
}

/** One HTTPS request to 127.0.0.1:port, trusting the dev cluster's CA. */
export function call(
  port: number,
  path: string,
  who: Credentials,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const t = tlsOf(who);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        ca: clusterCa(),
        cert: t.cert,
        key: t.key,
        headers: { ...t.headers, ...opts.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    // An upgrade that is accepted would never end as a response: report it and hang up.
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 101, body: '', headers: res.headers });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A SPDY/3.1 exec upgrade as the API server sends it; the status says whether it was let through. */
export function spdyUpgrade(port: number, path: string, who: Credentials): Promise<Answer> {
  return call(port, path, who, {
    method: 'POST',
    headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'v4.channel.k8s.io' },
  });
}

export type WsResult = { refused: number; body: string } | { stdout: string; status: string };

/** A WebSocket (v5.channel.k8s.io) exec straight to the kubelet port: its stdout and status, or the refusal. */
export function wsExec(
  port: number,
  path: string,
  who: Credentials,
  opts: { tokenInProtocol?: boolean } = {},
): Promise<WsResult> {
  const t = tlsOf(who);
  const protocols = ['v5.channel.k8s.io'];
  const headers = { ...t.headers };
  if (opts.tokenInProtocol && who && 'token' in who) {
    protocols.push(`base64url.bearer.authorization.k8s.io.${Buffer.from(who.token).toString('base64url')}`);
    delete headers.Authorization;
  }
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, protocols, {
    ca: clusterCa(),
    cert: t.cert,
    key: t.key,
    headers,
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let status = '';
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ refused: res.statusCode ?? 0, body }));
    });
    ws.on('message', (data: Buffer) => {
      if (data[0] === 1) stdout += data.subarray(1).toString('utf8');
      if (data[0] === 3) status += data.subarray(1).toString('utf8');
    });
    ws.on('close', () => resolve({ stdout, status }));
    ws.on('error', (err) => {
      // after 'unexpected-response' ws also reports an error; the refusal is already resolved
      if (!String(err.message).includes('Unexpected server response')) reject(err);
    });
  });
}

/**
 * A client certificate for `commonName`, issued by the cluster itself: a CSR for
 * the kube-apiserver-client signer, approved by the admin and signed by the
 * controller-manager with the cluster CA. Any cluster member able to get a CSR
 * approved holds one of these.
 */
export async function clusterIssuedCertificate(
  t: TestContext,
  commonName: string,
): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: alg,
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END PRIVATE KEY-----\n`;

  const certs = adminKubeConfig().makeApiClient(k8s.CertificatesV1Api);
  const name = `${commonName}-${Math.random().toString(36).slice(2, 8)}`;
  await certs.createCertificateSigningRequest({
    body: {
      metadata: { name },
      spec: {
        request: Buffer.from(csr.toString('pem')).toString('base64'),
        signerName: 'kubernetes.io/kube-apiserver-client',
        usages: ['client auth'],
        expirationSeconds: 3600,
      },
    },
  });
  t.after(() =>
    certs.deleteCertificateSigningRequest({ name }).then(
      () => undefined,
      () => undefined,
    ),
  );
  const approved = await kubectl(['certificate', 'approve', name]);
  if (approved.code !== 0) throw new Error(`kubectl certificate approve: ${approved.stderr}`);
  const issued = await waitFor(
    `the controller-manager to sign CSR ${name}`,
    async () => (await certs.readCertificateSigningRequest({ name })).status?.certificate,
  );
  return { cert: Buffer.from(issued, 'base64').toString('utf8'), key };
}

/** A ServiceAccount in `namespace`, optionally bound cluster-wide to `rules`, and a token for it (TokenRequest). */
export async function serviceAccountToken(
  t: TestContext,
  namespace: string,
  name: string,
  rules?: k8s.V1PolicyRule[],
): Promise<{ token: string; username: string }> {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  const username = `system:serviceaccount:${namespace}:${name}`;
  if (rules) {
    const role = `${namespace}-${name}`;
    await rbac.createClusterRole({ body: { metadata: { name: role }, rules } });
    t.after(() =>
      rbac.deleteClusterRole({ name: role }).then(
        () => undefined,
        () => undefined,
      ),
    );
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: role },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      },
    });
    t.after(() =>
      rbac.deleteClusterRoleBinding({ name: role }).then(
        () => undefined,
        () => undefined,
      ),
    );
  }
  const tr = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error('TokenRequest returned no token');
  return { token, username };
}

/**
 * Waits until the API server's authorizer itself allows `username` the given
 * node attributes, so the connector's first review cannot race the RBAC cache
 * (a denial would then be cached for 30 s).
 */
export async function waitUntilAllowed(
  username: string,
  groups: string[],
  attrs: k8s.V1ResourceAttributes,
): Promise<void> {
  const authz = adminKubeConfig().makeApiClient(k8s.AuthorizationV1Api);
  await waitFor(`RBAC to allow ${username} ${attrs.verb ?? ''} nodes/${attrs.subresource ?? ''}`, async () => {
    const r = await authz.createSubjectAccessReview({
      body: { spec: { user: username, groups, resourceAttributes: attrs } },
    });
    return r.status?.allowed === true;
  });
}
