/**
 * The podman runtime's state cache: one `podman ps -a` over all of this runtime's containers
 * refreshes every record, triggered by `podman events` (debounced) and by a slow periodic
 * safety net, so that views never call podman.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { errorMessage } from '../../../common/errors.js';
import type { PodmanCli } from './podman-cli.js';
import { LABEL_INSTANCE, type PodmanEventLine, type PsEntry } from './records.js';

/** What the cache needs of the runtime. */
export interface StateCacheHost {
  cli: PodmanCli;
  instanceId: string;
  /** Events from this moment on are read at the start. */
  startedAt: Date;
  /** Safety-net refresh period (ms). */
  refreshIntervalMs: number;
  log?: (message: string, fields?: Record<string, unknown>) => void;
  /** False: nothing to read. */
  hasGroups(): boolean;
  /** One refresh's result: podman's entries by container name. */
  applyPs(byName: Map<string, PsEntry>): void;
  /** A container event of this runtime (not yet deduplicated by container id). */
  onContainerEvent(name: string, ev: PodmanEventLine): void;
}

export class PodmanStateCache {
  private eventsChild: ChildProcess | undefined;
  private lastEventTime: string | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshPending: Promise<void> | undefined;
  private refreshChain: Promise<void> = Promise.resolve();
  private debounce: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly seenEvents = new Set<string>();

  constructor(private readonly h: StateCacheHost) {}

  /** Starts watching podman's events and the periodic refresh. */
  start(): void {
    this.watchEvents();
    this.refreshTimer = setInterval(() => this.requestRefresh(), this.h.refreshIntervalMs);
    this.refreshTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.debounce) clearTimeout(this.debounce);
    this.eventsChild?.kill('SIGTERM');
  }

  requestRefresh(): void {
    if (this.closed) return;
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.refresh().catch((e: unknown) => this.h.log?.('refresh failed', { error: errorMessage(e) }));
    }, 50);
  }

  /**
   * One `podman ps -a` for all of this runtime's containers. Calls are serialized;
   * a call made while one runs gets the next one, which sees its cause.
   */
  refresh(): Promise<void> {
    if (this.refreshPending) return this.refreshPending;
    const next = this.refreshChain.then(() => {
      this.refreshPending = undefined;
      return this.refreshNow();
    });
    this.refreshPending = next;
    this.refreshChain = next.catch(() => undefined);
    return next;
  }

  private async refreshNow(): Promise<void> {
    if (!this.h.hasGroups() || this.closed) return;
    const out = await this.h.cli.run([
      'ps',
      '-a',
      '--format',
      'json',
      '--filter',
      `label=${LABEL_INSTANCE}=${this.h.instanceId}`,
    ]);
    const entries = JSON.parse(out || '[]') as PsEntry[];
    const byName = new Map<string, PsEntry>();
    for (const e of entries) for (const n of e.Names ?? []) byName.set(n, e);
    this.h.applyPs(byName);
  }

  private watchEvents(): void {
    if (this.closed) return;
    const since = this.lastEventTime ?? this.h.startedAt.toISOString();
    const child = this.h.cli.spawn(
      ['events', '--format', 'json', '--since', since, '--filter', `label=${LABEL_INSTANCE}=${this.h.instanceId}`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.eventsChild = child;
    child.stderr?.resume();
    const lines = createInterface({ input: child.stdout! });
    const seen = this.seenEvents;
    lines.on('line', (line) => {
      let ev: PodmanEventLine;
      try {
        ev = JSON.parse(line) as PodmanEventLine;
      } catch {
        return;
      }
      if (ev.Type !== 'container' || !ev.Name) return;
      // A restarted watcher replays from the last time it saw: skip what it already counted.
      const id = `${ev.ID}|${ev.Status}|${ev.Time}`;
      if (seen.has(id)) return;
      seen.add(id);
      if (seen.size > 10_000) seen.clear();
      if (ev.Time) this.lastEventTime = ev.Time;
      this.h.onContainerEvent(ev.Name, ev);
      this.requestRefresh();
    });
    child.on('close', () => {
      if (this.closed) return;
      this.h.log?.('podman events watcher ended; restarting it');
      setTimeout(() => this.watchEvents(), 1000).unref();
    });
    child.on('error', (e) => this.h.log?.('podman events failed', { error: e.message }));
  }
}
