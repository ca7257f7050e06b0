/**
 * A reflector and its cache (client-go's Reflector + Store, the part the connector needs): LIST (with
 * the caller's field and label selectors), then WATCH from the list's resourceVersion with
 * `allowWatchBookmarks=true`, reading line-delimited JSON events into the cache and telling
 * add/update/delete handlers. A watch the server ends (its timeout) or that drops is resumed from the
 * last resourceVersion seen (bookmarks keep it fresh); 410 Gone, or an ERROR event, relists, and the
 * relist tells the differences (objects gone meanwhile are deleted). Failures retry with backoff.
 *
 * Hand-written because client-node's ListWatch and Watch come only with the library's whole generated
 * client (its `config.js` imports all 2,556 API and model files: 0.6 s and ~75 MB at start-up, before the
 * node can register), and it stops for good after an error. Objects are plain parsed JSON, trimmed by
 * the caller's `transform` before they are cached.
 */
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { StringDecoder } from 'node:string_decoder';
import { backoffDelay } from '../../common/backoff.js';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/errors.js';

export type CacheEvent = 'add' | 'update' | 'delete';

/** The cache's reading side, with the method names of client-node's ListWatch. */
export interface InformerCache<T extends KubernetesObject> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  on(event: CacheEvent, handler: (obj: T) => void): void;
  off(event: CacheEvent, handler: (obj: T) => void): void;
}

export interface WatchEvent {
  /** ADDED, MODIFIED, DELETED, BOOKMARK or ERROR. */
  type: string;
  object: unknown;
}

/** Where the reflector reads: the caller's LIST, and a WATCH stream of raw chunks from a resourceVersion. */
export interface ReflectorSource<T extends KubernetesObject> {
  list(): Promise<KubernetesListObject<T>>;
  /** Resolves once the server answered; the iterable ends when the server ends the watch. Throws `{ code: 410 }` when the version is gone. */
  watch(resourceVersion: string, signal: AbortSignal): Promise<AsyncIterable<Buffer | string>>;
}

export interface ReflectorOptions<T extends KubernetesObject> {
  source: ReflectorSource<T>;
  log: Logger;
  what: string;
  transform?: (obj: T) => void;
  /** Backoffs (defaults: list 200 ms → 5 s while starting, watch 500 ms → 30 s). */
  startBackoff?: { baseMs: number; maxMs: number };
  retryBackoff?: { baseMs: number; maxMs: number };
}

/** The resourceVersion is too old: list again. */
class GoneError extends Error {}

function keyOf(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/** Splits a stream of chunks into complete lines (a chunk may end mid-line or mid-character, or hold many lines). */
export async function* lines(chunks: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  let rest = '';
  // A chunk may end inside a multi-byte character: the decoder keeps its first bytes for the next one.
  const decoder = new StringDecoder('utf8');
  for await (const chunk of chunks) {
    const text = rest + (typeof chunk === 'string' ? chunk : decoder.write(chunk));
    let from = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', from)) >= 0) {
      const line = text.slice(from, nl).trim();
      from = nl + 1;
      if (line) yield line;
    }
    rest = text.slice(from);
  }
  rest += decoder.end();
  if (rest.trim()) yield rest.trim();
}

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | undefined)?.code;
}

export class Reflector<T extends KubernetesObject> implements InformerCache<T> {
  private readonly objects = new Map<string, T>();
  private snapshot: T[] | undefined;
  private readonly handlers: Record<CacheEvent, Set<(obj: T) => void>> = {
    add: new Set(),
    update: new Set(),
    delete: new Set(),
  };
  private resourceVersion = '';
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private started: Promise<void> | undefined;
  /** For tests: lists and watches started. */
  readonly stats = { lists: 0, watches: 0, relists: 0, resumes: 0 };

