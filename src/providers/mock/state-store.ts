/**
 * The mock backend's memory, optionally kept in a JSON file so that it outlives
 * the connector process (the SIGKILL-restart test needs a "backend" that
 * survives). Writes are batched: one atomic write (temp file + rename) is in flight at a
 * time, and every change made meanwhile lands in the next one (group commit), so a burst
 * of N pods costs a few writes of the whole file, not N (and writing takes at most a fifth
 * of the time). Callers can await the write that holds theirs.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type { V1ContainerStatus } from '@kubernetes/client-node';
import type { PodRef, ProviderPodStatus } from '../../core/provider.js';

export interface MockContainer {
  name: string;
  image: string;
  /** Exit code after the container's run time, or undefined to run forever. */
  exitCode?: number;
  runMs: number;
  /** Rule-driven usage figures (annotations cpu-millicores, memory-bytes); absent in older state files. */
  cpuMillicores?: number;
  memoryBytes?: number;
}

export interface MockPod {
  ref: PodRef;
  /** Which connector created it: node name and cluster id. */
  owner: { node: string; cluster: string };
  restartPolicy: 'Always' | 'OnFailure' | 'Never';
  containers: MockContainer[];
  /** Epoch ms when the pod becomes Running. */
  startAt: number;
  podIP: string;
  status: ProviderPodStatus;
  /** Per container: epoch ms of the current run's start, for exit scheduling. */
  runStartedAt: Record<string, number>;
  /**
   * The env the core resolved, per container, for tests to inspect. Secret-sourced
   * values are stored only as a sha256 hex digest, never in clear.
   */
  env: Record<string, Array<{ name: string; value?: string; sha256?: string }>>;
  /**
   * The files the core resolved for each secret, configMap, downwardAPI and projected volume, by
   * volume name and path: text in `value`, or for sensitive files (Secret data, tokens) only the
   * sha256 hex digest of their bytes. Absent in older state files.
   */
  volumes?: Record<string, Record<string, { mode: number; value?: string; sha256?: string }>>;
}

export interface CallCounts {
  /** Workloads actually created for this uid (a second one is a duplicate). */
  created: number;
  /** createPod calls, including idempotent repeats. */
  createCalls: number;
  deleteCalls: number;
  /** Workloads actually removed. */
  deleted: number;
}

export interface MockState {
  version: 1;
  nextIP: number;
  pods: Record<string, MockPod>;
  calls: Record<string, CallCounts>;
}

export function emptyState(): MockState {
  return { version: 1, nextIP: 1, pods: {}, calls: {} };
}

/** Reads a state file (for tests that inspect the mock's backend from outside). */
export function readMockState(file: string): MockState {
  if (!existsSync(file)) return emptyState();
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as MockState;
  if (parsed.version !== 1) throw new Error(`unsupported mock state version ${String(parsed.version)} in ${file}`);
  return parsed;
}

export function writeMockState(file: string, state: MockState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, file);
}

async function writeMockStateAsync(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

export class StateStore {
  readonly state: MockState;
  /** The next write (not started yet): every save() until it starts joins it. */
  private pending: Promise<void> | undefined;
  private inFlight: Promise<void> | undefined;

  /**
   * Each pod's JSON as last written: a burst changes a few pods between writes, and serializing
   * all of them every time was the mock's largest CPU cost in the benchmark's profile (9 %).
   */
  private readonly podJson = new Map<string, string>();

  constructor(private readonly file: string | undefined) {
    this.state = file ? readMockState(file) : emptyState();
  }

  /** Marks a pod changed (created, moved on or removed): the next write serializes it again. */
  changed(uid: string): void {
    this.podJson.delete(uid);
  }

  /** The state as JSON, equal to JSON.stringify(state), re-serializing only the pods marked changed. */
  serialize(): string {
    const pods: string[] = [];
    for (const [uid, pod] of Object.entries(this.state.pods)) {
      let json = this.podJson.get(uid);
      if (json === undefined) {
        json = JSON.stringify(pod);
        this.podJson.set(uid, json);
      }
      pods.push(`${JSON.stringify(uid)}:${json}`);
    }
    if (this.podJson.size > pods.length) {
      for (const uid of this.podJson.keys()) if (!(uid in this.state.pods)) this.podJson.delete(uid);
    }
    const { version, nextIP, calls } = this.state;
    return `{"version":${JSON.stringify(version)},"nextIP":${JSON.stringify(nextIP)},"pods":{${pods.join(',')}},"calls":${JSON.stringify(calls)}}`;
  }

  /** Resolves once the current state (including the caller's change) is on disk. */
  save(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    if (this.pending) return this.pending;
    const after = this.inFlight;
    const next = new Promise<void>((resolve, reject) => {
      const start = () => {
        this.pending = undefined;
        const began = performance.now();
        const write = writeMockStateAsync(file, this.serialize());
        // The next write waits 4× as long as this one took (writing at most a fifth of the time):
        // the file holds every pod, so under a burst the writes, not the changes, cost the CPU.
        this.inFlight = write.then(
          () => new Promise<void>((r) => setTimeout(r, Math.min(250, 4 * (performance.now() - began)))),
          () => undefined,
        );
        write.then(resolve, (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))));
      };
      // After the write in flight (its rename must not overtake ours), else after this tick's changes.
      if (after) void after.then(() => setImmediate(start));
      else setImmediate(start);
    });
    this.pending = next;
    return next;
  }

  counts(uid: string): CallCounts {
    let c = this.state.calls[uid];
    if (!c) {
      c = { created: 0, createCalls: 0, deleteCalls: 0, deleted: 0 };
      this.state.calls[uid] = c;
    }
    return c;
  }
}

export type { V1ContainerStatus };
