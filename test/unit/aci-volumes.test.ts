import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PodRejectedError, TransientProviderError } from '../../src/core/provider.js';
import { fakeContext, mapPod, mappingOptions as opts, pod } from './aci-fixtures.js';
import type { V1Volume } from '@kubernetes/client-node';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function volume(v: V1Volume, ctx = fakeContext(), meta = {}) {
  const { group } = await mapPod(pod({ volumes: [v] }, meta), ctx, opts);
  return group.volumes?.[0];
}

const ctx = fakeContext({
  secrets: {
    creds: { user: 'admin', pass: 'pw' },
    storage: { azurestorageaccountname: 'acct', azurestorageaccountkey: 'KEY==' },
  },
  configMaps: {
    conf: { data: { 'app.conf': 'x=1', other: 'y' }, binaryData: { 'blob.bin': b64('\u0001\u0002') } },
    'kube-root-ca.crt': { data: { 'ca.crt': 'PEM' } },
  },
  token: 'jwt-token',
});

test('emptyDir and gitRepo', async () => {
  assert.deepEqual(await volume({ name: 'e', emptyDir: {} }), { name: 'e', emptyDir: {} });
  assert.deepEqual(
    await volume({ name: 'g', gitRepo: { repository: 'https://example.com/r.git', revision: 'abc', directory: '.' } }),
    {
      name: 'g',
      gitRepo: { repository: 'https://example.com/r.git', directory: '.', revision: 'abc' },
    },
  );
});

test('secret volumes: all keys, items and optional', async () => {
  assert.deepEqual(await volume({ name: 's', secret: { secretName: 'creds' } }, ctx), {
    name: 's',
    secret: { user: b64('admin'), pass: b64('pw') },
  });
  assert.deepEqual(
    await volume(
      { name: 's', secret: { secretName: 'creds', items: [{ key: 'pass', path: 'password' }], defaultMode: 0o400 } },
      ctx,
    ),
    {
      name: 's',
      secret: { password: b64('pw') },
    },
  );
  assert.deepEqual(await volume({ name: 's', secret: { secretName: 'absent', optional: true } }, ctx), {
    name: 's',
    emptyDir: {},
  });
  await assert.rejects(
    volume({ name: 's', secret: { secretName: 'absent' } }, ctx),
    (e: unknown) => e instanceof TransientProviderError && e.reason === 'SecretNotFound',
  );
  await assert.rejects(
    volume({ name: 's', secret: { secretName: 'creds', items: [{ key: 'nokey', path: 'x' }] } }, ctx),
    TransientProviderError,
  );
  await assert.rejects(
    volume({ name: 's', secret: { secretName: 'creds', items: [{ key: 'user', path: '/abs/user' }] } }, ctx),
    (e: unknown) => e instanceof PodRejectedError && e.field === 'spec.volumes[0].secret.items[0].path',
  );
});

test('configMap volumes encode text and keep binary data', async () => {
  assert.deepEqual(
    await volume(
      {
        name: 'c',
        configMap: {
          name: 'conf',
          items: [
            { key: 'app.conf', path: 'app.conf' },
            { key: 'blob.bin', path: 'b' },
          ],
        },
      },
      ctx,
    ),
    {
      name: 'c',
      secret: { 'app.conf': b64('x=1'), b: b64('\u0001\u0002') },
    },
  );
  await assert.rejects(
    volume({ name: 'c', configMap: { name: 'nope' } }, ctx),
    (e: unknown) => e instanceof TransientProviderError && e.reason === 'ConfigMapNotFound',
  );
});

test('downwardAPI volumes compute files from the pod', async () => {
  const v = await volume(
    {
      name: 'd',
      downwardAPI: {
        items: [
          { path: 'name', fieldRef: { fieldPath: 'metadata.name' } },
          { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
          { path: 'tier', fieldRef: { fieldPath: "metadata.labels['tier']" } },
          { path: 'mem', resourceFieldRef: { containerName: 'app', resource: 'limits.memory', divisor: '1Mi' } },
        ],
      },
    },
    ctx,
    { labels: { tier: 'web', app: 'a"b' } },
  );
  assert.deepEqual(v?.secret, {
    name: b64('web'),
    labels: b64('app="a\\"b"\ntier="web"'),
    tier: b64('web'),
    // No memory limit set: the container gets its ACI default of 1.5 GB.
    mem: b64(String(Math.ceil(1.5e9 / 2 ** 20))),
  });
  await assert.rejects(
    volume({ name: 'd', downwardAPI: { items: [{ path: 'ip', fieldRef: { fieldPath: 'status.podIP' } }] } }, ctx),
    (e: unknown) =>
      e instanceof PodRejectedError && e.field === 'spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath',
  );
});

test('projected volumes merge secret, configMap, downwardAPI and serviceAccountToken (the kube-api-access shape)', async () => {
  const v = await volume(
    {
      name: 'kube-api-access',
      projected: {
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
          { secret: { name: 'creds', items: [{ key: 'user', path: 'user' }] } },
        ],
      },
    },
    ctx,
  );
  assert.deepEqual(v?.secret, {
    token: b64('jwt-token'),
    'ca.crt': b64('PEM'),
    namespace: b64('default'),
    user: b64('admin'),
  });
  const noMint = fakeContext({ configMaps: { 'kube-root-ca.crt': { data: { 'ca.crt': 'PEM' } } } });
  await assert.rejects(
    volume({ name: 'p', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } }, noMint),
    (e: unknown) =>
      e instanceof PodRejectedError && e.field === 'spec.volumes[0].projected.sources[0].serviceAccountToken',
  );
});

test('azureFile reads the account name and key from the named Secret', async () => {
  assert.deepEqual(
    await volume({ name: 'f', azureFile: { secretName: 'storage', shareName: 'share', readOnly: true } }, ctx),
    {
      name: 'f',
      azureFile: { shareName: 'share', readOnly: true, storageAccountName: 'acct', storageAccountKey: 'KEY==' },
    },
  );
  await assert.rejects(
    volume({ name: 'f', azureFile: { secretName: 'creds', shareName: 'share' } }, ctx),
    (e: unknown) => e instanceof PodRejectedError && e.field === 'spec.volumes[0].azureFile.secretName',
  );
});

test('other volume types are rejected naming the field', async () => {
  const cases: [V1Volume, string][] = [
    [{ name: 'h', hostPath: { path: '/etc' } }, 'spec.volumes[0].hostPath'],
    [{ name: 'p', persistentVolumeClaim: { claimName: 'data' } }, 'spec.volumes[0].persistentVolumeClaim'],
    [{ name: 'n', nfs: { server: 'x', path: '/' } }, 'spec.volumes[0].nfs'],
  ];
  for (const [v, field] of cases) {
    await assert.rejects(
      volume(v, ctx),
      (e: unknown) =>
        e instanceof PodRejectedError &&
        e.reason === 'UnsupportedVolume' &&
        e.field === field &&
        e.message.includes(field),
    );
  }
});
