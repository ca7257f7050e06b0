/**
 * What the pod controller is given instead of building it: the real ones talk to the API
 * server (kube.ts, wired in connector.ts); unit tests hand in small in-memory ones.
 */
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { IssuedToken } from '../sa-tokens.js';

export type PodSourceEvent = 'add' | 'update' | 'delete';

/** The pods bound to this node, as an informer holds them. */
export interface PodSource {
  get(namespace: string, name: string): V1Pod | undefined;
  list(): readonly V1Pod[];
  on(event: PodSourceEvent, handler: (pod: V1Pod) => void): void;
  /** Resolves once the first list landed. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Writes to the pods: the kubelet-owned status, and the final delete. */
export interface PodWriter {
  /** Patches the status; resolves with the resourceVersion it produced, or undefined when the pod is gone. */
  patchStatus(pod: V1Pod, body: object): Promise<string | undefined>;
  /** Deletes the pod now, with a uid precondition; a pod already gone or replaced is no error. */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
}

/** The Secrets and ConfigMaps a pod references, fetched and watched for it (ReferenceResolver). */
export interface ReferenceSource {
  use(podKey: string, pod: V1Pod): Promise<void>;
  release(podKey: string): void;
  getSecret(namespace: string, name: string): V1Secret | undefined;
  getConfigMap(namespace: string, name: string): V1ConfigMap | undefined;
}

/** Pod-bound ServiceAccount tokens (ServiceAccountTokens). */
export interface TokenSource {
  get(pod: V1Pod, audience: string | undefined, expirationSeconds: number): Promise<string | undefined>;
  issued(uid: string): IssuedToken[];
  release(uid: string): void;
}
