/**
 * All the pod controller knows of one pod name (`namespace/name`): one record, instead of a
 * map per fact. A name can have several incarnations (uids) at once: the one in the API and
 * older ones the provider may still hold until they are removed.
 *
 * Extension point: a feature that keeps per-pod state (probes run by the connector, lifecycle
 * hooks, stats) adds an optional field to {@link Incarnation} (state of one uid, dropped when
 * the provider no longer holds it) or to {@link PodRecord} (state of the name).
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { ProviderPodStatus } from '../provider.js';

/** One uid the provider may hold. */
export interface Incarnation {
  uid: string;
  /** The latest API copy, or a shell built from the provider's ref when only the provider knows it. */
  pod: V1Pod;
  /** createPod succeeded (or the pod was found in the provider at start). */
  created: boolean;
  /** metadata.generation the provider last saw; a newer one is handed to updatePod. */
  generation?: number;
  /** The provider's last pushed status. */
  providerStatus?: ProviderPodStatus;
  /** A create is not tried before this (epoch ms): the retry delay of a transient failure, or a deferral. */
  retryAt?: number;
  /** The reason of the provider's last deferral of the create, reported once in an Event. */
  deferredReason?: string;
  /** Reports a handed-out token passing 80 % of its life in the running pod. */
  tokenTimer?: NodeJS.Timeout;
}

/** What our last status write was, to never repeat it while the pod source lags behind it. */
export interface LastWrite {
  uid: string;
  /** ownedView() of the status written. */
  view: string;
  /** The resourceVersion of the pod copy the write was computed from. */
  basedOn: string | undefined;
  /** The resourceVersion the write produced: its watch event needs no reconcile. */
  produced: string | undefined;
}

export interface PodRecord {
  key: string;
  namespace: string;
  name: string;
  incarnations: Map<string, Incarnation>;
  lastWrite?: LastWrite;
  /** refKey()s of the mandatory references the pod waits for (retried on their watch events). */
  waitingOn: Set<string>;
  /** Uids that were Running but whose workload was gone from the backend at start. */
  lostAtStart: Set<string>;
  /** The uid whose skipped optional references were already reported. */
  optionalNoted?: string;
  /** The uid whose final API delete was sent (a second one would only get a 404). */
  apiDeleteSent?: string;
}

export function podKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function newRecord(namespace: string, name: string): PodRecord {
  return {
    key: podKey(namespace, name),
    namespace,
    name,
    incarnations: new Map(),
    waitingOn: new Set(),
    lostAtStart: new Set(),
  };
}
