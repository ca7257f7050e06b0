/** The pod controller's dependencies on the API server: an informer of the node's pods, and the pod writes. */
import type * as k8s from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { managedInformer } from '../informer.js';
import type { KubeClients } from '../kube-client.js';
import type { PodSource, PodWriter } from './deps.js';

function errCode(err: unknown): number | undefined {
  return (err as { code?: number } | undefined)?.code;
}

/** The pods bound to the node (fieldSelector spec.nodeName=<node>, all namespaces); nothing is polled per pod. */
export function kubePodSource(clients: KubeClients, nodeName: string, log: Logger): PodSource {
  const fieldSelector = `spec.nodeName=${nodeName}`;
  const informer = managedInformer<V1Pod>(
    clients.kc,
    '/api/v1/pods',
    // Plain JSON, as the watch delivers its objects: no model classes for every pod of the node.
    async () => (await clients.json('GET', '/api/v1/pods', { query: { fieldSelector } })) as k8s.V1PodList,
    {
      fieldSelector,
      log,
      what: 'pods',
    },
  );
  return {
    get: (namespace, name) => informer.cache.get(name, namespace),
    list: () => informer.cache.list(),
    on: (event, handler) => informer.cache.on(event, handler),
    start: () => informer.start(),
    stop: () => informer.stop(),
  };
}

function podPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
}

/** The hot path's writes go through clients.json(): only the answer's resourceVersion is read, so no model classes are built. */
export function kubePodWriter(clients: KubeClients): PodWriter {
  return {
    async patchStatus(pod, body) {
      try {
        const out = (await clients.json(
          'PATCH',
          `${podPath(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '')}/status`,
          { body, contentType: 'application/strategic-merge-patch+json' },
        )) as { metadata?: { resourceVersion?: string } } | undefined;
        return out?.metadata?.resourceVersion ?? '';
      } catch (err) {
        if (errCode(err) === 404) return undefined;
        throw err;
      }
    },
    async deletePod(namespace, name, uid) {
      try {
        await clients.json('DELETE', podPath(namespace, name), {
          query: { gracePeriodSeconds: '0' },
          body: { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid } },
        });
      } catch (err) {
        // Gone already, or a new incarnation took the name: nothing of ours to delete.
        if (errCode(err) !== 404 && errCode(err) !== 409) throw err;
      }
    },
  };
}
