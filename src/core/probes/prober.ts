/**
 * The connector's prober: runs the probes the backend cannot (see policy.ts) for every
 * running container of the node's pods, with the kubelet's semantics:
 * - one worker per probe and container run, first run after initialDelaySeconds from the
 *   container's start, then every periodSeconds, each run bounded by timeoutSeconds;
 * - a verdict flips after successThreshold / failureThreshold consecutive outcomes;
 * - readiness and liveness wait until the startupProbe passed;
 * - readiness drives the container's `ready` (both ways);
 * - a failed liveness or startup probe records `Unhealthy` then `Killing` and restarts the
 *   container through the provider, with the kubelet's crash-loop backoff between restarts.
 *
 * It knows pods only through the status the provider reports and the hooks it is given,
 * and tells the pod controller through `changed` when a container's readiness, start or
 * restart count moved, so that the controller merges {@link ProbeOverrides} into the status.
 */
import type { V1Container, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { backoffDelay, type BackoffPolicy } from '../../common/backoff.js';
import type { Logger } from '../../common/logger.js';
import type { PodRef, ProviderPodStatus } from '../provider.js';
import { runCheck, type CheckTarget } from './checks.js';
import { connectorProbes, connectorRunsProbe, probedContainers, probeTiming, type ProbeKind } from './policy.js';
import { initialState, recordOutcome, type ProbeState } from './threshold.js';

export interface ProberDeps {
  /** The pod's address as the connector reaches it (the pod IP). */
  address(ref: PodRef): Promise<string | undefined>;
  /** Runs a command in a container and resolves to its exit code (exec probes of gated containers). */
  exec?: (ref: PodRef, container: string, command: string[], timeoutMs: number) => Promise<number>;
  /**
   * Restarts a container; resolves to the names of every container the backend restarted
   * with it (a backend may only be able to restart more than the one asked for).
   */
  restart?: (ref: PodRef, container: string) => Promise<string[]>;
  event(ref: PodRef, type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** Something the status shows changed for this pod. */
  changed(ref: PodRef): void;
  log?: Logger;
  /** Delay between restarts of a crash-looping container (the kubelet's: 10 s doubling to 5 min). */
  restartBackoff?: BackoffPolicy;
}

/** What the prober knows about a container beyond the provider's report. */
export interface ContainerProbeView {
  /** Set for a container whose readiness (or startup gating) the connector decides. */
  ready?: boolean;
  /** Set for a container with a startupProbe: whether it passed for the current run. */
  started?: boolean;
  /** Restarts the backend's restartCount does not show (its count restarts with the group). */
  extraRestarts: number;
  /** The run the prober killed last, for lastState when the backend forgot it. */
  lastKilled?: { startedAt?: Date; finishedAt: Date; reason: string };
}

export type ProbeOverrides = ReadonlyMap<string, ContainerProbeView>;

const DEFAULT_RESTART_BACKOFF: BackoffPolicy = { baseMs: 10_000, maxMs: 300_000, jitter: 0 };
/** A container that ran this long without a probe restart starts its backoff afresh (the kubelet's rule). */
const BACKOFF_RESET_MS = 10 * 60_000;

const KIND_WORD: Record<ProbeKind, string> = { startup: 'Startup', readiness: 'Readiness', liveness: 'Liveness' };

interface Worker {
  kind: ProbeKind;
  state: ProbeState;
  timer?: NodeJS.Timeout;
}

/** One run of one container (a new start of the container is a new run). */
interface Run {
  key: string;
  startedAt: number;
  workers: Map<ProbeKind, Worker>;
  started: boolean;
  ready: boolean;
  /** A restart was decided for this run; its probes are stopped. */
  killing: boolean;
  stopped: boolean;
}

interface ContainerBook {
  run?: Run;
  extraRestarts: number;
  /** The backend's highest restartCount seen since its count last dropped. */
  lastSeenCount: number;
  probeRestarts: number;
  lastRestartAt?: number;
  lastKilled?: ContainerProbeView['lastKilled'];
}

interface PodBook {
  ref: PodRef;
  pod: V1Pod;
  containers: Map<string, ContainerBook>;
  restartTimer?: NodeJS.Timeout;
}

function statusOf(status: ProviderPodStatus, name: string): V1ContainerStatus | undefined {
  return (
    status.containerStatuses?.find((s) => s.name === name) ?? status.initContainerStatuses?.find((s) => s.name === name)
  );
}

function toMs(d: Date | string | undefined): number | undefined {
  if (d === undefined) return undefined;
  const v = (d instanceof Date ? d : new Date(d)).getTime();
  return Number.isNaN(v) ? undefined : v;
}

export class Prober {
  private readonly pods = new Map<string, PodBook>();
  private closed = false;

  constructor(private readonly deps: ProberDeps) {}

  /** True when some container of the pod has a probe the connector runs. */
  static wants(pod: V1Pod): boolean {
    return probedContainers(pod).some((c) => connectorProbes(c).length > 0);
  }

  /**
   * Starts, keeps or stops the probe workers of the pod's containers after a new provider
   * status: a container that runs (a new run when its start time or restart count moved)
   * is probed; one that does not is not.
   */
  sync(ref: PodRef, pod: V1Pod, status: ProviderPodStatus): void {
    if (this.closed || !Prober.wants(pod)) return;
    let book = this.pods.get(ref.uid);
    if (!book) {
      book = { ref, pod, containers: new Map() };
      this.pods.set(ref.uid, book);
    }
    book.pod = pod;
    const terminal = status.phase === 'Succeeded' || status.phase === 'Failed';
    for (const c of probedContainers(pod)) {
      let cb = book.containers.get(c.name);
      if (!cb) {
        cb = { extraRestarts: 0, lastSeenCount: 0, probeRestarts: 0 };
        book.containers.set(c.name, cb);
      }
      const s = statusOf(status, c.name);
      const count = s?.restartCount ?? 0;
      // The backend's count starts over when the whole group restarts; the pod's must not.
      if (count < cb.lastSeenCount) cb.extraRestarts += cb.lastSeenCount;
      cb.lastSeenCount = count;
      if (connectorProbes(c).length === 0) continue; // only its restart count is kept
      const startedAt = toMs(s?.state?.running?.startedAt);
      if (terminal || !s?.state?.running || startedAt === undefined) {
        if (cb.run) this.stopRun(cb.run);
        cb.run = undefined;
        continue;
      }
      const key = `${startedAt}|${count}`;
      if (cb.run?.key === key) continue;
      if (cb.run) this.stopRun(cb.run);
      cb.run = this.startRun(book, c, key, startedAt);
    }
  }

  /** What to merge into the pod's container statuses. */
  overrides(uid: string): ProbeOverrides {
    const out = new Map<string, ContainerProbeView>();
    const book = this.pods.get(uid);
    if (!book) return out;
    for (const c of probedContainers(book.pod)) {
      const cb = book.containers.get(c.name);
      if (!cb) continue;
      if (connectorProbes(c).length === 0) {
        if (cb.extraRestarts > 0) out.set(c.name, { extraRestarts: cb.extraRestarts });
        continue;
      }
      const run = cb.run;
      const view: ContainerProbeView = { extraRestarts: cb.extraRestarts };
      const started = run ? run.started : false;
      if (c.startupProbe) view.started = started && !(run?.killing ?? false);
      if (connectorRunsProbe(c, 'readiness')) view.ready = Boolean(run && run.started && run.ready && !run.killing);
      else if (c.startupProbe) view.ready = view.started;
      if (cb.lastKilled) view.lastKilled = cb.lastKilled;
      out.set(c.name, view);
    }
    return out;
  }

  /** The pod is gone (or this incarnation is): stop its workers. */
  forget(uid: string): void {
    const book = this.pods.get(uid);
    if (!book) return;
    clearTimeout(book.restartTimer);
    for (const cb of book.containers.values()) if (cb.run) this.stopRun(cb.run);
    this.pods.delete(uid);
  }

  close(): void {
    this.closed = true;
    for (const uid of [...this.pods.keys()]) this.forget(uid);
  }

  // ---- runs and workers ------------------------------------------------------

  private startRun(book: PodBook, c: V1Container, key: string, startedAt: number): Run {
    const run: Run = {
      key,
      startedAt,
      workers: new Map(),
      started: !c.startupProbe,
      ready: false,
      killing: false,
      stopped: false,
    };
    for (const { kind } of connectorProbes(c)) run.workers.set(kind, { kind, state: initialState(kind) });
    if (c.startupProbe) this.schedule(book, c, run, 'startup', true);
    else this.startGated(book, c, run);
    this.deps.changed(book.ref);
    return run;
  }

  /** Readiness and liveness, once the container has started. */
  private startGated(book: PodBook, c: V1Container, run: Run): void {
    for (const kind of ['readiness', 'liveness'] as const)
      if (run.workers.has(kind)) this.schedule(book, c, run, kind, true);
  }

  private stopRun(run: Run): void {
    run.stopped = true;
    for (const w of run.workers.values()) clearTimeout(w.timer);
  }

  private schedule(book: PodBook, c: V1Container, run: Run, kind: ProbeKind, first: boolean): void {
    const w = run.workers.get(kind);
    const probe = c[kind === 'startup' ? 'startupProbe' : kind === 'readiness' ? 'readinessProbe' : 'livenessProbe'];
    if (!w || !probe || run.stopped || run.killing) return;
    const t = probeTiming(probe, kind);
    const delay = first ? Math.max(0, run.startedAt + t.initialDelayMs - Date.now()) : t.periodMs;
    w.timer = setTimeout(() => void this.tick(book, c, run, w), delay);
    w.timer.unref();
  }

  private target(book: PodBook, c: V1Container): CheckTarget {
    const exec = this.deps.exec;
    return {
      address: undefined,
      ...(exec ? { exec: (command: string[], timeoutMs: number) => exec(book.ref, c.name, command, timeoutMs) } : {}),
    };
  }

  private async tick(book: PodBook, c: V1Container, run: Run, w: Worker): Promise<void> {
    const probe =
      c[w.kind === 'startup' ? 'startupProbe' : w.kind === 'readiness' ? 'readinessProbe' : 'livenessProbe'];
    if (!probe || run.stopped || run.killing || this.closed) return;
    const t = probeTiming(probe, w.kind);
    let outcome: { ok: boolean; message: string };
    try {
      const target = this.target(book, c);
      if (!probe.exec) target.address = await this.deps.address(book.ref);
      outcome = await runCheck(c, probe, t.timeoutMs, target);
    } catch (e) {
      outcome = { ok: false, message: e instanceof Error ? e.message : String(e) };
    }
    if (run.stopped || run.killing || this.closed) return;
    const { state, changed } = recordOutcome(w.state, outcome.ok, t);
    w.state = state;
    if (!outcome.ok)
      this.deps.event(book.ref, 'Warning', 'Unhealthy', `${KIND_WORD[w.kind]} probe failed: ${outcome.message}`);
    if (w.kind === 'startup' && state.result === true) {
      // Passed: the startup probe is done for this run, and the others begin.
      run.started = true;
      this.deps.changed(book.ref);
      this.startGated(book, c, run);
      return;
    }
    if (w.kind === 'readiness' && changed) {
      run.ready = state.result === true;
      this.deps.log?.debug(
        { pod: `${book.ref.namespace}/${book.ref.name}`, container: c.name, ready: run.ready },
        'readiness changed',
      );
      this.deps.changed(book.ref);
    }
    if ((w.kind === 'liveness' || w.kind === 'startup') && state.result === false) {
      this.kill(book, c, run, w.kind);
      return;
    }
    this.schedule(book, c, run, w.kind, false);
  }

  /** A liveness or startup probe failed its threshold: restart the container, as the kubelet does. */
  private kill(book: PodBook, c: V1Container, run: Run, kind: ProbeKind): void {
    run.killing = true;
    for (const w of run.workers.values()) clearTimeout(w.timer);
    const cb = book.containers.get(c.name);
    if (!cb) return;
    const now = Date.now();
    cb.lastKilled = { startedAt: new Date(run.startedAt), finishedAt: new Date(now), reason: 'Error' };
    this.deps.changed(book.ref);
    if (!this.deps.restart) {
      this.deps.event(
        book.ref,
        'Warning',
        'Unhealthy',
        `Container ${c.name} failed ${kind} probe, but the provider cannot restart a container`,
      );
      return;
    }
    if (cb.lastRestartAt !== undefined && now - cb.lastRestartAt > BACKOFF_RESET_MS) cb.probeRestarts = 0;
    const delay =
      cb.probeRestarts === 0 ? 0 : backoffDelay(this.deps.restartBackoff ?? DEFAULT_RESTART_BACKOFF, cb.probeRestarts);
    this.deps.event(book.ref, 'Normal', 'Killing', `Container ${c.name} failed ${kind} probe, will be restarted`);
    const restart = this.deps.restart;
    const attempt = (n: number): void => {
      clearTimeout(book.restartTimer);
      book.restartTimer = setTimeout(
        () => {
          if (run.stopped || this.closed || this.pods.get(book.ref.uid) !== book) return;
          restart(book.ref, c.name).then(
            (restarted) => {
              cb.probeRestarts += 1;
              cb.lastRestartAt = Date.now();
              for (const name of restarted.includes(c.name) ? restarted : [...restarted, c.name]) {
                const other = book.containers.get(name);
                if (other) other.extraRestarts += 1;
              }
              this.deps.changed(book.ref);
            },
            (e: unknown) => {
              const msg = e instanceof Error ? e.message : String(e);
              this.deps.log?.warn(
                { pod: `${book.ref.namespace}/${book.ref.name}`, container: c.name, err: msg },
                'restarting the container failed; will retry',
              );
              this.deps.event(book.ref, 'Warning', 'FailedKillPod', `restarting container ${c.name} failed: ${msg}`);
              attempt(n + 1);
            },
          );
        },
        n === 0 ? delay : backoffDelay({ baseMs: 2_000, maxMs: 60_000 }, n),
      );
      book.restartTimer.unref();
    };
    attempt(0);
  }
}
