/**
 * Container lifecycle hooks (postStart, preStop), run by the connector as a kubelet runs
 * them, for any provider: exec hooks through the provider's exec, httpGet hooks by HTTP to
 * the pod's address (provider.portForwardAddress), sleep hooks by waiting.
 *
 * Two seams, and nothing else, tie this to the pod controller:
 * - observe(pod, status) with every provider status: a container seen running with a new
 *   start (restart count / startedAt) gets its postStart hook once. A failure records
 *   `FailedPostStartHook` and kills the container, as the kubelet does, and the restart policy
 *   applies: Always/OnFailure restart it (provider.restartContainer; repeated failures back off
 *   like CrashLoopBackOff), Never stops the pod for good (provider.stopPod) and
 *   {@link LifecycleHooks.stopped} tells the status why it ended.
 * - beforeDelete(pod, status, grace) before the provider deletes the pod: every running
 *   container's preStop hook, in parallel, within the grace period. A failure records
 *   `FailedPreStopHook` and deletion proceeds. It returns the grace period left.
 * A pod adopted at start (created by an earlier connector process) had its hooks run then:
 * its running containers are taken as started, and only later starts run postStart.
 */
import { Writable } from 'node:stream';
import type { V1Container, V1LifecycleHandler, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import type { EventType } from './events.js';
import type { PodRef, Provider, ProviderPodStatus } from './provider.js';

/** What a hook needs from the provider: all optional, a hook that needs a missing one fails saying so. */
export type HookProvider = Pick<Provider, 'exec' | 'portForwardAddress' | 'restartContainer' | 'stopPod'>;

/** A pod stopped for good because a container's postStart hook failed (restartPolicy Never). */
export interface PostStartStop {
  container: string;
  /** The hook's error, as in the FailedPostStartHook Event. */
  error: string;
  at: Date;
}

export interface LifecycleHooksOptions {
  provider: HookProvider;
  event: (pod: V1Pod, type: EventType, reason: string, message: string) => void;
  log: Logger;
  /** A postStart hook runs at most this long (the kubelet has no bound; a hung hook must not hold a worker forever). */
  postStartTimeoutMs?: number;
  /** The pod's status should be recomputed (a failed postStart stopped it). */
  changed?: (ref: PodRef) => void;
  /** Delay before killing a container whose postStart failed again: base, doubled per failure, capped. */
  killBackoff?: { baseMs: number; maxMs: number };
}

export class HookError extends Error {
  override readonly name = 'HookError';
}

/** Output kept from an exec hook, as the kubelet keeps a bounded part of it for the Event. */
const MAX_OUTPUT = 4096;
const DEFAULT_POSTSTART_TIMEOUT_MS = 120_000;
/** Tries of provider.stopPod after a failed postStart under restartPolicy Never (2 s, 4 s between). */
const STOP_ATTEMPTS = 3;

function refOf(pod: V1Pod): PodRef {
  const m = pod.metadata ?? {};
  return { namespace: m.namespace ?? '', name: m.name ?? '', uid: m.uid ?? '' };
}

function describe(h: V1LifecycleHandler): string {
  if (h.exec) return `Exec lifecycle hook (${JSON.stringify(h.exec.command ?? [])})`;
  if (h.httpGet) return `HTTP lifecycle hook (${h.httpGet.path ?? '/'})`;
  if (h.sleep) return `Sleep lifecycle hook (${h.sleep.seconds}s)`;
  return 'Lifecycle hook';
}

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    if (this.text.length < MAX_OUTPUT) this.text += chunk.toString('utf8').slice(0, MAX_OUTPUT - this.text.length);
    done();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HookError(`${what} did not complete within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function resolvePort(c: V1Container, port: number | string): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = c.ports?.find((p) => p.name === port)?.containerPort;
  if (named === undefined) throw new HookError(`container has no port named '${port}'`);
  return named;
}

/** Runs one hook handler; resolves on success, throws HookError with the kubelet's kind of message on failure. */
export async function runHandler(
  provider: HookProvider,
  ref: PodRef,
  c: V1Container,
  h: V1LifecycleHandler,
  timeoutMs: number,
): Promise<void> {
  if (h.exec) {
    const command = h.exec.command ?? [];
    if (!provider.exec) throw new HookError('this node cannot run commands in containers');
    const out = new Collect();
    const run = provider.exec(ref, c.name, command, { stdout: out, stderr: out, tty: false });
    const { exitCode } = await withTimeout(run, timeoutMs, `command '${command.join(' ')}'`);
    if (exitCode !== 0)
      throw new HookError(
        `command '${command.join(' ')}' exited with ${exitCode}: ${out.text}, message: ${JSON.stringify(out.text)}`,
      );
    return;
  }
  if (h.httpGet) {
    const g = h.httpGet;
    const host = g.host ?? (provider.portForwardAddress ? await provider.portForwardAddress(ref) : undefined);
    if (!host) throw new HookError('the pod has no IP address to send the HTTP hook to');
    const port = resolvePort(c, g.port);
    const scheme = (g.scheme ?? 'HTTP').toLowerCase();
    const path = g.path ? (g.path.startsWith('/') ? g.path : `/${g.path}`) : '/';
    const url = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
    const headers: Record<string, string> = {};
    for (const x of g.httpHeaders ?? []) headers[x.name] = x.value;
    let status: number;
    try {
      const res = await fetch(url, { headers, redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
      status = res.status;
      await res.body?.cancel();
    } catch (err) {
      throw new HookError(`Get "${url}": ${err instanceof Error ? err.message : String(err)}`);
    }
    // The kubelet's rule for HTTP hooks: any status outside 200–399 is a failure.
    if (status < 200 || status >= 400)
      throw new HookError(`HTTP lifecycle hook (${path}) for Container "${c.name}" returned status ${status}`);
    return;
  }
  if (h.sleep) {
    const ms = Math.max(0, h.sleep.seconds) * 1000;
    await new Promise((r) => setTimeout(r, Math.min(ms, timeoutMs)));
    return;
  }
  throw new HookError('the hook has no exec, httpGet or sleep action');
}

interface PodHooks {
  /** Created by this process: its first starts run postStart. Adopted pods' current starts do not. */
  fresh: boolean;
  /** An adopted pod's first status was taken as the starts its hooks already ran for. */
  baselined: boolean;
  /** Per container, the start its postStart was handled for. */
  started: Map<string, string>;
  /** Per container, postStart failures in a row (for the kill backoff). */
  failures: Map<string, number>;
  preStop?: Promise<number>;
  /** Set once the pod was stopped after a failed postStart (restartPolicy Never). */
  stopped?: PostStartStop;
}

export class LifecycleHooks {
  private readonly pods = new Map<string, PodHooks>();

  constructor(private readonly o: LifecycleHooksOptions) {}

  /** Seam: the pod was just created in the provider by this process. */
  created(uid: string): void {
    this.entry(uid).fresh = true;
  }

  /** Seam: a provider status for the pod (after a container is first seen running, its postStart runs). */
  observe(pod: V1Pod, status: ProviderPodStatus): void {
    const uid = pod.metadata?.uid ?? '';
    const containers = [
      ...(pod.spec?.containers ?? []),
      ...(pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'),
    ];
    if (!containers.some((c) => c.lifecycle?.postStart) || pod.metadata?.deletionTimestamp) return;
    const e = this.entry(uid);
    const statuses = [...(status.containerStatuses ?? []), ...(status.initContainerStatuses ?? [])];
    // Running already when this process adopted the pod: its hooks ran then; only later starts run them.
    const baseline = !e.fresh && !e.baselined;
    e.baselined = true;
    for (const c of containers) {
      const cs = statuses.find((s) => s.name === c.name);
      const running = cs?.state?.running;
      if (!c.lifecycle?.postStart || !cs || !running) continue;
      const key = `${cs.restartCount ?? 0}/${running.startedAt ? new Date(running.startedAt).toISOString() : ''}`;
      const prev = e.started.get(c.name);
      if (prev === key) continue;
      e.started.set(c.name, key);
      if (baseline) continue;
      void this.postStart(pod, c, c.lifecycle.postStart, e);
    }
  }

  /**
   * Seam: before the provider deletes the pod. Runs the preStop hooks of the running
   * containers (once per pod, also when the delete is retried) and resolves with the
   * seconds of the grace period left for the delete.
   */
  beforeDelete(pod: V1Pod, status: ProviderPodStatus | undefined, graceSeconds: number): Promise<number> {
    const e = this.entry(pod.metadata?.uid ?? '');
    e.preStop ??= this.preStop(pod, status, graceSeconds);
    return e.preStop;
  }

  /** Seam: why the pod was stopped, when a failed postStart hook stopped it (for computePodStatus). */
  stopped(uid: string): PostStartStop | undefined {
    return this.pods.get(uid)?.stopped;
  }

  /** Seam: the pod is gone from the provider. */
  forget(uid: string): void {
    this.pods.delete(uid);
  }

  private entry(uid: string): PodHooks {
    let e = this.pods.get(uid);
    if (!e) this.pods.set(uid, (e = { fresh: false, baselined: false, started: new Map(), failures: new Map() }));
    return e;
  }

  private async postStart(pod: V1Pod, c: V1Container, h: V1LifecycleHandler, e: PodHooks): Promise<void> {
    const ref = refOf(pod);
    try {
      await runHandler(this.o.provider, ref, c, h, this.o.postStartTimeoutMs ?? DEFAULT_POSTSTART_TIMEOUT_MS);
      e.failures.delete(c.name);
      this.o.log.debug({ pod: `${ref.namespace}/${ref.name}`, container: c.name }, 'postStart hook succeeded');
    } catch (err) {
      if (this.pods.get(ref.uid) !== e) return; // the pod went meanwhile
      const msg = err instanceof Error ? err.message : String(err);
      this.o.event(
        pod,
        'Warning',
        'FailedPostStartHook',
        `${describe(h)} for Container "${c.name}" in Pod "${ref.name}_${ref.namespace}(${ref.uid})" failed - error: ${msg}`,
      );
      const n = (e.failures.get(c.name) ?? 0) + 1;
      e.failures.set(c.name, n);
      await this.kill(pod, c, n, e, msg);
    }
  }

  private async kill(pod: V1Pod, c: V1Container, failures: number, e: PodHooks, error: string): Promise<void> {
    const ref = refOf(pod);
    // The kubelet kills the container and its restart policy decides: Never (a native sidecar
    // restarts whatever the pod's policy) leaves it terminated, so the pod ends Failed.
    if (pod.spec?.restartPolicy === 'Never' && c.restartPolicy !== 'Always') return this.stop(pod, c, e, error);
    const b = this.o.killBackoff ?? { baseMs: 10_000, maxMs: 300_000 };
    // The first failure kills at once, as the kubelet does; later ones wait, as its CrashLoopBackOff would before the restart.
    if (failures > 1)
      await new Promise((r) => setTimeout(r, Math.min(b.maxMs, b.baseMs * 2 ** (failures - 2))).unref?.());
    if (this.pods.get(ref.uid) !== e || pod.metadata?.deletionTimestamp) return;
    if (!this.o.provider.restartContainer) return this.cannotKill(pod, c);
    this.killing(pod, c);
    try {
      await this.o.provider.restartContainer(ref, c.name);
    } catch (err) {
      this.o.log.warn(
        {
          pod: `${ref.namespace}/${ref.name}`,
          container: c.name,
          err: err instanceof Error ? err.message : String(err),
        },
        'killing the container after its failed postStart hook failed',
      );
    }
  }

  /** A backend that can neither restart nor stop the pod leaves the container running, and says so. */
  private cannotKill(pod: V1Pod, c: V1Container): void {
    this.o.event(
      pod,
      'Warning',
      'FailedPostStartHook',
      `Container ${c.name} cannot be killed by this node after its failed postStart hook; it keeps running`,
    );
  }

  /** The kubelet's Event before it kills a container after its failed postStart hook. */
  private killing(pod: V1Pod, c: V1Container): void {
    this.o.event(
      pod,
      'Normal',
      'Killing',
      `FailedPostStartHook: Container ${c.name} failed post-start hook, will be killed`,
    );
  }

  /** Ends the pod for good: the only way a backend without per-container kill ends one container. */
  private async stop(pod: V1Pod, c: V1Container, e: PodHooks, error: string): Promise<void> {
    const ref = refOf(pod);
    if (e.stopped || pod.metadata?.deletionTimestamp) return;
    if (!this.o.provider.stopPod) return this.cannotKill(pod, c);
    this.killing(pod, c);
    // Set before the call: the backend's stopped status can arrive before the call returns, and
    // must already read as this stop (it applies only to a pod the backend reports Failed).
    e.stopped = { container: c.name, error, at: new Date() };
    // Backend errors are retried a few times: without the stop the pod would run on, hook failed.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.o.provider.stopPod(ref);
        this.o.changed?.(ref);
        return;
      } catch (err) {
        const m = err instanceof Error ? err.message : String(err);
        this.o.log.warn(
          { pod: `${ref.namespace}/${ref.name}`, container: c.name, attempt, err: m },
          'stopping the pod after its failed postStart hook failed',
        );
        if (attempt >= STOP_ATTEMPTS || this.pods.get(ref.uid) !== e || pod.metadata?.deletionTimestamp) {
          this.o.event(pod, 'Warning', 'FailedPostStartHook', `Container ${c.name} could not be killed: ${m}`);
          delete e.stopped;
          return;
        }
        await new Promise((r) => setTimeout(r, 2_000 * 2 ** (attempt - 1)).unref?.());
      }
    }
  }

  private async preStop(pod: V1Pod, status: ProviderPodStatus | undefined, graceSeconds: number): Promise<number> {
    const start = Date.now();
    const ref = refOf(pod);
    const statuses = [...(status?.containerStatuses ?? []), ...(status?.initContainerStatuses ?? [])];
    const hooked = (pod.spec?.containers ?? [])
      .concat((pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'))
      .filter((c) => c.lifecycle?.preStop && statuses.find((s) => s.name === c.name)?.state?.running);
    if (hooked.length === 0) return graceSeconds;
    const budgetMs = Math.max(0, graceSeconds) * 1000;
    await Promise.all(
      hooked.map(async (c) => {
        const h = c.lifecycle!.preStop!;
        try {
          await withTimeout(
            runHandler(this.o.provider, ref, c, h, budgetMs),
            budgetMs,
            `PreStop hook of container ${c.name}`,
          );
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          this.o.event(
            pod,
            'Warning',
            'FailedPreStopHook',
            `PreStopHook failed: ${describe(h)} for Container "${c.name}" in Pod "${ref.name}_${ref.namespace}(${ref.uid})" failed - error: ${msg}`,
          );
        }
      }),
    );
    return Math.max(0, Math.round(graceSeconds - (Date.now() - start) / 1000));
  }
}
