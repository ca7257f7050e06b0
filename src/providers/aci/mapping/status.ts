/**
 * A container group as ARM returns it → the kubelet-owned part of the pod status.
 * Phases are only ever Pending, Running, Succeeded or Failed.
 */
import type { V1ContainerState, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { ContainerGroup, ContainerState } from '@azure/arm-containerinstance';
import { connectorRunsProbe, isSidecar, type ProviderPodStatus } from '../../../core/provider.js';

type Phase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

/** The kubelet's waiting reason for a container the runtime could not create. */
const RETRYABLE_WAITING = 'CreateContainerError';

interface ContainerView {
  restartCount?: number;
  events?: { type?: string; message?: string }[];
  currentState?: ContainerState;
  previousState?: ContainerState;
  /** Not in the 2023-05-01 schema; honoured when a backend reports it. */
  ready?: boolean;
}

function toDate(d: Date | string | undefined): Date | undefined {
  if (d === undefined) return undefined;
  const v = d instanceof Date ? d : new Date(d);
  return Number.isNaN(v.getTime()) ? undefined : v;
}

export function mapContainerState(s: ContainerState | undefined): V1ContainerState | undefined {
  if (!s?.state) return undefined;
  const started = toDate(s.startTime);
  switch (s.state) {
    case 'Running':
      return { running: started ? { startedAt: started } : {} };
    case 'Terminated': {
      const exitCode = s.exitCode ?? 0;
      const finished = toDate(s.finishTime);
      return {
        terminated: {
          exitCode,
          reason: s.detailStatus || (exitCode === 0 ? 'Completed' : 'Error'),
          ...(started ? { startedAt: started } : {}),
          ...(finished ? { finishedAt: finished } : {}),
        },
      };
    }
    default:
      return { waiting: { reason: s.detailStatus || 'ContainerCreating' } };
  }
}

function containerStatus(
  name: string,
  image: string,
  groupName: string,
  view: ContainerView | undefined,
  hasReadinessProbe: boolean,
): V1ContainerStatus {
  const state = mapContainerState(view?.currentState) ?? { waiting: { reason: 'ContainerCreating' } };
  // A kubelet says why a container waits; ACI's state has no message, its Warning event does.
  if (state.waiting && state.waiting.reason !== 'ContainerCreating') {
    const warning = view?.events?.filter((e) => e.type === 'Warning').pop()?.message;
    if (warning) state.waiting.message = warning;
  }
  const last = mapContainerState(view?.previousState);
  const running = state.running !== undefined;
  const ready = running && (hasReadinessProbe ? (view?.ready ?? true) : true);
  return {
    name,
    image,
    imageID: '',
    containerID: `aci://${groupName}/${name}`,
    ready,
    started: running,
    restartCount: view?.restartCount ?? 0,
    state,
    ...(last ? { lastState: last } : { lastState: {} }),
  };
}

/** The phase implied by container states when the group reports none we can use. */
function derivedPhase(statuses: V1ContainerStatus[], restartPolicy: string): Phase {
  if (statuses.some((s) => s.state?.running)) return 'Running';
  const terminated = statuses.filter((s) => s.state?.terminated);
  if (statuses.length > 0 && terminated.length === statuses.length) {
    const allZero = terminated.every((s) => s.state?.terminated?.exitCode === 0);
    if (restartPolicy === 'Never') return allZero ? 'Succeeded' : 'Failed';
    if (restartPolicy === 'OnFailure') return allZero ? 'Succeeded' : 'Running';
    return 'Running';
  }
  return 'Pending';
}

export function groupToPodStatus(group: ContainerGroup, pod: Pick<V1Pod, 'spec'> | undefined): ProviderPodStatus {
  const groupName = group.name ?? '';
  const specInit = pod?.spec?.initContainers ?? [];
  const specContainers = [...(pod?.spec?.containers ?? []), ...specInit.filter(isSidecar)];
  // Only a readiness probe ACI runs makes ACI's `ready` meaningful; the connector's prober
  // decides the others (src/core/probes) and the core merges its verdict.
  const probes = new Map(
    specContainers.map((c) => [c.name, c.readinessProbe !== undefined && !connectorRunsProbe(c, 'readiness')]),
  );
  // Native sidecars run as regular containers of the group and are reported where the
  // kubelet reports them: among the init container statuses, in the spec's order.
  const sidecarNames = new Set(specInit.filter(isSidecar).map((c) => c.name));
  const statusOf = (c: (typeof group.containers)[number]) =>
    containerStatus(c.name, c.image, groupName, c.instanceView, probes.get(c.name) ?? c.readinessProbe !== undefined);
  const containerStatuses = group.containers.filter((c) => !sidecarNames.has(c.name)).map(statusOf);
  const sidecarStatuses = group.containers.filter((c) => sidecarNames.has(c.name)).map(statusOf);
  const initContainerStatuses = [
    ...(group.initContainers ?? []).map((c) =>
      containerStatus(c.name, c.image ?? '', groupName, c.instanceView, false),
    ),
    ...sidecarStatuses,
  ];
  const order = new Map(specInit.map((c, i) => [c.name, i]));
  initContainerStatuses.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
  const regularInit = initContainerStatuses.filter((s) => !sidecarNames.has(s.name));

  const restartPolicy = group.restartPolicy ?? 'Always';
  const provisioning = group.provisioningState ?? '';
  const state = group.instanceView?.state;
  let phase: Phase;
  let reason: string | undefined;
  let message: string | undefined;
  const cannotCreate = [...initContainerStatuses, ...containerStatuses].find(
    (s) => s.state?.waiting?.reason === RETRYABLE_WAITING,
  );
  if (provisioning === 'Failed' && cannotCreate) {
    // The runtime could not create a container (a kubelet keeps such a pod Pending and
    // retries); the pod is not finished, it is stuck, and says why.
    phase = 'Pending';
    reason = RETRYABLE_WAITING;
    message = cannotCreate.state?.waiting?.message ?? `container ${cannotCreate.name} could not be created`;
  } else if (provisioning === 'Failed') {
    phase = 'Failed';
    reason = 'ProviderFailed';
    const warn = [
      ...(group.instanceView?.events ?? []),
      ...group.containers.flatMap((c) => c.instanceView?.events ?? []),
    ]
      .filter((e) => e.type === 'Warning')
      .pop();
    message = `Azure Container Instances failed to provision the container group${warn?.message ? `: ${warn.message}` : ''}`;
  } else {
    switch (state) {
      case 'Running':
      case 'Succeeded':
      case 'Failed':
        phase = state;
        break;
      case 'Stopped':
        phase = 'Failed';
        reason = 'Stopped';
        message = 'The container group was stopped outside Kubernetes';
        break;
      default:
        phase = regularInit.some((s) => !s.state?.terminated)
          ? 'Pending'
          : derivedPhase(containerStatuses, restartPolicy);
    }
    // A group still "Running" whose containers all ended for good has in fact finished.
    if (phase === 'Running' && restartPolicy !== 'Always') {
      const d = derivedPhase(containerStatuses, restartPolicy);
      if (d === 'Succeeded' || d === 'Failed') phase = d;
    }
  }

  const ip = group.ipAddress?.ip;
  const starts = [...initContainerStatuses, ...containerStatuses]
    .map((s) => s.state?.running?.startedAt ?? s.state?.terminated?.startedAt ?? s.lastState?.terminated?.startedAt)
    .filter((d): d is Date => d instanceof Date)
    .sort((a, b) => a.getTime() - b.getTime());

  const out: ProviderPodStatus = { phase, containerStatuses };
  if (initContainerStatuses.length) out.initContainerStatuses = initContainerStatuses;
  if (reason) out.reason = reason;
  if (message) out.message = message;
  if (ip) {
    out.podIP = ip;
    out.podIPs = [{ ip }];
  }
  if (starts[0]) out.startTime = starts[0];
  return out;
}
