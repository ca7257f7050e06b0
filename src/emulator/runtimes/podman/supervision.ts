/**
 * Supervision of a group's containers: starting them, init containers one after another,
 * restart policies with the kubelet's crash-loop back-off (podman's own --restart has none),
 * and readiness and liveness probes per run.
 */
import { backoffDelay, sleep, type BackoffPolicy } from '../../../common/backoff.js';
import { errorMessage } from '../../../common/errors.js';
import type { RuntimeContainerState } from '../../runtime.js';
import type { PodmanCli } from './podman-cli.js';
import { ProbeRunner } from './probes.js';
import {
  MISSED_EVENT_MS,
  shouldRestart,
  startFailureExitCode,
  unixToDate,
  type ContainerRecord,
  type GroupRecord,
  type PsEntry,
} from './records.js';

/** What supervision needs of the runtime. */
export interface SupervisorHost {
  cli: PodmanCli;
  opts: { stopTimeoutSeconds?: number; log?: (message: string, fields?: Record<string, unknown>) => void };
  closed(): boolean;
  /** Reads podman's state now (serialized with every other refresh). */
  refresh(): Promise<void>;
  /** Asks for a refresh soon (debounced). */
  requestRefresh(): void;
  /** Tells the group's owner its view changed (or always, when forced). */
  notify(rec: GroupRecord, force?: boolean): void;
}

export class Supervisor {
  private readonly backoff: BackoffPolicy;

  /** `backoff`: the crash-loop delay, doubling from `initialMs` up to `maxMs`, without jitter (the kubelet's). */
  constructor(
    private readonly h: SupervisorHost,
    backoff: { initialMs: number; maxMs: number },
  ) {
    this.backoff = { baseMs: backoff.initialMs, maxMs: backoff.maxMs, jitter: 0 };
  }

  /** The delay before restart number `restarts` (1 = the first). */
  private crashLoopDelay(restarts: number): number {
    return backoffDelay(this.backoff, restarts);
  }

  /** A podman `start` or `died` event of one of our containers. */
  onContainerEvent(
    group: GroupRecord,
    record: ContainerRecord,
    status: string,
    time: string | undefined,
    exitCode: number | undefined,
  ): void {
    if (status === 'start') {
      record.starts += 1;
      const at = time ? new Date(time) : undefined;
      if (at && !Number.isNaN(at.getTime())) record.lastStartAt = at;
      record.events.add('Started', 'Normal', 'Started container');
    } else if (status === 'died') {
      const at = time ? new Date(time) : new Date();
      this.exited(group, record, exitCode ?? 0, Number.isNaN(at.getTime()) ? new Date() : at);
    }
  }

  async startApps(rec: GroupRecord, containers: ContainerRecord[]): Promise<void> {
    for (const c of containers) await this.startContainer(rec, c);
  }

  async startContainer(rec: GroupRecord, c: ContainerRecord): Promise<boolean> {
    const r = await this.h.cli.exec(['start', c.ctrName]);
    if (r.code === 0) {
      c.startFailure = undefined;
      return true;
    }
    const message = r.stderr.trim().replace(/^Error:\s*/, '');
    c.events.add('Failed', 'Warning', `Error: failed to start container "${c.spec.name}": ${message}`);
    const at = new Date();
    c.startFailure = { at, exitCode: startFailureExitCode(message) };
    c.current = {
      state: 'Terminated',
      startTime: at,
      finishTime: at,
      exitCode: c.startFailure.exitCode,
      detailStatus: 'Error',
    };
    if (c.kind === 'app') this.exited(rec, c, c.startFailure.exitCode, at);
    this.h.requestRefresh();
    this.h.notify(rec);
    return false;
  }

  async runInitContainers(rec: GroupRecord, gen: number): Promise<void> {
    try {
      for (const c of rec.init) {
        let failures = 0;
        for (;;) {
          if (gen !== rec.generation || this.h.closed()) return;
          let code: number;
          if (await this.startContainer(rec, c)) {
            const waited = await this.h.cli.exec(['wait', c.ctrName], { timeoutMs: 0 });
            code = waited.code === 0 ? Number(waited.stdout.trim()) : 1;
          } else {
            code = c.startFailure?.exitCode ?? 128;
          }
          if (gen !== rec.generation || this.h.closed()) return;
          await this.h.refresh();
          if (code === 0) break;
          if (rec.spec.restartPolicy === 'Never') {
            rec.phase = 'failed';
            this.h.notify(rec, true);
            return;
          }
          c.previous = c.current;
          c.current = { state: 'Waiting', detailStatus: 'CrashLoopBackOff' };
          this.h.notify(rec);
          failures += 1;
          await sleep(this.crashLoopDelay(failures));
        }
      }
      if (gen !== rec.generation || this.h.closed()) return;
      rec.phase = 'running';
      await this.startApps(rec, rec.app);
      this.h.requestRefresh();
      this.h.notify(rec, true);
    } catch (e) {
      this.h.opts.log?.('init containers failed', { group: rec.spec.id, error: errorMessage(e) });
      if (gen === rec.generation) {
        rec.phase = 'failed';
        this.h.notify(rec, true);
      }
    }
  }

  /** Stops timers and probes of a group and makes its running async chains give up. */
  quiesce(rec: GroupRecord, bump = true): void {
    if (bump) rec.generation += 1;
    for (const c of [...rec.init, ...rec.app]) {
      if (c.restartTimer) clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      for (const p of c.probes) p.stop();
      c.probes = [];
      c.probesForRun = undefined;
    }
  }

