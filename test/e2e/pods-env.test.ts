/** Env resolution against real Secrets and ConfigMaps, with the Events a person sees. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { backendPods, boundPod, core, startConnector } from './connector-process.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

async function eventsFor(ns: string, pod: string): Promise<k8s.CoreV1Event[]> {
  const list = await core().listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${pod}` });
  return list.items;
}

test('every env source is resolved and handed to the provider; Secret values only as secrets', async (t) => {
  const ns = await freshNamespace(t, 'env');
  const c = await startConnector(t);
  const api = core();
  await api.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'creds' }, stringData: { user: 'alice', token: 'tok-123' } },
  });
  await api.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: 'cfg' }, data: { mode: 'fast', level: '3' } },
  });
  const pod = boundPod(c.nodeName, 'envy', {
    metadata: { name: 'envy', labels: { app: 'envy' } },
    spec: {
      serviceAccountName: 'default',
      containers: [
        {
          name: 'main',
          image: 'busybox',
          resources: { limits: { cpu: '2', memory: '512Mi' }, requests: { cpu: '500m', memory: '256Mi' } },
          envFrom: [
            { configMapRef: { name: 'cfg' }, prefix: 'CFG_' },
            { secretRef: { name: 'creds' }, prefix: 'S_' },
          ],
          env: [
            { name: 'PLAIN', value: 'v' },
            { name: 'USER', valueFrom: { secretKeyRef: { name: 'creds', key: 'user' } } },
            { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'mode' } } },
            { name: 'OPT_SECRET', valueFrom: { secretKeyRef: { name: 'nowhere', key: 'x', optional: true } } },
            { name: 'OPT_CM', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'nokey', optional: true } } },
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'POD_NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
            { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
            { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
            { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
            { name: 'CPU_M', valueFrom: { resourceFieldRef: { resource: 'requests.cpu', divisor: '1m' } } },
            { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
            { name: 'COMBINED', value: '$(MODE)-$(PLAIN)' },
          ],
        },
      ],
    },
  });
  const created = await api.createNamespacedPod({ namespace: ns, body: pod });
  await waitFor(
    'pod Running',
    async () => (await api.readNamespacedPod({ name: 'envy', namespace: ns })).status?.phase === 'Running',
  );
  const env = backendPods(c, ns)[0]?.env.main ?? [];
  const get = (n: string) => env.find((e) => e.name === n);
  assert.equal(get('CFG_mode')?.value, 'fast');
  assert.equal(get('CFG_level')?.value, '3');
  assert.equal(get('S_user')?.sha256, sha('alice'));
  assert.equal(get('S_user')?.value, undefined, 'secret values are handed over as secrets');
  assert.equal(get('S_token')?.sha256, sha('tok-123'));
  assert.equal(get('PLAIN')?.value, 'v');
  assert.equal(get('USER')?.sha256, sha('alice'));
  assert.equal(get('MODE')?.value, 'fast');
  assert.equal(get('OPT_SECRET'), undefined);
  assert.equal(get('OPT_CM'), undefined);
  assert.equal(get('POD_NAME')?.value, 'envy');
  assert.equal(get('POD_NS')?.value, ns);
  assert.equal(get('APP')?.value, 'envy');
  assert.equal(get('NODE')?.value, c.nodeName);
  assert.equal(get('HOST_IP')?.value, '127.0.0.1');
  assert.equal(get('SA')?.value, 'default');
  assert.equal(get('CPU_M')?.value, '500');
  assert.equal(get('MEM_MI')?.value, '512');
  assert.equal(get('COMBINED')?.value, 'fast-v');

  const events = await waitFor('Events for the skipped optional references', async () => {
    const ev = await eventsFor(ns, 'envy');
    return ev.filter((e) => e.reason?.startsWith('OptionalSecret') || e.reason?.startsWith('OptionalConfigMap'))
      .length >= 2
      ? ev
      : undefined;
  });
  assert.ok(events.every((e) => e.involvedObject.uid === created.metadata?.uid));
  assert.ok(
    events.some(
      (e) => e.type === 'Warning' && e.reason === 'OptionalSecretNotFound' && /nowhere/.test(e.message ?? ''),
    ),
  );
  assert.ok(
    !JSON.stringify(events).includes('tok-123') && !JSON.stringify(events).includes('alice'),
    'no secret value in Events',
  );
  assert.ok(!c.output().includes('tok-123'), 'no secret value in the logs');
});

test('a missing mandatory Secret keeps the pod Pending with an Event until it appears; a missing ConfigMap key too', async (t) => {
  const ns = await freshNamespace(t, 'envmiss');
  const c = await startConnector(t);
  const api = core();
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'waits', {
      spec: {
        containers: [
          {
            name: 'main',
            image: 'busybox',
            env: [{ name: 'PW', valueFrom: { secretKeyRef: { name: 'later', key: 'pw' } } }],
          },
        ],
      },
    }),
  });
  await api.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'cfg' }, data: { other: 'x' } } });
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'nokey', {
      spec: {
        containers: [
          {
            name: 'main',
            image: 'busybox',
            env: [{ name: 'K', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'wanted' } } }],
          },
        ],
      },
    }),
  });
  const waiting = await waitFor('the pod to report the missing Secret', async () => {
    const p = await api.readNamespacedPod({ name: 'waits', namespace: ns });
    const w = p.status?.containerStatuses?.[0]?.state?.waiting;
    return w?.reason === 'CreateContainerConfigError' ? { p, w } : undefined;
  });
  assert.equal(waiting.p.status?.phase, 'Pending');
  assert.match(waiting.w.message ?? '', /secret "later" not found/);
  const ev = await waitFor('a Warning Event', async () =>
    (await eventsFor(ns, 'waits')).find((e) => e.type === 'Warning' && e.reason === 'MandatorySecretNotFound'),
  );
  assert.match(ev.message ?? '', /later/);
  const nokey = await waitFor('the other pod to report the missing key', async () => {
    const p = await api.readNamespacedPod({ name: 'nokey', namespace: ns });
    return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError' ? p : undefined;
  });
  assert.match(nokey.status?.containerStatuses?.[0]?.state?.waiting?.message ?? '', /key wanted/);
  const keyEvent = await waitFor('the missing key as its own Event reason', async () =>
    (await eventsFor(ns, 'nokey')).find((e) => e.type === 'Warning' && e.reason === 'MandatoryConfigMapKeyNotFound'),
  );
  assert.match(keyEvent.message ?? '', /wanted/);
  assert.equal(backendPods(c, ns).length, 0, 'nothing was created in the backend');

  await api.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'later' }, stringData: { pw: 'hunter2' } },
  });
  await waitFor(
    'the pod to run once the Secret exists',
    async () => (await api.readNamespacedPod({ name: 'waits', namespace: ns })).status?.phase === 'Running',
    { timeoutMs: 60_000 },
  );
  assert.equal(backendPods(c, ns).find((p) => p.ref.name === 'waits')?.env.main?.[0]?.sha256, sha('hunter2'));
  assert.equal((await api.readNamespacedPod({ name: 'nokey', namespace: ns })).status?.phase, 'Pending');
});
