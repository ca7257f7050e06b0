/**
 * What a test file knows of the shared dev cluster. The test runner
 * (run-tests.ts) starts one real control plane per run and passes its
 * description to every test process through ACI_TEST_CLUSTER (a JSON file path).
 */
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import type { ClusterInfo } from '../../devcluster/cluster.js';
import { waitFor as wait, type WaitOptions } from './wait.js';

/** The cluster's description as devcluster wrote it (cluster.json). */
export type TestClusterInfo = ClusterInfo;

let cached: TestClusterInfo | undefined;

export function testCluster(): TestClusterInfo {
  if (cached) return cached;
  const file = process.env.ACI_TEST_CLUSTER;
  if (!file)
    throw new Error(
      'ACI_TEST_CLUSTER is not set: run tests through scripts/test (or node dist/test/support/run-tests.js)',
    );
  cached = JSON.parse(readFileSync(file, 'utf8')) as TestClusterInfo;
  return cached;
}

export function adminKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(testCluster().kubeconfig);
  return kc;
}

/** Creates a fresh namespace for one test and deletes it when the test ends. */
export async function freshNamespace(t: TestContext, prefix = 't'): Promise<string> {
  const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const safe = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 40);
  const name = `${safe}-${Math.random().toString(36).slice(2, 8)}`;
  await core.createNamespace({ body: { metadata: { name } } });
  t.after(async () => {
    await core.deleteNamespace({ name }).catch(() => undefined);
  });
  // Pods are admitted only once the controller-manager has made the namespace's default ServiceAccount.
  await waitFor(`the default ServiceAccount in ${name}`, () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(
      () => true,
      () => false,
    ),
  );
  return name;
}

/** test/support/wait.ts's waitFor, paced for the API server: every 250 ms, for up to 90 s by default. */
export function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: WaitOptions = {},
): Promise<T> {
  return wait(what, check, { timeoutMs: 90_000, intervalMs: 250, ...opts });
}
