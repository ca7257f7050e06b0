/** What the podman runtime shows of a group: its ARM-facing view, from the records alone (cheap, no podman call). */
import type { RuntimeContainerView, RuntimeGroupState, RuntimeGroupView } from '../../runtime.js';
import { shouldRestart, type ContainerRecord, type GroupRecord } from './records.js';

export function containerView(c: ContainerRecord): RuntimeContainerView {
  const v: RuntimeContainerView = {
    currentState: { ...c.current },
    restartCount: Math.max(0, c.starts - 1),
    events: c.events.list(),
  };
  if (c.previous) v.previousState = { ...c.previous };
  if (c.ready !== undefined) v.ready = c.ready;
  return v;
}

export function groupState(rec: GroupRecord): RuntimeGroupState {
  switch (rec.phase) {
    case 'stopped':
      return 'Stopped';
    case 'failed':
      return 'Failed';
    case 'provisioning':
    case 'init':
      return 'Pending';
    case 'running': {
      if (rec.app.some((c) => c.current.state !== 'Terminated')) return 'Running';
      // An exit the policy restarts is not an end, even before its died event arrives.
      if (rec.app.some((c) => shouldRestart(rec.spec.restartPolicy, c.current.exitCode ?? 0))) return 'Running';
      return rec.app.every((c) => c.current.exitCode === 0) ? 'Succeeded' : 'Failed';
    }
  }
}

export function viewOf(rec: GroupRecord): RuntimeGroupView {
  const v: RuntimeGroupView = {
    state: groupState(rec),
    initContainers: {},
    containers: {},
    events: rec.events.list(),
  };
  if (rec.ip) v.ip = rec.ip;
  for (const c of rec.init) v.initContainers[c.spec.name] = containerView(c);
  for (const c of rec.app) v.containers[c.spec.name] = containerView(c);
  return v;
}
