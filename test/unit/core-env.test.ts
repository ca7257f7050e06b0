import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import { expandVars, resolvePodEnv, type EnvLookups } from '../../src/core/env.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function lookups(secrets: V1Secret[], cms: V1ConfigMap[], extra: Partial<EnvLookups> = {}): EnvLookups {
  return {
    getSecret: (ns, name) => secrets.find((s) => s.metadata?.namespace === ns && s.metadata?.name === name),
    getConfigMap: (ns, name) => cms.find((c) => c.metadata?.namespace === ns && c.metadata?.name === name),
    ...extra,
  };
}

const secret: V1Secret = {
  metadata: { namespace: 'ns', name: 'creds' },
  data: { user: b64('alice'), pass: b64('s3cr3t'), 'bad key': b64('x') },
};
const cm: V1ConfigMap = { metadata: { namespace: 'ns', name: 'settings' }, data: { mode: 'fast', level: '3' } };

function pod(
  containers: NonNullable<V1Pod['spec']>['containers'],
  extra: Partial<NonNullable<V1Pod['spec']>> = {},
): V1Pod {
  return {
    metadata: { namespace: 'ns', name: 'p', uid: 'u-1', labels: { app: 'web' }, annotations: { team: 'blue' } },
    spec: { nodeName: 'aci-connector', serviceAccountName: 'sa', containers, ...extra },
  };
}

