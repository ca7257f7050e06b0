/**
 * Liveness and readiness probes, run by the emulator the way the kubelet runs
 * them: exec probes inside the container, httpGet probes from the host against the
 * port the pod publishes for the probe on 127.0.0.1.
 */
import { request } from 'node:http';
import type { RuntimeProbe } from '../../runtime.js';
import type { PodmanCli } from './podman-cli.js';

const PODMAN_EXEC_OVERHEAD_MS = 5000;

export interface ProbeTarget {
  cli: PodmanCli;
  container: string;
  /** Host address and port where the container's port `port` is reachable. */
  hostPortFor(port: number): { host: string; port: number } | undefined;
}

export async function probeOnce(probe: RuntimeProbe, target: ProbeTarget): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.exec) {
    // The probe's timeout is the command's; podman exec's own start-up (a few hundred
    // ms, more on a loaded machine) must not count against it.
    const r = await target.cli.exec(['exec', target.container, ...probe.exec.command], {
      timeoutMs: timeoutMs + PODMAN_EXEC_OVERHEAD_MS,
    });
    return r.code === 0;
  }
  if (probe.httpGet) {
    const where = target.hostPortFor(probe.httpGet.port);
    if (!where) return false;
    const headers: Record<string, string> = {};
    for (const h of probe.httpGet.httpHeaders ?? []) headers[h.name] = h.value;
    return new Promise<boolean>((resolve) => {
      const req = request(
        {
          host: where.host,
          port: where.port,
          path: probe.httpGet?.path ?? '/',
          method: 'GET',
          headers,
          timeout: timeoutMs,
        },
        (res) => {
          res.resume();
          const status = res.statusCode ?? 0;
          resolve(status >= 200 && status < 400);
        },
      );
      req.on('timeout', () => req.destroy(new Error('probe timed out')));
      req.on('error', () => resolve(false));
      req.end();
    });
  }
  return true;
}

/** Runs one probe periodically and reports when its verdict flips. */
export class ProbeRunner {
  private timer: NodeJS.Timeout | undefined;
  private successes = 0;
  private failures = 0;
  private stopped = false;
  private verdict: boolean | undefined;

  constructor(
    private readonly probe: RuntimeProbe,
    private readonly target: ProbeTarget,
    private readonly onVerdict: (ok: boolean) => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.successes = 0;
    this.failures = 0;
    this.verdict = undefined;
    this.schedule((this.probe.initialDelaySeconds ?? 0) * 1000);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    let ok = false;
    try {
      ok = await probeOnce(this.probe, this.target);
    } catch {
      ok = false;
    }
    if (this.stopped) return;
    if (ok) {
      this.successes += 1;
      this.failures = 0;
      if (this.successes >= (this.probe.successThreshold ?? 1) && this.verdict !== true) {
        this.verdict = true;
        this.onVerdict(true);
      }
    } else {
      this.failures += 1;
      this.successes = 0;
      if (this.failures >= (this.probe.failureThreshold ?? 3) && this.verdict !== false) {
        this.verdict = false;
        this.onVerdict(false);
      }
    }
    this.schedule((this.probe.periodSeconds ?? 10) * 1000);
  }
}
