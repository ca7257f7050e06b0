/**
 * Turns what the provider reports into the kubelet-owned part of a pod's status,
 * decides whether it differs from what the API server has, and builds the
 * strategic-merge patch that writes it without touching fields others own.
 */
import type { V1ContainerState, V1ContainerStatus, V1Pod, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';
import type { PostStartStop } from './lifecycle-hooks.js';
import type { ContainerProbeView, ProbeOverrides } from './probes/prober.js';
import { isSidecar } from './probes/policy.js';
import type { ProviderPodStatus } from './provider.js';

export const VALID_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'] as const;
export type PodPhase = (typeof VALID_PHASES)[number];

/** The conditions this node owns; others' conditions are kept as they are. */
export const OWNED_CONDITIONS = ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'] as const;

export function isTerminal(phase: string | undefined): boolean {
  return phase === 'Succeeded' || phase === 'Failed';
}

export function validPhase(phase: string | undefined, fallback: PodPhase = 'Pending'): PodPhase {
  return (VALID_PHASES as readonly string[]).includes(phase ?? '') ? (phase as PodPhase) : fallback;
}

export interface StatusInputs {
  /** The provider's latest report, or undefined before the backend has the pod. */
  provider?: ProviderPodStatus;
  /** Why the pod is still waiting (when the provider has nothing), e.g. a missing Secret. */
  waiting?: { reason: string; message: string };
  /** The node's IP. */
  hostIP: string;
  /** What the connector's own prober adds per container (readiness, start, restarts). */
  probes?: ProbeOverrides;
  /** The connector stopped the pod after a container's postStart hook failed (restartPolicy Never). */
  postStartStop?: PostStartStop;
  now?: Date;
}

function waitingState(reason: string, message?: string): V1ContainerState {
  return { waiting: message ? { reason, message } : { reason } };
}

/** Merges the connector's probe verdicts into a container status the provider reported. */
function applyProbeView(out: V1ContainerStatus, view: ContainerProbeView | undefined): void {
  if (!view) return;
  const running = Boolean(out.state?.running);
  out.restartCount = (out.restartCount ?? 0) + view.extraRestarts;
  if (view.started !== undefined) out.started = running && view.started;
  if (view.ready !== undefined) out.ready = running && view.ready;
  // A restart of the whole group leaves the backend without the killed run; the kubelet shows it.
  if (view.lastKilled && !out.lastState?.terminated) {
    const k = view.lastKilled;
    out.lastState = {
      terminated: {
        exitCode: 137,
        reason: k.reason,
        finishedAt: k.finishedAt,
        ...(k.startedAt ? { startedAt: k.startedAt } : {}),
      },
    };
  }
}

function fillContainerStatuses(
  specs: Array<{ name: string; image?: string }>,
  reported: V1ContainerStatus[] | undefined,
  waiting: { reason: string; message?: string },
  probes?: ProbeOverrides,
): V1ContainerStatus[] {
  return specs.map((spec) => {
    const r = reported?.find((s) => s.name === spec.name);
    const state =
      r?.state && (r.state.running || r.state.waiting || r.state.terminated)
        ? r.state
        : waitingState(waiting.reason, waiting.message);
    const out: V1ContainerStatus = {
      name: spec.name,
      image: r?.image || spec.image || '',
      imageID: r?.imageID ?? '',
      ready: Boolean(r?.ready),
      restartCount: r?.restartCount ?? 0,
      started: r?.started ?? Boolean(state.running),
      state,
    };
    if (r?.containerID) out.containerID = r.containerID;
    if (r?.lastState && (r.lastState.running || r.lastState.waiting || r.lastState.terminated))
      out.lastState = r.lastState;
    applyProbeView(out, probes?.get(spec.name));
    return out;
  });
}

function condition(type: string, ok: boolean, reason?: string, message?: string): V1PodCondition {
  const c: V1PodCondition = { type, status: ok ? 'True' : 'False' };
  if (reason) c.reason = reason;
  if (message) c.message = message;
  return c;
}

/** Computes the node-owned status fields. Transition times come from `current` when a condition did not change. */
export function computePodStatus(pod: V1Pod, inputs: StatusInputs): V1PodStatus {
  const now = inputs.now ?? new Date();
  const current = pod.status ?? {};
  const p = inputs.provider;
  const waitingDefault = inputs.waiting ?? { reason: 'ContainerCreating' };
  let phase = validPhase(p?.phase, p ? 'Unknown' : 'Pending');
  // A pod never leaves a terminal phase (the kubelet's rule, and the API server's).
  if (isTerminal(current.phase) && !isTerminal(phase)) phase = current.phase as PodPhase;

  const initSpecs = pod.spec?.initContainers ?? [];
  const specs = pod.spec?.containers ?? [];
  const initContainerStatuses = fillContainerStatuses(
    initSpecs,
    p?.initContainerStatuses,
    { reason: 'PodInitializing' },
    inputs.probes,
  );

  // The kubelet's rule: the pod is initialized once every regular init container exited 0 and
  // every native sidecar started; until then it is Pending, whatever the backend calls it.
  // A provider that reports no init container statuses is trusted on its phase.
  const sidecarNames = new Set(initSpecs.filter(isSidecar).map((c) => c.name));
  const initDone =
    initSpecs.length === 0 ||
    phase === 'Succeeded' ||
    (p?.initContainerStatuses === undefined
      ? phase === 'Running'
      : initContainerStatuses.every((s) =>
          sidecarNames.has(s.name)
            ? Boolean(s.state?.running) || (s.restartCount ?? 0) > 0
            : s.state?.terminated?.exitCode === 0,
        ));
  if (!initDone && phase === 'Running') phase = 'Pending';
  const containerStatuses = fillContainerStatuses(
    specs,
    p?.containerStatuses,
    initDone || !p ? waitingDefault : { reason: 'PodInitializing' },
    inputs.probes,
  );
  if (!initDone && p) {
    // App containers do not start before the init containers are done: the kubelet's reason.
    for (const s of containerStatuses)
      if (s.state?.waiting?.reason === 'ContainerCreating') s.state = waitingState('PodInitializing');
  }
  // ContainersReady counts native sidecars with the app containers, as the kubelet does.
  const readyScope = [...initContainerStatuses.filter((s) => sidecarNames.has(s.name)), ...containerStatuses];
  const unready = readyScope.filter((s) => !s.ready).map((s) => s.name);
  const terminal = isTerminal(phase);
  const containersReady = !terminal && unready.length === 0 && phase === 'Running';
  const gates = pod.spec?.readinessGates ?? [];
  const failedGates = gates
    .map((g) => g.conditionType)
    .filter((t) => !(current.conditions ?? []).some((c) => c.type === t && c.status === 'True'));

  const notReadyReason = terminal
    ? 'PodCompleted'
    : inputs.waiting && !p
      ? inputs.waiting.reason
      : 'ContainersNotReady';
  const notReadyMessage = terminal
    ? undefined
    : inputs.waiting && !p
      ? inputs.waiting.message
      : unready.length > 0
        ? `containers with unready status: [${unready.join(' ')}]`
        : undefined;

  const conds: V1PodCondition[] = [
    condition('PodScheduled', true),
    condition(
      'Initialized',
      initDone,
      initDone ? (terminal && initSpecs.length > 0 ? 'PodCompleted' : undefined) : 'ContainersNotInitialized',
    ),
    condition(
      'ContainersReady',
      containersReady,
      containersReady ? undefined : notReadyReason,
      containersReady ? undefined : notReadyMessage,
    ),
  ];
  const ready = containersReady && failedGates.length === 0;
  conds.push(
    condition(
      'Ready',
      ready,
      ready ? undefined : containersReady ? 'ReadinessGatesNotReady' : notReadyReason,
      ready
        ? undefined
        : containersReady
          ? `corresponding condition of pod readiness gate "${failedGates.join('", "')}" does not exist or is not True`
          : notReadyMessage,
    ),
  );
  for (const c of conds) {
    const prev = current.conditions?.find((x) => x.type === c.type);
    c.lastTransitionTime = prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now;
  }

  const status: V1PodStatus = {
    phase,
    conditions: conds,
    hostIP: inputs.hostIP,
    hostIPs: [{ ip: inputs.hostIP }],
    containerStatuses,
  };
  if (initSpecs.length > 0) status.initContainerStatuses = initContainerStatuses;
  const podIP = p?.podIP ?? p?.podIPs?.[0]?.ip;
  if (podIP) {
    status.podIP = podIP;
    status.podIPs = p?.podIPs && p.podIPs.length > 0 ? p.podIPs : [{ ip: podIP }];
  }
  const startTime = current.startTime ?? p?.startTime ?? (p ? now : undefined);
  if (startTime) status.startTime = startTime;
  if (p?.reason) status.reason = p.reason;
  if (p?.message) status.message = p.message;
  if (inputs.postStartStop && p && phase === 'Failed') applyPostStartStop(status, inputs.postStartStop);
  else if (p && phase === 'Failed' && current.reason === 'FailedPostStartHook') keepPostStartStop(status, current);
  // Keep a terminal status written earlier (e.g. a rejection) when the provider has no say.
  if (isTerminal(current.phase) && !p) {
    if (current.reason) status.reason = current.reason;
    if (current.message) status.message = current.message;
  }
  return status;
}

/**
 * The backend reports a pod the connector stopped as stopped by someone (ACI: "stopped outside
 * Kubernetes"); the kubelet's pod ended because the container's postStart hook failed, and
 * says so: the pod's reason, and the container terminated (as the kubelet's kill leaves it).
 */
function applyPostStartStop(status: V1PodStatus, s: PostStartStop): void {
  status.reason = 'FailedPostStartHook';
  status.message = `Container ${s.container} was killed because its postStart hook failed, and restartPolicy Never does not restart it: ${s.error}`;
  const c = [...(status.containerStatuses ?? []), ...(status.initContainerStatuses ?? [])].find(
    (x) => x.name === s.container,
  );
  if (!c) return;
  const t = c.state?.terminated;
  const startedAt = t?.startedAt ?? c.state?.running?.startedAt;
  const exitCode = t?.exitCode ?? 137;
  c.state = {
    terminated: {
      exitCode,
      reason: exitCode === 0 ? 'Completed' : 'Error',
      message: `postStart hook failed: ${s.error}`,
      finishedAt: t?.finishedAt ?? s.at,
      ...(startedAt ? { startedAt } : {}),
      ...(t?.containerID ? { containerID: t.containerID } : {}),
    },
  };
  c.ready = false;
  c.started = false;
}

/** A connector restarted after such a stop has no verdict any more: what it wrote then stays. */
function keepPostStartStop(status: V1PodStatus, current: V1PodStatus): void {
  status.reason = current.reason;
  if (current.message) status.message = current.message;
  for (const c of [...(status.containerStatuses ?? []), ...(status.initContainerStatuses ?? [])]) {
    const was = [...(current.containerStatuses ?? []), ...(current.initContainerStatuses ?? [])].find(
      (x) => x.name === c.name,
    )?.state?.terminated;
    if (was?.message && c.state?.terminated) c.state = { terminated: { ...c.state.terminated, message: was.message } };
  }
}

/** The status of a pod the provider rejected. */
export function rejectedStatus(
  pod: V1Pod,
  reason: string,
  message: string,
  hostIP: string,
  now = new Date(),
): V1PodStatus {
  const s = computePodStatus(pod, { hostIP, now, waiting: { reason, message } });
  s.phase = 'Failed';
  s.reason = reason;
  s.message = message;
  for (const c of s.conditions ?? []) {
    if (c.type === 'ContainersReady' || c.type === 'Ready') {
      c.reason = 'PodFailed';
      c.message = message;
    }
  }
  return s;
}

// ---- comparison -----------------------------------------------------------

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Canonical JSON: sorted keys, dates at second precision (what the API server keeps), no nulls or empty members. */
export function canonical(v: unknown): unknown {
  if (v === null || v === undefined) return undefined;
  if (v instanceof Date) return isoSeconds(v);
  if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v)) return isoSeconds(new Date(v));
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const c = canonical((v as Record<string, unknown>)[k]);
      // An empty object or list means the same as none (the API server returns `lastState: {}`).
      if (c === undefined || (Array.isArray(c) && c.length === 0)) continue;
      if (typeof c === 'object' && !Array.isArray(c) && c !== null && Object.keys(c).length === 0) continue;
      out[k] = c;
    }
    return out;
  }
  return v;
}

