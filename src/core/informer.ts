/**
 * An informer that keeps itself running (`./kube/reflector.ts`: list, watch, resume, relist on 410,
 * retry with backoff) and tells when the first list has landed (the cache is synced).
 *
 * Every object is trimmed before it enters the cache: `metadata.managedFields` (server-side
 * apply's bookkeeping, often the largest part of a pod) is dropped, as kube-controller-manager's
 * informers do with their transform; nothing in the connector reads it.
 */
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import type { KubeAccess } from './kube/access.js';
import { Reflector, type InformerCache } from './kube/reflector.js';
import { openStream } from './kube/transport.js';

export interface ManagedInformer<T extends KubernetesObject> {
  cache: InformerCache<T>;
  /** Lists, starts watching, and resolves once the cache holds the first list. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

function trim(obj: KubernetesObject | undefined): void {
  if (obj?.metadata?.managedFields) delete obj.metadata.managedFields;
}

/** client-go's watch timeout: 5 min to 10 min, random, so that a fleet's watches do not end together. */
function watchTimeoutSeconds(): number {
  return Math.floor(300 * (1 + Math.random()));
}

export function managedInformer<T extends KubernetesObject>(
  kc: KubeAccess,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  opts: { fieldSelector?: string; labelSelector?: string; log: Logger; what: string },
): ManagedInformer<T> {
  const reflector = new Reflector<T>({
    source: {
      list,
      async watch(resourceVersion, signal) {
        const q = new URLSearchParams({
          watch: 'true',
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(watchTimeoutSeconds()),
          ...(resourceVersion ? { resourceVersion } : {}),
          ...(opts.fieldSelector ? { fieldSelector: opts.fieldSelector } : {}),
          ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
        });
        return openStream(kc, {
          method: 'GET',
          path: `${path}?${q.toString()}`,
          headers: { Accept: 'application/json' },
          signal,
        });
      },
    },
    log: opts.log,
    what: opts.what,
    transform: trim,
  });
  return {
    cache: reflector,
    start: () => reflector.start(),
    stop: () => reflector.stop(),
  };
}
