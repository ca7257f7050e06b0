import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import {
  VALID_PHASES,
  canonical,
  computePodStatus,
  rejectedStatus,
  statusDiffers,
  statusPatch,
} from '../../src/core/pod-status.js';

const now = new Date('2026-01-02T03:04:05.678Z');

function pod(status?: V1Pod['status'], extra: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod {
  return {
    metadata: { namespace: 'ns', name: 'p', uid: 'u' },
    spec: {
      containers: [
        { name: 'a', image: 'img-a' },
        { name: 'b', image: 'img-b' },
      ],
      ...extra,
    },
    status,
  };
}

test('before the provider reports, containers wait in ContainerCreating and the pod is Pending', () => {
  const s = computePodStatus(pod(), { hostIP: '10.0.0.1', now });
  assert.equal(s.phase, 'Pending');
  assert.equal(s.hostIP, '10.0.0.1');
  assert.deepEqual(s.hostIPs, [{ ip: '10.0.0.1' }]);
  assert.equal(s.startTime, undefined);
  assert.deepEqual(
    s.containerStatuses?.map((c) => [c.name, c.image, c.ready, c.started, c.restartCount, c.state?.waiting?.reason]),
    [
      ['a', 'img-a', false, false, 0, 'ContainerCreating'],
      ['b', 'img-b', false, false, 0, 'ContainerCreating'],
    ],
  );
  const ready = s.conditions?.find((c) => c.type === 'Ready');
  assert.equal(ready?.status, 'False');
  assert.equal(ready?.reason, 'ContainersNotReady');
  assert.match(ready?.message ?? '', /\[a b\]/);
});

test('a running provider status gives all four conditions True, IPs and startTime', () => {
  const running = { running: { startedAt: now } };
  const s = computePodStatus(pod(), {
    hostIP: '10.0.0.1',
    now,
    provider: {
      phase: 'Running',
      podIP: '192.168.0.5',
      startTime: now,
      containerStatuses: [
        {
          name: 'b',
          image: 'img-b',
          imageID: 'id-b',
          ready: true,
          restartCount: 0,
          containerID: 'mock://b',
          state: running,
        },
        {
          name: 'a',
          image: 'img-a',
          imageID: 'id-a',
          ready: true,
          restartCount: 2,
          containerID: 'mock://a',
          state: running,
          lastState: { terminated: { exitCode: 1 } },
        },
      ],
    },
  });
  assert.equal(s.phase, 'Running');
  assert.equal(s.podIP, '192.168.0.5');
  assert.deepEqual(s.podIPs, [{ ip: '192.168.0.5' }]);
  assert.equal(s.startTime, now);
  assert.deepEqual(
    s.conditions?.map((c) => [c.type, c.status]),
    [
      ['PodScheduled', 'True'],
      ['Initialized', 'True'],
      ['ContainersReady', 'True'],
      ['Ready', 'True'],
    ],
  );
  assert.deepEqual(
    s.containerStatuses?.map((c) => c.name),
    ['a', 'b'],
    'spec order',
  );
  assert.equal(s.containerStatuses?.[0]?.restartCount, 2);
  assert.equal(s.containerStatuses?.[0]?.started, true);
  assert.equal(s.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 1);
});

test('an invalid phase never reaches the API, and a terminal phase is never left', () => {
  const s = computePodStatus(pod(), { hostIP: 'h', now, provider: { phase: 'Starting' } });
  assert.ok((VALID_PHASES as readonly string[]).includes(s.phase ?? ''));
  assert.equal(s.phase, 'Unknown');
  const done = computePodStatus(pod({ phase: 'Succeeded' }), { hostIP: 'h', now, provider: { phase: 'Running' } });
  assert.equal(done.phase, 'Succeeded');
  assert.equal(done.conditions?.find((c) => c.type === 'Ready')?.reason, 'PodCompleted');
});

test('readiness gates hold Ready back until their condition is True', () => {
  const p = pod(
    { conditions: [{ type: 'example.com/gate', status: 'False' }] },
    { readinessGates: [{ conditionType: 'example.com/gate' }] },
  );
  const st = { name: 'a', image: 'x', imageID: '', ready: true, restartCount: 0, state: { running: {} } };
  const s = computePodStatus(p, {
    hostIP: 'h',
    now,
    provider: { phase: 'Running', containerStatuses: [st, { ...st, name: 'b' }] },
  });
  assert.equal(s.conditions?.find((c) => c.type === 'ContainersReady')?.status, 'True');
  const ready = s.conditions?.find((c) => c.type === 'Ready');
  assert.equal(ready?.status, 'False');
  assert.equal(ready?.reason, 'ReadinessGatesNotReady');
});

test('transition times are kept while a condition does not change', () => {
  const earlier = new Date('2020-01-01T00:00:00Z');
  const p = pod({ conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: earlier }] });
  const s = computePodStatus(p, { hostIP: 'h', now });
  assert.equal(s.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime, earlier);
  assert.equal(s.conditions?.find((c) => c.type === 'Initialized')?.lastTransitionTime, now);
});

