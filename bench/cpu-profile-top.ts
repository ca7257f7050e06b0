/**
 * The top entries of a V8 CPU profile (`node --cpu-prof`, `npm run bench -- --cpu-prof`): self time
 * by package (ours, each dependency, Node's internals, GC) and by function, and the inclusive time of
 * our own functions. Chrome's DevTools shows the same; this prints it where there is no browser.
 *
 *     node dist/bench/cpu-profile-top.js FILE.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** "ours:src/core/…", "@kubernetes/client-node", "node:internal", "(garbage collector)" … */
export function packageOf(f: CallFrame): string {
  const url = f.url;
  if (!url) return f.functionName.startsWith('(') ? f.functionName : '(native)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return 'node:internal';
  const dist = url.indexOf('/dist/');
  if (dist >= 0) {
    const parts = url.slice(dist + '/dist/'.length).split('/');
    return `ours:${parts.slice(0, Math.min(parts.length - 1, 3)).join('/')}`;
  }
  return url;
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length);
  const dist = url.indexOf('/dist/');
  return dist >= 0 ? url.slice(dist + '/dist/'.length) : url;
}

export function summarize(p: Profile, top = 25): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Self time from the samples and their time deltas (hitCount ignores the sampling jitter).
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + (deltas[i + 1] ?? deltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = [...self].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)');
  const idleUs = idle.reduce((a, [, v]) => a + v, 0);
  const busy = total - idleUs;
  const pkg = new Map<string, number>();
  const fn = new Map<string, number>();
  const inclusiveOurs = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n || n.callFrame.functionName === '(idle)') continue;
    const k = packageOf(n.callFrame);
    pkg.set(k, (pkg.get(k) ?? 0) + us);
    const f = `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    fn.set(f, (fn.get(f) ?? 0) + us);
    // Inclusive: every one of our frames on the stack, once per sample.
    const onStack = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur)?.callFrame;
      if (c && packageOf(c).startsWith('ours:'))
        onStack.add(`${c.functionName || '(anonymous)'} ${shortUrl(c.url)}:${c.lineNumber + 1}`);
    }
    for (const f2 of onStack) inclusiveOurs.set(f2, (inclusiveOurs.get(f2) ?? 0) + us);
  }
  const ms = (us: number) => (us / 1000).toFixed(0).padStart(7);
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  const table = (title: string, m: Map<string, number>, n: number) =>
    [
      `-- ${title}`,
      ...[...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, n)
        .map(([k, v]) => `${ms(v)} ms ${pct(v)}  ${k}`),
    ].join('\n');
  return [
    `profile ${((p.endTime - p.startTime) / 1e6).toFixed(1)} s, busy (not idle) ${(busy / 1e6).toFixed(2)} s`,
    table('self time by package', pkg, top),
    table('self time by function', fn, top),
    table("inclusive time of the connector's own functions", inclusiveOurs, top),
  ].join('\n\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: cpu-profile-top FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  const ti = process.argv.indexOf('--top');
  const top = ti > 0 ? Number(process.argv[ti + 1]) : 25;
  process.stdout.write(`${summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, top)}\n`);
}