const OWNED_FIELDS = [
  'phase',
  'reason',
  'message',
  'hostIP',
  'hostIPs',
  'podIP',
  'podIPs',
  'startTime',
  'containerStatuses',
  'initContainerStatuses',
] as const;

/**
 * Views already computed, by status object: one pass compares the same statuses several times
 * (decide, then write), and the profile showed the canonical JSON on the hot path. Statuses are
 * never changed once compared (computePodStatus builds new ones; informer copies are read-only).
 */
const views = new WeakMap<V1PodStatus, string>();

/** The node-owned view of a status, for comparison. */
export function ownedView(s: V1PodStatus | undefined): string {
  if (!s) return computeOwnedView(undefined);
  let v = views.get(s);
  if (v === undefined) {
    v = computeOwnedView(s);
    views.set(s, v);
  }
  return v;
}

function computeOwnedView(s: V1PodStatus | undefined): string {
  const view: Record<string, unknown> = {};
  for (const f of OWNED_FIELDS) view[f] = s?.[f];
  view.conditions = (s?.conditions ?? [])
    .filter((c) => (OWNED_CONDITIONS as readonly string[]).includes(c.type))
    .map((c) => ({ type: c.type, status: c.status, reason: c.reason, message: c.message }))
    .sort((a, b) => a.type.localeCompare(b.type));
  return JSON.stringify(canonical(view));
}

