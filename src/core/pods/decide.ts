/**
 * The pod controller's rules, as one pure step: given what it knows of a pod name (the
 * record) and what it observes now (the API copy, the references once resolved), the next
 * thing to do. No I/O here: the controller (controller.ts) runs the outcome's effect, updates
 * the record, and asks again, until an outcome ends the pass.
 */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { describeMissing, type EnvNote, type EnvResolution, type MissingRef } from '../env.js';
import { computePodStatus, isTerminal, ownedView, rejectedStatus, statusDiffers } from '../pod-status.js';
import type { PostStartStop } from '../lifecycle-hooks.js';
import type { PodContext } from '../provider.js';
import type { ProbeOverrides } from '../probes/prober.js';
import type { PodRecord } from './record.js';

export interface Observed {
  /** The pod under the record's name in the pod source, if any. */
  pod: V1Pod | undefined;
  /** The pod's references and env, once resolved in this pass (a Resolve outcome asks for it). */
  resolution?: EnvResolution;
  now: number;
  nodeIP: string;
  /** The connector-run probes' verdicts for the held incarnation (core/probes). */
  probes?: ProbeOverrides;
  /** Why the connector stopped the held incarnation, when a failed postStart hook did (lifecycle-hooks). */
  postStartStop?: PostStartStop;
}

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export type Outcome =
  /** An incarnation the API no longer has under this name (older uid, or the pod is gone) leaves the provider. */
  | { kind: 'RemoveOld'; uid: string }
  /** The pod is gone and nothing is held: drop the record. */
  | { kind: 'Forget' }
  /** The pod is being deleted: stop it in the provider (when held there), then delete it from the API. */
  | { kind: 'Delete'; pod: V1Pod; inProvider: boolean; gracePeriodSeconds: number }
  /** Finished and not held: its references are no longer needed. */
  | { kind: 'Release' }
  /** Its references must be fetched (and watched) and its env resolved before going on. */
  | { kind: 'Resolve'; pod: V1Pod }
  /** The pod can never run as given: it fails. */
  | { kind: 'Reject'; pod: V1Pod; status: V1PodStatus; event: EventSpec }
  /** Mandatory references are missing: the pod waits for them (retried on their watch events). */
  | { kind: 'Wait'; pod: V1Pod; missing: MissingRef[]; status: V1PodStatus; events: EventSpec[] }
  /** A create must wait out a retry delay; the queue holds the key until then (no worker is held). */
  | { kind: 'Hold'; ms: number }
  /** Create it in the provider. */
  | { kind: 'Create'; pod: V1Pod; env: PodContext['env']; notes: EnvNote[] }
  /** Hand a spec change to the provider. */
  | { kind: 'Update'; pod: V1Pod; env: PodContext['env'] }
  /** The status differs from what the API has (and from our last write): write it. */
  | { kind: 'WriteStatus'; pod: V1Pod; status: V1PodStatus }
  /** Nothing (more) to do. */
  | { kind: 'Done' };

const LOST_MESSAGE = 'the pod was running but its workload is gone from the backend; it is not restarted silently';

/** Whether writing `status` would change anything: it differs from the API copy and is not our last write again. */
export function statusNeedsWrite(record: PodRecord, pod: V1Pod, status: V1PodStatus): boolean {
  if (!statusDiffers(pod.status, status)) return false;
  // Our last write is not in the pod source's copy yet (same resourceVersion as when we wrote):
  // writing again would only repeat it. Once the copy moved on, it is the truth, even if someone
  // else (the node lifecycle controller) changed our fields since.
  const last = record.lastWrite;
  return !(
    last &&
    last.uid === pod.metadata?.uid &&
    last.view === ownedView(status) &&
    last.basedOn === pod.metadata?.resourceVersion
  );
}

function fieldMessage(field: string, message: string): string {
  return `${field}: ${message}`;
}

