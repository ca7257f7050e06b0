/**
 * Errors: validation codes and bodies, quota, 404/409, throttling (token buckets with a
 * controlled clock, so counts are exact and no test depends on timing), creation limits,
 * and injected faults.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { aciRateWindows, type Emulator } from '../../src/emulator/index.js';
import {
  API,
  groupPath,
  simpleGroup,
  startTestEmulator,
  waitFor,
  type ArmResult,
  type ArmTestClient,
} from './arm-client.js';

let emu: Emulator;
let arm: ArmTestClient;
let sub: string;
let now = 1_000_000;

const code = (r: ArmResult): string => (r.body as { error: { code: string } }).error.code;
const message = (r: ArmResult): string => (r.body as { error: { message: string } }).error.message;

before(async () => {
  ({ emu, arm } = await startTestEmulator({ clock: () => now }));
  sub = emu.subscriptionId;
});
after(async () => {
  arm?.close();
  await emu?.stop();
});

describe('validation errors', () => {
  const put = (name: string, body: unknown, rg = 'rg-val'): Promise<ArmResult> =>
    arm.call('PUT', `${groupPath(sub, rg, name)}?${API}`, { body, invalidRequest: true });

  it('rejects an invalid container group name', async () => {
    for (const name of ['Upper', '-lead', 'trail-', 'dou--ble', 'x'.repeat(64), 'under_score']) {
      const res = await put(name, simpleGroup());
      assert.equal(res.status, 400, name);
      assert.equal(code(res), 'InvalidContainerGroupName', name);
      assert.match(message(res), new RegExp(name.replace(/[-_]/g, '.')));
    }
  });

  it('rejects a container limit above the group total request', async () => {
    const body = simpleGroup({ cpu: 1, memoryInGB: 1 }) as {
      properties: { containers: { properties: { resources: Record<string, unknown> } }[] };
    };
    const c = body.properties.containers[0];
    assert.ok(c);
    c.properties.resources = { requests: { cpu: 1, memoryInGB: 1 }, limits: { cpu: 2 } };
    const res = await put('limits', body);
    assert.equal(res.status, 400);
    assert.equal(code(res), 'ContainerLimitGreaterThanContainerGroupTotalRequest');
  });

  it('refuses an image reference no registry could serve with InaccessibleImage, at PUT', async () => {
    for (const image of ['registry.example/my app:1', 'BUSYBOX', 'busybox@sha256:abc']) {
      const res = await put('bad-image', simpleGroup({ image }));
      assert.equal(res.status, 400, image);
      assert.equal(code(res), 'InaccessibleImage', image);
      assert.equal(
        message(res),
        `The image '${image}' in container group 'bad-image' is not accessible. Please check the image and registry credential.`,
      );
    }
    assert.equal(
      (await arm.call('GET', `${groupPath(sub, 'rg-val', 'bad-image')}?${API}`)).status,
      404,
      'nothing was created',
    );
  });

  it('rejects a body that does not match the schema, naming the property', async () => {
    const res = await put('shape', {
      location: 'westeurope',
      properties: { osType: 'Linux', containers: [{ name: 'a', properties: { image: 'busybox' } }] },
    });
    assert.equal(res.status, 400);
    assert.equal(code(res), 'InvalidRequestContent');
    assert.match(message(res), /containers\[0\]\.properties\.resources/);
    const notJson = await arm.call('PUT', `${groupPath(sub, 'rg-val', 'json')}?${API}`, { rawBody: '{not json' });
    assert.equal(notJson.status, 400);
    assert.equal(code(notJson), 'InvalidRequestContent');
  });

  it('rejects a missing location, duplicate containers, bad ports and unknown volume mounts', async () => {
    const noLocation = { ...simpleGroup() };
    delete noLocation.location;
    assert.equal(code(await put('noloc', noLocation)), 'LocationRequired');

    const dup = simpleGroup() as { properties: { containers: unknown[] } };
    dup.properties.containers.push(dup.properties.containers[0]);
    assert.equal(code(await put('dup', dup)), 'DuplicateContainerName');

    const ports = simpleGroup({ ports: [80] }) as { properties: { ipAddress: { ports: { port: number }[] } } };
    ports.properties.ipAddress.ports = [{ port: 81 }];
    assert.equal(code(await put('ports', ports)), 'InvalidIpAddressPorts');

    const mount = simpleGroup() as { properties: { containers: { properties: Record<string, unknown> }[] } };
    const first = mount.properties.containers[0];
    assert.ok(first);
    first.properties.volumeMounts = [{ name: 'nope', mountPath: '/mnt' }];
    assert.equal(code(await put('mount', mount)), 'VolumeMountNotFound');

    const badName = simpleGroup() as { properties: { containers: { name: string }[] } };
    const c0 = badName.properties.containers[0];
    assert.ok(c0);
    c0.name = 'Bad_Name';
    assert.equal(code(await put('cname', badName)), 'InvalidContainerName');
  });

  it("rejects more than ACI's 20 volumes and an invalid securityContext; accepts a valid one", async () => {
    const many = simpleGroup() as { properties: { volumes?: unknown[] } };
    many.properties.volumes = Array.from({ length: 21 }, (_, i) => ({ name: `v${i}`, emptyDir: {} }));
    const tooMany = await put('vols', many);
    assert.equal(code(tooMany), 'ContainerGroupVolumeCountExceeded');
    assert.match(message(tooMany), /21 volumes.*at most 20/);

    const withSecurity = (sc: unknown): unknown => {
      const g = simpleGroup() as { properties: { containers: { properties: Record<string, unknown> }[] } };
      const c = g.properties.containers[0];
      assert.ok(c);
      c.properties.securityContext = sc;
      return g;
    };
    assert.equal(
      code(await put('cap', withSecurity({ capabilities: { add: ['net bind'] } }))),
      'InvalidContainerSecurityContext',
    );
    assert.equal(code(await put('uid', withSecurity({ runAsUser: -1 }))), 'InvalidContainerSecurityContext');
    assert.equal(
      code(await put('seccomp', withSecurity({ seccompProfile: Buffer.from('not json').toString('base64') }))),
      'InvalidContainerSecurityContext',
    );
    // Accepted in a resource group of its own, and deleted: the other checks count what rg-val and the quota hold.
    const ok = await put(
      'secure',
      withSecurity({
        capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] },
        runAsUser: 1000,
        runAsGroup: 1000,
        allowPrivilegeEscalation: false,
        seccompProfile: Buffer.from('{"defaultAction":"SCMP_ACT_ALLOW"}').toString('base64'),
      }),
      'rg-sec',
    );
    assert.ok(ok.status === 200 || ok.status === 201, JSON.stringify(ok.body));
    const back = (
      ok.body as { properties: { containers: { properties: { securityContext?: { runAsUser?: number } } }[] } }
    ).properties.containers[0];
    assert.equal(back?.properties.securityContext?.runAsUser, 1000, 'the group keeps its securityContext');
    const del = await arm.call('DELETE', `${groupPath(sub, 'rg-sec', 'secure')}?${API}`);
    assert.ok([200, 202, 204].includes(del.status), String(del.status));
    await waitFor(
      'secure deleted',
      async () => (await arm.call('GET', `${groupPath(sub, 'rg-sec', 'secure')}?${API}`)).status === 404,
    );
  });

  it('rejects a missing or unsupported api-version', async () => {
    const missing = await arm.call('GET', groupPath(sub, 'rg-val', 'any'));
    assert.equal(missing.status, 400);
    assert.equal(code(missing), 'MissingApiVersionParameter');
    const old = await arm.call('GET', `${groupPath(sub, 'rg-val', 'any')}?api-version=2018-10-01`);
    assert.equal(old.status, 400);
    assert.equal(code(old), 'NoRegisteredProviderFound');
  });

  it('answers 404 ResourceNotFound for absent groups on every group operation', async () => {
    for (const [method, suffix] of [
      ['GET', ''],
      ['POST', '/stop'],
      ['POST', '/start'],
      ['POST', '/restart'],
      ['GET', '/containers/main/logs'],
      ['POST', '/containers/main/exec'],
    ] as const) {
      const res = await arm.call(
        method,
        `${groupPath(sub, 'rg-val', 'absent')}${suffix}?${API}`,
        method === 'POST' && suffix.includes('exec') ? { body: { command: 'sh' } } : {},
      );
      assert.equal(res.status, 404, `${method} ${suffix}`);
      assert.equal(code(res), 'ResourceNotFound');
    }
  });

  it('never created anything from the rejected requests', () => {
    assert.equal(emu.stats().groups, 0);
  });
});

describe('conflicts', () => {
  it('answers 409 ContainerGroupTransitioning to a different PUT while the group is provisioning', async () => {
    const slow = await startTestEmulator({ simulated: { pullMs: 60_000 } });
    try {
      const path = `${groupPath(slow.emu.subscriptionId, 'rg', 'slow')}?${API}`;
      assert.equal((await slow.arm.call('PUT', path, { body: simpleGroup() })).status, 201);
      const changed = await slow.arm.call('PUT', path, { body: simpleGroup({ image: 'other' }) });
      assert.equal(changed.status, 409);
      assert.equal(code(changed), 'ContainerGroupTransitioning');
      const stop = await slow.arm.call('POST', `${groupPath(slow.emu.subscriptionId, 'rg', 'slow')}/stop?${API}`);
      assert.equal(stop.status, 409);
    } finally {
      slow.arm.close();
      await slow.emu.stop();
    }
  });
});

describe('quota', () => {
  it('refuses groups and cores beyond the regional quota, and frees quota on delete', async () => {
    emu.setQuota({ containerGroups: 2, cores: 3 });
    try {
      const base = `/subscriptions/${sub}/resourceGroups/rg-quota/providers/Microsoft.ContainerInstance/containerGroups`;
      assert.equal((await arm.call('PUT', `${base}/q1?${API}`, { body: simpleGroup({ cpu: 1 }) })).status, 201);
      const cores = await arm.call('PUT', `${base}/q2?${API}`, { body: simpleGroup({ cpu: 2.5 }) });
      assert.equal(cores.status, 409);
      assert.equal(code(cores), 'StandardCoresQuotaExceeded');
      assert.equal((await arm.call('PUT', `${base}/q2?${API}`, { body: simpleGroup({ cpu: 1 }) })).status, 201);
      const groups = await arm.call('PUT', `${base}/q3?${API}`, { body: simpleGroup({ cpu: 0.5 }) });
      assert.equal(groups.status, 409);
      assert.equal(code(groups), 'ContainerGroupQuotaReached');
      const usage = await arm.call(
        'GET',
        `/subscriptions/${sub}/providers/Microsoft.ContainerInstance/locations/westeurope/usages?${API}`,
      );
      const value = (usage.body as { value: { name: { value: string }; currentValue: number; limit: number }[] }).value;
      assert.deepEqual(
        value.find((u) => u.name.value === 'ContainerGroups'),
        { ...value.find((u) => u.name.value === 'ContainerGroups'), currentValue: 2, limit: 2 },
      );
      await waitFor(
        'q1 provisioned',
        async () =>
          ((await arm.call('GET', `${base}/q1?${API}`)).body as { properties: { provisioningState: string } })
            .properties.provisioningState === 'Succeeded',
      );
      assert.equal((await arm.call('DELETE', `${base}/q1?${API}`)).status, 200);
      assert.equal((await arm.call('PUT', `${base}/q3?${API}`, { body: simpleGroup({ cpu: 0.5 }) })).status, 201);
    } finally {
      emu.setQuota({ containerGroups: 100, cores: 100 });
    }
  });
});

describe('throttling', () => {
  it('answers 429 with Retry-After once the read bucket is empty, and refills at its rate', async () => {
    emu.resetThrottling();
    const before429 = emu.stats().throttled;
    const path = `/subscriptions/${sub}/resourceGroups/rg-val/providers/Microsoft.ContainerInstance/containerGroups?${API}`;
    // The clock stands still: exactly the bucket's 250 reads pass.
    let ok = 0;
    let last: ArmResult | undefined;
    for (let i = 0; i < 260; i++) {
      last = await arm.call('GET', path);
      if (last.status !== 200) break;
      ok += 1;
    }
    assert.equal(ok, 250);
    assert.ok(last);
    assert.equal(last.status, 429);
    assert.equal(code(last), 'TooManyRequests');
    assert.equal(last.headers['retry-after'], '1');
    assert.equal(emu.stats().throttled, before429 + 1);

    // One second later the bucket holds 25 more reads (refill 25/s), and no more.
    now += 1000;
    let refilled = 0;
    for (let i = 0; i < 30; i++) {
      const r = await arm.call('GET', path);
      if (r.status !== 200) {
        assert.equal(r.status, 429);
        break;
      }
      refilled += 1;
    }
    assert.equal(refilled, 25);
  });

  it('keeps writes in their own bucket (200, refill 10/s) and reports the remaining count', async () => {
    emu.resetThrottling();
    emu.setLimits({ creations: { count: 1000 } });
    const base = `/subscriptions/${sub}/resourceGroups/rg-val/providers/Microsoft.ContainerInstance/containerGroups`;
    let ok = 0;
    let last: ArmResult | undefined;
    for (let i = 0; i < 205; i++) {
      last = await arm.call('POST', `${base}/absent/stop?${API}`);
      if (last.status === 429) break;
      assert.equal(last.status, 404);
      ok += 1;
    }
    assert.equal(ok, 200);
    assert.equal(last?.status, 429);
    assert.equal(last?.headers['retry-after'], '1');
    // Reads are not affected by the empty write bucket.
    const read = await arm.call('GET', `${base}/absent?${API}`);
    assert.equal(read.status, 404);
    assert.equal(read.headers['x-ms-ratelimit-remaining-subscription-reads'], '249');
    now += 500;
    assert.equal((await arm.call('POST', `${base}/absent/stop?${API}`)).status, 404, 'half a second refills 5 writes');
    emu.setLimits({ creations: aciRateWindows() });
  });

  it('limits container group creations per window (100 per 5 minutes by default)', async () => {
    emu.resetThrottling();
    emu.setLimits({ creations: { count: 3, windowSeconds: 300 } });
    try {
      const base = `/subscriptions/${sub}/resourceGroups/rg-rate/providers/Microsoft.ContainerInstance/containerGroups`;
      for (const n of ['r1', 'r2', 'r3'])
        assert.equal((await arm.call('PUT', `${base}/${n}?${API}`, { body: simpleGroup() })).status, 201);
      const fourth = await arm.call('PUT', `${base}/r4?${API}`, { body: simpleGroup() });
      assert.equal(fourth.status, 429);
      assert.equal(code(fourth), 'TooManyRequests');
      assert.equal(fourth.headers['retry-after'], '300');
      now += 300_000;
      assert.equal((await arm.call('PUT', `${base}/r4?${API}`, { body: simpleGroup() })).status, 201);
    } finally {
      emu.setLimits({ creations: aciRateWindows() });
    }
  });

  it("applies ACI's two creation windows (5 minutes and 1 hour) per subscription and region, and counts their 429s", async () => {
    emu.resetThrottling();
    emu.resetStats();
    // Scaled down (3 per 5 minutes, 5 per hour) so that a few requests fill both windows.
    emu.setLimits({
      creations: [
        { count: 3, windowSeconds: 300 },
        { count: 5, windowSeconds: 3600 },
      ],
    });
    try {
      const base = `/subscriptions/${sub}/resourceGroups/rg-hour/providers/Microsoft.ContainerInstance/containerGroups`;
      const put = (n: string, location = 'westeurope') =>
        arm.call('PUT', `${base}/${n}?${API}`, { body: { ...simpleGroup(), location } });
      for (const n of ['h1', 'h2', 'h3']) assert.equal((await put(n)).status, 201);
      const fourth = await put('h4');
      assert.equal(fourth.status, 429);
      assert.equal(code(fourth), 'TooManyRequests');
      assert.match(message(fourth), /exceeded the limit of 3 per 300 seconds/);
      // Another region has windows of its own.
      assert.equal((await put('h4-east', 'eastus')).status, 201);
      now += 300_000;
      for (const n of ['h4', 'h5']) assert.equal((await put(n)).status, 201);
      const sixth = await put('h6');
      assert.equal(sixth.status, 429, 'the hour window is full although the 5-minute one has room');
      assert.match(message(sixth), /exceeded the limit of 5 per 3600 seconds/);
      assert.equal(sixth.headers['retry-after'], '3300', 'the first creation leaves the hour window 55 minutes later');
      assert.equal(emu.stats().creationsThrottled, 2);
      now += 3_300_000;
      assert.equal((await put('h6')).status, 201);
    } finally {
      emu.setLimits({ creations: aciRateWindows() });
    }
  });

  it("limits deletions by ACI's deletion windows, apart from creations", async () => {
    emu.resetThrottling();
    emu.resetStats();
    const base = `/subscriptions/${sub}/resourceGroups/rg-del/providers/Microsoft.ContainerInstance/containerGroups`;
    for (const n of ['d1', 'd2', 'd3'])
      assert.equal((await arm.call('PUT', `${base}/${n}?${API}`, { body: simpleGroup() })).status, 201);
    emu.setLimits({ deletions: [{ count: 2, windowSeconds: 300 }] });
    try {
      for (const n of ['d1', 'd2'])
        assert.ok([200, 202].includes((await arm.call('DELETE', `${base}/${n}?${API}`)).status));
      const third = await arm.call('DELETE', `${base}/d3?${API}`);
      assert.equal(third.status, 429);
      assert.match(
        message(third),
        /container groups deleted in subscription .* exceeded the limit of 2 per 300 seconds/,
      );
      assert.equal(third.headers['retry-after'], '300');
      assert.equal(emu.stats().deletionsThrottled, 1);
      assert.equal(emu.stats().creationsThrottled, 0);
      // Creations are not held by the full deletion window.
      assert.equal((await arm.call('PUT', `${base}/d4?${API}`, { body: simpleGroup() })).status, 201);
      now += 300_000;
      assert.ok([200, 202].includes((await arm.call('DELETE', `${base}/d3?${API}`)).status));
    } finally {
      emu.setLimits({ deletions: aciRateWindows() });
    }
  });
});

describe('fault injection', () => {
  it('answers 500 and 503 at the configured share, only for the chosen operations', async () => {
    emu.resetThrottling();
    emu.setFaults({ unavailableRate: 1, operations: ['ContainerGroups_Get'] });
    try {
      const res = await arm.call('GET', `${groupPath(sub, 'rg-val', 'absent')}?${API}`);
      assert.equal(res.status, 503);
      assert.equal(code(res), 'ServiceUnavailable');
      assert.equal(res.headers['retry-after'], '1');
      const list = await arm.call(
        'GET',
        `/subscriptions/${sub}/resourceGroups/rg-val/providers/Microsoft.ContainerInstance/containerGroups?${API}`,
      );
      assert.equal(list.status, 200);
      emu.setFaults({ serverErrorRate: 1 });
      const e500 = await arm.call('GET', `${groupPath(sub, 'rg-val', 'absent')}?${API}`);
      assert.equal(e500.status, 500);
      assert.equal(code(e500), 'InternalServerError');
      assert.ok(emu.stats().faultsInjected >= 2);
    } finally {
      emu.setFaults({});
    }
  });

  it('loses the response of a PUT that succeeded: the group exists and a retried PUT is idempotent', async () => {
    emu.setFaults({ lostPutResponseRate: 1 });
    const path = `${groupPath(sub, 'rg-lost', 'lost')}?${API}`;
    try {
      await assert.rejects(arm.call('PUT', path, { body: simpleGroup() }), /socket hang up|ECONNRESET/);
    } finally {
      emu.setFaults({});
    }
    assert.equal(emu.stats().lostResponses, 1);
    const got = await arm.call('GET', path);
    assert.equal(got.status, 200);
    const retry = await arm.call('PUT', path, { body: simpleGroup() });
    assert.equal(retry.status, 200);
  });

  it('adds latency', async () => {
    emu.setFaults({ latencyMs: 300 });
    try {
      const started = process.hrtime.bigint();
      await arm.call('GET', `${groupPath(sub, 'rg-val', 'absent')}?${API}`);
      const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
      // A lower bound only: the request cannot be answered before the added latency has passed.
      assert.ok(elapsedMs >= 290, `took ${elapsedMs} ms`);
    } finally {
      emu.setFaults({});
    }
  });
});
