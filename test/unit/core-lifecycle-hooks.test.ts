import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { LifecycleHooks, type HookProvider } from '../../src/core/lifecycle-hooks.js';
import type { ProviderPodStatus } from '../../src/core/provider.js';
import { waitFor } from '../support/wait.js';

function hookedPod(lifecycle: NonNullable<V1Pod['spec']>['containers'][number]['lifecycle'], uid = 'u1'): V1Pod {
  return {
    metadata: { namespace: 'ns', name: 'p', uid },
    spec: { containers: [{ name: 'app', image: 'x', lifecycle, ports: [{ name: 'http', containerPort: 0 }] }] },
  };
}

const running = (restartCount: number, startedAt: string): ProviderPodStatus => ({
  phase: 'Running',
  containerStatuses: [
    {
      name: 'app',
      image: 'x',
      imageID: '',
      ready: true,
      restartCount,
      state: { running: { startedAt: new Date(startedAt) } },
    },
  ],
});

function harness(provider: HookProvider) {
  const events: { type: string; reason: string; message: string }[] = [];
  const hooks = new LifecycleHooks({
    provider,
    event: (_p, type, reason, message) => events.push({ type, reason, message }),
    log: pino({ level: 'silent' }),
    killBackoff: { baseMs: 1, maxMs: 1 },
  });
  return { hooks, events };
}

