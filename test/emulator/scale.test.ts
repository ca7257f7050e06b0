/**
 * The simulated runtime at scale: 2,000 container groups created through the ARM API and
 * deleted again, while the emulator's memory stays bounded. The figures are printed as
 * test diagnostics. (Client and emulator share this process; the heap figures include both.)
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Emulator } from '../../src/emulator/index.js';
import { API, groupPath, simpleGroup, startTestEmulator, type ArmTestClient } from './arm-client.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const COUNT = 2000;
const CONCURRENCY = 50;
let emu: Emulator;
let arm: ArmTestClient;

const MB = 1024 * 1024;
function heap(): { heapUsed: number; rss: number } {
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss };
}

async function inParallel(n: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

before(async () => {
  // The emulator's own capacity is under test: ARM's throttling, ACI's windows and its regional
  // quota (100 groups by default) are lifted so that 2,000 groups can be created at once.
  ({ emu, arm } = await startTestEmulator({
    throttling: false,
    pageSize: 500,
    quota: { containerGroups: 100_000, cores: 100_000 },
  }));
});
after(async () => {
  arm?.close();
  await emu?.stop();
});

async function countSucceeded(): Promise<number> {
  let n = 0;
  let url: string | undefined =
    `/subscriptions/${emu.subscriptionId}/resourceGroups/scale/providers/Microsoft.ContainerInstance/containerGroups?${API}`;
  while (url) {
    const res = await arm.call('GET', url);
    const body = res.body as { value: { properties: { provisioningState: string } }[]; nextLink?: string };
    n += body.value.filter((g) => g.properties.provisioningState === 'Succeeded').length;
    url = body.nextLink;
  }
  return n;
}

it(`creates and deletes ${COUNT} groups with bounded memory`, { timeout: 600_000 }, async (t) => {
  const sub = emu.subscriptionId;
  const path = (i: number): string => `${groupPath(sub, 'scale', `g-${i}`)}?${API}`;
  // Warm up code paths (and the validator's compiled schemas) before the baseline.
  await inParallel(50, async (i) => {
    assert.equal(
      (await arm.call('PUT', `${groupPath(sub, 'warm', `w-${i}`)}?${API}`, { body: simpleGroup() })).status,
      201,
    );
  });
  await new Promise((r) => setTimeout(r, 200));
  await inParallel(50, async (i) => {
    assert.equal((await arm.call('DELETE', `${groupPath(sub, 'warm', `w-${i}`)}?${API}`)).status, 200);
  });
  const base = heap();

  await inParallel(COUNT, async (i) => {
    const res = await arm.call('PUT', path(i), {
      body: simpleGroup({ command: ['sh', '-c', `echo group ${i}`], restartPolicy: 'Never' }),
    });
    assert.equal(res.status, 201);
  });
  for (let i = 0; i < 400; i++) {
    if ((await countSucceeded()) === COUNT) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await countSucceeded(), COUNT, 'every group provisioned');
  assert.equal(emu.stats().groups, COUNT);
  const full = heap();

  await inParallel(COUNT, async (i) => {
    assert.equal((await arm.call('DELETE', path(i))).status, 200);
  });
  assert.equal(emu.stats().groups, 0);
  assert.equal(await countSucceeded(), 0);
  const end = heap();

  const perGroupKb = (full.heapUsed - base.heapUsed) / COUNT / 1024;
  const leftMb = (end.heapUsed - base.heapUsed) / MB;
  const figures = {
    baselineHeapMb: +(base.heapUsed / MB).toFixed(1),
    heapWith2000GroupsMb: +(full.heapUsed / MB).toFixed(1),
    heapAfterDeleteMb: +(end.heapUsed / MB).toFixed(1),
    perGroupKb: +perGroupKb.toFixed(2),
    rssBaselineMb: +(base.rss / MB).toFixed(1),
    rssPeakMb: +(full.rss / MB).toFixed(1),
    rssEndMb: +(end.rss / MB).toFixed(1),
  };
  t.diagnostic(`memory: ${JSON.stringify(figures)}`);
  // Bounded: a group costs little, and deleting them gives the memory back (finished
  // operation records, kept for pollers, are the only remainder).
  assert.ok(perGroupKb < 64, `a group costs ${perGroupKb.toFixed(1)} KB of heap`);
  assert.ok(leftMb < 16, `${leftMb.toFixed(1)} MB left on the heap after deleting every group`);
});
