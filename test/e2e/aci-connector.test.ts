/**
 * The connector with the ACI provider against the real control plane, with the
 * emulator (simulated runtime) standing in for Azure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { createAciProvider, loadAciConfig, ACI_TAGS } from '../../src/providers/aci/index.js';
import { adminKubeConfig, freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, placeOn, startConnector, type ConnectorHandle } from './connector-process.js';
import type { TestContext } from 'node:test';
import { azureEnv, useEmulatorForFile } from './aci-emulator-env.js';

const RG = `e2e-${Math.random().toString(36).slice(2, 8)}`;

const aci = useEmulatorForFile(RG, {
  simulated: { pullMs: 50, startMs: 50, rules: [{ image: /does-not-exist/, fate: { kind: 'pullFails' } }] },
});

function aciConnector(t: TestContext): Promise<ConnectorHandle> {
  return startConnector(t, { extraArgs: ['--provider', 'aci'] });
}

async function groupsOf(node: string, namespace?: string) {
  return (await aci.inspector.arm.listGroups()).filter(
    (g) =>
      g.tags?.[ACI_TAGS.nodeName] === node && (namespace === undefined || g.tags?.[ACI_TAGS.namespace] === namespace),
  );
}

async function podIn(
  ns: string,
  name: string,
  pred: (p: k8s.V1Pod) => boolean,
  what: string,
  timeoutMs = 90_000,
): Promise<k8s.V1Pod> {
  return waitFor(
    `${ns}/${name} ${what}`,
    async () => {
      const p = await core().readNamespacedPod({ name, namespace: ns });
      return pred(p) ? p : undefined;
    },
    { timeoutMs },
  );
}

test('the node is Ready; a bound pod runs as a container group with its IP and ACI events; delete leaves no group', async (t) => {
  const ns = await freshNamespace(t, 'aci-run');
  const c = await aciConnector(t);
  await waitFor('node Ready', async () => {
    const n = await core().readNode({ name: c.nodeName });
    return n.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True';
  });
  const body = boundPod(c.nodeName, 'nginx', {
    spec: {
      containers: [{ name: 'nginx', image: 'nginx', ports: [{ containerPort: 80 }] }],
      dnsPolicy: 'ClusterFirst',
      restartPolicy: 'Always',
    },
  });
  await core().createNamespacedPod({ namespace: ns, body });
  const pod = await podIn(
    ns,
    'nginx',
    (p) =>
      p.status?.phase === 'Running' &&
      p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') === true,
    'Running and Ready',
  );
  const groups = await groupsOf(c.nodeName, ns);
  assert.equal(groups.length, 1);
  const group = await aci.inspector.arm.getGroup(groups[0]!.name!);
  assert.equal(pod.status?.podIP, group?.ipAddress?.ip);
  assert.match(pod.status?.podIP ?? '', /^127\./);
  assert.equal(pod.status?.containerStatuses?.[0]?.containerID, `aci://${groups[0]!.name}/nginx`);

  const events = await waitFor('ACI events on the pod', async () => {
    const list = await core().listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=nginx` });
    const reasons = list.items.map((e) => e.reason);
    return reasons.includes('Pulling') && reasons.includes('Started') ? list.items : undefined;
  });
  const pulling = events.filter((e) => e.reason === 'Pulling');
  assert.equal(pulling.length, 1, 'each ACI event reported once');

  await core().deleteNamespacedPod({ name: 'nginx', namespace: ns });
  await waitFor('pod gone', async () =>
    core()
      .readNamespacedPod({ name: 'nginx', namespace: ns })
      .then(
        () => false,
        (e: { code?: number }) => e.code === 404,
      ),
  );
  assert.equal((await groupsOf(c.nodeName, ns)).length, 0, 'no group left behind');
});

test('the tolerations example is placed by the real scheduler and runs', async (t) => {
  const ns = await freshNamespace(t, 'aci-sched');
  const c = await aciConnector(t);
  await core().createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'tolerant' },
      spec: { ...placeOn(c.nodeName), containers: [{ name: 'app', image: 'nginx', ports: [{ containerPort: 80 }] }] },
    },
  });
  const p = await podIn(ns, 'tolerant', (x) => x.status?.phase === 'Running', 'Running');
  assert.equal(p.spec?.nodeName, c.nodeName);
  assert.equal((await groupsOf(c.nodeName, ns)).length, 1);
});

test('rejected pods fail with the field named in their message', async (t) => {
  const ns = await freshNamespace(t, 'aci-reject');
  const c = await aciConnector(t);
  const cases: [string, Partial<k8s.V1Pod>, RegExp][] = [
    ['host-net', { spec: { hostNetwork: true, containers: [{ name: 'a', image: 'nginx' }] } }, /spec\.hostNetwork/],
    [
      'privileged',
      { spec: { containers: [{ name: 'a', image: 'nginx', securityContext: { privileged: true } }] } },
      /spec\.containers\[0\]\.securityContext\.privileged/,
    ],
    [
      'host-path',
      { spec: { containers: [{ name: 'a', image: 'nginx' }], volumes: [{ name: 'h', hostPath: { path: '/etc' } }] } },
      /spec\.volumes\[0\]\.hostPath/,
    ],
  ];
  for (const [name, extra] of cases)
    await core().createNamespacedPod({ namespace: ns, body: boundPod(c.nodeName, name, extra) });
  for (const [name, , re] of cases) {
    const p = await podIn(ns, name, (x) => x.status?.phase === 'Failed', 'Failed');
    assert.match(p.status?.message ?? '', re, `${name}: ${p.status?.message}`);
  }
  assert.equal((await groupsOf(c.nodeName, ns)).length, 0, 'nothing was created in ACI');
});

test('a Secret env value reaches the container as secureValue and appears in no log line', async (t) => {
  const ns = await freshNamespace(t, 'aci-secret');
  const c = await aciConnector(t);
  const secretValue = `s3cr3t-${Math.random().toString(36).slice(2)}`;
  await core().createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'creds' }, stringData: { password: secretValue } },
  });
  await core().createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'uses-secret', {
      spec: {
        containers: [
          {
            name: 'app',
            image: 'nginx',
            env: [
              { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } },
              { name: 'PLAIN', value: 'x' },
            ],
          },
        ],
      },
    }),
  });
  const pod = await podIn(ns, 'uses-secret', (x) => x.status?.phase === 'Running', 'Running');
  const [g] = await groupsOf(c.nodeName, ns);
  const group = await aci.inspector.arm.getGroup(g!.name!);
  const env = group?.containers[0]?.environmentVariables ?? [];
  assert.ok(
    env.some((e) => e.name === 'PASSWORD' && e.value === undefined),
    'PASSWORD is a secure variable',
  );
  assert.ok(!JSON.stringify(group).includes(secretValue));

  const { PassThrough } = await import('node:stream');
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const ref = { namespace: ns, name: 'uses-secret', uid: pod.metadata!.uid! };
  const shadow = createAciProvider({
    config: loadAciConfig(azureEnv(aci.emu, RG)),
    clusterId: await clusterId(),
    nodeName: c.nodeName,
  });
  try {
    await shadow.exec(ref, 'app', ['env'], { stdout: out, tty: true });
  } finally {
    await shadow.close();
  }
  assert.match(text, new RegExp(`PASSWORD=${secretValue}`), 'the value reached the container');
  assert.ok(!c.output().includes(secretValue), 'the connector never logged the secret');
});

test('exits: restartPolicy Never gives Failed with the exit code; OnFailure restarts; a Job completes', async (t) => {
  const ns = await freshNamespace(t, 'aci-exit');
  const c = await aciConnector(t);
  await core().createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'fails', {
      spec: {
        restartPolicy: 'Never',
        containers: [{ name: 'app', image: 'busybox', command: ['sh', '-c', 'exit 3'] }],
      },
    }),
  });
  await core().createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'retries', {
      spec: {
        restartPolicy: 'OnFailure',
        containers: [{ name: 'app', image: 'busybox', command: ['sh', '-c', 'exit 1'] }],
      },
    }),
  });
  const failed = await podIn(ns, 'fails', (x) => x.status?.phase === 'Failed', 'Failed');
  assert.equal(failed.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 3);
  assert.equal(failed.status?.containerStatuses?.[0]?.restartCount, 0);
  const retried = await podIn(
    ns,
    'retries',
    (x) => (x.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
    'restarted',
  );
  assert.notEqual(retried.status?.phase, 'Failed');
  assert.equal(retried.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 1);

  const batch = adminKubeConfig().makeApiClient(k8s.BatchV1Api);
  await batch.createNamespacedJob({
    namespace: ns,
    body: {
      metadata: { name: 'once' },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            ...placeOn(c.nodeName),
            restartPolicy: 'Never',
            containers: [{ name: 'job', image: 'busybox', command: ['sh', '-c', 'echo done'] }],
          },
        },
      },
    },
  });
  await waitFor(
    'Job complete',
    async () => {
      const j = await batch.readNamespacedJob({ name: 'once', namespace: ns });
      return (
        (j.status?.succeeded ?? 0) >= 1 &&
        j.status?.conditions?.some((x) => x.type === 'Complete' && x.status === 'True')
      );
    },
    { timeoutMs: 120_000 },
  );
});

test('a wrong credential makes the node NotReady with the reason', async (t) => {
  const c = await startConnector(t, {
    extraArgs: ['--provider', 'aci'],
    waitRunning: false,
    env: { AZURE_CLIENT_KEY: 'not-the-secret' },
  });
  const cond = await waitFor('Ready=False', async () => {
    const n = await core().readNode({ name: c.nodeName });
    const r = n.status?.conditions?.find((x) => x.type === 'Ready');
    return r?.status === 'False' ? r : undefined;
  });
  assert.equal(cond.reason, 'AzureCredentialInvalid');
  assert.match(cond.message ?? '', /credential/);
  assert.ok(!c.output().includes('not-the-secret'));
});

async function clusterId(): Promise<string> {
  const ns = await core().readNamespace({ name: 'kube-system' });
  return ns.metadata!.uid!;
}