test('every env source resolves, Secret values are marked sensitive', () => {
  const p = pod([
    {
      name: 'c',
      image: 'busybox',
      resources: { limits: { cpu: '1500m', memory: '256Mi' }, requests: { cpu: '250m' } },
      envFrom: [{ configMapRef: { name: 'settings' }, prefix: 'CM_' }, { secretRef: { name: 'creds' } }],
      env: [
        { name: 'PLAIN', value: 'hello' },
        { name: 'EXPANDED', value: '$(PLAIN)-$(CM_mode)-$(MISSING)-$$(PLAIN)' },
        { name: 'USER', valueFrom: { secretKeyRef: { name: 'creds', key: 'user' } } },
        { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'settings', key: 'mode' } } },
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'POD_NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        { name: 'POD_UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
        { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: 'TEAM', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['team']" } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'SA', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
        { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'CPU_LIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
        { name: 'CPU_REQ_M', valueFrom: { resourceFieldRef: { resource: 'requests.cpu', divisor: '1m' } } },
        { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
        { name: 'MEM_REQ', valueFrom: { resourceFieldRef: { resource: 'requests.memory' } } },
      ],
    },
  ]);
  const r = resolvePodEnv(p, lookups([secret], [cm], { hostIP: '10.1.2.3' }));
  assert.deepEqual(r.missing, []);
  assert.deepEqual(r.invalid, []);
  const env = Object.fromEntries((r.env.get('c') ?? []).map((e) => [e.name, e]));
  const v = (n: string) => env[n]?.value;
  assert.equal(v('CM_mode'), 'fast');
  assert.equal(v('CM_level'), '3');
  assert.equal(v('user'), 'alice');
  assert.equal(env.user?.sensitive, true);
  assert.equal(env.pass?.sensitive, true);
  assert.equal(env.CM_mode?.sensitive, false);
  assert.equal(env['bad key'], undefined, 'invalid names from envFrom are skipped');
  assert.ok(r.notes.some((n) => n.reason === 'InvalidEnvironmentVariableNames' && n.message.includes('bad key')));
  assert.equal(v('PLAIN'), 'hello');
  assert.equal(v('EXPANDED'), 'hello-fast-$(MISSING)-$(PLAIN)');
  assert.equal(v('USER'), 'alice');
  assert.equal(env.USER?.sensitive, true);
  assert.equal(v('MODE'), 'fast');
  assert.equal(env.MODE?.sensitive, false);
  assert.equal(v('POD_NAME'), 'p');
  assert.equal(v('POD_NS'), 'ns');
  assert.equal(v('POD_UID'), 'u-1');
  assert.equal(v('APP'), 'web');
  assert.equal(v('TEAM'), 'blue');
  assert.equal(v('NODE'), 'aci-connector');
  assert.equal(v('SA'), 'sa');
  assert.equal(v('HOST_IP'), '10.1.2.3');
  assert.equal(v('CPU_LIMIT'), '2', 'cpu rounds up to whole cores');
  assert.equal(v('CPU_REQ_M'), '250');
  assert.equal(v('MEM_MI'), '256');
  assert.equal(
    v('MEM_REQ'),
    String(256 * 1024 * 1024),
    'an unset request defaults to the limit, as the API server defaults it',
  );
});

test('env overrides envFrom and keeps the first definition position', () => {
  const p = pod([
    { name: 'c', envFrom: [{ configMapRef: { name: 'settings' } }], env: [{ name: 'mode', value: 'slow' }] },
  ]);
  const r = resolvePodEnv(p, lookups([], [cm]));
  const list = r.env.get('c') ?? [];
  assert.equal(list.filter((e) => e.name === 'mode').length, 1);
  assert.equal(list.find((e) => e.name === 'mode')?.value, 'slow');
});

test('missing mandatory references are reported with their field; optional ones are skipped with a note', () => {
  const p = pod([
    {
      name: 'c',
      envFrom: [{ secretRef: { name: 'nope-optional', optional: true } }, { configMapRef: { name: 'nope-cm' } }],
      env: [
        { name: 'A', valueFrom: { secretKeyRef: { name: 'absent', key: 'k' } } },
        { name: 'B', valueFrom: { secretKeyRef: { name: 'creds', key: 'nokey' } } },
        { name: 'C', valueFrom: { configMapKeyRef: { name: 'absent-cm', key: 'k', optional: true } } },
        { name: 'D', valueFrom: { configMapKeyRef: { name: 'settings', key: 'nokey', optional: true } } },
        { name: 'E', value: 'kept' },
      ],
    },
  ]);
  const r = resolvePodEnv(p, lookups([secret], [cm]));
  assert.deepEqual(
    r.missing.map((m) => [m.kind, m.name, m.key, m.field]),
    [
      ['ConfigMap', 'nope-cm', undefined, 'spec.containers[0].envFrom[1].configMapRef'],
      ['Secret', 'absent', undefined, 'spec.containers[0].env[0].valueFrom.secretKeyRef'],
      ['Secret', 'creds', 'nokey', 'spec.containers[0].env[1].valueFrom.secretKeyRef'],
    ],
  );
  assert.deepEqual(
    r.notes.map((n) => n.reason),
    ['OptionalSecretNotFound', 'OptionalConfigMapNotFound', 'OptionalConfigMapKeyNotFound'],
  );
  const names = (r.env.get('c') ?? []).map((e) => e.name);
  assert.deepEqual(names, ['E']);
});

test('init containers get their own env; resourceFieldRef may name another container; unset limit uses node allocatable', () => {
  const p = pod(
    [
      {
        name: 'main',
        resources: { limits: { memory: '1Gi' } },
        env: [{ name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } }],
      },
    ],
    {
      initContainers: [
        {
          name: 'init',
          env: [
            {
              name: 'MAIN_MEM',
              valueFrom: { resourceFieldRef: { containerName: 'init', resource: 'limits.memory', divisor: '1Mi' } },
            },
          ],
        },
      ],
    },
  );
  const r = resolvePodEnv(p, lookups([], [], { nodeAllocatable: { cpu: '4', memory: '8Gi' } }));
  assert.equal(r.env.get('main')?.[0]?.value, '4');
  assert.equal(r.env.get('init')?.[0]?.value, String(8 * 1024));
});

test('an unsupported fieldPath is invalid, naming the field', () => {
  const p = pod([{ name: 'c', env: [{ name: 'X', valueFrom: { fieldRef: { fieldPath: 'spec.bogus' } } }] }]);
  const r = resolvePodEnv(p, lookups([], []));
  assert.equal(r.invalid[0]?.field, 'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath');
});

test('$(VAR) expansion: defined refs replaced, $$ escapes, undefined kept', () => {
  const m = new Map([['A', '1']]);
  assert.equal(expandVars('$(A)/$(B)/$$(A)/$', m), '1/$(B)/$(A)/$');
});
