/**
 * Several connector replicas for one node (--leader-elect), for the HA tests: the Lease's
 * namespace with the rights a Deployment's Role gives, replicas started and told apart by
 * their election identity, and a watch on the node's Ready condition.
 */
import type { TestContext } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminKubeConfig, freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { startConnector, type ConnectorHandle } from './connector-process.js';

/** Short timings so a failover fits a test: takeover ≈ lease duration + a retry period + start-up. */
export const TEST_TIMING = [
  '--leader-elect-lease-duration',
  '6s',
  '--leader-elect-renew-deadline',
  '4s',
  '--leader-elect-retry-period',
  '1s',
];

export interface LeaseSetup {
  namespace: string;
  /** Kubeconfig of the ServiceAccount that holds the Lease (--leader-elect-kubeconfig). */
  kubeconfig: string;
}

/**
 * A namespace for the leader Lease and, as the chart sets it up, a ServiceAccount there whose
 * Role may read and write Leases: the identity the replicas hold the Lease with. (Their node
 * identity may not: NodeRestriction keeps a node to its own Lease in kube-node-lease.)
 */
export async function leaseNamespace(t: TestContext): Promise<LeaseSetup> {
  const ns = await freshNamespace(t, 'ha-lease');
  const admin = adminKubeConfig();
  const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  const core = admin.makeApiClient(k8s.CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'aci-connector' } } });
  await rbac.createNamespacedRole({
    namespace: ns,
    body: {
      metadata: { name: 'leader-election' },
      rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name: 'leader-election' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'leader-election' },
      subjects: [{ kind: 'ServiceAccount', name: 'aci-connector', namespace: ns }],
    },
  });
  const tr = await core.createNamespacedServiceAccountToken({
    name: 'aci-connector',
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error('no ServiceAccount token issued');
  const cluster = testCluster();
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'dev', server: cluster.server, caFile: cluster.caCert }],
    users: [{ name: 'sa', token }],
    contexts: [{ name: 'sa', cluster: 'dev', user: 'sa' }],
    currentContext: 'sa',
  });
  const dir = mkdtempSync(join(tmpdir(), 'ha-lease-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kc.exportConfig(), { mode: 0o600 });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { namespace: ns, kubeconfig };
}

export interface Replica {
  handle: ConnectorHandle;
  /** The election identity it logged (hostname_uuid). */
  identity(): string | undefined;
  isLeaderRunning(): boolean;
}

function replicaOf(handle: ConnectorHandle): Replica {
  return {
    handle,
    identity: () => /"identity":"([^"]+)","msg":"caches warm; waiting to lead"/.exec(handle.output())?.[1],
    isLeaderRunning: () => handle.output().includes('"msg":"pod controller running"'),
  };
}

/** Starts one replica and waits until it is warm (following) or leading. */
export async function startReplica(
  t: TestContext,
  nodeName: string,
  lease: LeaseSetup,
  extraArgs: string[] = [],
): Promise<Replica> {
  const handle = await startConnector(t, {
    nodeName,
    waitRunning: false,
    extraArgs: [
      '--leader-elect',
      '--leader-elect-resource-namespace',
      lease.namespace,
      '--leader-elect-kubeconfig',
      lease.kubeconfig,
      ...TEST_TIMING,
      ...extraArgs,
    ],
  });
  return waitWarm(replicaOf(handle));
}

/** The same replica started again after it was killed (a Deployment's restart). */
export async function restartReplica(r: Replica): Promise<Replica> {
  return waitWarm(replicaOf(await r.handle.restart()));
}

async function waitWarm(r: Replica): Promise<Replica> {
  let ended = false;
  void r.handle.exited.then(() => (ended = true));
  await waitFor(
    `replica of ${r.handle.nodeName} to be warm`,
    () => {
      if (ended) throw new Error(`replica exited early:\n${r.handle.output()}`);
      return r.identity() !== undefined;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  );
  return r;
}

export async function leaseHolder(ns: string, name: string): Promise<string | undefined> {
  const coord = adminKubeConfig().makeApiClient(k8s.CoordinationV1Api);
  try {
    return (await coord.readNamespacedLease({ name, namespace: ns })).spec?.holderIdentity || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Polls the node's Ready condition every 250 ms and keeps the longest stretch it was not
 * True (NotReady, Unknown, or the node missing).
 */
export function watchNodeReady(nodeName: string): { stop(): { longestNotReadyMs: number; samples: number } } {
  const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  let stopped = false;
  let notReadySince: number | undefined;
  let longest = 0;
  let samples = 0;
  const loop = (async () => {
    while (!stopped) {
      const at = Date.now();
      let ready = false;
      try {
        const n = await core.readNode({ name: nodeName });
        ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      } catch {
        ready = false;
      }
      samples++;
      if (ready) notReadySince = undefined;
      else {
        notReadySince ??= at;
        longest = Math.max(longest, Date.now() - notReadySince);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  void loop;
  return {
    stop: () => {
      stopped = true;
      return { longestNotReadyMs: longest, samples };
    },
  };
}
