import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadAciConfig, AciConfigError } from '../../src/providers/aci/index.js';
import { groupToWire } from '../../src/providers/aci/arm/wire.js';

const base = { AZURE_SUBSCRIPTION_ID: 'sub', ACI_RESOURCE_GROUP: 'rg' };

test('the original connector’s variables, with defaults', () => {
  const c = loadAciConfig({ ...base, AZURE_CLIENT_ID: 'id', AZURE_CLIENT_KEY: 'key', AZURE_TENANT_ID: 't' });
  assert.equal(c.subscriptionId, 'sub');
  assert.equal(c.resourceGroup, 'rg');
  assert.equal(c.region, 'westus');
  assert.equal(c.clientSecret, 'key');
  assert.equal(c.armEndpoint, 'https://management.azure.com');
  assert.deepEqual(c.limits, { readBucket: 250, readRefillPerSecond: 25, writeBucket: 200, writeRefillPerSecond: 10 });
  assert.equal(
    loadAciConfig({ ...base, AZURE_CLIENT_ID: 'id', AZURE_CLIENT_SECRET: 's2', AZURE_TENANT_ID: 't' }).clientSecret,
    's2',
  );
  assert.equal(
    loadAciConfig({ ...base, ACI_REGION: 'eastus', ACI_ARM_ENDPOINT: 'https://127.0.0.1:8443/' }).armEndpoint,
    'https://127.0.0.1:8443',
  );
});

test("the connector's ARM budget is ARM's documented buckets unless raised", () => {
  const c = loadAciConfig({
    ...base,
    ACI_ARM_READ_BUCKET: '100000',
    ACI_ARM_READS_PER_SECOND: '10000',
    ACI_ARM_WRITE_BUCKET: '50000',
    ACI_ARM_WRITES_PER_SECOND: '5000',
    ACI_ARM_DELETES_PER_SECOND: '2000',
    ACI_STATUS_READS_PER_SECOND: '500',
  });
  assert.deepEqual(c.limits, {
    readBucket: 100000,
    readRefillPerSecond: 10000,
    writeBucket: 50000,
    writeRefillPerSecond: 5000,
    deleteRefillPerSecond: 2000,
  });
  assert.equal(c.statusReadsPerSecond, 500);
  assert.equal(loadAciConfig(base).statusReadsPerSecond, 10);
});

test('without a secret no client credentials are needed (managed / workload identity)', () => {
  const c = loadAciConfig(base);
  assert.equal(c.clientSecret, undefined);
});

test('a missing or malformed setting is a typed error naming it', () => {
  const cases: [Record<string, string>, string][] = [
    [{ ACI_RESOURCE_GROUP: 'rg' }, 'AZURE_SUBSCRIPTION_ID'],
    [{ AZURE_SUBSCRIPTION_ID: 's' }, 'ACI_RESOURCE_GROUP'],
    [{ ...base, AZURE_CLIENT_KEY: 'k', AZURE_TENANT_ID: 't' }, 'AZURE_CLIENT_ID'],
    [{ ...base, AZURE_CLIENT_KEY: 'k', AZURE_CLIENT_ID: 'i' }, 'AZURE_TENANT_ID'],
    [{ ...base, ACI_ARM_ENDPOINT: 'not a url' }, 'ACI_ARM_ENDPOINT'],
    [{ ...base, ACI_RESOURCE_GROUP: 'bad/rg' }, 'ACI_RESOURCE_GROUP'],
    [{ ...base, ACI_ARM_WRITES_PER_SECOND: '0' }, 'ACI_ARM_WRITES_PER_SECOND'],
    [{ ...base, ACI_ARM_READ_BUCKET: 'lots' }, 'ACI_ARM_READ_BUCKET'],
  ];
  for (const [env, setting] of cases) {
    assert.throws(
      () => loadAciConfig(env),
      (e: unknown) =>
        e instanceof AciConfigError &&
        e.setting === setting &&
        e.message.includes(setting) &&
        !e.message.includes('\n'),
      setting,
    );
  }
  assert.throws(
    () => loadAciConfig({ ...base, AZURE_CLIENT_KEY: 'topsecret' }),
    (e: unknown) => e instanceof Error && !e.message.includes('topsecret'),
  );
});

test('the PUT body nests properties as ARM expects', () => {
  const wire = groupToWire({
    location: 'westus',
    tags: { a: 'b' },
    osType: 'Linux',
    restartPolicy: 'Never',
    containers: [{ name: 'c', image: 'nginx', resources: { requests: { cpu: 1, memoryInGB: 1 } } }],
    initContainers: [{ name: 'i', image: 'busybox' }],
  });
  assert.deepEqual(wire, {
    location: 'westus',
    tags: { a: 'b' },
    properties: {
      osType: 'Linux',
      restartPolicy: 'Never',
      containers: [{ name: 'c', properties: { image: 'nginx', resources: { requests: { cpu: 1, memoryInGB: 1 } } } }],
      initContainers: [{ name: 'i', properties: { image: 'busybox' } }],
    },
  });
});
