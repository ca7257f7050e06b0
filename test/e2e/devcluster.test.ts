/**
 * The dev cluster is real: the scheduler binds, the controller-manager reconciles,
 * kubectl reports the pinned release, and teardown leaves no process behind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { repoRoot } from '../../devcluster/cluster.js';
import { processesMentioning } from '../../devcluster/processes.js';
import { adminKubeConfig, freshNamespace, testCluster, waitFor } from '../support/cluster.js';

const exec = promisify(execFile);

function pinnedVersion(): string {
  const env = readFileSync(join(repoRoot, 'devcluster/kube/versions.env'), 'utf8');
  const m = /^KUBE_VERSION=(\S+)/m.exec(env);
  assert.ok(m?.[1], 'versions.env names KUBE_VERSION');
  return m[1];
}

test('the real scheduler and controller-manager run a Deployment onto a node object', async (t) => {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const ns = await freshNamespace(t, 'devcluster');
  const nodeName = `fake-${ns}`;

  // A node with no agent behind it: Ready and roomy, so the scheduler can bind to it.
  await core.createNode({
    body: {
      metadata: { name: nodeName, labels: { 'kubernetes.io/hostname': nodeName, 'devcluster-test': ns } },
      status: {
        capacity: { cpu: '8', memory: '16Gi', pods: '110' },
        allocatable: { cpu: '8', memory: '16Gi', pods: '110' },
      },
    },
  });
  t.after(() => core.deleteNode({ name: nodeName }).catch(() => undefined));
  await core.patchNodeStatus(
    {
      name: nodeName,
      body: {
        status: {
          conditions: [
            { type: 'Ready', status: 'True', reason: 'Test', message: 'fake node', lastHeartbeatTime: new Date() },
          ],
        },
      },
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
  );

  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            nodeSelector: { 'devcluster-test': ns },
            // Fresh nodes carry the not-ready taint until the node lifecycle controller clears it.
            tolerations: [{ operator: 'Exists' }],
            containers: [{ name: 'web', image: 'registry.invalid/web:1' }],
          },
        },
      },
    },
  });

  const rs = await waitFor('a ReplicaSet owned by the Deployment', async () => {
    const list = await apps.listNamespacedReplicaSet({ namespace: ns });
    return list.items.find((r) =>
      r.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === 'web'),
    );
  });
  assert.equal(rs.spec?.replicas, 3);

  const pods = await waitFor('3 pods bound to the fake node', async () => {
    const list = await core.listNamespacedPod({ namespace: ns });
    const bound = list.items.filter((p) => p.spec?.nodeName === nodeName);
    return bound.length === 3 ? bound : undefined;
  });
  for (const p of pods) {
    assert.equal(p.metadata?.ownerReferences?.[0]?.kind, 'ReplicaSet');
    assert.equal(p.metadata?.ownerReferences?.[0]?.name, rs.metadata?.name);
    const scheduled = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
    assert.equal(scheduled?.status, 'True');
  }
});

test('kubectl version reports the pinned release', async () => {
  const { binDir, kubeconfig } = testCluster();
  const { stdout } = await exec(join(binDir, 'kubectl'), ['--kubeconfig', kubeconfig, 'version', '-o', 'json']);
  const v = JSON.parse(stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
  assert.equal(v.clientVersion.gitVersion, pinnedVersion());
  assert.equal(v.serverVersion.gitVersion, pinnedVersion());
});

test('a second build reuses the built binaries and says so', async () => {
  const { stdout, stderr } = await exec('bash', [join(repoRoot, 'devcluster/kube/build.sh')]);
  assert.match(stderr, /reusing built control plane binaries/);
  assert.equal(stdout.trim(), testCluster().binDir);
});

test('`devcluster up` then `down` leaves no process behind, even when the starter is gone', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'aci-devcluster-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const cli = join(repoRoot, 'dist/devcluster/cli.js');
  // `up` exits once the cluster is ready: the processes outlive the command that started them.
  const { stdout } = await exec(process.execPath, [cli, 'up', '--run-root', root], {
    env: { ...process.env, ACI_KUBE_BIN: testCluster().binDir },
  });
  const m = /export ACI_TEST_CLUSTER=(\S+)/.exec(stdout);
  assert.ok(m?.[1]);
  const info = JSON.parse(readFileSync(m[1], 'utf8')) as { runDir: string; server: string };
  const before = processesMentioning(info.runDir);
  assert.ok(before.length >= 4, `etcd and three kube components run (saw ${before.length})`);

  await exec(process.execPath, [cli, 'down', root]);
  assert.deepEqual(processesMentioning(info.runDir), []);
  assert.deepEqual(processesMentioning(root), []);
});
