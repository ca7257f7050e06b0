/**
 * CPU seconds and resident memory of a process and its descendants, read from /proc
 * (Linux only). Sampled on an interval: the peak RSS is the highest sampled sum over
 * the tree, or the root's own VmHWM when that is higher (it is exact for one process).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: 100 on every Linux this runs on (sysconf is not reachable from Node). */
const CLOCK_TICKS = 100;

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, seconds */
  cpuSeconds: number;
  rssBytes: number;
}

/** Parses /proc/PID/stat; the command name may contain spaces and parentheses, so split after the last ')'. */
export function parseStat(text: string, pageSize = 4096): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < 0) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const f = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // f[0] is field 3 (state); fields 14-17 are utime, stime, cutime, cstime; 24 is rss (pages).
  const n = (field: number) => Number(f[field - 3] ?? 0);
  return {
    pid,
    ppid: n(4),
    cpuSeconds: (n(14) + n(15) + n(16) + n(17)) / CLOCK_TICKS,
    rssBytes: n(24) * pageSize,
  };
}

function readStat(pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

function hwmBytes(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The root and every live descendant. */
export function processTree(root: number): ProcStat[] {
  const all: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) all.push(s);
  }
  const byParent = new Map<number, ProcStat[]>();
  for (const s of all) byParent.set(s.ppid, [...(byParent.get(s.ppid) ?? []), s]);
  const out: ProcStat[] = [];
  const rootStat = all.find((s) => s.pid === root);
  if (!rootStat) return out;
  const queue = [rootStat];
  while (queue.length > 0) {
    const s = queue.shift() as ProcStat;
    out.push(s);
    queue.push(...(byParent.get(s.pid) ?? []));
  }
  return out;
}

export interface Usage {
  cpuSeconds: number;
  peakRssBytes: number;
}

/** Samples one process tree until stop(); cpu() is the tree's CPU time so far. */
export class TreeSampler {
  private peak = 0;
  private lastCpu = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly root: number,
    intervalMs = 200,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    const tree = processTree(this.root);
    if (tree.length === 0) return;
    const rss = tree.reduce((s, p) => s + p.rssBytes, 0);
    this.peak = Math.max(this.peak, rss, hwmBytes(this.root));
    this.lastCpu = tree.reduce((s, p) => s + p.cpuSeconds, 0);
  }

  cpu(): number {
    this.sample();
    return this.lastCpu;
  }

  usage(): Usage {
    return { cpuSeconds: this.lastCpu, peakRssBytes: this.peak };
  }

  stop(): Usage {
    this.sample();
    clearInterval(this.timer);
    return this.usage();
  }
}
