/**
 * A ListWatch that keeps itself running: @kubernetes/client-node's ListWatch
 * stops for good after a list or watch error, so this restarts it with backoff
 * and tells when the first list has landed (the cache is synced).
 *
 * Every object is trimmed before it enters the cache: `metadata.managedFields` (server-side
 * apply's bookkeeping, often the largest part of a pod) is dropped, as kube-controller-manager's
 * informers do with their transform; nothing in the connector reads it.
 */
import * as k8s from '@kubernetes/client-node';
import { backoffDelay } from '../common/backoff.js';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';

export interface ManagedInformer<T extends k8s.KubernetesObject> {
  cache: k8s.ListWatch<T>;
  /** Lists, starts watching, and resolves once the cache holds the first list. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

function trim(obj: k8s.KubernetesObject | undefined): void {
  if (obj?.metadata?.managedFields) delete obj.metadata.managedFields;
}

/** client-node's Watch, trimming each object before the ListWatch caches it (client-node has no transform hook). */
class TrimmingWatch extends k8s.Watch {
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj, watchObj) => {
        trim(obj as k8s.KubernetesObject | undefined);
        callback(phase, obj, watchObj);
      },
      done,
    );
  }
}

export function managedInformer<T extends k8s.KubernetesObject>(
  kc: k8s.KubeConfig,
  path: string,
  list: () => Promise<k8s.KubernetesListObject<T>>,
  opts: { fieldSelector?: string; labelSelector?: string; log: Logger; what: string },
): ManagedInformer<T> {
  const trimmedList = async () => {
    const l = await list();
    for (const item of l.items) trim(item);
    return l;
  };
  const lw = new k8s.ListWatch<T>(
    path,
    new TrimmingWatch(kc),
    trimmedList,
    false,
    opts.labelSelector,
    opts.fieldSelector,
  );
  let stopped = false;
  let failures = 0;
  let failedDuringStart = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let starting = false;

  const restart = () => {
    if (stopped || restartTimer) return;
    const delay = backoffDelay({ baseMs: 500, maxMs: 30_000 }, ++failures);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopped) return;
      void lw.start().then(() => {
        failures = 0;
      });
    }, delay);
  };
  lw.on('error', (err: unknown) => {
    failedDuringStart = true;
    if (stopped || starting) return;
    opts.log.warn({ err: errorMessage(err), what: opts.what }, 'watch failed; restarting');
    restart();
  });

  async function startLoop(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      failedDuringStart = false;
      if (restartTimer) {
        clearTimeout(restartTimer);
        restartTimer = undefined;
      }
      await lw.start();
      if (!failedDuringStart || stopped) return;
      await new Promise((r) => setTimeout(r, backoffDelay({ baseMs: 200, maxMs: 5000 }, attempt)));
    }
  }

  return {
    cache: lw,
    async start() {
      stopped = false;
      starting = true;
      try {
        await startLoop();
      } finally {
        starting = false;
      }
    },
    async stop() {
      stopped = true;
      if (restartTimer) clearTimeout(restartTimer);
      await lw.stop();
    },
  };
}
