/**
 * Which target a pod goes to. A pod names one (`aci.azure.com/target`) or a region
 * (`aci.azure.com/region`); otherwise the target with the most room is chosen: room is the
 * smaller of what is left of its quota and of its creation windows, so pods flow to where
 * they can start soonest. Pure logic: the composite provider feeds it the targets' figures.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { PodRejectedError } from '../../../core/provider.js';
import type { CreationWindowLimit } from './config.js';

export const TARGET_ANNOTATION = 'aci.azure.com/target';
export const REGION_ANNOTATION = 'aci.azure.com/region';

/** Azure writes regions both ways ("West US", "westus"); ARM compares them without case and spaces. */
export const normalizeRegion = (r: string): string => r.toLowerCase().replace(/\s+/g, '');

/** What placement knows about one target at one moment. */
export interface TargetRoom {
  name: string;
  region: string;
  /** Its last health check passed. */
  healthy: boolean;
  /** Groups its quota still allows (capacity from the usages API minus what this node placed there since). */
  quotaRoom: number;
  /** Creations its windows still allow now. */
  windowRoom: number;
  /** When its next creation slot frees (epoch ms; now or earlier when it has room). */
  freesAt: number;
  /** Pods this node holds there. */
  placed: number;
}

/** Whether the pod may only go to some targets, and why (for messages). */
export interface PlacementRequest {
  /** The targets the pod may use, in configuration order. */
  candidates: TargetRoom[];
  /** The pod named its target (never moved to another). */
  pinned: boolean;
}

/** The targets a pod may use, from its annotations; PodRejectedError for a name or region no target has. */
export function candidatesFor(pod: V1Pod, targets: readonly TargetRoom[]): PlacementRequest {
  const annotations = pod.metadata?.annotations ?? {};
  const named = annotations[TARGET_ANNOTATION]?.trim();
  const names = targets.map((t) => t.name).join(', ');
  if (named) {
    const t = targets.find((x) => x.name === named);
    if (!t)
      throw new PodRejectedError(
        'UnknownAciTarget',
        `annotation ${TARGET_ANNOTATION} names target '${named}', which this node does not have (targets: ${names})`,
        `metadata.annotations[${TARGET_ANNOTATION}]`,
      );
    return { candidates: [t], pinned: true };
  }
  const region = annotations[REGION_ANNOTATION]?.trim();
  if (region) {
    const inRegion = targets.filter((t) => normalizeRegion(t.region) === normalizeRegion(region));
    if (inRegion.length === 0)
      throw new PodRejectedError(
        'UnknownAciRegion',
        `annotation ${REGION_ANNOTATION} asks for region '${region}', where this node has no target (regions: ${[
          ...new Set(targets.map((t) => t.region)),
        ].join(', ')})`,
        `metadata.annotations[${REGION_ANNOTATION}]`,
      );
    return { candidates: inRegion, pinned: false };
  }
  return { candidates: [...targets], pinned: false };
}

/**
 * The target with the most room now among the candidates (healthy ones first); when none has
 * room, the one whose next slot frees first. Ties go to the one holding fewer pods, then to
 * configuration order, so equal targets take turns.
 */
export function chooseTarget(
  candidates: readonly TargetRoom[],
  exclude: ReadonlySet<string> = new Set(),
): TargetRoom | undefined {
  const open = candidates.filter((t) => !exclude.has(t.name));
  const healthy = open.filter((t) => t.healthy);
  const pool = healthy.length > 0 ? healthy : open;
  const room = (t: TargetRoom) => Math.min(t.quotaRoom, t.windowRoom);
  let best: TargetRoom | undefined;
  for (const t of pool) {
    if (!best) {
      best = t;
      continue;
    }
    const a = room(t);
    const b = room(best);
    if (a > 0 || b > 0) {
      if (a > b || (a === b && t.placed < best.placed)) best = t;
    } else if (t.quotaRoom > 0 !== best.quotaRoom > 0) {
      // Neither has room now: a window frees by itself, a full quota only when pods go.
      if (t.quotaRoom > 0) best = t;
    } else if (t.freesAt < best.freesAt || (t.freesAt === best.freesAt && t.placed < best.placed)) {
      best = t;
    }
  }
  return best;
}

/** The creations a target made recently, against its windows (placement's own estimate; ARM stays the judge). */
export class CreationLedger {
  private stamps: number[] = [];

  constructor(private readonly windows: readonly CreationWindowLimit[]) {}

  record(at: number): void {
    this.stamps.push(at);
    const longest = Math.max(0, ...this.windows.map((w) => w.windowSeconds)) * 1000;
    const firstKept = this.stamps.findIndex((s) => at - s < longest);
    if (firstKept > 0) this.stamps.splice(0, firstKept);
  }

  /** Creations every window still allows now, and when the next slot frees. */
  room(now: number): { room: number; freesAt: number } {
    let room = Number.POSITIVE_INFINITY;
    let freesAt = now;
    for (const w of this.windows) {
      const ms = w.windowSeconds * 1000;
      const inWindow = this.stamps.filter((s) => now - s < ms);
      room = Math.min(room, w.count - inWindow.length);
      if (inWindow.length >= w.count) {
        // The slot frees when the creation that makes the window one too many leaves it.
        const leaving = inWindow[inWindow.length - w.count];
        if (leaving !== undefined) freesAt = Math.max(freesAt, leaving + ms);
      }
    }
    return { room: Math.max(0, room === Number.POSITIVE_INFINITY ? Number.MAX_SAFE_INTEGER : room), freesAt };
  }
}
