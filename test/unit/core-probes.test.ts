import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { decodeHealthCheckResponse, encodeHealthCheckRequest } from '../../src/core/probes/grpc-health.js';
import { runCheck } from '../../src/core/probes/checks.js';
import { connectorProbes, connectorRunsProbe, probeTiming } from '../../src/core/probes/policy.js';
import { Prober, type ProberDeps } from '../../src/core/probes/prober.js';
import { initialState, recordOutcome } from '../../src/core/probes/threshold.js';
import type { PodRef, ProviderPodStatus } from '../../src/core/provider.js';
import { waitFor } from '../support/wait.js';

test('thresholds: a verdict flips only after successThreshold / failureThreshold consecutive outcomes', () => {
  const t = { successThreshold: 2, failureThreshold: 3 };
  let s = initialState('readiness');
  assert.equal(s.result, false, 'readiness starts not ready');
  assert.equal(initialState('liveness').result, true, 'liveness starts alive');
  assert.equal(initialState('startup').result, undefined, 'startup starts unknown');
  let r = recordOutcome(s, true, t);
  assert.deepEqual([r.state.result, r.changed], [false, false]);
  r = recordOutcome(r.state, true, t);
  assert.deepEqual([r.state.result, r.changed], [true, true]);
  s = r.state;
  // Two failures, then a success: the run of failures starts over.
  for (const ok of [false, false, true, false, false]) {
    r = recordOutcome(s, ok, t);
    assert.equal(r.state.result, true);
    s = r.state;
  }
  r = recordOutcome(s, false, t);
  assert.deepEqual([r.state.result, r.changed], [false, true]);
});

test('timing: the kubelet defaults, and successThreshold 1 outside readiness', () => {
  assert.deepEqual(probeTiming({}, 'readiness'), {
    initialDelayMs: 0,
    periodMs: 10_000,
    timeoutMs: 1_000,
    successThreshold: 1,
    failureThreshold: 3,
  });
  const p = { initialDelaySeconds: 5, periodSeconds: 2, timeoutSeconds: 3, successThreshold: 4, failureThreshold: 6 };
  assert.deepEqual(probeTiming(p, 'readiness'), {
    initialDelayMs: 5_000,
    periodMs: 2_000,
    timeoutMs: 3_000,
    successThreshold: 4,
    failureThreshold: 6,
  });
  assert.equal(probeTiming(p, 'liveness').successThreshold, 1);
});

test('policy: the connector runs tcpSocket, gRPC, startup, and every probe of a container with a startupProbe', () => {
  const http = { httpGet: { port: 80 } };
  assert.equal(connectorRunsProbe({ name: 'a', readinessProbe: http }, 'readiness'), false);
  assert.equal(connectorRunsProbe({ name: 'a', livenessProbe: { exec: { command: ['x'] } } }, 'liveness'), false);
  assert.equal(connectorRunsProbe({ name: 'a', readinessProbe: { tcpSocket: { port: 80 } } }, 'readiness'), true);
  assert.equal(connectorRunsProbe({ name: 'a', livenessProbe: { grpc: { port: 80 } } }, 'liveness'), true);
  const gated: V1Container = { name: 'a', startupProbe: http, readinessProbe: http, livenessProbe: http };
  assert.deepEqual(
    connectorProbes(gated).map((p) => p.kind),
    ['startup', 'readiness', 'liveness'],
  );
  assert.deepEqual(connectorProbes({ name: 'a', readinessProbe: http }), []);
});

test('gRPC health messages: the request encodes the service, the response decodes the status and skips unknown fields', () => {
  assert.deepEqual([...encodeHealthCheckRequest('')], []);
  assert.deepEqual([...encodeHealthCheckRequest('svc')], [0x0a, 3, 0x73, 0x76, 0x63]);
  assert.deepEqual(decodeHealthCheckResponse(Buffer.from([0x08, 0x01])), { status: 1 });
  assert.deepEqual(decodeHealthCheckResponse(Buffer.alloc(0)), { status: 0 });
  // An unknown length-delimited field 2 before the status.
  assert.deepEqual(decodeHealthCheckResponse(Buffer.from([0x12, 0x02, 0x61, 0x62, 0x08, 0x02])), { status: 2 });
  assert.throws(() => decodeHealthCheckResponse(Buffer.from([0x08])), /truncated/);
});