  /**
   * Applies one container's podman state (from ps) to its record, for display.
   * Restarts are decided on `died` events (see exited), which name each run's end
   * exactly; ps times have whole-second resolution and cannot tell two quick runs apart.
   */
  apply(rec: GroupRecord, c: ContainerRecord, ps: PsEntry | undefined): void {
    if (c.restartTimer || c.restarting) return; // the last exit is recorded; a new run is on its way
    if (!ps) return;
    const startTime = unixToDate(ps.StartedAt);
    if (ps.State === 'running' || ps.State === 'paused' || ps.State === 'stopping') {
      c.current = { state: 'Running', startTime, detailStatus: '' };
      this.ensureProbes(rec, c, ps.StartedAt ?? 0);
      return;
    }
    this.stopProbes(c);
    if (c.spec.readinessProbe) c.ready = false;
    if (c.startFailure) return; // recorded when `podman start` failed; podman kept the old state
    if (ps.State === 'exited' || ps.State === 'stopped') {
      const exitCode = ps.ExitCode ?? 0;
      const finishTime = unixToDate(ps.ExitedAt);
      c.current = {
        state: 'Terminated',
        startTime,
        finishTime,
        exitCode,
        detailStatus: exitCode === 0 ? 'Completed' : 'Error',
      };
      // Safety net for a died event that never came (its watcher restarted, say): an
      // exit seconds old and still unhandled is handled from ps.
      if (
        finishTime &&
        Date.now() - finishTime.getTime() > MISSED_EVENT_MS &&
        c.lastStartAt &&
        c.handledRunOf !== c.lastStartAt
      ) {
        this.exited(rec, c, exitCode, new Date(Math.max(finishTime.getTime(), c.lastStartAt.getTime())));
      }
      return;
    }
    if (ps.State === 'created' || ps.State === 'configured' || ps.State === 'initialized') {
      if (c.current.state !== 'Waiting') c.current = { state: 'Waiting' };
    }
  }

  /** One run of an app container ended (a `died` event, or a failed start): restart it if the policy says so. */
  exited(rec: GroupRecord, c: ContainerRecord, exitCode: number, at: Date): void {
    if (c.kind !== 'app' || rec.phase !== 'running' || c.restartTimer || c.restarting || this.h.closed()) return;
    // A late event about a run before the latest start, or a second report of one run's end.
    if (!c.startFailure && c.lastStartAt && at.getTime() < c.lastStartAt.getTime()) return;
    if (!c.startFailure && c.lastStartAt && c.handledRunOf === c.lastStartAt) return;
    c.handledRunOf = c.lastStartAt;
    this.stopProbes(c);
    if (c.spec.readinessProbe) c.ready = false;
    const state: RuntimeContainerState = {
      state: 'Terminated',
      startTime: c.startFailure ? at : (c.lastStartAt ?? c.current.startTime),
      finishTime: at,
      exitCode,
      detailStatus: exitCode === 0 ? 'Completed' : 'Error',
    };
    c.current = state;
    if (!shouldRestart(rec.spec.restartPolicy, exitCode)) {
      this.h.notify(rec);
      return;
    }
    // Crash-loop back-off; a run that lasted long resets it, as the kubelet does.
    const ranMs = state.startTime ? at.getTime() - state.startTime.getTime() : 0;
    if (ranMs > 10 * 60_000) c.crashLoops = 0;
    c.crashLoops += 1;
    const delay = this.crashLoopDelay(c.crashLoops);
    c.previous = state;
    c.current = { state: 'Waiting', detailStatus: 'CrashLoopBackOff' };
    const gen = rec.generation;
    c.restartTimer = setTimeout(() => {
      c.restartTimer = undefined;
      if (gen !== rec.generation || this.h.closed()) return;
      c.restarting = true;
      void this.startContainer(rec, c)
        .then(() => this.h.refresh())
        .catch((e: unknown) => this.h.opts.log?.('restart failed', { container: c.ctrName, error: errorMessage(e) }))
        .finally(() => {
          c.restarting = false;
          this.h.requestRefresh();
        });
    }, delay);
    this.h.notify(rec);
  }

  ensureProbes(rec: GroupRecord, c: ContainerRecord, run: number): void {
    if (c.probesForRun === run) return;
    this.stopProbes(c);
    c.probesForRun = run;
    const target = {
      cli: this.h.cli,
      container: c.ctrName,
      hostPortFor: (port: number) => rec.probePorts.get(port),
    };
    if (c.spec.readinessProbe) {
      const p = new ProbeRunner(c.spec.readinessProbe, target, (ok) => {
        c.ready = ok;
        if (!ok) c.events.add('Unhealthy', 'Warning', 'Readiness probe failed');
        this.h.notify(rec);
      });
      c.probes.push(p);
      p.start();
    }
    if (c.spec.livenessProbe) {
      const p = new ProbeRunner(c.spec.livenessProbe, target, (ok) => {
        if (ok) return;
        c.events.add('Unhealthy', 'Warning', 'Liveness probe failed');
        c.events.add('Killing', 'Normal', `Killing container with id ${c.ctrName}: liveness probe failed`);
        this.h.notify(rec);
        void this.h.cli
          .exec(['stop', '-t', String(this.h.opts.stopTimeoutSeconds ?? 10), c.ctrName])
          .then(() => this.h.requestRefresh());
      });
      c.probes.push(p);
      p.start();
    }
  }

  private stopProbes(c: ContainerRecord): void {
    for (const p of c.probes) p.stop();
    c.probes = [];
    c.probesForRun = undefined;
  }
}