  constructor(private readonly o: ReflectorOptions<T>) {}

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): readonly T[] {
    this.snapshot ??= [...this.objects.values()];
    return namespace === undefined
      ? this.snapshot
      : this.snapshot.filter((o) => (o.metadata?.namespace ?? '') === namespace);
  }

  on(event: CacheEvent, handler: (obj: T) => void): void {
    this.handlers[event].add(handler);
  }

  off(event: CacheEvent, handler: (obj: T) => void): void {
    this.handlers[event].delete(handler);
  }

  /** The last resourceVersion seen (list, event or bookmark). */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  /** Lists (retrying with backoff until it succeeds or stop()), starts watching, resolves once the cache holds the list. */
  start(): Promise<void> {
    // A second caller waits for the same first list: resolving at once would hand it an empty cache.
    this.started ??= this.run();
    return this.started;
  }

  private async run(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.relist();
        break;
      } catch (err) {
        if (abort.signal.aborted) return;
        this.o.log.debug({ err: errorMessage(err), what: this.o.what }, 'list failed; retrying');
        await this.pause(backoffDelay(this.o.startBackoff ?? { baseMs: 200, maxMs: 5000 }, attempt), abort.signal);
        if (abort.signal.aborted) return;
      }
    }
    this.loop = this.watchLoop(abort.signal);
  }

  async stop(): Promise<void> {
    this.started = undefined;
    this.abort?.abort();
    await this.loop?.catch(() => undefined);
    this.loop = undefined;
  }

  private pause(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }

  private async watchLoop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    let needList = false;
    while (!signal.aborted) {
      try {
        if (needList) {
          this.stats.relists++;
          await this.relist();
          needList = false;
        } else if (this.stats.watches > 0) {
          this.stats.resumes++;
        }
        const began = Date.now();
        const events = await this.watchOnce(signal);
        if (events === 0 && Date.now() - began < 1000) throw new Error('the watch ended at once');
        failures = 0; // the server ended it (its timeout): resume at once
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof GoneError || codeOf(err) === 410) {
          // Expected after a long disconnect or compaction: no warning, list again now.
          this.o.log.debug({ what: this.o.what }, 'resourceVersion too old; relisting');
          needList = true;
          continue;
        }
        this.o.log.warn({ err: errorMessage(err), what: this.o.what }, 'watch failed; restarting');
        await this.pause(backoffDelay(this.o.retryBackoff ?? { baseMs: 500, maxMs: 30_000 }, ++failures), signal);
      }
    }
  }

  /** Resolves with the number of events read when the server ends the watch. */
  private async watchOnce(signal: AbortSignal): Promise<number> {
    this.stats.watches++;
    let n = 0;
    const stream = await this.o.source.watch(this.resourceVersion, signal);
    for await (const line of lines(stream)) {
      let ev: WatchEvent;
      try {
        ev = JSON.parse(line) as WatchEvent;
      } catch {
        throw new Error(`watch sent a line that is not JSON: ${line.slice(0, 100)}`);
      }
      this.apply(ev);
      n++;
    }
    return n;
  }

  private apply(ev: WatchEvent): void {
    if (ev.type === 'ERROR') {
      const status = ev.object as { code?: number; message?: string } | undefined;
      if (status?.code === 410) throw new GoneError(status.message ?? 'resourceVersion too old');
      throw Object.assign(new Error(`watch error: ${status?.message ?? JSON.stringify(status)}`), {
        code: status?.code,
      });
    }
    const obj = ev.object as T | undefined;
    if (!obj || typeof obj !== 'object') return;
    const rv = obj.metadata?.resourceVersion;
    if (ev.type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return;
    }
    this.o.transform?.(obj);
    if (ev.type === 'DELETED') this.remove(obj);
    else if (ev.type === 'ADDED' || ev.type === 'MODIFIED') this.put(obj);
    if (rv) this.resourceVersion = rv;
  }

  /** LIST, and the cache made equal to it (objects gone meanwhile are deleted, changed ones updated). */
  private async relist(): Promise<void> {
    this.stats.lists++;
    const l = await this.o.source.list();
    const seen = new Set<string>();
    for (const item of l.items ?? []) {
      this.o.transform?.(item);
      seen.add(keyOf(item));
      this.put(item);
    }
    for (const [k, obj] of [...this.objects]) if (!seen.has(k)) this.remove(obj);
    this.resourceVersion = l.metadata?.resourceVersion ?? '';
  }

  private put(obj: T): void {
    const k = keyOf(obj);
    const found = this.objects.get(k);
    if (found && found.metadata?.resourceVersion && found.metadata.resourceVersion === obj.metadata?.resourceVersion)
      return;
    this.objects.set(k, obj);
    this.snapshot = undefined;
    this.emit(found ? 'update' : 'add', obj);
  }

  private remove(obj: T): void {
    const k = keyOf(obj);
    if (!this.objects.delete(k)) return;
    this.snapshot = undefined;
    this.emit('delete', obj);
  }

  private emit(event: CacheEvent, obj: T): void {
    for (const h of this.handlers[event]) {
      try {
        h(obj);
      } catch (err) {
        this.o.log.error({ err: errorMessage(err), what: this.o.what, event }, 'informer handler failed');
      }
    }
  }
}