test('checks: tcpSocket passes on an open port and fails on a closed one, naming the address', async (t) => {
  const server = createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const c: V1Container = { name: 'a', ports: [{ name: 'svc', containerPort: port }] };
  assert.deepEqual(await runCheck(c, { tcpSocket: { port: 'svc' } }, 1000, { address: '127.0.0.1' }), {
    ok: true,
    message: '',
  });
  server.close();
  await new Promise((r) => setTimeout(r, 50));
  const closed = await runCheck(c, { tcpSocket: { port } }, 1000, { address: '127.0.0.1' });
  assert.equal(closed.ok, false);
  assert.match(closed.message, new RegExp(`dial tcp 127.0.0.1:${port}`));
  const noIp = await runCheck(c, { tcpSocket: { port } }, 1000, { address: undefined });
  assert.deepEqual(noIp, { ok: false, message: 'the pod has no IP address yet' });
});

// ---- the prober, with exec probes answered by a fake backend -------------------

const ref: PodRef = { namespace: 'ns', name: 'p', uid: 'u1' };

function harness(answer: (container: string, command: string[]) => number) {
  const calls: string[] = [];
  const events: string[] = [];
  const restarts: string[] = [];
  let changes = 0;
  const deps: ProberDeps = {
    address: async () => '127.0.0.1',
    exec: async (_ref, container, command) => {
      calls.push(command.join(' '));
      return answer(container, command);
    },
    restart: async (_ref, container) => {
      restarts.push(container);
      return [container];
    },
    event: (_ref, type, reason, message) => events.push(`${type} ${reason} ${message}`),
    changed: () => {
      changes++;
    },
  };
  return { prober: new Prober(deps), calls, events, restarts, changes: () => changes };
}

function running(name: string, startedAt: Date, restartCount = 0): ProviderPodStatus {
  return {
    phase: 'Running',
    containerStatuses: [
      { name, image: 'x', imageID: '', ready: true, restartCount, state: { running: { startedAt } } },
    ],
  };
}

function podWith(c: V1Container): V1Pod {
  return { metadata: { namespace: 'ns', name: 'p', uid: 'u1' }, spec: { containers: [c] } };
}

test(
  'prober: readiness waits for the startup probe; then readiness decides ready, both ways',
  { timeout: 15_000 },
  async (t) => {
    let startupPasses = false;
    let readyAnswer = 0;
    const h = harness((_c, cmd) => (cmd[0] === 'startup' ? (startupPasses ? 0 : 1) : readyAnswer));
    t.after(() => h.prober.close());
    const pod = podWith({
      name: 'app',
      startupProbe: { exec: { command: ['startup'] }, periodSeconds: 1, failureThreshold: 30 },
      readinessProbe: { exec: { command: ['ready'] }, periodSeconds: 1, failureThreshold: 1 },
    });
    h.prober.sync(ref, pod, running('app', new Date()));
    assert.deepEqual(h.prober.overrides('u1').get('app'), { extraRestarts: 0, started: false, ready: false });
    await waitFor('two startup failures', () => h.calls.filter((c) => c === 'startup').length >= 2, {
      timeoutMs: 10_000,
    });
    assert.ok(!h.calls.includes('ready'), 'readiness ran before startup passed');
    assert.ok(
      h.events.some((e) => e.startsWith('Warning Unhealthy Startup probe failed: command ["startup"] exited with 1')),
    );
    startupPasses = true;
    await waitFor('ready', () => h.prober.overrides('u1').get('app')?.ready, { timeoutMs: 10_000 });
    assert.equal(h.prober.overrides('u1').get('app')?.started, true);
    const startupRuns = h.calls.filter((c) => c === 'startup').length;
    readyAnswer = 1;
    await waitFor('not ready', () => h.prober.overrides('u1').get('app')?.ready === false, { timeoutMs: 10_000 });
    assert.equal(h.calls.filter((c) => c === 'startup').length, startupRuns, 'the startup probe stops once it passed');
    assert.equal(h.restarts.length, 0, 'readiness never restarts');
    assert.ok(h.changes() >= 3);
  },
);

