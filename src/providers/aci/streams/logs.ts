/**
 * Container logs from ACI's listLogs, shaped to the kubelet's log options.
 *
 * ACI returns the whole (bounded) log on every call, so `follow` polls and emits
 * what is new (log-followers.ts); `sinceSeconds` asks for timestamps and filters by them.
 */
import type { LogOptions } from '../../../core/provider.js';

export type FetchLogs = (opts: { tail?: number; timestamps?: boolean }) => Promise<string>;

const stampPattern = /^(\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))\s?(.*)\n?$/;

/**
 * Applies sinceSeconds and the timestamps choice to text fetched with timestamps:
 * drops lines older than the cutoff, and strips the stamps unless they were asked for.
 */
export function shapeLines(text: string, opts: Pick<LogOptions, 'sinceSeconds' | 'timestamps'>, now: number): string {
  const cutoff = opts.sinceSeconds !== undefined ? now - opts.sinceSeconds * 1000 : -Infinity;
  let out = '';
  for (const line of text.split(/(?<=\n)/)) {
    const m = stampPattern.exec(line);
    if (m?.[1] && Date.parse(m[1]) < cutoff) continue;
    if (opts.timestamps || !m) out += line;
    else out += `${m[2] ?? ''}${line.endsWith('\n') ? '\n' : ''}`;
  }
  return out;
}

/** What `next` adds to `prev` (the log may also have been cut at the front). */
export function newPart(prev: string, next: string): string {
  if (next.startsWith(prev)) return next.slice(prev.length);
  // The front was trimmed: find the longest suffix of prev that starts next.
  const lines = prev.split(/(?<=\n)/);
  for (let i = 1; i < lines.length; i++) {
    const tailOfPrev = lines.slice(i).join('');
    if (next.startsWith(tailOfPrev)) return next.slice(tailOfPrev.length);
  }
  return next;
}
