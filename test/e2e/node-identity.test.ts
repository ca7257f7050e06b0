/**
 * The connector is a node, and holds only a node's rights: it talks to the API
 * server as system:node:<name> (group system:nodes) under the Node authorizer
 * and NodeRestriction, so it reads only the Secrets its pods reference, mints
 * tokens only for its pods' ServiceAccounts, and changes only its own Node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { nodeKubeconfig } from '../../devcluster/node-identity.js';
import { freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';

function kubeConfigFrom(path: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

function code(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    const c = code(err);
    if (c === undefined) throw err;
    return c;
  }
}

function bodyOf(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  return typeof body === 'string' ? body : JSON.stringify(body ?? '');
}

test('the dev cluster runs kube-apiserver with --authorization-mode=Node,RBAC and NodeRestriction', () => {
  const { runDir } = testCluster();
  const pid = Number(readFileSync(join(runDir, 'pids', 'kube-apiserver'), 'utf8'));
  const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  assert.ok(args.includes('--authorization-mode=Node,RBAC'), args.join(' '));
  assert.ok(args.includes('--enable-admission-plugins=NodeRestriction'), args.join(' '));
});

test('the connector kubeconfig is the node identity system:node:aci-connector in system:nodes', async () => {
  const kc = kubeConfigFrom(testCluster().connectorKubeconfig);
  const review = await kc
    .makeApiClient(k8s.AuthenticationV1Api)
    .createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
  assert.equal(review.status?.userInfo?.username, 'system:node:aci-connector');
  assert.ok(review.status?.userInfo?.groups?.includes('system:nodes'), String(review.status?.userInfo?.groups));
});

test('a connector under its node identity reads only referenced Secrets, mints tokens only for its pods, and changes only its own Node', async (t) => {
  const ns = await freshNamespace(t, 'node-identity');
  const api = core();
  const c = await startConnector(t);
  const other = await startConnector(t);
  const kc = kubeConfigFrom(await nodeKubeconfig(testCluster(), c.nodeName));
  const review = await kc
    .makeApiClient(k8s.AuthenticationV1Api)
    .createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
  assert.equal(
    review.status?.userInfo?.username,
    `system:node:${c.nodeName}`,
    'the connector was handed its own node identity',
  );
  const asNode = kc.makeApiClient(k8s.CoreV1Api);

  await api.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'referenced' }, stringData: { pw: 'one' } },
  });
  await api.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'unreferenced' }, stringData: { pw: 'two' } },
  });
  await api.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'unused' } } });
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'app', {
      spec: {
        containers: [
          {
            name: 'main',
            image: 'busybox',
            env: [{ name: 'PW', valueFrom: { secretKeyRef: { name: 'referenced', key: 'pw' } } }],
          },
        ],
      },
    }),
  });
  const pod = await waitFor('the pod to run (its Secret read as the node)', async () => {
    const p = await api.readNamespacedPod({ name: 'app', namespace: ns });
    return p.status?.phase === 'Running' ? p : undefined;
  });

  // Secrets: the referenced one, by name, and nothing else.
  assert.equal(
    await status(asNode.readNamespacedSecret({ name: 'referenced', namespace: ns })),
    200,
    'a referenced Secret is readable',
  );
  assert.equal(
    await status(asNode.readNamespacedSecret({ name: 'unreferenced', namespace: ns })),
    403,
    'an unreferenced Secret is not',
  );
  assert.equal(await status(asNode.listNamespacedSecret({ namespace: ns })), 403, 'listing Secrets is not');
  assert.equal(
    await status(asNode.listNamespacedSecret({ namespace: ns, fieldSelector: 'metadata.name=referenced' })),
    200,
    'a per-name list (the watch) is',
  );

  // Tokens: bound to the node's pod, for the pod's ServiceAccount only.
  const boundTo = { apiVersion: 'v1', kind: 'Pod', name: 'app', uid: pod.metadata?.uid };
  const token = (sa: string, bound: boolean) =>
    asNode.createNamespacedServiceAccountToken({
      name: sa,
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 3600, ...(bound ? { boundObjectRef: boundTo } : {}) } },
    });
  assert.equal(
    await status(token('default', true)),
    200,
    "a token for the pod's ServiceAccount, bound to the pod, is allowed",
  );
  assert.equal(await status(token('unused', true)), 403, 'a token for a ServiceAccount no pod on the node uses is not');
  let unbound: unknown;
  await token('default', false).catch((err: unknown) => (unbound = err));
  assert.equal(code(unbound), 403, 'an unbound token is not (NodeRestriction)');
  assert.match(bodyOf(unbound), /not bound to a pod/);

  // Nodes: its own, not another's.
  const patch = { metadata: { labels: { 'node.kubernetes.io/probe': 'x' } } };
  const opts = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  assert.equal(
    await status(asNode.patchNode({ name: c.nodeName, body: patch }, opts)),
    200,
    'its own Node is writable',
  );
  let denied: unknown;
  await asNode.patchNode({ name: other.nodeName, body: patch }, opts).catch((err: unknown) => (denied = err));
  assert.equal(code(denied), 403, 'another Node is not');
  assert.match(bodyOf(denied), /is not allowed to modify node/);
  assert.equal(
    (await api.readNode({ name: other.nodeName })).metadata?.labels?.['node.kubernetes.io/probe'],
    undefined,
  );
});

test('a missing Secret volume keeps the pod Pending with an Event until the per-object watch sees the Secret', async (t) => {
  const ns = await freshNamespace(t, 'node-identity-vol');
  const api = core();
  const c = await startConnector(t);
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'mounts', {
      spec: {
        containers: [{ name: 'main', image: 'busybox', volumeMounts: [{ name: 'creds', mountPath: '/creds' }] }],
        volumes: [{ name: 'creds', secret: { secretName: 'late' } }],
      },
    }),
  });
  const waiting = await waitFor('the pod to report the missing Secret', async () => {
    const p = await api.readNamespacedPod({ name: 'mounts', namespace: ns });
    const w = p.status?.containerStatuses?.[0]?.state?.waiting;
    return w?.reason === 'CreateContainerConfigError' ? w : undefined;
  });
  assert.match(waiting.message ?? '', /secret "late" not found \(spec\.volumes\[0\]\.secret\)/);
  await waitFor('a Warning Event', async () =>
    (await api.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=mounts' })).items.find(
      (e) => e.reason === 'MandatorySecretNotFound',
    ),
  );
  assert.equal((await api.readNamespacedPod({ name: 'mounts', namespace: ns })).status?.phase, 'Pending');
  await api.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'late' }, stringData: { k: 'v' } } });
  await waitFor(
    'the pod to run once the Secret exists',
    async () => (await api.readNamespacedPod({ name: 'mounts', namespace: ns })).status?.phase === 'Running',
    { timeoutMs: 60_000 },
  );
});
