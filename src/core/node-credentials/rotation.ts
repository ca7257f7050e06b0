/**
 * When a node client certificate must be replaced. Pure functions of the
 * certificate's validity window and the clock, so they are unit-tested alone.
 *
 * The kubelet's certificate manager rotates at a jittered 70–90 % of the
 * certificate's life (notBefore → notAfter), so that a fleet of nodes does not
 * renew at the same instant; we do the same. The signer backdates notBefore by
 * up to five minutes, which is part of the life as the kubelet counts it.
 */

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** The kubelet's jitter range: rotate somewhere in 70–90 % of the life. */
export const DEFAULT_FRACTION_MIN = 0.7;
export const DEFAULT_FRACTION_MAX = 0.9;

/**
 * Never rotate again sooner than this after a rotation, even when a signer
 * hands out certificates whose deadline has already passed (a signer that
 * backdates more than the life allows): without it, such a signer would make
 * us request certificates in a tight loop. A certificate that has actually
 * expired is replaced at once regardless.
 */
export const MIN_ROTATION_INTERVAL_MS = 5_000;

/** A fraction of the life in [min, max), drawn from random() in [0, 1). */
export function jitteredFraction(
  random: () => number = Math.random,
  min = DEFAULT_FRACTION_MIN,
  max = DEFAULT_FRACTION_MAX,
): number {
  return min + (max - min) * random();
}

/** The instant at `fraction` of the certificate's life. */
export function rotationDeadline(v: Validity, fraction: number): Date {
  const life = v.notAfter.getTime() - v.notBefore.getTime();
  return new Date(v.notBefore.getTime() + Math.max(0, life) * fraction);
}

/** A certificate we may use now: inside its window. */
export function isCurrent(v: Validity, now: Date): boolean {
  return v.notBefore.getTime() <= now.getTime() && now.getTime() < v.notAfter.getTime();
}

/**
 * Whether a certificate found at start is good enough to keep: current, and not
 * yet past its rotation deadline (a kubelet restarted late in the life renews
 * at once rather than running on a certificate about to expire).
 */
export function usableAtStart(v: Validity, now: Date, fraction: number): boolean {
  return isCurrent(v, now) && now.getTime() < rotationDeadline(v, fraction).getTime();
}

/**
 * Milliseconds to wait before requesting the next certificate. `obtainedAt` is
 * when the current one was issued to us (or loaded); the wait is floored at
 * MIN_ROTATION_INTERVAL_MS after it, except for an expired certificate.
 */
export function rotationDelayMs(v: Validity, now: Date, fraction: number, obtainedAt: Date = now): number {
  const untilDeadline = rotationDeadline(v, fraction).getTime() - now.getTime();
  const untilExpiry = v.notAfter.getTime() - now.getTime();
  if (untilExpiry <= 0) return 0;
  const floor = obtainedAt.getTime() + MIN_ROTATION_INTERVAL_MS - now.getTime();
  return Math.min(untilExpiry, Math.max(untilDeadline, floor, 0));
}