test(
  'prober: a liveness failure records Unhealthy then Killing, restarts once, and the next run is probed afresh',
  { timeout: 15_000 },
  async (t) => {
    const pod = podWith({
      name: 'app',
      startupProbe: { exec: { command: ['ok'] } },
      livenessProbe: { exec: { command: ['alive'] }, periodSeconds: 1, failureThreshold: 2 },
    });
    // Startup passes at once here; liveness fails.
    const h2 = harness((_c, cmd) => (cmd[0] === 'ok' ? 0 : 1));
    t.after(() => h2.prober.close());
    const started = new Date();
    h2.prober.sync(ref, pod, running('app', started, 2));
    await waitFor('restart', () => h2.restarts.length === 1, { timeoutMs: 15_000 });
    const unhealthy = h2.events.findIndex((e) => e.startsWith('Warning Unhealthy Liveness probe failed'));
    const killing = h2.events.findIndex(
      (e) => e === 'Normal Killing Container app failed liveness probe, will be restarted',
    );
    assert.ok(unhealthy >= 0 && killing > unhealthy, h2.events.join('\n'));
    assert.equal(
      h2.events.filter((e) => e.includes('Liveness probe failed')).length,
      2,
      'failureThreshold 2: two failures, then the kill',
    );
    const v = h2.prober.overrides('u1').get('app');
    assert.equal(v?.extraRestarts, 1);
    assert.equal(v?.ready, false, 'a container being killed is not ready');
    assert.equal(v?.lastKilled?.startedAt?.getTime(), started.getTime());
    // The backend restarted the group: its restart count started over; the pod's keeps growing.
    h2.prober.sync(ref, pod, running('app', new Date(started.getTime() + 5000), 0));
    assert.equal(h2.prober.overrides('u1').get('app')?.extraRestarts, 3, '2 the backend counted before + 1 restart');
    const before = h2.calls.length;
    await waitFor('the new run is probed', () => h2.calls.length > before, { timeoutMs: 10_000 });
    h2.prober.forget('u1');
    assert.equal(h2.prober.overrides('u1').size, 0);
  },
);

test(
  'prober: a container that is not running is not probed, and a pod without connector probes is ignored',
  { timeout: 10_000 },
  async (t) => {
    const h = harness(() => 0);
    t.after(() => h.prober.close());
    const pod = podWith({ name: 'app', readinessProbe: { tcpSocket: { port: 1 }, periodSeconds: 1 } });
    h.prober.sync(ref, pod, {
      phase: 'Pending',
      containerStatuses: [
        {
          name: 'app',
          image: 'x',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'ContainerCreating' } },
        },
      ],
    });
    assert.deepEqual(h.prober.overrides('u1').get('app'), { extraRestarts: 0, ready: false });
    const plain = harness(() => 0);
    plain.prober.sync(
      ref,
      podWith({ name: 'app', readinessProbe: { httpGet: { port: 80 } } }),
      running('app', new Date()),
    );
    assert.equal(plain.prober.overrides('u1').size, 0);
    assert.equal(Prober.wants(podWith({ name: 'app', livenessProbe: { exec: { command: ['x'] } } })), false);
  },
);

test(
  'prober: a tcpSocket readiness probe against a real socket flips ready both ways',
  { timeout: 15_000 },
  async (t) => {
    const listen = async (port = 0) => {
      const server = createServer((s) => s.end());
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      return server;
    };
    let server = await listen();
    const port = (server.address() as { port: number }).port;
    const h = harness(() => 0);
    t.after(() => {
      h.prober.close();
      server.close();
    });
    const pod = podWith({
      name: 'app',
      readinessProbe: { tcpSocket: { port }, periodSeconds: 1, failureThreshold: 1 },
    });
    h.prober.sync(ref, pod, running('app', new Date()));
    await waitFor('ready', () => h.prober.overrides('u1').get('app')?.ready, { timeoutMs: 5_000 });
    await new Promise((r) => server.close(r));
    await waitFor('not ready once the port closed', () => h.prober.overrides('u1').get('app')?.ready === false, {
      timeoutMs: 5_000,
    });
    assert.ok(
      h.events.some((e) => e.startsWith(`Warning Unhealthy Readiness probe failed: dial tcp 127.0.0.1:${port}`)),
    );
    server = await listen(port);
    await waitFor('ready again', () => h.prober.overrides('u1').get('app')?.ready, { timeoutMs: 5_000 });
    assert.equal(h.restarts.length, 0);
  },
);