test('a rejected pod is Failed with the reason and message', () => {
  const s = rejectedStatus(
    pod(),
    'UnsupportedField',
    'spec.containers[0].securityContext.privileged: not supported',
    'h',
    now,
  );
  assert.equal(s.phase, 'Failed');
  assert.equal(s.reason, 'UnsupportedField');
  assert.match(s.message ?? '', /securityContext\.privileged/);
});

test("statusDiffers ignores date formats and others' conditions, sees real changes", () => {
  const s = computePodStatus(pod(), { hostIP: 'h', now });
  // What the API server returns: JSON strings at second precision, plus a condition someone else owns.
  const asServer = JSON.parse(JSON.stringify(canonical(s))) as V1Pod['status'] & object;
  asServer.conditions = [...(asServer.conditions ?? []), { type: 'DisruptionTarget', status: 'True' }];
  assert.equal(statusDiffers(asServer, s), false);
  const changed = computePodStatus(pod(), { hostIP: 'other', now });
  assert.equal(statusDiffers(asServer, changed), true);
  // The API server answers `lastState: {}` for a container that never restarted.
  const withEmpty = JSON.parse(JSON.stringify(asServer)) as typeof asServer;
  for (const cs of withEmpty.containerStatuses ?? []) cs.lastState = {};
  assert.equal(statusDiffers(withEmpty, s), false);
});

test('the patch nulls stale fields and names every container state member', () => {
  const s = computePodStatus(pod(), { hostIP: 'h', now });
  const patch = statusPatch('u', s) as { metadata: { uid: string }; status: Record<string, unknown> };
  assert.equal(patch.metadata.uid, 'u');
  assert.equal(patch.status.podIP, null);
  assert.equal(patch.status.reason, null);
  const cs = patch.status.containerStatuses as Array<{ state: Record<string, unknown> }>;
  assert.deepEqual(Object.keys(cs[0]?.state ?? {}).sort(), ['running', 'terminated', 'waiting']);
  assert.equal(cs[0]?.state.running, null);
  const conds = patch.status.conditions as Array<Record<string, unknown>>;
  assert.equal(conds.find((c) => c.type === 'PodScheduled')?.reason, null);
});

test('init containers: Running from the backend is Pending until every init container exited 0; apps wait PodInitializing', () => {
  const p = pod(undefined, { initContainers: [{ name: 'init', image: 'i' }] });
  const running = { running: { startedAt: now } };
  const s = computePodStatus(p, {
    hostIP: '10.0.0.1',
    now,
    provider: {
      phase: 'Running',
      initContainerStatuses: [
        {
          name: 'init',
          image: 'i',
          imageID: '',
          ready: false,
          restartCount: 3,
          state: { waiting: { reason: 'CrashLoopBackOff' } },
        },
      ],
      containerStatuses: [
        {
          name: 'a',
          image: 'img-a',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: 'ContainerCreating' } },
        },
      ],
    },
  });
  assert.equal(s.phase, 'Pending');
  assert.equal(s.conditions?.find((c) => c.type === 'Initialized')?.status, 'False');
  assert.equal(s.conditions?.find((c) => c.type === 'Initialized')?.reason, 'ContainersNotInitialized');
  assert.deepEqual(
    s.initContainerStatuses?.map((c) => [c.state?.waiting?.reason, c.restartCount]),
    [['CrashLoopBackOff', 3]],
  );
  assert.deepEqual(
    s.containerStatuses?.map((c) => c.state?.waiting?.reason),
    ['PodInitializing', 'PodInitializing'],
  );
  const done = computePodStatus(p, {
    hostIP: '10.0.0.1',
    now,
    provider: {
      phase: 'Running',
      initContainerStatuses: [
        {
          name: 'init',
          image: 'i',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 0 } },
        },
      ],
      containerStatuses: ['a', 'b'].map((name) => ({
        name,
        image: 'x',
        imageID: '',
        ready: true,
        restartCount: 0,
        state: running,
      })),
    },
  });
  assert.equal(done.phase, 'Running');
  assert.equal(done.conditions?.find((c) => c.type === 'Initialized')?.status, 'True');
  assert.equal(done.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
});

