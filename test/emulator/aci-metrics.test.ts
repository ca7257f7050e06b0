/**
 * Azure Monitor metrics for container groups, end to end on the emulator's
 * simulated runtime: the emulator's Metrics_List (its response checked against
 * the shape of Microsoft's metrics_API.json 2018-01-01, Response → Metric →
 * TimeSeriesElement → MetricValue, transcribed below with closed objects), its
 * errors, and the ACI provider's getPodStats reading it within the read budget
 * (cached per group). Real podman figures are in test/e2e/metrics-top-hpa.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Ajv2019Module from 'ajv/dist/2019.js';
import { containerGroupName } from '../../src/providers/aci/index.js';
import { ArmTestClient } from './arm-client.js';
import { contextFor, harness, key, podRef, testPod, waitFor, type Harness } from './aci-provider-fixtures.js';

const Ajv2019 = Ajv2019Module.default;

const localizable = {
  type: 'object',
  properties: { value: { type: 'string' }, localizedValue: { type: 'string' } },
  required: ['value'],
  additionalProperties: false,
};
const metricValue = {
  type: 'object',
  properties: {
    timeStamp: { type: 'string', format: 'date-time' },
    average: { type: 'number' },
    minimum: { type: 'number' },
    maximum: { type: 'number' },
    total: { type: 'number' },
    count: { type: 'number' },
  },
  required: ['timeStamp'],
  additionalProperties: false,
};
const metric = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    type: { type: 'string' },
    name: localizable,
    displayDescription: { type: 'string' },
    errorCode: { type: 'string' },
    errorMessage: { type: 'string' },
    unit: {
      enum: [
        'Count',
        'Bytes',
        'Seconds',
        'CountPerSecond',
        'BytesPerSecond',
        'Percent',
        'MilliSeconds',
        'ByteSeconds',
        'Unspecified',
        'Cores',
        'MilliCores',
        'NanoCores',
        'BitsPerSecond',
      ],
    },
    timeseries: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          metadatavalues: {
            type: 'array',
            items: {
              type: 'object',
              properties: { name: localizable, value: { type: 'string' } },
              additionalProperties: false,
            },
          },
          data: { type: 'array', items: metricValue },
        },
        additionalProperties: false,
      },
    },
  },
  required: ['id', 'type', 'name', 'unit', 'timeseries'],
  additionalProperties: false,
};
const responseSchema = {
  type: 'object',
  properties: {
    cost: { type: 'number', minimum: 0 },
    timespan: { type: 'string' },
    interval: { type: 'string' },
    namespace: { type: 'string' },
    resourceregion: { type: 'string' },
    value: { type: 'array', items: metric },
  },
  required: ['timespan', 'value'],
  additionalProperties: false,
};
const validate = new Ajv2019({ strict: false, allErrors: true, validateFormats: false }).compile(responseSchema);

let h: Harness;
let arm: ArmTestClient;
before(async () => {
  h = await harness({}, { config: { metricsRefreshMs: 3_000 } });
  arm = new ArmTestClient(h.emu);
});
after(async () => {
  await h?.close();
});

function busyPod(name: string, cpu: string) {
  return testPod(name, {
    containers: [
      {
        name: 'spin',
        image: 'busybox',
        command: ['sh', '-c', 'while :; do :; done'],
        resources: { requests: { cpu, memory: '256Mi' } },
      },
      {
        name: 'idle',
        image: 'busybox',
        command: ['sleep', 'infinity'],
        resources: { requests: { cpu: '1', memory: '512Mi' } },
      },
    ],
  });
}

async function running(p: ReturnType<typeof testPod>): Promise<void> {
  await h.provider.createPod(p, contextFor(h, p));
  await waitFor('Running', () => h.statuses.get(key(podRef(p)))?.phase === 'Running');
}

function metricsPath(p: ReturnType<typeof testPod>, query: string): string {
  const name = containerGroupName({
    clusterId: 'cluster-under-test',
    namespace: 'default',
    podName: p.metadata!.name!,
    podUid: p.metadata!.uid!,
  });
  return `/subscriptions/${h.emu.subscriptionId}/resourceGroups/aci-test/providers/Microsoft.ContainerInstance/containerGroups/${name}/providers/Microsoft.Insights/metrics?${query}`;
}

test("Metrics_List: CpuUsage and MemoryUsage per container in Microsoft's response shape", async () => {
  const p = busyPod('metrics-shape', '500m');
  await running(p);
  const q =
    "api-version=2018-01-01&metricnames=CpuUsage,MemoryUsage&$filter=containerName eq '*'&interval=PT1M&aggregation=average,maximum,count";
  const r = await arm.call('GET', metricsPath(p, q.replace(/ /g, '%20').replace(/'/g, '%27').replace(/\*/g, '%2A')));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(validate(r.body), JSON.stringify(validate.errors));
  const body = r.body as {
    interval: string;
    namespace: string;
    value: {
      name: { value: string };
      unit: string;
      timeseries: {
        metadatavalues: { value: string }[];
        data: { timeStamp: string; average?: number; count?: number }[];
      }[];
    }[];
  };
  assert.equal(body.interval, 'PT1M');
  assert.equal(body.namespace, 'Microsoft.ContainerInstance/containerGroups');
  const latest = (metricName: string, container: string): number | undefined => {
    const m = body.value.find((v) => v.name.value === metricName);
    const ts = m?.timeseries.find((t) => t.metadatavalues[0]?.value === container);
    return ts?.data.filter((d) => d.average !== undefined).at(-1)?.average;
  };
  assert.deepEqual(
    body.value.map((v) => [v.name.value, v.unit]),
    [
      ['CpuUsage', 'Count'],
      ['MemoryUsage', 'Bytes'],
    ],
  );
  // The spinning container uses all of its 500m; the idle one 1 % of its core.
  assert.equal(latest('CpuUsage', 'spin'), 500);
  assert.equal(latest('CpuUsage', 'idle'), 10);
  assert.ok((latest('MemoryUsage', 'spin') ?? 0) > 1024 ** 2, 'memory in bytes');
  // One point a minute over the last hour by default; the minutes nobody sampled carry only a timestamp.
  const cpu = body.value[0]!.timeseries[0]!.data;
  assert.ok(cpu.length >= 60 && cpu.length <= 61, `${cpu.length} points`);
  assert.ok(cpu.slice(0, -2).every((d) => d.average === undefined));

  // Without the dimension filter: one series, the containers summed.
  const summed = await arm.call(
    'GET',
    metricsPath(p, 'api-version=2018-01-01&metricnames=CpuUsage&aggregation=average'),
  );
  assert.ok(validate(summed.body), JSON.stringify(validate.errors));
  const s = summed.body as typeof body;
  assert.equal(s.value[0]!.timeseries.length, 1);
  assert.equal(s.value[0]!.timeseries[0]!.data.filter((d) => d.average !== undefined).at(-1)?.average, 510);
  await h.provider.deletePod(p, 0);
});

