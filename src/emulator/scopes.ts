/**
 * Limits and quotas of their own for some subscriptions (and regions): ACI meters each
 * subscription and region apart, and a connector that spreads pods over several targets is
 * tested against several at once, each with its own quota and creation window. A scope
 * overrides the emulator-wide settings; a region scope overrides its subscription's.
 */
import { z } from 'zod';
import type { Quota } from './context.js';
import type { ThrottleLimits } from './limits.js';

/** The subscription (and region) a request is metered in. */
export interface MeterScope {
  subscriptionId: string;
  region?: string;
}

/** One rate window, as a list entry (limits whose entry is a list of windows take a list or one window). */
export interface WindowOverride {
  count: number;
  windowSeconds: number;
}

/** Partial limits, one level deep: an entry is merged into the current one, a list replaces it. */
export type LimitOverrides = {
  [K in keyof ThrottleLimits]?: ThrottleLimits[K] extends readonly (infer W)[]
    ? Partial<W> | W[]
    : Partial<ThrottleLimits[K]> | WindowOverride[];
};

export interface ScopeSettings {
  subscriptionId: string;
  /** Only in this region; in every region of the subscription when absent. */
  region?: string;
  limits?: LimitOverrides;
  quota?: Partial<Quota>;
}

const count = z.number().int().nonnegative();
const bucket = z.object({ capacity: count, refillPerSecond: z.number().nonnegative() }).partial();
const window = z.object({ count, windowSeconds: z.number().int().positive() });
const windows = z.union([window.partial(), z.array(window)]);
const scopeSchema = z.object({
  subscriptionId: z.string().min(1),
  region: z.string().min(1).optional(),
  limits: z
    .object({
      read: bucket,
      write: bucket,
      delete: bucket,
      creations: windows,
      deletions: windows,
    })
    .partial()
    .loose()
    .optional(),
  quota: z.object({ containerGroups: count, cores: count }).partial().optional(),
});

/** Checks scope settings read from JSON (the CLI's --scopes); throws naming the bad field. */
export function parseScopes(value: unknown): ScopeSettings[] {
  const r = z.array(scopeSchema).safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(`scopes[${(issue?.path ?? []).join('.')}]: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

const norm = (s: string): string => s.toLowerCase().replace(/\s+/g, '');

/**
 * One entry's override: a list replaces the entry; one window over a list of windows replaces
 * the list by that window (as the emulator's own limits merge), an object is merged in.
 */
function mergeEntry(base: unknown, o: unknown): unknown {
  if (o === undefined || o === null) return base;
  if (Array.isArray(o)) return o.map((w: object) => ({ ...w }));
  if (Array.isArray(base)) return [{ ...(base[0] as object | undefined), ...o }];
  return { ...(base as object), ...o };
}

/** Merges overrides one level deep over a base of the same shape (whatever entries it has). */
function mergeOneLevel<T extends object>(base: T, o: Partial<Record<keyof T, unknown>> | undefined): T {
  if (!o) return base;
  const out = { ...base };
  for (const k of Object.keys(o) as (keyof T)[]) out[k] = mergeEntry(base[k], o[k]) as T[typeof k];
  return out;
}

export class ScopedSettings {
  private scopes: ScopeSettings[];

  constructor(
    scopes: readonly ScopeSettings[],
    private readonly base: () => { limits: ThrottleLimits; quota: Quota },
  ) {
    this.scopes = [...scopes];
  }

  /** Replaces the settings of the scopes named (same subscription and region), keeps the others. */
  set(scopes: readonly ScopeSettings[]): void {
    for (const s of scopes) {
      this.scopes = this.scopes.filter(
        (x) => !(norm(x.subscriptionId) === norm(s.subscriptionId) && norm(x.region ?? '') === norm(s.region ?? '')),
      );
      this.scopes.push(s);
    }
  }

  /** Subscription-wide scopes first, then the region's, so the narrower one wins. */
  private matching(scope: MeterScope | undefined): ScopeSettings[] {
    if (!scope) return [];
    const sub = norm(scope.subscriptionId);
    const region = scope.region === undefined ? undefined : norm(scope.region);
    const ofSub = this.scopes.filter((s) => norm(s.subscriptionId) === sub);
    return [
      ...ofSub.filter((s) => s.region === undefined),
      ...(region === undefined ? [] : ofSub.filter((s) => s.region !== undefined && norm(s.region) === region)),
    ];
  }

  limits(scope?: MeterScope): ThrottleLimits {
    return this.matching(scope).reduce((l, s) => mergeOneLevel(l, s.limits), this.base().limits);
  }

  quota(scope?: MeterScope): Quota {
    return this.matching(scope).reduce((q, s) => ({ ...q, ...s.quota }), this.base().quota);
  }
}