test('native sidecars: a started sidecar initializes the pod, and Ready waits for it too', () => {
  const p = pod(undefined, { initContainers: [{ name: 'proxy', image: 'envoy', restartPolicy: 'Always' }] });
  const running = { running: { startedAt: now } };
  const status = (sidecarReady: boolean) =>
    computePodStatus(p, {
      hostIP: '10.0.0.1',
      now,
      provider: {
        phase: 'Running',
        initContainerStatuses: [
          { name: 'proxy', image: 'envoy', imageID: '', ready: sidecarReady, restartCount: 0, state: running },
        ],
        containerStatuses: ['a', 'b'].map((name) => ({
          name,
          image: 'x',
          imageID: '',
          ready: true,
          restartCount: 0,
          state: running,
        })),
      },
    });
  const waiting = status(false);
  assert.equal(waiting.phase, 'Running');
  assert.equal(waiting.conditions?.find((c) => c.type === 'Initialized')?.status, 'True');
  assert.equal(waiting.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
  assert.equal(
    waiting.conditions?.find((c) => c.type === 'ContainersReady')?.message,
    'containers with unready status: [proxy]',
  );
  assert.equal(status(true).conditions?.find((c) => c.type === 'Ready')?.status, 'True');
});

test('probe overrides: the connector decides ready and started, adds restarts, and shows the killed run', () => {
  const startedAt = new Date('2026-01-02T03:00:00Z');
  const s = computePodStatus(pod(), {
    hostIP: '10.0.0.1',
    now,
    provider: {
      phase: 'Running',
      containerStatuses: ['a', 'b'].map((name) => ({
        name,
        image: 'x',
        imageID: '',
        ready: true,
        started: true,
        restartCount: 1,
        state: { running: { startedAt: now } },
      })),
    },
    probes: new Map([
      [
        'a',
        { ready: false, started: false, extraRestarts: 2, lastKilled: { startedAt, finishedAt: now, reason: 'Error' } },
      ],
      ['b', { ready: true, extraRestarts: 0 }],
    ]),
  });
  const [a, b] = s.containerStatuses ?? [];
  assert.deepEqual([a?.ready, a?.started, a?.restartCount], [false, false, 3]);
  assert.deepEqual(a?.lastState?.terminated, { exitCode: 137, reason: 'Error', finishedAt: now, startedAt });
  assert.deepEqual([b?.ready, b?.restartCount], [true, 1]);
  assert.equal(s.conditions?.find((c) => c.type === 'Ready')?.message, 'containers with unready status: [a]');
});

test('a pod stopped after a failed postStart (restartPolicy Never) reads as that, not as the backend stop', () => {
  const at = new Date('2026-01-02T03:04:00Z');
  const stop = { container: 'a', error: "command 'false' exited with 1", at };
  const stoppedByBackend = {
    phase: 'Failed',
    reason: 'Stopped',
    message: 'The container group was stopped outside Kubernetes',
    containerStatuses: [
      {
        name: 'a',
        image: 'img-a',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { terminated: { exitCode: 137, reason: 'Error', finishedAt: at } },
      },
      {
        name: 'b',
        image: 'img-b',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { terminated: { exitCode: 137, reason: 'Error', finishedAt: at } },
      },
    ],
  };
  const s = computePodStatus(pod(undefined, { restartPolicy: 'Never' }), {
    provider: stoppedByBackend,
    hostIP: '10.0.0.1',
    now,
    postStartStop: stop,
  });
  assert.equal(s.phase, 'Failed');
  assert.equal(s.reason, 'FailedPostStartHook');
  assert.match(s.message ?? '', /Container a was killed because its postStart hook failed.*exited with 1/);
  const a = s.containerStatuses?.find((c) => c.name === 'a');
  assert.equal(a?.state?.terminated?.exitCode, 137);
  assert.match(a?.state?.terminated?.message ?? '', /postStart hook failed/);
  assert.equal(s.containerStatuses?.find((c) => c.name === 'b')?.state?.terminated?.message, undefined);

  // A connector restarted since has no verdict: the reason and the container's message it wrote stay.
  const later = computePodStatus(pod(s, { restartPolicy: 'Never' }), {
    provider: stoppedByBackend,
    hostIP: '10.0.0.1',
    now,
  });
  assert.equal(later.reason, 'FailedPostStartHook');
  assert.equal(later.message, s.message);
  assert.match(later.containerStatuses?.[0]?.state?.terminated?.message ?? '', /postStart hook failed/);

  // While the backend still reports the pod running, the stop does not show (it has not happened yet).
  const stillRunning = computePodStatus(pod(undefined, { restartPolicy: 'Never' }), {
    provider: {
      phase: 'Running',
      containerStatuses: stoppedByBackend.containerStatuses.map((c) => ({
        ...c,
        state: { running: { startedAt: at } },
      })),
    },
    hostIP: '10.0.0.1',
    now,
    postStartStop: stop,
  });
  assert.equal(stillRunning.phase, 'Running');
  assert.equal(stillRunning.reason, undefined);
  assert.ok(stillRunning.containerStatuses?.every((c) => c.state?.running));
});