test('Metrics_List: unknown metric, bad interval, wrong api-version and unknown group are errors', async () => {
  const p = busyPod('metrics-errors', '250m');
  await running(p);
  const bad = await arm.call('GET', metricsPath(p, 'api-version=2018-01-01&metricnames=Nope'));
  assert.equal(bad.status, 400);
  assert.match((bad.body as { error: { message: string } }).error.message, /Valid metrics: CpuUsage,MemoryUsage/);
  assert.equal(
    (await arm.call('GET', metricsPath(p, 'api-version=2018-01-01&metricnames=CpuUsage&interval=PT5M'))).status,
    400,
  );
  const version = await arm.call('GET', metricsPath(p, 'api-version=2023-05-01&metricnames=CpuUsage'));
  assert.equal(version.status, 400);
  assert.equal((version.body as { error: { code: string } }).error.code, 'NoRegisteredProviderFound');
  const gone = testPod('never-created');
  assert.equal((await arm.call('GET', metricsPath(gone, 'api-version=2018-01-01&metricnames=CpuUsage'))).status, 404);
  await h.provider.deletePod(p, 0);
});

test('ACI provider getPodStats: Azure Monitor figures per container, one read per group per refresh', async () => {
  const p = busyPod('metrics-provider', '750m');
  await running(p);
  const reads = () => h.attempts.filter((a) => a.operation === 'metrics.list').length;
  const before = reads();
  const stats = await h.provider.getPodStats();
  const mine = stats.find((s) => s.ref.uid === p.metadata!.uid);
  assert.ok(mine, 'the running pod has figures');
  const spin = mine.containers.find((c) => c.name === 'spin');
  const idle = mine.containers.find((c) => c.name === 'idle');
  assert.equal(spin?.usageNanoCores, 750e6);
  assert.equal(idle?.usageNanoCores, 10e6);
  assert.ok((spin?.workingSetBytes ?? 0) > 0);
  assert.ok(spin?.startTime, 'start time from the container status');
  assert.ok(Date.parse(spin.time) <= Date.now());
  assert.equal(reads(), before + 1, 'one Metrics_List read for the group');
  // Within the refresh window the cached figures serve.
  await h.provider.getPodStats();
  assert.equal(reads(), before + 1);
  await waitFor(
    'a fresh read after the refresh window',
    async () => {
      await h.provider.getPodStats();
      return reads() === before + 2;
    },
    20_000,
  );
  await h.provider.deletePod(p, 0);
  const after = await h.provider.getPodStats();
  assert.equal(
    after.find((s) => s.ref.uid === p.metadata!.uid),
    undefined,
    'a deleted pod has no figures',
  );
});
