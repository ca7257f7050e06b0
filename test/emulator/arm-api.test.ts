/**
 * The ARM API end to end over HTTPS against the simulated runtime. Every request and
 * response goes through the spec validator (see arm-client.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Emulator } from '../../src/emulator/index.js';
import {
  API,
  groupPath,
  simpleGroup,
  startTestEmulator,
  waitFor,
  type ArmTestClient,
  type GroupBody,
} from './arm-client.js';

const RG = 'rg-api';
let emu: Emulator;
let arm: ArmTestClient;
let sub: string;

async function createAndWait(name: string, body: Record<string, unknown>, rg = RG): Promise<GroupBody> {
  const put = await arm.call('PUT', `${groupPath(sub, rg, name)}?${API}`, { body });
  assert.equal(put.status, 201, JSON.stringify(put.body));
  const asyncUrl = put.headers['azure-asyncoperation'];
  assert.equal(typeof asyncUrl, 'string');
  await waitFor(`${name} provisioned`, async () => {
    const op = await arm.call('GET', asyncUrl as string);
    const status = (op.body as { status: string }).status;
    return status !== 'InProgress' ? status : undefined;
  });
  const got = await arm.call('GET', `${groupPath(sub, rg, name)}?${API}`);
  assert.equal(got.status, 200);
  return got.body as GroupBody;
}

const getGroup = async (name: string, rg = RG): Promise<GroupBody> =>
  (await arm.call('GET', `${groupPath(sub, rg, name)}?${API}`)).body as GroupBody;

function wsOpen(url: string, headers: Record<string, string> = {}): WebSocket {
  return new WebSocket(url, { ca: emu.caPem, headers });
}

function collect(ws: WebSocket): Promise<{ output: string; code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    ws.on('message', (d: Buffer) => chunks.push(Buffer.from(d)));
    ws.on('close', (code, reason) =>
      resolve({ output: Buffer.concat(chunks).toString('utf8'), code, reason: reason.toString() }),
    );
    ws.on('error', reject);
  });
}

before(async () => {
  ({ emu, arm } = await startTestEmulator({
    pageSize: 2,
    simulated: {
      pullMs: 5,
      startMs: 5,
      exitAfterMs: 100,
      restartDelayMs: 50,
      rules: [{ image: 'registry.invalid/missing:1', fate: { kind: 'pullFails' } }],
    },
  }));
  sub = emu.subscriptionId;
});
after(async () => {
  arm?.close();
  await emu?.stop();
});

describe('authentication', () => {
  it('issues tokens only for the accepted client secret', async () => {
    const bad = await arm.raw(
      'POST',
      `${emu.endpoint}/${emu.tenantId}/oauth2/v2.0/token`,
      new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: emu.clientId,
        client_secret: 'wrong',
        scope: 'https://management.azure.com/.default',
      }).toString(),
      { 'Content-Type': 'application/x-www-form-urlencoded' },
    );
    assert.equal(bad.status, 401);
    assert.equal((bad.body as { error: string }).error, 'invalid_client');
  });

  it('serves the OpenID configuration MSAL reads', async () => {
    const res = await arm.raw('GET', `${emu.endpoint}/${emu.tenantId}/v2.0/.well-known/openid-configuration`);
    assert.equal(res.status, 200);
    const doc = res.body as Record<string, string>;
    for (const k of ['authorization_endpoint', 'token_endpoint', 'issuer', 'jwks_uri'])
      assert.equal(typeof doc[k], 'string', k);
    assert.equal(doc.token_endpoint, `${emu.endpoint}/${emu.tenantId}/oauth2/v2.0/token`);
  });

  it('rejects ARM calls without or with a forged bearer token', async () => {
    const none = await arm.call('GET', `${groupPath(sub, RG, 'absent')}?${API}`, { token: null });
    assert.equal(none.status, 401);
    assert.equal((none.body as { error: { code: string } }).error.code, 'AuthenticationFailed');
    const token = await arm.token();
    const forged = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const bad = await arm.call('GET', `${groupPath(sub, RG, 'absent')}?${API}`, { token: forged });
    assert.equal(bad.status, 401);
    assert.equal((bad.body as { error: { code: string } }).error.code, 'InvalidAuthenticationToken');
  });
});

describe('container group lifecycle', () => {
  it('creates with 201, async-operation headers, Pending → Succeeded and a Running instance view', async () => {
    const put = await arm.call('PUT', `${groupPath(sub, RG, 'web')}?${API}`, { body: simpleGroup({ ports: [80] }) });
    assert.equal(put.status, 201);
    const body = put.body as GroupBody;
    assert.equal(body.properties.provisioningState, 'Pending');
    assert.match(
      String(put.headers['azure-asyncoperation']),
      /\/locations\/westeurope\/operations\/[0-9a-f-]+\?api-version=2023-05-01$/,
    );
    assert.match(String(put.headers.location), /\/operationResults\//);
    const status = await waitFor('create done', async () => {
      const op = await arm.call('GET', String(put.headers['azure-asyncoperation']));
      const s = (op.body as { status: string }).status;
      return s === 'InProgress' ? undefined : s;
    });
    assert.equal(status, 'Succeeded');
    const final = await arm.call('GET', String(put.headers.location));
    assert.equal(final.status, 200);
    const got = await getGroup('web');
    assert.equal(got.properties.provisioningState, 'Succeeded');
    assert.equal(got.properties.instanceView?.state, 'Running');
    const c = got.properties.containers[0];
    assert.equal(c?.properties.instanceView?.currentState.state, 'Running');
    assert.equal(c?.properties.instanceView?.restartCount, 0);
    assert.match(String(got.properties.ipAddress?.ip), /^127\./);
    const env = c?.properties.environmentVariables ?? [];
    assert.deepEqual(
      env.find((e) => e.name === 'SECRET'),
      { name: 'SECRET' },
      'secureValue is never returned',
    );
    assert.deepEqual(
      env.find((e) => e.name === 'PLAIN'),
      { name: 'PLAIN', value: 'visible' },
    );
  });

  it('treats a repeated identical PUT as a no-op and refuses to move a group to another location', async () => {
    const again = await arm.call('PUT', `${groupPath(sub, RG, 'web')}?${API}`, { body: simpleGroup({ ports: [80] }) });
    assert.equal(again.status, 200);
    assert.equal((again.body as GroupBody).properties.provisioningState, 'Succeeded');
    const moved = { ...simpleGroup({ ports: [80] }), location: 'eastus' };
    const res = await arm.call('PUT', `${groupPath(sub, RG, 'web')}?${API}`, { body: moved });
    assert.equal(res.status, 409);
    assert.equal((res.body as { error: { code: string } }).error.code, 'InvalidResourceLocation');
  });

  it('updates a group with a changed spec (200) and tags with PATCH', async () => {
    const changed = simpleGroup({ ports: [80], image: 'busybox:1.36' });
    const res = await arm.call('PUT', `${groupPath(sub, RG, 'web')}?${API}`, { body: changed });
    assert.equal(res.status, 200);
    await waitFor('update done', async () => (await getGroup('web')).properties.provisioningState === 'Succeeded');
    const patched = await arm.call('PATCH', `${groupPath(sub, RG, 'web')}?${API}`, { body: { tags: { team: 'a' } } });
    assert.equal(patched.status, 200);
    assert.deepEqual((patched.body as { tags: unknown }).tags, { team: 'a' });
  });

  it('returns logs with tail and timestamps', async () => {
    await createAndWait(
      'talker',
      simpleGroup({ command: ['sh', '-c', 'echo hello from talker'], restartPolicy: 'Always' }),
    );
    await waitFor('two runs logged', async () => {
      const logs = await arm.call('GET', `${groupPath(sub, RG, 'talker')}/containers/main/logs?${API}`);
      const lines = String((logs.body as { content: string }).content)
        .trim()
        .split('\n');
      return lines.length >= 2;
    });
    const tail = await arm.call(
      'GET',
      `${groupPath(sub, RG, 'talker')}/containers/main/logs?${API}&tail=1&timestamps=true`,
    );
    assert.equal(tail.status, 200);
    const lines = (tail.body as { content: string }).content.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z hello from talker$/);
    const missing = await arm.call('GET', `${groupPath(sub, RG, 'talker')}/containers/nope/logs?${API}`);
    assert.equal(missing.status, 404);
    assert.equal((missing.body as { error: { code: string } }).error.code, 'ContainerNotFound');
  });

  it('execs over a WebSocket: password first, then stdin; output comes back', async () => {
    await createAndWait('shell', simpleGroup());
    const res = await arm.call('POST', `${groupPath(sub, RG, 'shell')}/containers/main/exec?${API}`, {
      body: { command: '/bin/sh', terminalSize: { rows: 24, cols: 80 } },
    });
    assert.equal(res.status, 200);
    const { webSocketUri, password } = res.body as { webSocketUri: string; password: string };
    assert.match(webSocketUri, /^wss:\/\/127\.0\.0\.1:\d+\//);
    const ws = wsOpen(webSocketUri);
    const done = collect(ws);
    await new Promise((r) => ws.once('open', r));
    ws.send(password);
    ws.send('echo hi there\n');
    ws.send('exit 4\n');
    const result = await done;
    assert.match(result.output, /hi there/);
    assert.equal(result.code, 1000);
    assert.equal(result.reason, 'exit code 4');

    const again = wsOpen(webSocketUri);
    const refused = await new Promise<string>((resolve) => {
      again.on('unexpected-response', (_req, r) => resolve(String(r.statusCode)));
      again.on('open', () => resolve('opened'));
      again.on('error', () => undefined);
    });
    assert.equal(refused, '404', 'an exec password works once');
  });

  it('runs the exec command as one executable without arguments, as ACI does; splitting is an opt-in extension', async () => {
    const run = async (
      client: ArmTestClient,
      ca: string,
      command: string,
    ): Promise<{ output: string; reason: string }> => {
      const res = await client.call('POST', `${groupPath(sub, RG, 'shell')}/containers/main/exec?${API}`, {
        body: { command, terminalSize: { rows: 24, cols: 80 } },
      });
      assert.equal(res.status, 200);
      const { webSocketUri, password } = res.body as { webSocketUri: string; password: string };
      const ws = new WebSocket(webSocketUri, { ca });
      const done = collect(ws);
      await new Promise((r) => ws.once('open', r));
      ws.send(password);
      return done;
    };
    const whole = await run(arm, emu.caPem, 'echo hi there');
    assert.equal(whole.reason, 'exit code 127');
    assert.match(whole.output, /echo hi there: not found/);
    assert.equal((await run(arm, emu.caPem, 'hostname')).reason, 'exit code 0');

    const splitting = await startTestEmulator({ execSplitsCommand: true, subscriptionId: sub });
    try {
      const put = await splitting.arm.call('PUT', `${groupPath(sub, RG, 'shell')}?${API}`, { body: simpleGroup() });
      assert.equal(put.status, 201);
      await waitFor('running', async () => {
        const g = (await splitting.arm.call('GET', `${groupPath(sub, RG, 'shell')}?${API}`)).body as GroupBody;
        return g.properties.containers[0]?.properties.instanceView?.currentState.state === 'Running';
      });
      const split = await run(splitting.arm, splitting.emu.caPem, 'echo hi there');
      assert.equal(split.reason, 'exit code 0');
      assert.equal(split.output, 'hi there\n');
    } finally {
      splitting.arm.close();
      await splitting.emu.stop();
    }
  });

  it('refuses an exec socket whose first message is not the password', async () => {
    const res = await arm.call('POST', `${groupPath(sub, RG, 'shell')}/containers/main/exec?${API}`, {
      body: { command: 'echo x' },
    });
    const { webSocketUri } = res.body as { webSocketUri: string };
    const ws = wsOpen(webSocketUri);
    const done = collect(ws);
    await new Promise((r) => ws.once('open', r));
    ws.send('not-the-password');
    const result = await done;
    assert.equal(result.code, 1008);
    assert.equal(result.output, '');
  });

  it('attaches with the password in the Authorization header', async () => {
    const res = await arm.call('POST', `${groupPath(sub, RG, 'talker')}/containers/main/attach?${API}`);
    assert.equal(res.status, 200);
    const { webSocketUri, password } = res.body as { webSocketUri: string; password: string };
    const ws = wsOpen(webSocketUri, { Authorization: password });
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d: Buffer) => resolve(Buffer.from(d).toString('utf8')));
      ws.once('error', reject);
    });
    assert.match(first, /hello from talker/);
    ws.close();
  });

  it('stops, starts (202 + polling) and restarts', async () => {
    const stop = await arm.call('POST', `${groupPath(sub, RG, 'shell')}/stop?${API}`);
    assert.equal(stop.status, 204);
    const stopped = await getGroup('shell');
    assert.equal(stopped.properties.instanceView?.state, 'Stopped');
    assert.equal(stopped.properties.containers[0]?.properties.instanceView?.currentState.state, 'Terminated');
    const restartStopped = await arm.call('POST', `${groupPath(sub, RG, 'shell')}/restart?${API}`);
    assert.equal(restartStopped.status, 409);

    const start = await arm.call('POST', `${groupPath(sub, RG, 'shell')}/start?${API}`);
    assert.equal(start.status, 202);
    await waitFor('start done', async () => {
      const op = await arm.call('GET', String(start.headers['azure-asyncoperation']));
      return (op.body as { status: string }).status === 'Succeeded';
    });
    await waitFor('running again', async () => (await getGroup('shell')).properties.instanceView?.state === 'Running');

    const restart = await arm.call('POST', `${groupPath(sub, RG, 'shell')}/restart?${API}`);
    assert.equal(restart.status, 204);
    await waitFor(
      'running after restart',
      async () => (await getGroup('shell')).properties.instanceView?.state === 'Running',
    );
  });

  it('fails provisioning when an image cannot be pulled: operation Failed with a code, group Failed, events kept', async () => {
    const put = await arm.call('PUT', `${groupPath(sub, RG, 'nopull')}?${API}`, {
      body: simpleGroup({ image: 'registry.invalid/missing:1' }),
    });
    assert.equal(put.status, 201);
    const op = await waitFor('operation settles', async () => {
      const res = await arm.call('GET', String(put.headers['azure-asyncoperation']));
      const body = res.body as { status: string; error?: { code: string; message: string } };
      return body.status === 'InProgress' ? undefined : body;
    });
    assert.equal(op.status, 'Failed');
    assert.equal(op.error?.code, 'InaccessibleImage');
    const got = await getGroup('nopull');
    assert.equal(got.properties.provisioningState, 'Failed');
    const events =
      (
        got.properties.containers[0]?.properties.instanceView as
          { events?: { name: string; type: string }[] } | undefined
      )?.events ?? [];
    assert.ok(
      events.some((e) => e.name === 'Failed' && e.type === 'Warning'),
      JSON.stringify(events),
    );
  });

  it('deletes with 200, then 204 when absent; GET is 404 ResourceNotFound', async () => {
    await createAndWait('doomed', simpleGroup());
    const del = await arm.call('DELETE', `${groupPath(sub, RG, 'doomed')}?${API}`);
    assert.equal(del.status, 200);
    const again = await arm.call('DELETE', `${groupPath(sub, RG, 'doomed')}?${API}`);
    assert.equal(again.status, 204);
    const get = await arm.call('GET', `${groupPath(sub, RG, 'doomed')}?${API}`);
    assert.equal(get.status, 404);
    assert.equal((get.body as { error: { code: string } }).error.code, 'ResourceNotFound');
  });
});

describe('slow deletion', () => {
  it('answers DELETE with 202 and a pollable operation when the runtime takes its time', async () => {
    const slow = await startTestEmulator({ deleteSyncWaitMs: 50, simulated: { pullMs: 5, startMs: 5, removeMs: 400 } });
    try {
      const path = `${groupPath(slow.emu.subscriptionId, 'rg', 'slow-delete')}?${API}`;
      assert.equal((await slow.arm.call('PUT', path, { body: simpleGroup() })).status, 201);
      await waitFor(
        'provisioned',
        async () => ((await slow.arm.call('GET', path)).body as GroupBody).properties.provisioningState === 'Succeeded',
      );
      const del = await slow.arm.call('DELETE', path);
      assert.equal(del.status, 202);
      const during = await slow.arm.call('GET', path);
      assert.equal((during.body as GroupBody).properties.provisioningState, 'Deleting');
      const status = await waitFor('delete done', async () => {
        const op = await slow.arm.call('GET', String(del.headers['azure-asyncoperation']));
        const s = (op.body as { status: string }).status;
        return s === 'InProgress' ? undefined : s;
      });
      assert.equal(status, 'Succeeded');
      assert.equal((await slow.arm.call('GET', String(del.headers.location))).status, 204);
      assert.equal((await slow.arm.call('GET', path)).status, 404);
    } finally {
      slow.arm.close();
      await slow.emu.stop();
    }
  });
});

describe('restart policies in the simulated runtime', () => {
  type View = NonNullable<GroupBody['properties']['containers'][number]['properties']['instanceView']>;
  const containerView = async (name: string): Promise<View | undefined> =>
    (await getGroup(name)).properties.containers[0]?.properties.instanceView;

  it('Never: exit 3 leaves the container Terminated with exit code 3 and the group Failed', async () => {
    await createAndWait('never-fails', simpleGroup({ command: ['sh', '-c', 'exit 3'], restartPolicy: 'Never' }));
    await waitFor(
      'terminated',
      async () => (await getGroup('never-fails')).properties.instanceView?.state === 'Failed',
    );
    const v = await containerView('never-fails');
    assert.equal(v?.currentState.state, 'Terminated');
    assert.equal(v?.currentState.exitCode, 3);
    assert.equal(v?.restartCount, 0);
  });

  it('Never: exit 0 makes the group Succeeded', async () => {
    await createAndWait('never-ok', simpleGroup({ command: ['sh', '-c', 'exit 0'], restartPolicy: 'Never' }));
    await waitFor('succeeded', async () => (await getGroup('never-ok')).properties.instanceView?.state === 'Succeeded');
    assert.equal((await containerView('never-ok'))?.currentState.detailStatus, 'Completed');
  });

  it('OnFailure: a failing container is restarted, counting restarts, with the previous state kept', async () => {
    await createAndWait('onfailure', simpleGroup({ command: ['sh', '-c', 'exit 2'], restartPolicy: 'OnFailure' }));
    const v = await waitFor('restarted twice', async () => {
      const view = await containerView('onfailure');
      return view && view.restartCount >= 2 ? view : undefined;
    });
    assert.equal(v.previousState?.state, 'Terminated');
    assert.equal(v.previousState?.exitCode, 2);
  });

  it('OnFailure: a container exiting 0 is not restarted', async () => {
    await createAndWait('onfailure-ok', simpleGroup({ command: ['sh', '-c', 'exit 0'], restartPolicy: 'OnFailure' }));
    await waitFor(
      'succeeded',
      async () => (await getGroup('onfailure-ok')).properties.instanceView?.state === 'Succeeded',
    );
    assert.equal((await containerView('onfailure-ok'))?.restartCount, 0);
  });

  it('Always: even a container exiting 0 is restarted', async () => {
    await createAndWait('always', simpleGroup({ command: ['sh', '-c', 'exit 0'], restartPolicy: 'Always' }));
    await waitFor('restarted', async () => ((await containerView('always'))?.restartCount ?? 0) >= 1);
    assert.equal((await getGroup('always')).properties.instanceView?.state, 'Running');
  });
});

describe('reads', () => {
  it('lists by resource group and subscription in pages, following nextLink, without instanceView', async () => {
    const names = ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'];
    for (const n of names) await createAndWait(n, simpleGroup(), 'rg-paged');
    const seen: string[] = [];
    let url: string | undefined =
      `/subscriptions/${sub}/resourceGroups/rg-paged/providers/Microsoft.ContainerInstance/containerGroups?${API}`;
    let pages = 0;
    while (url) {
      const res = await arm.call('GET', url);
      assert.equal(res.status, 200);
      const body = res.body as { value: { name: string; properties: Record<string, unknown> }[]; nextLink?: string };
      assert.ok(body.value.length <= 2);
      for (const g of body.value) {
        assert.equal(g.properties.instanceView, undefined);
        seen.push(g.name);
      }
      url = body.nextLink;
      pages += 1;
    }
    assert.deepEqual(seen.sort(), names);
    assert.equal(pages, 3);

    const all: string[] = [];
    let next: string | undefined = `/subscriptions/${sub}/providers/Microsoft.ContainerInstance/containerGroups?${API}`;
    while (next) {
      const res = await arm.call('GET', next);
      const body = res.body as { value: { name: string }[]; nextLink?: string };
      all.push(...body.value.map((g) => g.name));
      next = body.nextLink;
    }
    for (const n of [...names, 'web', 'shell']) assert.ok(all.includes(n), `${n} in the subscription list`);
  });

  it('reports usage against the regional quota', async () => {
    const res = await arm.call(
      'GET',
      `/subscriptions/${sub}/providers/Microsoft.ContainerInstance/locations/westeurope/usages?${API}`,
    );
    assert.equal(res.status, 200);
    const usage = (res.body as { value: { name: { value: string }; currentValue: number; limit: number }[] }).value;
    const groups = usage.find((u) => u.name.value === 'ContainerGroups');
    assert.equal(groups?.currentValue, emu.stats().groups);
    assert.equal(groups?.limit, 100, "ACI's default quota");
    assert.ok(usage.some((u) => u.name.value === 'StandardCores'));
  });

  it('serves the provider operations, capabilities, cached images and outbound dependencies', async () => {
    assert.equal((await arm.call('GET', `/providers/Microsoft.ContainerInstance/operations?${API}`)).status, 200);
    assert.equal(
      (
        await arm.call(
          'GET',
          `/subscriptions/${sub}/providers/Microsoft.ContainerInstance/locations/westeurope/capabilities?${API}`,
        )
      ).status,
      200,
    );
    assert.equal(
      (
        await arm.call(
          'GET',
          `/subscriptions/${sub}/providers/Microsoft.ContainerInstance/locations/westeurope/cachedImages?${API}`,
        )
      ).status,
      200,
    );
    assert.equal(
      (await arm.call('GET', `${groupPath(sub, RG, 'web')}/outboundNetworkDependenciesEndpoints?${API}`)).status,
      200,
    );
  });

  it('counts calls by operation', () => {
    const stats = emu.stats();
    assert.ok((stats.callsByOperation.ContainerGroups_CreateOrUpdate ?? 0) >= 10);
    assert.ok((stats.callsByOperation.ContainerGroups_Get ?? 0) >= 10);
    assert.ok(stats.tokensIssued >= 1);
  });
});

describe('spec conformance coverage', () => {
  it('validated a response of every container group and container operation', () => {
    const expected = [
      'ContainerGroups_List',
      'ContainerGroups_ListByResourceGroup',
      'ContainerGroups_Get',
      'ContainerGroups_CreateOrUpdate',
      'ContainerGroups_Update',
      'ContainerGroups_Delete',
      'ContainerGroups_Restart',
      'ContainerGroups_Stop',
      'ContainerGroups_Start',
      'Containers_ListLogs',
      'Containers_ExecuteCommand',
      'Containers_Attach',
      'Location_ListUsage',
      'Location_ListCachedImages',
      'Location_ListCapabilities',
      'Operations_List',
      'ContainerGroups_GetOutboundNetworkDependenciesEndpoints',
    ];
    for (const op of expected) assert.ok(arm.validated.has(op), `${op} was exercised and validated`);
    assert.deepEqual([...(arm.validated.get('ContainerGroups_Delete') ?? [])].sort(), [200, 204]);
  });
});
