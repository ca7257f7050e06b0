/**
 * The write fence as the rest of the core sees it: one `WriteGate`, asked before every write.
 * Without leader election the gate is always open (one replica, as before).
 */
import type { EventSink } from '../events.js';
import type { Provider } from '../provider.js';

export interface WriteGate {
  /** May this process write now? (Asking may close the fence for good: see LeaderElector.allowed.) */
  allowed(): boolean;
  /** Throws unless this process may write now. */
  check(what: string): void;
}

export const OPEN_GATE: WriteGate = { allowed: () => true, check: () => undefined };

/**
 * Provider calls that change the backend (ARM writes for ACI). Reads (list, get, health, logs,
 * stats) stay open: followers keep their view warm with them.
 */
const PROVIDER_WRITES = new Set<PropertyKey>([
  'createPod',
  'updatePod',
  'deletePod',
  'restartContainer',
  'exec',
  'attach',
]);

/**
 * The provider with every write checked at the gate first. The check runs when the core calls
 * the provider; what the provider then does (waiting for an ARM token, retrying) it does on its
 * own, which is why the leader also exits the moment the fence closes (see docs/decisions.md).
 */
export function gatedProvider(provider: Provider, gate: WriteGate): Provider {
  return new Proxy(provider, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const fn = v as (...args: unknown[]) => unknown;
      if (!PROVIDER_WRITES.has(prop)) return fn.bind(target);
      // Every write method returns a promise: a refusal is a rejection, as a failed call would be.
      return async (...args: unknown[]) => {
        gate.check(`provider.${String(prop)}`);
        return await (fn.apply(target, args) as Promise<unknown>);
      };
    },
  });
}

/** Events only from the leader: a follower's warm provider view still raises them, and they are dropped. */
export function gatedEvents(sink: EventSink, gate: WriteGate): EventSink {
  return {
    record: (pod, type, reason, message) => {
      if (gate.allowed()) sink.record(pod, type, reason, message);
    },
  };
}

/** HTTP verbs that change the API server's state. */
export function isWriteVerb(verb: string): boolean {
  const v = verb.toUpperCase();
  return v !== 'GET' && v !== 'HEAD' && v !== 'OPTIONS';
}
