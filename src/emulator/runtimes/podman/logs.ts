/**
 * ACI container logs from `podman logs`. podman writes the container's stdout and
 * stderr to its own two streams, so the lines are merged back into one stream by
 * their nanosecond timestamps (always requested, stripped unless asked for).
 */
import type { PodmanCli } from './podman-cli.js';
import { PodmanError } from './podman-cli.js';

interface LogLine {
  key: bigint;
  seq: number;
  text: string;
}

/** Sort key of an RFC 3339 timestamp with up to nanosecond precision (podman trims trailing zeros). */
function timestampKey(ts: string): bigint | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(ts);
  if (!m || !m[1]) return undefined;
  const seconds = Date.parse(`${m[1]}${m[3] ?? 'Z'}`);
  if (Number.isNaN(seconds)) return undefined;
  return BigInt(seconds) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

function parse(stream: string, seqStart: number, into: LogLine[]): void {
  const lines = stream.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let lastKey = 0n;
  lines.forEach((line, i) => {
    const space = line.indexOf(' ');
    const key = space > 0 ? timestampKey(line.slice(0, space)) : undefined;
    // A line without a timestamp continues the previous one's position.
    if (key !== undefined) lastKey = key;
    into.push({ key: key ?? lastKey, seq: seqStart + i, text: line });
  });
}

function stripTimestamp(line: string): string {
  const space = line.indexOf(' ');
  return space > 0 && timestampKey(line.slice(0, space)) !== undefined ? line.slice(space + 1) : line;
}

export async function containerLogs(
  cli: PodmanCli,
  container: string,
  opts: { tail?: number; timestamps?: boolean },
): Promise<string> {
  const args = ['logs', '--timestamps'];
  if (opts.tail !== undefined) args.push('--tail', String(Math.max(0, Math.floor(opts.tail))));
  args.push(container);
  const r = await cli.exec(args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new PodmanError(args, r.code, r.stderr);
  return mergeLogStreams(r.stdout, r.stderr, opts.timestamps ?? false);
}

/** Merges `podman logs --timestamps` stdout and stderr text into one, ordered by timestamp. */
export function mergeLogStreams(stdout: string, stderr: string, timestamps: boolean): string {
  const lines: LogLine[] = [];
  parse(stdout, 0, lines);
  parse(stderr, 1_000_000_000, lines);
  lines.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.seq - b.seq));
  const text = lines.map((l) => (timestamps ? l.text : stripTimestamp(l.text)));
  return text.length ? `${text.join('\n')}\n` : '';
}
