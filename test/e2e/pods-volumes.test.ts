/**
 * Volume files are resolved by the core against real Secrets, ConfigMaps, the pod and real
 * ServiceAccount tokens, and handed to the provider: the mock provider's state file shows them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { backendPods, boundPod, core, startConnector } from './connector-process.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

test('secret, configMap, downwardAPI and projected volumes reach the provider as files; Secret data only as a hash', async (t) => {
  const ns = await freshNamespace(t, 'vols');
  const c = await startConnector(t);
  const api = core();
  await api.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'creds' }, stringData: { user: 'alice', password: 'pw-789' } },
  });
  await api.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: 'cfg' }, data: { 'app.conf': 'mode=fast\n', level: '3' } },
  });
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'files', {
      // The mock asks the core for the files only when told to record them.
      annotations: { 'mock.aci-connector.io/record-volumes': 'true' },
      metadata: { name: 'files', labels: { app: 'files' } },
      spec: {
        containers: [
          {
            name: 'main',
            image: 'busybox',
            resources: { limits: { cpu: '1', memory: '256Mi' } },
            volumeMounts: ['sec', 'conf', 'info', 'mixed'].map((name) => ({ name, mountPath: `/etc/${name}` })),
          },
        ],
        volumes: [
          { name: 'sec', secret: { secretName: 'creds', defaultMode: 0o400 } },
          { name: 'conf', configMap: { name: 'cfg', items: [{ key: 'app.conf', path: 'conf/app.conf' }] } },
          {
            name: 'info',
            downwardAPI: {
              items: [
                { path: 'name', fieldRef: { fieldPath: 'metadata.name' } },
                { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
                { path: 'mem', resourceFieldRef: { containerName: 'main', resource: 'limits.memory', divisor: '1Mi' } },
              ],
            },
          },
          {
            name: 'mixed',
            projected: {
              sources: [
                { secret: { name: 'creds', items: [{ key: 'password', path: 'pw', mode: 0o600 }] } },
                { configMap: { name: 'cfg', items: [{ key: 'level', path: 'level' }] } },
                { downwardAPI: { items: [{ path: 'ns', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
                { serviceAccountToken: { path: 'token', expirationSeconds: 3600 } },
              ],
            },
          },
        ],
      },
    }),
  });
  const running = await waitFor('pod Running', async () => {
    const p = await api.readNamespacedPod({ name: 'files', namespace: ns });
    return p.status?.phase === 'Running' ? p : undefined;
  });
  // The labels file holds every label the pod has (the API server may add topology labels), sorted, quoted.
  const labels = Object.entries(running.metadata?.labels ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join('\n');
  assert.ok(labels.startsWith('app="files"'), labels);
  const vols = backendPods(c, ns)[0]?.volumes ?? {};

  assert.deepEqual(vols['sec'], {
    user: { mode: 0o400, sha256: sha('alice') },
    password: { mode: 0o400, sha256: sha('pw-789') },
  });
  assert.deepEqual(vols['conf'], { 'conf/app.conf': { mode: 0o644, value: 'mode=fast\n' } });
  assert.deepEqual(vols['info'], {
    name: { mode: 0o644, value: 'files' },
    labels: { mode: 0o644, value: labels },
    mem: { mode: 0o644, value: '256' },
  });
  const mixed = vols['mixed'] ?? {};
  assert.deepEqual(Object.keys(mixed), ['pw', 'level', 'ns', 'token']);
  assert.deepEqual(mixed['pw'], { mode: 0o600, sha256: sha('pw-789') });
  assert.deepEqual(mixed['level'], { mode: 0o644, value: '3' });
  assert.deepEqual(mixed['ns'], { mode: 0o644, value: ns });
  // A real TokenRequest bound to the pod: only its hash is kept.
  assert.match(mixed['token']?.sha256 ?? '', /^[0-9a-f]{64}$/);
  assert.equal(mixed['token']?.value, undefined);

  // The API server's own kube-api-access volume: token, CA bundle, namespace.
  const access = Object.entries(vols).find(([name]) => name.startsWith('kube-api-access-'))?.[1] ?? {};
  assert.deepEqual(Object.keys(access).sort(), ['ca.crt', 'namespace', 'token']);
  assert.match(access['ca.crt']?.value ?? '', /BEGIN CERTIFICATE/);
  assert.equal(access['namespace']?.value, ns);
  assert.match(access['token']?.sha256 ?? '', /^[0-9a-f]{64}$/);

  const state = JSON.stringify(backendPods(c, ns));
  assert.ok(!state.includes('pw-789') && !state.includes('alice'), 'no Secret value in the state file');
  assert.ok(!c.output().includes('pw-789'), 'no Secret value in the logs');
});

test('a volume whose files clash (a file and a directory of one name) fails the pod naming the field, whatever the provider', async (t) => {
  const ns = await freshNamespace(t, 'vols-bad');
  const c = await startConnector(t);
  const api = core();
  await api.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'creds' }, stringData: { user: 'alice', password: 'pw-789' } },
  });
  // The API server accepts these paths one by one; the kubelet fails the pod when it writes them.
  const items = [
    { key: 'user', path: 'a' },
    { key: 'password', path: 'a/b' },
  ];
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'bad', {
      annotations: { 'mock.aci-connector.io/record-volumes': 'true' },
      spec: {
        automountServiceAccountToken: false,
        containers: [{ name: 'main', image: 'busybox' }],
        volumes: [{ name: 'sec', secret: { secretName: 'creds', items } }],
      },
    }),
  });
  const status = await waitFor('pod Failed', async () => {
    const s = (await api.readNamespacedPod({ name: 'bad', namespace: ns })).status;
    return s?.phase === 'Failed' ? s : undefined;
  });
  assert.equal(status.reason, 'InvalidPod');
  assert.match(status.message ?? '', /spec\.volumes\[0\]: 'a' is both a file and a directory/);
  assert.equal(backendPods(c, ns).length, 0, 'nothing was created in the backend');
});
