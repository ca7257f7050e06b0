/**
 * The kubelet's result bookkeeping for one probe of one container run: a result
 * changes only after successThreshold consecutive successes or failureThreshold
 * consecutive failures. Pure, so the thresholds are unit-tested without timers.
 */
import type { ProbeKind, ProbeTiming } from './policy.js';

export interface ProbeState {
  /** The current verdict; undefined before the first threshold was reached. */
  result: boolean | undefined;
  successes: number;
  failures: number;
}

/**
 * The verdict before any probe ran, as the kubelet keeps it: readiness starts failed
 * (not ready), liveness starts passed (a container is alive until proven otherwise),
 * startup starts unknown (not started).
 */
export function initialState(kind: ProbeKind): ProbeState {
  return { result: kind === 'liveness' ? true : kind === 'readiness' ? false : undefined, successes: 0, failures: 0 };
}

/** Takes in one probe outcome; `changed` tells whether the verdict flipped. */
export function recordOutcome(
  s: ProbeState,
  ok: boolean,
  t: Pick<ProbeTiming, 'successThreshold' | 'failureThreshold'>,
): { state: ProbeState; changed: boolean } {
  const successes = ok ? s.successes + 1 : 0;
  const failures = ok ? 0 : s.failures + 1;
  let result = s.result;
  if (ok && successes >= t.successThreshold) result = true;
  if (!ok && failures >= t.failureThreshold) result = false;
  return { state: { result, successes, failures }, changed: result !== s.result };
}