/** The Wait outcome: the kubelet's waiting reason on the containers, Virtual Kubelet's event reasons. */
function waitFor(pod: V1Pod, missing: MissingRef[], nodeIP: string, now: number): Outcome {
  const ns = pod.metadata?.namespace ?? '';
  const msg = missing.map((m) => describeMissing(m, ns)).join('; ');
  // Users' alerts key on Virtual Kubelet's event reasons; the container's waiting reason stays
  // the kubelet's CreateContainerConfigError.
  const byReason = new Map<string, string[]>();
  for (const m of missing) {
    const reason = `Mandatory${m.kind}${m.key !== undefined ? 'Key' : ''}NotFound`;
    byReason.set(reason, [...(byReason.get(reason) ?? []), describeMissing(m, ns)]);
  }
  const events: EventSpec[] = [...byReason].map(([reason, parts]) => ({
    type: 'Warning',
    reason,
    message: `Error: ${parts.join('; ')}`,
  }));
  const status = computePodStatus(pod, {
    hostIP: nodeIP,
    waiting: { reason: 'CreateContainerConfigError', message: msg },
    now: new Date(now),
  });
  return { kind: 'Wait', pod, missing, status, events };
}

export function reconcile(record: PodRecord, o: Observed): Outcome {
  const pod = o.pod;
  const uid = pod?.metadata?.uid;

  // Older incarnations (or a pod that is gone from the API) leave the provider first.
  for (const old of record.incarnations.keys()) if (old !== uid) return { kind: 'RemoveOld', uid: old };
  if (!pod || !uid) return { kind: 'Forget' };
  const inc = record.incarnations.get(uid);

  if (pod.metadata?.deletionTimestamp) {
    if (record.apiDeleteSent === uid && !inc) return { kind: 'Done' };
    const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
    return { kind: 'Delete', pod, inProvider: inc !== undefined, gracePeriodSeconds: grace };
  }

  if (!inc && isTerminal(pod.status?.phase)) return { kind: 'Release' };

  if (!inc && record.lostAtStart.has(uid)) {
    return {
      kind: 'Reject',
      pod,
      status: rejectedStatus(pod, 'ProviderPodLost', LOST_MESSAGE, o.nodeIP, new Date(o.now)),
      event: { type: 'Warning', reason: 'ProviderPodLost', message: LOST_MESSAGE },
    };
  }

  if (!inc?.created) {
    if (inc?.retryAt !== undefined && inc.retryAt > o.now) return { kind: 'Hold', ms: inc.retryAt - o.now };
    const res = o.resolution;
    if (!res) return { kind: 'Resolve', pod };
    const invalid = res.invalid[0];
    if (invalid) {
      const msg = fieldMessage(invalid.field, invalid.message);
      return {
        kind: 'Reject',
        pod,
        status: rejectedStatus(pod, 'InvalidEnvReference', msg, o.nodeIP, new Date(o.now)),
        event: { type: 'Warning', reason: 'InvalidEnvReference', message: msg },
      };
    }
    if (res.missing.length > 0) return waitFor(pod, res.missing, o.nodeIP, o.now);
    return { kind: 'Create', pod, env: res.env, notes: record.optionalNoted === uid ? [] : res.notes };
  }

  const gen = pod.metadata?.generation;
  if (gen !== undefined && inc.generation !== undefined && gen > inc.generation) {
    if (!o.resolution) return { kind: 'Resolve', pod };
    return { kind: 'Update', pod, env: o.resolution.env };
  }

  // The provider pushes a status when it has one; until then there is nothing to write.
  if (!inc.providerStatus) return { kind: 'Done' };
  const status = computePodStatus(pod, {
    provider: inc.providerStatus,
    hostIP: o.nodeIP,
    now: new Date(o.now),
    ...(o.probes ? { probes: o.probes } : {}),
    ...(o.postStartStop ? { postStartStop: o.postStartStop } : {}),
  });
  return statusNeedsWrite(record, pod, status) ? { kind: 'WriteStatus', pod, status } : { kind: 'Done' };
}
