/**
 * Shared log followers: ACI's listLogs returns a container's whole (bounded) log on
 * every call, so N clients of `kubectl logs -f` polling on their own would cost N reads
 * per period out of one subscription-wide ARM read budget (60 followers once starved
 * every other read). Here one poll loop per followed container serves every client:
 * a new client starts from the loop's latest snapshot (tail applied locally), and each
 * poll's new lines go to all of them. A cap on concurrent followers answers the next
 * one with a clear error instead of letting the budget drain.
 */
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { LogOptions } from '../../../core/provider.js';
import { TransientProviderError } from '../../../core/provider.js';
import { newPart, shapeLines, type FetchLogs } from './logs.js';

export interface FollowerHubOptions {
  pollMs: number;
  /** Concurrent followers across all containers; the next one is refused. */
  maxFollowers: number;
  /** Where a failed poll is logged (it ends that container's followers); none by default. */
  log?: Logger;
}

interface Subscriber {
  out: Readable;
  opts: LogOptions;
  budget: number;
}

interface Loop {
  fetch: FetchLogs;
  isDone: () => boolean;
  withStamps: boolean;
  subscribers: Set<Subscriber>;
  /** The whole log as last fetched. */
  seen?: string;
  seenAt: number;
  /** The fetch in flight, shared by every client that needs a snapshot meanwhile. */
  inflight?: Promise<string>;
  timer?: NodeJS.Timeout;
}

/** The last `n` lines of `text` (the kubelet's tailLines). */
export function lastLines(text: string, n: number): string {
  if (n <= 0) return '';
  const lines = text.split(/(?<=\n)/);
  return lines.slice(Math.max(0, lines.length - n)).join('');
}

export class LogFollowerHub {
  private readonly loops = new Map<string, Loop>();
  private followers = 0;

  constructor(private readonly o: FollowerHubOptions) {}

  /** Followers now, over all containers (for metrics and tests). */
  get count(): number {
    return this.followers;
  }

  /**
   * A log stream for one client. `key` names the container (group and container name);
   * `fetch` reads its whole log; `isDone` says when it can no longer grow.
   */
  async open(key: string, fetch: FetchLogs, opts: LogOptions, isDone: () => boolean): Promise<Readable> {
    const withStamps = opts.timestamps === true || opts.sinceSeconds !== undefined;
    const loopKey = `${key}\n${withStamps ? 'stamps' : 'plain'}`;
    if (opts.follow && this.followers >= this.o.maxFollowers) {
      throw new TransientProviderError(
        'TooManyLogFollowers',
        `${this.followers} log followers are open on this node, the most it serves at once (ARM's read budget is shared); try again when one ends`,
        this.o.pollMs,
      );
    }
    let loop = this.loops.get(loopKey);
    if (!loop) {
      loop = { fetch, isDone, withStamps, subscribers: new Set(), seenAt: 0 };
      this.loops.set(loopKey, loop);
    }
    if (opts.follow) this.followers += 1;
    let snapshot: string;
    try {
      snapshot = await this.snapshot(loop);
    } catch (e) {
      if (opts.follow) this.followers -= 1;
      this.dropIfIdle(loopKey, loop);
      throw e;
    }
    const sub: Subscriber = { out: new Readable({ read() {} }), opts, budget: opts.limitBytes ?? Infinity };
    const first = opts.tailLines !== undefined ? lastLines(snapshot, opts.tailLines) : snapshot;
    this.push(loop, sub, first);
    if (!opts.follow) {
      sub.out.push(null);
      this.dropIfIdle(loopKey, loop);
      return sub.out;
    }
    if (sub.budget <= 0 || loop.isDone()) {
      this.followers -= 1;
      sub.out.push(null);
      this.dropIfIdle(loopKey, loop);
      return sub.out;
    }
    loop.subscribers.add(sub);
    const leave = (): void => {
      if (!loop.subscribers.delete(sub)) return;
      this.followers -= 1;
      this.dropIfIdle(loopKey, loop);
    };
    sub.out.once('close', leave);
    sub.out.once('end', leave);
    this.schedule(loopKey, loop);
    return sub.out;
  }

  /** The loop's latest log: fresh enough when fetched within one poll period, else fetched once for all waiting. */
  private snapshot(loop: Loop): Promise<string> {
    if (loop.seen !== undefined && Date.now() - loop.seenAt < this.o.pollMs) return Promise.resolve(loop.seen);
    if (!loop.inflight) {
      loop.inflight = loop.fetch(loop.withStamps ? { timestamps: true } : {}).then(
        (text) => {
          loop.inflight = undefined;
          // Lines that arrived since the last snapshot reach the followers already listening.
          if (loop.seen !== undefined) {
            const add = newPart(loop.seen, text);
            if (add) for (const s of loop.subscribers) this.push(loop, s, add);
          }
          loop.seen = text;
          loop.seenAt = Date.now();
          return text;
        },
        (e: unknown) => {
          loop.inflight = undefined;
          throw e;
        },
      );
    }
    return loop.inflight;
  }

  private push(loop: Loop, sub: Subscriber, raw: string): void {
    if (sub.out.destroyed || raw === '') return;
    let text = loop.withStamps ? shapeLines(raw, sub.opts, Date.now()) : raw;
    if (sub.budget !== Infinity) {
      const b = Buffer.from(text).subarray(0, Math.max(0, sub.budget));
      sub.budget -= b.length;
      text = b.toString('utf8');
    }
    if (text) sub.out.push(text);
    if (sub.budget <= 0 && sub.opts.follow) sub.out.push(null);
  }

  private schedule(loopKey: string, loop: Loop): void {
    if (loop.timer || loop.subscribers.size === 0) return;
    loop.timer = setTimeout(() => {
      loop.timer = undefined;
      void this.tick(loopKey, loop);
    }, this.o.pollMs);
  }

  private async tick(loopKey: string, loop: Loop): Promise<void> {
    if (loop.subscribers.size === 0) return;
    try {
      await this.snapshot(loop);
    } catch (e) {
      // A read that fails ends every follower of this container, as a broken stream would.
      const err = e instanceof Error ? e : new Error(String(e));
      this.o.log?.warn(
        { container: loopKey.split('\n')[0], followers: loop.subscribers.size, err: err.message },
        'reading a followed log failed; its followers end',
      );
      for (const s of [...loop.subscribers]) s.out.destroy(err);
      return;
    }
    if (loop.isDone()) {
      for (const s of [...loop.subscribers]) s.out.push(null);
      return;
    }
    this.schedule(loopKey, loop);
  }

  private dropIfIdle(loopKey: string, loop: Loop): void {
    if (loop.subscribers.size > 0 || loop.inflight) return;
    if (loop.timer) clearTimeout(loop.timer);
    loop.timer = undefined;
    // An idle loop would hold the container's whole log for nobody.
    if (this.loops.get(loopKey) === loop) this.loops.delete(loopKey);
  }
}
