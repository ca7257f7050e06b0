/**
 * One system through the chosen workloads, on its own node and namespace: burst
 * (pods bound before the agent starts), steady (R pods/s for T s), scheduled (a
 * Deployment scaled 0→N through the scheduler), each followed by delete when asked.
 * Systems run one after another, so the API server's request counters can be
 * attributed to one system by their delta around each phase.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { ClusterInfo } from '../../devcluster/cluster.js';
import type { EmulatorStats } from '../../src/emulator/index.js';
import { describe, PodWatch, scrapeRequests, watchNodeReady } from './observe.js';
import { delta, digest, type RequestDigest } from './prom.js';
import { TreeSampler, type Usage } from './proc.js';
import { summarize, type LatencySummary } from './stats.js';
import type { AgentHandle, SystemDef } from './systems.js';
import { errorMessage } from '../../src/common/errors.js';

export type Workload = 'burst' | 'steady' | 'scheduled' | 'delete';

export interface RunOptions {
  workloads: Workload[];
  pods: number;
  rate: number;
  durationSeconds: number;
  timeoutSeconds: number;
  createConcurrency: number;
}

export interface DeleteResult {
  /** deletecollection (or scale to 0) until the watch saw every pod gone. */
  goneFromApiS: number;
  /** Until the provider held none of them (undefined where it cannot be seen). */
  goneFromProviderS?: number;
  cpuSeconds: number;
  api: RequestDigest;
  armCalls?: Record<string, number>;
}

export interface PhaseResult {
  workload: Exclude<Workload, 'delete'>;
  pods: number;
  /** ms, creation (agent start for burst) until seen Running */
  startupMs: LatencySummary;
  allRunningS: number;
  podsPerSecond: number;
  cpuSeconds: number;
  api: RequestDigest;
  armCalls?: Record<string, number>;
  armCallsPerPod?: number;
  /** per pod: ms since the phase's t0 when seen Running (for the plots) */
  runningAtMs: number[];
  latenciesMs: number[];
  delete?: DeleteResult;
  error?: string;
}

export interface SystemResult {
  id: string;
  label: string;
  nodeName: string;
  namespace: string;
  nodeReadyS?: number;
  usage?: Usage;
  /** Restarts of the benchmark's pod watch: where it is not 0, Running moments may be bunched late. */
  podWatchRestarts: number;
  phases: PhaseResult[];
  error?: string;
}

export type Progress = (line: string, transient?: boolean) => void;

const LABEL = 'bench.aci-connector/workload';

function pod(nodeName: string, name: string, workload: string): k8s.V1Pod {
  return {
    metadata: { name, labels: { [LABEL]: workload } },
    spec: {
      nodeName,
      containers: [{ name: 'c', image: 'bench/app:1', resources: { requests: { cpu: '100m', memory: '128Mi' } } }],
      // Every peer's default taint is tolerated, so no system is held back by a NoExecute taint of its own.
      tolerations: [{ operator: 'Exists' }],
    },
  };
}

async function pool<T>(items: readonly T[], concurrency: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await f(items[next++] as T);
    }),
  );
}

async function retry<T>(f: () => Promise<T>, tries = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await f();
    } catch (err) {
      if (i >= tries) throw err;
      await new Promise((r) => setTimeout(r, 200 * 2 ** i));
    }
  }
}