export function statusDiffers(current: V1PodStatus | undefined, next: V1PodStatus): boolean {
  return ownedView(current) !== ownedView(next);
}

function stateWithNulls(s: V1ContainerState | undefined): Record<string, unknown> | null {
  if (!s) return null;
  return { waiting: s.waiting ?? null, running: s.running ?? null, terminated: s.terminated ?? null };
}

/**
 * A strategic-merge patch for the status subresource. Absent owned fields are
 * sent as null so stale values are removed; container states name every member
 * so a `waiting` does not survive next to a new `running`. The uid pins the
 * patch to this incarnation of the pod.
 */
export function statusPatch(uid: string, s: V1PodStatus): Record<string, unknown> {
  const status: Record<string, unknown> = {};
  for (const f of OWNED_FIELDS) status[f] = s[f] ?? null;
  const cs = (list: V1ContainerStatus[] | undefined) =>
    list?.map((c) => ({
      ...c,
      state: stateWithNulls(c.state),
      lastState: c.lastState ? stateWithNulls(c.lastState) : {},
    })) ?? null;
  status.containerStatuses = cs(s.containerStatuses);
  status.initContainerStatuses = cs(s.initContainerStatuses);
  status.conditions = (s.conditions ?? []).map((c) => ({ reason: null, message: null, ...c }));
  return { metadata: { uid }, status };
}
