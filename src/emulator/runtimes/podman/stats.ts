/**
 * Real figures for podman containers: `podman stats --no-stream --format json`,
 * one call for all the containers asked about. podman prints CPU time as a Go
 * duration ("1m2.5s") and memory in go-units' decimal sizes ("12.3MB / 536.9MB");
 * the rate in millicores is the change of CPU time between two of our readings
 * (podman's own cpu_percent is an average since the container started, which
 * would hide a change), the first reading of a container gives its average so far.
 */
import type { ContainerUsageSample } from '../../runtime.js';
import type { PodmanCli } from './podman-cli.js';

interface StatsRow {
  name?: string;
  cpu_time?: string;
  cpu_percent?: string;
  mem_usage?: string;
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go time.Duration string in milliseconds; undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  const t = text.trim();
  if (t === '0' || t === '0s') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)/gy;
  let ms = 0;
  let end = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  return end === t.length && end > 0 ? ms : undefined;
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** The used part of "12.3MB / 536.9MB" in bytes. */
export function parseMemUsage(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?i?[bB])\b/.exec(text);
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

export class PodmanStats {
  private readonly last = new Map<string, { atMs: number; cpuMs: number }>();

  constructor(private readonly cli: PodmanCli) {}

  /** Figures per container name (podman's name); containers podman does not list are left out. */
  async read(
    ctrNames: readonly string[],
    startedAt: ReadonlyMap<string, Date>,
  ): Promise<Map<string, ContainerUsageSample>> {
    const out = new Map<string, ContainerUsageSample>();
    if (ctrNames.length === 0) return out;
    const r = await this.cli.exec(['stats', '--no-stream', '--format', 'json', ...ctrNames], { timeoutMs: 30_000 });
    // A container that just stopped makes podman fail for the whole call: no figures this time.
    if (r.code !== 0) return out;
    let rows: StatsRow[];
    try {
      rows = JSON.parse(r.stdout || '[]') as StatsRow[];
    } catch {
      return out;
    }
    const now = Date.now();
    for (const row of rows) {
      if (!row.name) continue;
      const memoryBytes = parseMemUsage(row.mem_usage ?? '') ?? 0;
      const cpuMs = parseGoDuration(row.cpu_time ?? '');
      let cpuMillicores: number;
      const prev = this.last.get(row.name);
      if (cpuMs !== undefined && prev && cpuMs >= prev.cpuMs && now > prev.atMs) {
        cpuMillicores = ((cpuMs - prev.cpuMs) / (now - prev.atMs)) * 1000;
      } else if (cpuMs !== undefined) {
        const started = startedAt.get(row.name)?.getTime() ?? now;
        cpuMillicores = (cpuMs / Math.max(1000, now - started)) * 1000;
      } else {
        cpuMillicores = Number((row.cpu_percent ?? '0').replace('%', '')) * 10 || 0;
      }
      if (cpuMs !== undefined) this.last.set(row.name, { atMs: now, cpuMs });
      out.set(row.name, { cpuMillicores: Math.max(0, cpuMillicores), memoryBytes });
    }
    return out;
  }

  forget(ctrName: string): void {
    this.last.delete(ctrName);
  }
}
