/**
 * The prober wired to a provider, for the pod controller: the controller only calls
 * sync/overrides/forget/close on what this returns (kept apart so the controller's own
 * shape can change without touching the probes).
 */
import { Writable } from 'node:stream';
import type { Logger } from '../../common/logger.js';
import type { PodRef, Provider } from '../provider.js';
import { Prober } from './prober.js';

/**
 * A provider's exec first asks its backend for a session (for ACI an ARM call, then a WebSocket):
 * that set-up must not count against the probe's timeoutSeconds, which is the command's.
 */
const EXEC_SETUP_ALLOWANCE_MS = 10_000;

function sink(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

export function proberFor(
  provider: Provider,
  o: {
    event: (ref: PodRef, type: 'Normal' | 'Warning', reason: string, message: string) => void;
    changed: (ref: PodRef) => void;
    log?: Logger;
  },
): Prober {
  const exec = provider.exec?.bind(provider);
  const restart = provider.restartContainer?.bind(provider);
  return new Prober({
    // The pod's address is the one port-forward and httpGet hooks use: one hook, one answer.
    address: (ref) => provider.portForwardAddress?.(ref) ?? Promise.resolve(undefined),
    ...(exec
      ? {
          exec: async (ref, container, command, timeoutMs) => {
            let timer: NodeJS.Timeout | undefined;
            const timeout = new Promise<number>((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`command timed out after ${timeoutMs / 1000}s`)),
                timeoutMs + EXEC_SETUP_ALLOWANCE_MS,
              );
            });
            try {
              return await Promise.race([
                exec(ref, container, command, { stdout: sink(), stderr: sink(), tty: false }).then((r) => r.exitCode),
                timeout,
              ]);
            } finally {
              clearTimeout(timer);
            }
          },
        }
      : {}),
    ...(restart ? { restart: (ref, container) => restart(ref, container) } : {}),
    event: o.event,
    changed: o.changed,
    ...(o.log ? { log: o.log } : {}),
  });
}
