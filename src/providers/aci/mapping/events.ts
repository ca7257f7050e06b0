/**
 * ACI events → Kubernetes Events, each reported once.
 *
 * ACI keeps a list per container (and per group) and bumps `count` and
 * `lastTimestamp` when an event repeats; every new (name, count, timestamps)
 * combination is one new occurrence worth reporting.
 */
import type { ContainerGroup, Event as AciEvent } from '@azure/arm-containerinstance';
import type { ProviderEvent } from '../../../core/provider.js';

/** What the provider hands the core's events channel (Provider.onEvent). */
export type PodEvent = ProviderEvent;

function ts(d: Date | string | undefined): string {
  if (d === undefined) return '';
  return d instanceof Date ? d.toISOString() : String(d);
}

function keyOf(scope: string, e: AciEvent): string {
  return [scope, e.name ?? '', e.count ?? '', ts(e.firstTimestamp), ts(e.lastTimestamp), e.message ?? ''].join(
    '\u0000',
  );
}

/** Remembers what was reported for one pod. */
export class EventDeduper {
  private readonly seen = new Set<string>();

  /** The events in `group` not reported before, oldest first. */
  newEvents(group: ContainerGroup): PodEvent[] {
    const found: { at: number; ev: PodEvent; key: string }[] = [];
    const take = (scope: string, list: readonly AciEvent[] | undefined, prefix: string): void => {
      for (const e of list ?? []) {
        const key = keyOf(scope, e);
        if (this.seen.has(key)) continue;
        const last = e.lastTimestamp ?? e.firstTimestamp;
        found.push({
          at: last ? new Date(last).getTime() : 0,
          key,
          ev: {
            type: e.type === 'Warning' ? 'Warning' : 'Normal',
            reason: e.name || 'AciEvent',
            message: `${prefix}${e.message ?? ''}`,
          },
        });
      }
    };
    take('group', group.instanceView?.events, '');
    for (const c of group.initContainers ?? [])
      take(`init:${c.name}`, c.instanceView?.events, `init container ${c.name}: `);
    for (const c of group.containers) take(`c:${c.name}`, c.instanceView?.events, `container ${c.name}: `);
    found.sort((a, b) => a.at - b.at);
    for (const f of found) this.seen.add(f.key);
    return found.map((f) => f.ev);
  }
}
