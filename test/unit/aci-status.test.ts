import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ContainerGroup } from '@azure/arm-containerinstance';
import { groupToPodStatus } from '../../src/providers/aci/mapping/status.js';
import { EventDeduper } from '../../src/providers/aci/mapping/events.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:00:10Z');

function group(over: Partial<ContainerGroup>, containers: ContainerGroup['containers'] = []): ContainerGroup {
  return {
    name: 'default-web-0123456789',
    osType: 'Linux',
    provisioningState: 'Succeeded',
    restartPolicy: 'Always',
    containers,
    ...over,
  };
}

function container(name: string, iv: Record<string, unknown>) {
  return {
    name,
    image: 'nginx',
    resources: { requests: { cpu: 1, memoryInGB: 1 } },
    instanceView: iv,
  } as ContainerGroup['containers'][number];
}

test('a running group maps to Running with IP, start time and ready containers', () => {
  const g = group({ instanceView: { state: 'Running' }, ipAddress: { type: 'Public', ports: [], ip: '10.1.2.3' } }, [
    container('app', { restartCount: 0, currentState: { state: 'Running', startTime: t0 } }),
  ]);
  const s = groupToPodStatus(g, undefined);
  assert.equal(s.phase, 'Running');
  assert.equal(s.podIP, '10.1.2.3');
  assert.deepEqual(s.podIPs, [{ ip: '10.1.2.3' }]);
  assert.deepEqual(s.startTime, t0);
  const c = s.containerStatuses?.[0];
  assert.equal(c?.ready, true);
  assert.deepEqual(c?.state, { running: { startedAt: t0 } });
  assert.equal(c?.restartCount, 0);
});

test('a restarted container reports lastState with exit code and the restart count', () => {
  const g = group({ instanceView: { state: 'Running' } }, [
    container('app', {
      restartCount: 3,
      currentState: { state: 'Running', startTime: t1 },
      previousState: { state: 'Terminated', exitCode: 137, startTime: t0, finishTime: t1, detailStatus: 'Error' },
    }),
  ]);
  const c = groupToPodStatus(g, undefined).containerStatuses?.[0];
  assert.equal(c?.restartCount, 3);
  assert.deepEqual(c?.lastState, { terminated: { exitCode: 137, reason: 'Error', startedAt: t0, finishedAt: t1 } });
});

test('terminated groups: Succeeded and Failed with exit codes', () => {
  const ok = group({ restartPolicy: 'Never', instanceView: { state: 'Succeeded' } }, [
    container('app', { currentState: { state: 'Terminated', exitCode: 0, startTime: t0, finishTime: t1 } }),
  ]);
  const s = groupToPodStatus(ok, undefined);
  assert.equal(s.phase, 'Succeeded');
  assert.equal(s.containerStatuses?.[0]?.state?.terminated?.reason, 'Completed');
  assert.equal(s.containerStatuses?.[0]?.ready, false);

  const bad = group({ restartPolicy: 'Never', instanceView: { state: 'Failed' } }, [
    container('app', { currentState: { state: 'Terminated', exitCode: 2 } }),
  ]);
  const f = groupToPodStatus(bad, undefined);
  assert.equal(f.phase, 'Failed');
  assert.equal(f.containerStatuses?.[0]?.state?.terminated?.exitCode, 2);
  assert.equal(f.containerStatuses?.[0]?.state?.terminated?.reason, 'Error');
});

test('without a group state the phase is derived from containers and the restart policy', () => {
  const term = (code: number) => container('app', { currentState: { state: 'Terminated', exitCode: code } });
  assert.equal(groupToPodStatus(group({ restartPolicy: 'Never' }, [term(0)]), undefined).phase, 'Succeeded');
  assert.equal(groupToPodStatus(group({ restartPolicy: 'Never' }, [term(1)]), undefined).phase, 'Failed');
  assert.equal(groupToPodStatus(group({ restartPolicy: 'OnFailure' }, [term(1)]), undefined).phase, 'Running');
  assert.equal(groupToPodStatus(group({ restartPolicy: 'OnFailure' }, [term(0)]), undefined).phase, 'Succeeded');
  assert.equal(groupToPodStatus(group({ restartPolicy: 'Always' }, [term(0)]), undefined).phase, 'Running');
  assert.equal(
    groupToPodStatus(group({ provisioningState: 'Creating' }, [container('app', {})]), undefined).phase,
    'Pending',
  );
  // A group still saying Running while its only container ended for good has finished.
  assert.equal(
    groupToPodStatus(group({ restartPolicy: 'Never', instanceView: { state: 'Running' } }, [term(0)]), undefined).phase,
    'Succeeded',
  );
});

test('phases are never invented: Stopped and provisioning failures become Failed with a reason', () => {
  for (const state of ['Pending', 'Running', 'Succeeded', 'Failed', 'Stopped', 'Weird', undefined]) {
    const s = groupToPodStatus(
      group({ instanceView: state ? { state } : undefined }, [container('app', {})]),
      undefined,
    );
    assert.ok(['Pending', 'Running', 'Succeeded', 'Failed'].includes(s.phase ?? ''), `${state} → ${s.phase}`);
  }
  const stopped = groupToPodStatus(group({ instanceView: { state: 'Stopped' } }, [container('app', {})]), undefined);
  assert.equal(stopped.phase, 'Failed');
  assert.equal(stopped.reason, 'Stopped');
  const failed = groupToPodStatus(
    group({ provisioningState: 'Failed' }, [
      container('app', { events: [{ name: 'Failed', type: 'Warning', message: 'pull access denied', count: 1 }] }),
    ]),
    undefined,
  );
  assert.equal(failed.phase, 'Failed');
  assert.equal(failed.reason, 'ProviderFailed');
  assert.match(failed.message ?? '', /pull access denied/);
});