test('postStart exec runs once per container start, only for pods this process created or later starts', async () => {
  const execs: string[][] = [];
  const { hooks, events } = harness({ exec: async (_ref, _c, command) => (execs.push(command), { exitCode: 0 }) });
  const pod = hookedPod({ postStart: { exec: { command: ['sh', '-c', 'touch /x'] } } });
  hooks.created('u1');
  hooks.observe(pod, {
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
  assert.equal(execs.length, 0, 'not before it runs');
  hooks.observe(pod, running(0, '2026-01-01T00:00:00Z'));
  hooks.observe(pod, running(0, '2026-01-01T00:00:00Z'));
  await waitFor('first hook', async () => execs.length === 1);
  hooks.observe(pod, running(1, '2026-01-01T00:01:00Z'));
  await waitFor('hook after the restart', async () => execs.length === 2);
  assert.deepEqual(execs[0], ['sh', '-c', 'touch /x']);
  assert.equal(events.length, 0);

  // Adopted at start (not created here): the running container had its hook already.
  const adopted = hookedPod({ postStart: { exec: { command: ['true'] } } }, 'u2');
  hooks.observe(adopted, running(3, '2026-01-01T00:00:00Z'));
  hooks.observe(adopted, running(4, '2026-01-01T00:05:00Z'));
  await waitFor('only the later start ran', async () => execs.length === 3);
  assert.deepEqual(execs[2], ['true']);
});

test('a failing postStart records FailedPostStartHook with the output and kills the container', async () => {
  const killed: string[] = [];
  const { hooks, events } = harness({
    exec: async (_ref, _c, _cmd, streams) => {
      streams.stdout?.write('nope\n');
      return { exitCode: 7 };
    },
    restartContainer: async (ref, c) => {
      killed.push(`${ref.name}/${c}`);
      return [c];
    },
  });
  const pod = hookedPod({ postStart: { exec: { command: ['sh', '-c', 'echo nope; exit 7'] } } });
  hooks.created('u1');
  hooks.observe(pod, running(0, '2026-01-01T00:00:00Z'));
  await waitFor('killed', async () => killed.length === 1);
  const failed = events.find((e) => e.reason === 'FailedPostStartHook');
  assert.equal(failed?.type, 'Warning');
  assert.match(
    failed?.message ?? '',
    /Exec lifecycle hook \(\["sh","-c","echo nope; exit 7"\]\) for Container "app" in Pod "p_ns\(u1\)" failed - error: command 'sh -c echo nope; exit 7' exited with 7: nope/,
  );
  assert.ok(events.some((e) => e.reason === 'Killing' && e.message.includes('FailedPostStartHook')));
});

test('postStart and preStop httpGet go to the pod address with the named port; failures are Events, preStop lets deletion proceed', async () => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.url} ${String(req.headers['x-hook'] ?? '')}`);
    res.statusCode = req.url === '/fail' ? 500 : 200;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const { hooks, events } = harness({ portForwardAddress: async () => '127.0.0.1' });
    const pod = hookedPod({
      postStart: { httpGet: { path: '/start', port: 'http', httpHeaders: [{ name: 'X-Hook', value: 'yes' }] } },
      preStop: { httpGet: { path: '/fail', port } },
    });
    pod.spec!.containers[0]!.ports = [{ name: 'http', containerPort: port }];
    hooks.created('u1');
    hooks.observe(pod, running(0, '2026-01-01T00:00:00Z'));
    await waitFor('postStart request', async () => seen.length === 1);
    assert.equal(seen[0], '/start yes');
    const left = await hooks.beforeDelete(pod, running(0, '2026-01-01T00:00:00Z'), 30);
    assert.ok(left > 0 && left <= 30);
    assert.equal(seen[1], '/fail ');
    const failed = events.find((e) => e.reason === 'FailedPreStopHook');
    assert.match(failed?.message ?? '', /returned status 500/);
    // Once per pod: a retried delete does not run it again.
    await hooks.beforeDelete(pod, running(0, '2026-01-01T00:00:00Z'), 30);
    assert.equal(seen.length, 2);
  } finally {
    server.close();
  }
});

test('preStop is bounded by the grace period and skipped for containers not running', async () => {
  let started = 0;
  const { hooks, events } = harness({ exec: async () => (started++, new Promise(() => undefined)) });
  const pod = hookedPod({ preStop: { exec: { command: ['sleep', '100'] } } });
  const left = await hooks.beforeDelete(pod, running(0, '2026-01-01T00:00:00Z'), 1);
  assert.equal(started, 1);
  assert.equal(left, 0);
  assert.match(events.find((e) => e.reason === 'FailedPreStopHook')?.message ?? '', /did not complete within 1 s/);
  const stopped = hookedPod({ preStop: { exec: { command: ['x'] } } }, 'u3');
  assert.equal(await hooks.beforeDelete(stopped, { phase: 'Succeeded', containerStatuses: [] }, 30), 30);
  assert.equal(started, 1);
});

test('a failing postStart under restartPolicy Never stops the pod instead of restarting it, and says why', async () => {
  const stopped: string[] = [];
  const restarted: string[] = [];
  const { hooks, events } = harness({
    exec: async () => ({ exitCode: 1 }),
    restartContainer: async (_ref, c) => (restarted.push(c), [c]),
    stopPod: async (ref) => {
      stopped.push(ref.uid);
    },
  });
  const pod = hookedPod({ postStart: { exec: { command: ['false'] } } });
  pod.spec!.restartPolicy = 'Never';
  hooks.created('u1');
  assert.equal(hooks.stopped('u1'), undefined);
  hooks.observe(pod, running(0, '2026-01-01T00:00:00Z'));
  await waitFor('stopped', async () => stopped.length === 1);
  assert.deepEqual(restarted, [], 'no restart under Never');
  assert.ok(events.some((e) => e.reason === 'FailedPostStartHook' && e.type === 'Warning'));
  assert.ok(events.some((e) => e.reason === 'Killing'));
  const s = hooks.stopped('u1');
  assert.equal(s?.container, 'app');
  assert.match(s?.error ?? '', /command 'false' exited with 1/);

  // OnFailure still restarts (the kubelet kills the container with a non-zero code).
  const again = hookedPod({ postStart: { exec: { command: ['false'] } } }, 'u2');
  again.spec!.restartPolicy = 'OnFailure';
  hooks.created('u2');
  hooks.observe(again, running(0, '2026-01-01T00:00:00Z'));
  await waitFor('restarted', async () => restarted.length === 1);
  assert.equal(stopped.length, 1);
  assert.equal(hooks.stopped('u2'), undefined);
});

test('a stop that keeps failing under restartPolicy Never is reported and leaves no stop verdict', async () => {
  let calls = 0;
  const { hooks, events } = harness({
    exec: async () => ({ exitCode: 1 }),
    stopPod: async () => {
      calls++;
      throw new Error('backend down');
    },
  });
  const pod = hookedPod({ postStart: { exec: { command: ['false'] } } });
  pod.spec!.restartPolicy = 'Never';
  hooks.created('u1');
  hooks.observe(pod, running(0, '2026-01-01T00:00:00Z'));
  await waitFor('gave up', async () => events.some((e) => e.message.includes('could not be killed: backend down')), {
    timeoutMs: 20_000,
  });
  assert.equal(calls, 3);
  assert.equal(hooks.stopped('u1'), undefined);
});