function armDelta(
  before: EmulatorStats | undefined,
  after: EmulatorStats | undefined,
): Record<string, number> | undefined {
  if (!after) return undefined;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.callsByOperation)) {
    const d = v - (before?.callsByOperation[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

const sum = (r: Record<string, number> | undefined) => (r ? Object.values(r).reduce((s, v) => s + v, 0) : undefined);

export async function runSystem(
  def: SystemDef,
  cluster: ClusterInfo,
  kc: k8s.KubeConfig,
  peers: Partial<Record<'kwok' | 'vk', string>>,
  dir: string,
  o: RunOptions,
  progress: Progress,
): Promise<SystemResult> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const nodeName = `bench-${def.id}`;
  const namespace = `bench-${def.id}`;
  const result: SystemResult = { id: def.id, label: def.label, nodeName, namespace, phases: [], podWatchRestarts: 0 };
  const sysDir = join(dir, def.id);
  mkdirSync(sysDir, { recursive: true });
  const timeoutMs = o.timeoutSeconds * 1000;
  const log = (l: string) => progress(`[${def.id}] ${l}`);

  await core.createNamespace({ body: { metadata: { name: namespace } } });
  // Pods need the namespace's default ServiceAccount, which the controller-manager creates.
  await retry(() => core.readNamespacedServiceAccount({ name: 'default', namespace }), 30);
  const watch = new PodWatch(kc, namespace);
  watch.onRestart = (n, err) => {
    result.podWatchRestarts = n;
    log(`the benchmark's pod watch ended and was resumed (${n}): ${describe(err)}`);
  };
  await watch.start();
  const nodeWatch = await watchNodeReady(kc, nodeName);

  if (def.preCreateNode) {
    await core.createNode({
      body: {
        metadata: {
          name: nodeName,
          labels: { 'kubernetes.io/hostname': nodeName, type: 'kwok' },
          annotations: { 'kwok.x-k8s.io/node': 'fake' },
        },
        status: {
          capacity: { cpu: '100k', memory: '100Ti', pods: '1M' },
          allocatable: { cpu: '100k', memory: '100Ti', pods: '1M' },
        },
      },
    });
  }

  const wl = new Set(o.workloads);
  const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  const create = (name: string, workload: string) =>
    retry(() => core.createNamespacedPod({ namespace, body: pod(nodeName, name, workload) }));

  // burst: every pod exists and is bound before the agent starts.
  const burstNames = wl.has('burst') ? names('b', o.pods) : [];
  if (burstNames.length > 0) {
    const t = Date.now();
    let done = 0;
    await pool(burstNames, o.createConcurrency, async (n) => {
      await create(n, 'burst');
      if (++done % 250 === 0) progress(`[${def.id}] burst: created ${done}/${burstNames.length}`, true);
    });
    await watch.until(() => burstNames.every((n) => watch.pods.has(n)), timeoutMs, 'the watch to see every burst pod');
    log(`burst: ${burstNames.length} pods created and bound in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }

  let agent: AgentHandle | undefined;
  let sampler: TreeSampler | undefined;
  try {
    const apiBefore = await scrapeRequests(cluster);
    agent = await def.start({ cluster, nodeName, dir: sysDir, peers });
    const a = agent;
    sampler = new TreeSampler(a.proc.pid ?? -1);
    const s = sampler;
    const exited = new Promise<never>((_, reject) =>
      a.proc.once('exit', (code, sig) =>
        reject(new Error(`${def.id} exited (${code ?? sig}) early:\n${a.output().slice(-3000)}`)),
      ),
    );
    exited.catch(() => undefined);
    const t0 = a.startedAt;
    const readyAt = await Promise.race([nodeWatch.ready, exited, timeoutAfter(timeoutMs, 'node Ready')]);
    result.nodeReadyS = (readyAt - t0) / 1000;
    log(`node Ready ${result.nodeReadyS.toFixed(2)} s after the process started`);

    const phase = async (
      workload: PhaseResult['workload'],
      podNames: () => string[],
      expected: number,
      phaseT0: number,
      cpu0: number,
      api0: Awaited<ReturnType<typeof scrapeRequests>>,
      arm0: EmulatorStats | undefined,
      latencyFrom: (n: string) => number,
    ): Promise<PhaseResult> => {
      const ticker = setInterval(() => {
        const ns = podNames();
        const running = ns.filter((n) => watch.pods.get(n)?.running).length;
        progress(
          `[${def.id}] ${workload}: ${running}/${expected} Running, ${((Date.now() - phaseT0) / 1000).toFixed(1)} s`,
          true,
        );
      }, 1000);
      try {
        await Promise.race([
          watch.until(
            () => {
              const ns = podNames();
              return ns.length >= expected && ns.every((n) => watch.pods.get(n)?.running);
            },
            timeoutMs,
            `${expected} ${workload} pods Running`,
          ),
          exited,
        ]);
      } finally {
        clearInterval(ticker);
      }
      const cpu1 = s.cpu();
      const api1 = await scrapeRequests(cluster);
      const arm1 = await a.armStats();
      const ns = podNames();
      const runningAt = ns.map((n) => (watch.pods.get(n)?.running ?? 0) - phaseT0);
      const latencies = ns.map((n) => (watch.pods.get(n)?.running ?? 0) - latencyFrom(n));
      const allRunningS = Math.max(...runningAt) / 1000;
      const arm = armDelta(arm0, arm1);
      const r: PhaseResult = {
        workload,
        pods: ns.length,
        startupMs: summarize(latencies),
        allRunningS,
        podsPerSecond: ns.length / allRunningS,
        cpuSeconds: cpu1 - cpu0,
        api: digest(delta(api0, api1)),
        armCalls: arm,
        armCallsPerPod: arm ? (sum(arm) ?? 0) / ns.length : undefined,
        runningAtMs: runningAt,
        latenciesMs: latencies,
      };
      log(
        `${workload}: ${ns.length} Running in ${allRunningS.toFixed(2)} s, p50 ${r.startupMs.p50} ms, p99 ${r.startupMs.p99} ms`,
      );
      if (wl.has('delete')) r.delete = await deletePhase(workload, ns);
      return r;
    };

    const deletePhase = async (workload: string, podNames: string[]): Promise<DeleteResult> => {
      const cpu0 = s.cpu();
      const api0 = await scrapeRequests(cluster);
      const arm0 = await a.armStats();
      const d0 = Date.now();
      if (workload === 'scheduled') {
        await apps.patchNamespacedDeploymentScale(
          { name: 'sched', namespace, body: { spec: { replicas: 0 } } },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
      } else {
        await core.deleteCollectionNamespacedPod({ namespace, labelSelector: `${LABEL}=${workload}` });
      }
      const ticker = setInterval(() => {
        const left = podNames.filter((n) => !watch.pods.get(n)?.gone).length;
        progress(`[${def.id}] delete ${workload}: ${left} left, ${((Date.now() - d0) / 1000).toFixed(1)} s`, true);
      }, 1000);
      let goneFromProviderS: number | undefined;
      try {
        await Promise.race([
          watch.until(() => podNames.every((n) => watch.pods.get(n)?.gone), timeoutMs, `${workload} pods gone`),
          exited,
        ]);
        const goneFromApiS = (Date.now() - d0) / 1000;
        if ((await a.providerPods()) !== undefined) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const left = await a.providerPods();
            if (left === 0) {
              goneFromProviderS = (Date.now() - d0) / 1000;
              break;
            }
            if (Date.now() > deadline) throw new Error(`the provider still holds ${left} pods`);
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        const arm = armDelta(arm0, await a.armStats());
        const api = digest(delta(api0, await scrapeRequests(cluster)));
        log(
          `delete ${workload}: gone from the API in ${goneFromApiS.toFixed(2)} s${goneFromProviderS !== undefined ? `, from the provider in ${goneFromProviderS.toFixed(2)} s` : ''}`,
        );
        return { goneFromApiS, goneFromProviderS, cpuSeconds: s.cpu() - cpu0, api, armCalls: arm };
      } finally {
        clearInterval(ticker);
      }
    };

    if (burstNames.length > 0) {
      const arm0 = undefined; // the emulator started with the agent: every call it counted is this phase's
      result.phases.push(
        await phase(
          'burst',
          () => burstNames,
          burstNames.length,
          t0,
          0,
          apiBefore,
          arm0,
          () => t0,
        ),
      );
    }

    if (wl.has('steady')) {
      const count = Math.round(o.rate * o.durationSeconds);
      const steadyNames = names('s', count);
      const sentAt = new Map<string, number>();
      const cpu0 = s.cpu();
      const api0 = await scrapeRequests(cluster);
      const arm0 = await a.armStats();
      const p0 = Date.now();
      log(`steady: ${o.rate} pods/s for ${o.durationSeconds} s`);
      const creating = (async () => {
        const pending: Promise<unknown>[] = [];
        for (let i = 0; i < count; i++) {
          const due = p0 + (i * 1000) / o.rate;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          const n = steadyNames[i] as string;
          sentAt.set(n, Date.now());
          pending.push(create(n, 'steady'));
        }
        await Promise.all(pending);
      })();
      creating.catch(() => undefined); // a failed create shows as a pod that never runs: the phase times out
      const r = await phase(
        'steady',
        () => steadyNames,
        count,
        p0,
        cpu0,
        api0,
        arm0,
        (n) => sentAt.get(n) ?? p0,
      );
      await creating;
      result.phases.push(r);
    }

    if (wl.has('scheduled')) {
      const cpu0 = s.cpu();
      await apps.createNamespacedDeployment({
        namespace,
        body: {
          metadata: { name: 'sched' },
          spec: {
            replicas: 0,
            selector: { matchLabels: { app: 'sched' } },
            template: {
              metadata: { labels: { app: 'sched', [LABEL]: 'scheduled' } },
              spec: {
                nodeSelector: { 'kubernetes.io/hostname': nodeName },
                tolerations: [{ operator: 'Exists' }],
                containers: [
                  { name: 'c', image: 'bench/app:1', resources: { requests: { cpu: '100m', memory: '128Mi' } } },
                ],
              },
            },
          },
        },
      });
      const api0 = await scrapeRequests(cluster);
      const arm0 = await a.armStats();
      const before = new Set(watch.pods.keys());
      const p0 = Date.now();
      log(`scheduled: Deployment scaled 0→${o.pods}`);
      await apps.patchNamespacedDeploymentScale(
        { name: 'sched', namespace, body: { spec: { replicas: o.pods } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      const schedNames = () => [...watch.pods.keys()].filter((n) => n.startsWith('sched-') && !before.has(n));
      // Latency from the moment the watch first saw the pod (its creation by the ReplicaSet controller).
      result.phases.push(
        await phase('scheduled', schedNames, o.pods, p0, cpu0, api0, arm0, (n) => watch.pods.get(n)?.seen ?? p0),
      );
      await apps.deleteNamespacedDeployment({ name: 'sched', namespace }).catch(() => undefined);
    }
  } catch (err) {
    result.error = errorMessage(err);
    log(`FAILED: ${result.error.split('\n')[0]}`);
  } finally {
    result.usage = sampler?.stop();
    await agent?.stop();
    nodeWatch.stop();
    watch.stop();
    await core.deleteNode({ name: nodeName }).catch(() => undefined);
    // Leftovers (a failed phase) must not weigh on the next system: pods go with grace 0.
    await core.deleteCollectionNamespacedPod({ namespace, gracePeriodSeconds: 0 }).catch(() => undefined);
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    // The namespace controller's clean-up must not land in the next system's request counts.
    for (let i = 0; i < 600; i++) {
      const gone = await core.readNamespace({ name: namespace }).then(
        () => false,
        () => true,
      );
      if (gone) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return result;
}

function timeoutAfter(ms: number, what: string): Promise<never> {
  return new Promise((_, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
    t.unref();
  });
}