test('waiting containers carry ACI detail status as the reason; init containers keep the pod Pending', () => {
  const g = group({}, [container('app', { currentState: { state: 'Waiting', detailStatus: 'ImagePullBackOff' } })]);
  const s = groupToPodStatus(g, undefined);
  assert.equal(s.phase, 'Pending');
  assert.deepEqual(s.containerStatuses?.[0]?.state, { waiting: { reason: 'ImagePullBackOff' } });

  const withInit = group(
    { initContainers: [{ name: 'init', image: 'busybox', instanceView: { currentState: { state: 'Running' } } }] },
    [container('app', {})],
  );
  const w = groupToPodStatus(withInit, undefined);
  assert.equal(w.phase, 'Pending');
  assert.equal(w.initContainerStatuses?.[0]?.state?.running !== undefined, true);
});

test('ready follows readiness where reported', () => {
  const spec = {
    spec: { containers: [{ name: 'app', image: 'nginx', readinessProbe: { exec: { command: ['true'] } } }] },
  };
  const notReady = group({ instanceView: { state: 'Running' } }, [
    container('app', { currentState: { state: 'Running' }, ready: false }),
  ]);
  assert.equal(groupToPodStatus(notReady, spec).containerStatuses?.[0]?.ready, false);
  const ready = group({ instanceView: { state: 'Running' } }, [
    container('app', { currentState: { state: 'Running' }, ready: true }),
  ]);
  assert.equal(groupToPodStatus(ready, spec).containerStatuses?.[0]?.ready, true);
});

test('ACI events become pod events once each; a repeat with a new count is new', () => {
  const d = new EventDeduper();
  const ev = (count: number, last: Date) => ({
    name: 'Pulling',
    type: 'Normal',
    message: 'pulling image "nginx"',
    count,
    firstTimestamp: t0,
    lastTimestamp: last,
  });
  const g = group(
    {
      instanceView: {
        state: 'Pending',
        events: [
          { name: 'Scheduled', type: 'Normal', message: 'assigned', count: 1, firstTimestamp: t0, lastTimestamp: t0 },
        ],
      },
    },
    [
      container('app', {
        events: [
          ev(1, t0),
          { name: 'Failed', type: 'Warning', message: 'mount failed', count: 1, firstTimestamp: t1, lastTimestamp: t1 },
        ],
      }),
    ],
  );
  const first = d.newEvents(g);
  assert.deepEqual(
    first.map((e) => [e.type, e.reason]),
    [
      ['Normal', 'Scheduled'],
      ['Normal', 'Pulling'],
      ['Warning', 'Failed'],
    ],
  );
  assert.equal(first[1]?.message, 'container app: pulling image "nginx"');
  assert.deepEqual(d.newEvents(g), [], 'nothing is reported twice');
  g.containers[0] = container('app', { events: [ev(2, t1)] });
  assert.deepEqual(
    d.newEvents(g).map((e) => e.reason),
    ['Pulling'],
  );
});

test('a container the runtime could not create keeps the pod Pending with CreateContainerError and the message', () => {
  const why = 'Error: podman pod create failed: finding pause binary: "catatonit" not found';
  const g = group({ provisioningState: 'Failed', instanceView: { state: 'Failed' } }, [
    container('app', {
      currentState: { state: 'Waiting', detailStatus: 'CreateContainerError' },
      events: [
        { name: 'Pulled', type: 'Normal', message: 'ok', count: 1 },
        { name: 'Failed', type: 'Warning', message: why, count: 1 },
      ],
    }),
  ]);
  const s = groupToPodStatus(g, undefined);
  assert.equal(s.phase, 'Pending');
  assert.equal(s.reason, 'CreateContainerError');
  assert.equal(s.message, why);
  assert.deepEqual(s.containerStatuses?.[0]?.state, { waiting: { reason: 'CreateContainerError', message: why } });
  // Any other provisioning failure still ends the pod.
  const other = groupToPodStatus(
    group({ provisioningState: 'Failed' }, [container('app', { currentState: { state: 'Waiting' } })]),
    undefined,
  );
  assert.equal(other.phase, 'Failed');
});

test('native sidecars run as group containers and are reported among the init container statuses, in spec order', () => {
  const g = group({ instanceView: { state: 'Running' } }, [
    container('app', { restartCount: 0, currentState: { state: 'Running', startTime: t0 } }),
    container('proxy', { restartCount: 1, currentState: { state: 'Running', startTime: t1 } }),
  ]);
  g.initContainers = [
    {
      name: 'setup',
      image: 'busybox',
      instanceView: { restartCount: 0, currentState: { state: 'Terminated', exitCode: 0 } },
    },
  ];
  const spec = {
    containers: [{ name: 'app' }],
    initContainers: [{ name: 'proxy', restartPolicy: 'Always' }, { name: 'setup' }],
  };
  const s = groupToPodStatus(g, { spec });
  assert.deepEqual(
    s.containerStatuses?.map((c) => c.name),
    ['app'],
  );
  assert.deepEqual(
    s.initContainerStatuses?.map((c) => [c.name, c.started, c.ready, c.restartCount]),
    [
      ['proxy', true, true, 1],
      ['setup', false, false, 0],
    ],
  );
  assert.equal(s.phase, 'Running');
});
