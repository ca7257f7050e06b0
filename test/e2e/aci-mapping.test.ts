/**
 * Pod → container group mapping end to end: a pod using most mapping rows goes
 * through the real API server (ServiceAccount admission, Secrets, ConfigMaps,
 * the core's env resolution and tokens) and the emulator's request validation;
 * the stored group is then read back from ARM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';

const aci = useEmulatorForFile('mapping', { simulated: { pullMs: 20, startMs: 20 } });

const b64 = (s: string) => Buffer.from(s).toString('base64');

test('a pod using most mapping rows becomes the expected container group', async (t) => {
  const ns = await freshNamespace(t, 'aci-map');
  const c = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
  const api = core();
  await api.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'app-secret' }, stringData: { token: 'tok-123', password: 'pw-456' } },
  });
  await api.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: 'regcred' },
      type: 'kubernetes.io/dockerconfigjson',
      stringData: {
        '.dockerconfigjson': JSON.stringify({ auths: { 'myregistry.azurecr.io': { username: 'u', password: 'p' } } }),
      },
    },
  });
  await api.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: 'storage' },
      stringData: { azurestorageaccountname: 'acct', azurestorageaccountkey: 'a2V5' },
    },
  });
  await api.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: 'app-config' }, data: { 'app.conf': 'mode=prod', LEVEL: 'debug' } },
  });

  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'kitchen-sink', {
      metadata: {
        name: 'kitchen-sink',
        labels: { app: 'sink' },
        annotations: { 'aci-connector.io/dns-name-label': 'sink-label', 'aci-connector.io/priority': 'Regular' },
      },
      spec: {
        restartPolicy: 'OnFailure',
        imagePullSecrets: [{ name: 'regcred' }],
        dnsPolicy: 'None',
        dnsConfig: { nameservers: ['10.0.0.10'], searches: ['svc.local'], options: [{ name: 'ndots', value: '2' }] },
        initContainers: [{ name: 'init', image: 'busybox', command: ['sh', '-c', 'echo init'] }],
        containers: [
          {
            name: 'app',
            image: 'myregistry.azurecr.io/app:1',
            command: ['/app/run'],
            args: ['--level=$(LEVEL)'],
            ports: [{ name: 'http', containerPort: 8080 }],
            env: [
              { name: 'LEVEL', valueFrom: { configMapKeyRef: { name: 'app-config', key: 'LEVEL' } } },
              { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'app-secret', key: 'password' } } },
              { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            ],
            resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '500m', memory: '1Gi' } },
            readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 5 },
            livenessProbe: { exec: { command: ['true'] }, initialDelaySeconds: 3 },
            volumeMounts: [
              { name: 'config', mountPath: '/etc/app' },
              { name: 'secret', mountPath: '/etc/secret', readOnly: true },
              { name: 'scratch', mountPath: '/scratch' },
              { name: 'info', mountPath: '/etc/podinfo' },
              { name: 'share', mountPath: '/share' },
            ],
          },
          { name: 'sidecar', image: 'busybox', command: ['sleep', '3600'] },
        ],
        volumes: [
          { name: 'config', configMap: { name: 'app-config', items: [{ key: 'app.conf', path: 'app.conf' }] } },
          { name: 'secret', secret: { secretName: 'app-secret' } },
          { name: 'scratch', emptyDir: {} },
          { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
          { name: 'share', azureFile: { secretName: 'storage', shareName: 'data' } },
        ],
      },
    }),
  });

  const pod = await waitFor('kitchen-sink Running', async () => {
    const p = await api.readNamespacedPod({ name: 'kitchen-sink', namespace: ns });
    return p.status?.phase === 'Running' ? p : undefined;
  });
  const [listed] = (await aci.inspector.arm.listGroups()).filter(
    (g) => g.tags?.[ACI_TAGS.podUid] === pod.metadata?.uid,
  );
  assert.ok(listed, 'the group carries the pod uid tag');
  const g = (await aci.inspector.arm.getGroup(listed.name!))!;
  assert.equal(g.tags?.[ACI_TAGS.namespace], ns);
  assert.equal(g.tags?.[ACI_TAGS.podName], 'kitchen-sink');
  assert.equal(g.tags?.[ACI_TAGS.nodeName], c.nodeName);
  assert.equal(g.restartPolicy, 'OnFailure');
  assert.equal(g.osType, 'Linux');
  assert.equal(g.priority, 'Regular');
  assert.deepEqual(
    g.imageRegistryCredentials?.map((r) => [r.server, r.username]),
    [['myregistry.azurecr.io', 'u']],
  );
  assert.deepEqual(g.dnsConfig, { nameServers: ['10.0.0.10'], searchDomains: 'svc.local', options: 'ndots:2' });
  assert.equal(g.ipAddress?.type, 'Public');
  assert.equal(g.ipAddress?.dnsNameLabel, 'sink-label');
  assert.deepEqual(
    g.ipAddress?.ports?.map((p) => p.port),
    [8080],
  );
  assert.equal(pod.status?.podIP, g.ipAddress?.ip);
  assert.deepEqual(
    g.initContainers?.map((i) => i.name),
    ['init'],
  );

  const app = g.containers.find((x) => x.name === 'app')!;
  assert.deepEqual(app.command, ['/app/run', '--level=debug']);
  assert.deepEqual(app.resources.requests, { cpu: 0.25, memoryInGB: 0.6 });
  assert.deepEqual(app.resources.limits, { cpu: 0.5, memoryInGB: 1.1 });
  const env = Object.fromEntries((app.environmentVariables ?? []).map((e) => [e.name, e]));
  assert.equal(env['LEVEL']?.value, 'debug');
  assert.equal(env['POD_NAME']?.value, 'kitchen-sink');
  assert.ok(env['PASSWORD'] && env['PASSWORD'].value === undefined, 'the Secret value is a secureValue');
  assert.equal(app.readinessProbe?.httpGet?.port, 8080);
  assert.equal(app.readinessProbe?.httpGet?.path, '/ready');
  assert.deepEqual(app.livenessProbe?.exec?.command, ['true']);
  assert.deepEqual(app.volumeMounts?.map((m) => m.name.replace(/^kube-api-access-.*/, 'kube-api-access')).sort(), [
    'config',
    'info',
    'kube-api-access',
    'scratch',
    'secret',
    'share',
  ]);
  assert.equal(
    app.volumeMounts?.find((m) => m.name.startsWith('kube-api-access'))?.mountPath,
    '/var/run/secrets/kubernetes.io/serviceaccount',
  );

  const vols = Object.fromEntries((g.volumes ?? []).map((v) => [v.name, v]));
  assert.ok(vols['scratch']?.emptyDir !== undefined);
  assert.equal(vols['share']?.azureFile?.shareName, 'data');
  assert.equal(vols['share']?.azureFile?.storageAccountName, 'acct');
  // ARM never returns secret volume contents or storage keys; the names show the files are there.
  for (const name of ['config', 'secret', 'info'])
    assert.ok(vols[name]?.secret !== undefined, `${name} is a secret volume`);
  const apiAccess = (g.volumes ?? []).find((v) => v.name.startsWith('kube-api-access'));
  assert.ok(apiAccess?.secret !== undefined, 'the ServiceAccount token volume became a secret volume');
  assert.ok(!JSON.stringify(g).includes(b64('pw-456')) && !JSON.stringify(g).includes('pw-456'));
});

test('nodeSelector kubernetes.io/os: windows makes a Windows group', async (t) => {
  const ns = await freshNamespace(t, 'aci-win');
  const c = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
  await core().createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'win', {
      spec: {
        nodeSelector: { 'kubernetes.io/os': 'windows' },
        automountServiceAccountToken: false,
        containers: [{ name: 'app', image: 'mcr.microsoft.com/windows/servercore:ltsc2022' }],
      },
    }),
  });
  const pod = await waitFor('win Running', async () => {
    const p = await core().readNamespacedPod({ name: 'win', namespace: ns });
    return p.status?.phase === 'Running' ? p : undefined;
  });
  const [g] = (await aci.inspector.arm.listGroups()).filter((x) => x.tags?.[ACI_TAGS.podUid] === pod.metadata?.uid);
  assert.equal(g?.osType, 'Windows');
});
