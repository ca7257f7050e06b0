/** The pod controller's dependencies on the API server: an informer of the node's pods, and the pod writes. */
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { strategicMergePatchOptions } from '../events.js';
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
    () => clients.core.listPodForAllNamespaces({ fieldSelector }),
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

export function kubePodWriter(clients: KubeClients): PodWriter {
  const core = clients.core;
  return {
    async patchStatus(pod, body) {
      try {
        const out = await core.patchNamespacedPodStatus(
          { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', body },
          strategicMergePatchOptions(),
        );
        return out.metadata?.resourceVersion ?? '';
      } catch (err) {
        if (errCode(err) === 404) return undefined;
        throw err;
      }
    },
    async deletePod(namespace, name, uid) {
      try {
        await core.deleteNamespacedPod({
          name,
          namespace,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid } },
        });
      } catch (err) {
        // Gone already, or a new incarnation took the name: nothing of ours to delete.
        if (errCode(err) !== 404 && errCode(err) !== 409) throw err;
      }
    },
  };
}
