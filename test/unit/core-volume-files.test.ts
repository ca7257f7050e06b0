/** The core's volume files (src/core/volume-files.ts): what every provider gets in PodContext.volumeFiles. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod, V1Volume } from '@kubernetes/client-node';
import { PodRejectedError, TransientProviderError } from '../../src/core/provider.js';
import {
  DEFAULT_FILE_MODE,
  kubeletResources,
  resolveVolumeFiles,
  type VolumeFileSources,
  type VolumeFiles,
} from '../../src/core/volume-files.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (files: VolumeFiles | undefined, path: string) => {
  const f = files?.get(path);
  return f === undefined ? undefined : Buffer.from(f.content, 'base64').toString('utf8');
};

function podWith(volumes: V1Volume[], extra: Partial<NonNullable<V1Pod['spec']>> = {}, meta = {}): V1Pod {
  return {
    metadata: { name: 'web', namespace: 'ns', uid: 'u-1', labels: { app: 'web', tier: 'a"b' }, ...meta },
    spec: {
      nodeName: 'vk',
      serviceAccountName: 'robot',
      containers: [
        { name: 'app', image: 'x', resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '250m' } } },
        { name: 'side', image: 'y' },
      ],
      volumes,
      ...extra,
    },
  };
}

interface Calls {
  tokens: { audience: string | undefined; expirationSeconds: number }[];
}

function sources(over: Partial<VolumeFileSources> = {}, calls: Calls = { tokens: [] }): VolumeFileSources {
  const secrets: Record<string, Record<string, string>> = { creds: { user: 'alice', pass: 'pw' } };
  return {
    getSecret: async (name) => {
      const d = secrets[name];
      return d
        ? { metadata: { name }, data: Object.fromEntries(Object.entries(d).map(([k, v]) => [k, b64(v)])) }
        : undefined;
    },
    getConfigMap: async (name) =>
      name === 'conf'
        ? { metadata: { name }, data: { 'app.conf': 'x=1', other: 'y' }, binaryData: { bin: b64('\u0001') } }
        : undefined,
    getServiceAccountToken: async (audience, expirationSeconds) => {
      calls.tokens.push({ audience, expirationSeconds });
      return 'jwt-token';
    },
    resources: kubeletResources(podWith([]), { cpu: '8', memory: '32Gi' }),
    ...over,
  };
}

async function files(v: V1Volume, src = sources(), extra = {}): Promise<VolumeFiles | undefined> {
  return (await resolveVolumeFiles(podWith([v], extra), src)).get(v.name);
}

async function rejectsNaming(v: V1Volume, field: string, src = sources()): Promise<void> {
  await assert.rejects(files(v, src), (e: unknown) => {
    assert.ok(e instanceof PodRejectedError, String(e));
    assert.equal(e.field, field);
    assert.ok(e.message.startsWith(field), e.message);
    return true;
  });
}

async function transient(v: V1Volume, reason: string, src = sources()): Promise<void> {
  await assert.rejects(files(v, src), (e: unknown) => e instanceof TransientProviderError && e.reason === reason);
}

test('secret volume: every key, base64 as in the Secret, sensitive, the default mode', async () => {
  const f = await files({ name: 's', secret: { secretName: 'creds' } });
  assert.deepEqual(
    [...(f ?? [])],
    [
      ['user', { content: b64('alice'), mode: DEFAULT_FILE_MODE, sensitive: true }],
      ['pass', { content: b64('pw'), mode: DEFAULT_FILE_MODE, sensitive: true }],
    ],
  );
});

test('items pick keys to paths (nested too), item mode over defaultMode over 0644', async () => {
  const f = await files({
    name: 's',
    secret: {
      secretName: 'creds',
      defaultMode: 0o400,
      items: [
        { key: 'pass', path: 'conf/password', mode: 0o600 },
        { key: 'user', path: 'user-name' },
      ],
    },
  });
  assert.deepEqual([...(f?.keys() ?? [])], ['conf/password', 'user-name']);
  assert.equal(f?.get('conf/password')?.mode, 0o600);
  assert.equal(f?.get('user-name')?.mode, 0o400);
  assert.equal(text(f, 'conf/password'), 'pw');
});

test('configMap volume: text encoded, binaryData kept, not sensitive', async () => {
  const f = await files({ name: 'c', configMap: { name: 'conf' } });
  assert.equal(text(f, 'app.conf'), 'x=1');
  assert.equal(f?.get('bin')?.content, b64('\u0001'));
  assert.ok([...(f?.values() ?? [])].every((x) => !x.sensitive));
});

test('optional: an absent object gives no files, an absent key is skipped; mandatory ones wait (transient)', async () => {
  assert.equal((await files({ name: 's', secret: { secretName: 'absent', optional: true } }))?.size, 0);
  assert.equal((await files({ name: 'c', configMap: { name: 'absent', optional: true } }))?.size, 0);
  const some = await files({
    name: 'c',
    configMap: {
      name: 'conf',
      optional: true,
      items: [
        { key: 'nokey', path: 'n' },
        { key: 'other', path: 'o' },
      ],
    },
  });
  assert.deepEqual([...(some?.keys() ?? [])], ['o']);
  await transient({ name: 's', secret: { secretName: 'absent' } }, 'SecretNotFound');
  await transient({ name: 'c', configMap: { name: 'absent' } }, 'ConfigMapNotFound');
  await transient({ name: 's', secret: { secretName: 'creds', items: [{ key: 'nokey', path: 'n' }] } }, 'KeyNotFound');
  await transient({ name: 'c', configMap: { name: 'conf', items: [{ key: 'nokey', path: 'n' }] } }, 'KeyNotFound');
});

test('invalid paths are rejected naming the field', async () => {
  await rejectsNaming(
    { name: 's', secret: { secretName: 'creds', items: [{ key: 'user', path: '../up' }] } },
    'spec.volumes[0].secret.items[0].path',
  );
  await rejectsNaming(
    { name: 's', secret: { secretName: 'creds', items: [{ key: 'user', path: '/abs' }] } },
    'spec.volumes[0].secret.items[0].path',
  );
  await rejectsNaming(
    { name: 'c', configMap: { name: 'conf', items: [{ key: 'other', path: 'a//b' }] } },
    'spec.volumes[0].configMap.items[0].path',
  );
  await rejectsNaming(
    { name: 'd', downwardAPI: { items: [{ path: '.', fieldRef: { fieldPath: 'metadata.name' } }] } },
    'spec.volumes[0].downwardAPI.items[0].path',
  );
  await rejectsNaming(
    { name: 'p', projected: { sources: [{ serviceAccountToken: { path: '..' } }] } },
    'spec.volumes[0].projected.sources[0].serviceAccountToken.path',
  );
  await rejectsNaming({ name: 's', secret: {} }, 'spec.volumes[0].secret');
  // A file and a directory of the same name.
  await assert.rejects(
    files({
      name: 's',
      secret: {
        secretName: 'creds',
        items: [
          { key: 'user', path: 'a' },
          { key: 'pass', path: 'a/b' },
        ],
      },
    }),
    (e: unknown) =>
      e instanceof PodRejectedError &&
      e.field === 'spec.volumes[0]' &&
      e.message.includes("'a' is both a file and a directory"),
  );
});

test('downward API: metadata fields, label maps quoted and sorted, spec fields; status fields rejected naming the field', async () => {
  const f = await files(
    {
      name: 'd',
      downwardAPI: {
        defaultMode: 0o440,
        items: [
          { path: 'name', fieldRef: { fieldPath: 'metadata.name' } },
          { path: 'ns', fieldRef: { fieldPath: 'metadata.namespace' } },
          { path: 'uid', fieldRef: { fieldPath: 'metadata.uid' } },
          { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
          { path: 'tier', fieldRef: { fieldPath: "metadata.labels['tier']" } },
          { path: 'ann', fieldRef: { fieldPath: "metadata.annotations['a']" } },
          { path: 'node', fieldRef: { fieldPath: 'spec.nodeName' } },
          { path: 'sa', fieldRef: { fieldPath: 'spec.serviceAccountName' }, mode: 0o400 },
        ],
      },
    },
    sources(),
  );
  assert.equal(text(f, 'name'), 'web');
  assert.equal(text(f, 'ns'), 'ns');
  assert.equal(text(f, 'uid'), 'u-1');
  assert.equal(text(f, 'labels'), 'app="web"\ntier="a\\"b"');
  assert.equal(text(f, 'tier'), 'a"b');
  assert.equal(text(f, 'ann'), '');
  assert.equal(text(f, 'node'), 'vk');
  assert.equal(text(f, 'sa'), 'robot');
  assert.equal(f?.get('name')?.mode, 0o440);
  assert.equal(f?.get('sa')?.mode, 0o400);
  assert.ok([...(f?.values() ?? [])].every((x) => !x.sensitive));
  await rejectsNaming(
    { name: 'd', downwardAPI: { items: [{ path: 'ip', fieldRef: { fieldPath: 'status.podIP' } }] } },
    'spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath',
  );
  await rejectsNaming({ name: 'd', downwardAPI: { items: [{ path: 'x' }] } }, 'spec.volumes[0].downwardAPI.items[0]');
});

test('downward API resources: the lookup decides (declared, node allocatable for an unset limit), divisor rounds up', async () => {
  const ref = (path: string, resource: string, containerName?: string, divisor?: string) => ({
    path,
    resourceFieldRef: { resource, ...(containerName ? { containerName } : {}), ...(divisor ? { divisor } : {}) },
  });
  const f = await files({
    name: 'd',
    downwardAPI: {
      items: [
        ref('cpu-lim', 'limits.cpu'), // first container by default
        ref('cpu-req-m', 'requests.cpu', 'app', '1m'),
        ref('mem-lim-mi', 'limits.memory', 'app', '1Mi'),
        ref('mem-req', 'requests.memory', 'app'), // unset request: the limit
        ref('side-cpu-lim', 'limits.cpu', 'side'), // unset limit: node allocatable
        ref('side-mem-req', 'requests.memory', 'side'), // unset request and limit: 0
        ref('side-mem-gi', 'limits.memory', 'side', '1Gi'),
      ],
    },
  });
  assert.equal(text(f, 'cpu-lim'), '2');
  assert.equal(text(f, 'cpu-req-m'), '250');
  assert.equal(text(f, 'mem-lim-mi'), '1024');
  assert.equal(text(f, 'mem-req'), String(2 ** 30));
  assert.equal(text(f, 'side-cpu-lim'), '8');
  assert.equal(text(f, 'side-mem-req'), '0');
  assert.equal(text(f, 'side-mem-gi'), '32');
  // A backend's own lookup (what a container gets there) replaces the kubelet's rule.
  const seen: string[] = [];
  const own = await files(
    { name: 'd', downwardAPI: { items: [ref('m', 'limits.memory', 'side', '1M')] } },
    sources({ resources: (c, r) => (seen.push(`${c}/${r}`), 1.5e9) }),
  );
  assert.equal(text(own, 'm'), '1500');
  assert.deepEqual(seen, ['side/limits.memory']);
  await rejectsNaming(
    { name: 'd', downwardAPI: { items: [ref('x', 'limits.nvidia.com/gpu')] } },
    'spec.volumes[0].downwardAPI.items[0].resourceFieldRef',
  );
  await rejectsNaming(
    { name: 'd', downwardAPI: { items: [ref('x', 'limits.cpu', 'nobody')] } },
    'spec.volumes[0].downwardAPI.items[0].resourceFieldRef',
  );
});

test('projected: secret, configMap, downwardAPI and a token in one volume; sensitivity per source; defaultMode', async () => {
  const calls: Calls = { tokens: [] };
  const f = await files(
    {
      name: 'kube-api-access',
      projected: {
        defaultMode: 0o420,
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 3607, audience: 'vault' } },
          { configMap: { name: 'conf', items: [{ key: 'app.conf', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
          { secret: { name: 'creds', items: [{ key: 'user', path: 'creds/user', mode: 0o400 }] } },
        ],
      },
    },
    sources({}, calls),
  );
  assert.deepEqual([...(f?.keys() ?? [])], ['token', 'ca.crt', 'namespace', 'creds/user']);
  assert.deepEqual(calls.tokens, [{ audience: 'vault', expirationSeconds: 3607 }]);
  assert.deepEqual(f?.get('token'), { content: b64('jwt-token'), mode: 0o420, sensitive: true });
  assert.deepEqual(f?.get('ca.crt'), { content: b64('x=1'), mode: 0o420, sensitive: false });
  assert.deepEqual(f?.get('namespace'), { content: b64('ns'), mode: 0o420, sensitive: false });
  assert.deepEqual(f?.get('creds/user'), { content: b64('alice'), mode: 0o400, sensitive: true });
  // A token without expirationSeconds lives an hour, as the API's default.
  await files({ name: 'p', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } }, sources({}, calls));
  assert.equal(calls.tokens[1]?.expirationSeconds, 3600);
});

test('projected tokens: none minted yet waits; a node without tokens rejects; an unknown source is rejected', async () => {
  const token: V1Volume = { name: 'p', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } };
  await transient(token, 'TokenUnavailable', sources({ getServiceAccountToken: async () => undefined }));
  const noTokens = sources();
  delete noTokens.getServiceAccountToken;
  await rejectsNaming(token, 'spec.volumes[0].projected.sources[0].serviceAccountToken', noTokens);
  await rejectsNaming(
    { name: 'p', projected: { sources: [{ clusterTrustBundle: { path: 'b' } }] } },
    'spec.volumes[0].projected.sources[0].clusterTrustBundle',
  );
  await transient({ name: 'p', projected: { sources: [{ secret: { name: 'absent' } }] } }, 'SecretNotFound');
});

test('only file volumes get files, by volume name; other kinds are left to the provider', async () => {
  const pod = podWith([
    { name: 'e', emptyDir: {} },
    { name: 'az', azureFile: { secretName: 'creds', shareName: 'x' } },
    { name: 's', secret: { secretName: 'creds' } },
    { name: 'empty', secret: { secretName: 'absent', optional: true } },
  ]);
  const all = await resolveVolumeFiles(pod, sources());
  assert.deepEqual([...all.keys()], ['s', 'empty']);
  // The field of a failing volume is its own index.
  await assert.rejects(
    resolveVolumeFiles(
      podWith([
        { name: 'e', emptyDir: {} },
        { name: 'd', downwardAPI: { items: [{ path: 'x' }] } },
      ]),
      sources(),
    ),
    (e: unknown) => e instanceof PodRejectedError && e.field === 'spec.volumes[1].downwardAPI.items[0]',
  );
});
