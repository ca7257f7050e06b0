/**
 * The simulated runtime: container groups with no processes, moved through ACI's states
 * by timers. Meant for scale tests and benchmarks (thousands of groups, little memory)
 * and for tests of ARM behaviour that do not need real containers.
 */
import { PassThrough } from 'node:stream';
import {
  RuntimeProvisionError,
  type ContainerGroupRuntime,
  type ContainerUsageSample,
  type ExecSession,
  type RuntimeContainerSpec,
  type RuntimeContainerState,
  type RuntimeContainerView,
  type RuntimeEvent,
  type RuntimeGroupSpec,
  type RuntimeGroupView,
} from '../../runtime.js';
import { fateFor, type SimulatedFate, type SimulatedRule } from './fates.js';
import { sleep } from '../../../common/backoff.js';
import { simulatedExec } from './exec.js';
import { simulatedUsage } from './usage.js';

export type { SimulatedFate, SimulatedRule } from './fates.js';

export interface SimulatedRuntimeOptions {
  /** Time to "pull" a group's images. Default 20 ms. */
  pullMs?: number;
  /** Time from pulled to running. Default 20 ms. */
  startMs?: number;
  /** How long an `exits` fate runs when it names no `runMs`. Default 500 ms. */
  exitAfterMs?: number;
  /** Delay before a restart under restartPolicy Always/OnFailure. Default 200 ms. */
  restartDelayMs?: number;
  /** Rules deciding each container's fate; the first match wins. */
  rules?: SimulatedRule[];
  /** The fate when no rule or command idiom decides. Default: runs until stopped. */
  defaultFate?: SimulatedFate;
  /** First two octets of the loopback range group IPs are drawn from (nothing listens there). Default '127.40'. */
  ipPrefix?: string;
  /** Time to tear a group down on delete. Default 0. */
  removeMs?: number;
  /** Log lines kept per container. Default 200. */
  maxLogLines?: number;
}

const MAX_EVENTS = 20;

interface SimContainer {
  spec: RuntimeContainerSpec;
  fate: SimulatedFate;
  current: RuntimeContainerState;
  previous?: RuntimeContainerState;
  restartCount: number;
  events: RuntimeEvent[];
  logs: { at: Date; line: string }[];
  followers?: Set<(line: string) => void>;
}

interface SimGroup {
  spec: RuntimeGroupSpec;
  state: RuntimeGroupView['state'];
  ip?: string;
  init: SimContainer[];
  main: SimContainer[];
  events: RuntimeEvent[];
  timers: Set<NodeJS.Timeout>;
  onChange: () => void;
  /** Bumped by stop/start/restart/remove so stale timers do nothing. */
  epoch: number;
}

function addEvent(list: RuntimeEvent[], name: string, type: 'Normal' | 'Warning', message: string): void {
  const now = new Date();
  const same = list.find((e) => e.name === name && e.message === message);
  if (same) {
    same.count += 1;
    same.lastTimestamp = now;
    return;
  }
  list.push({ name, type, message, count: 1, firstTimestamp: now, lastTimestamp: now });
  if (list.length > MAX_EVENTS) list.shift();
}

export class SimulatedRuntime implements ContainerGroupRuntime {
  readonly kind = 'simulated' as const;
  private readonly groups = new Map<string, SimGroup>();
  private readonly opts: Required<Omit<SimulatedRuntimeOptions, 'rules'>> & { rules: SimulatedRule[] };
  private nextIp = 1;

  constructor(options: SimulatedRuntimeOptions = {}) {
    this.opts = {
      pullMs: options.pullMs ?? 20,
      startMs: options.startMs ?? 20,
      exitAfterMs: options.exitAfterMs ?? 500,
      restartDelayMs: options.restartDelayMs ?? 200,
      rules: options.rules ?? [],
      defaultFate: options.defaultFate ?? { kind: 'runs' },
      ipPrefix: options.ipPrefix ?? '127.40',
      maxLogLines: options.maxLogLines ?? 200,
      removeMs: options.removeMs ?? 0,
    };
  }

  /** Number of groups held (for memory tests). */
  size(): number {
    return this.groups.size;
  }

  private later(g: SimGroup, ms: number, fn: () => void): void {
    const epoch = g.epoch;
    const t = setTimeout(() => {
      g.timers.delete(t);
      if (g.epoch === epoch && this.groups.get(g.spec.id) === g) fn();
    }, ms);
    t.unref();
    g.timers.add(t);
  }

  private clearTimers(g: SimGroup): void {
    for (const t of g.timers) clearTimeout(t);
    g.timers.clear();
    g.epoch += 1;
  }

  private allocateIp(): string {
    const n = this.nextIp++;
    return `${this.opts.ipPrefix}.${Math.floor(n / 254) % 256}.${(n % 254) + 1}`;
  }

  private newContainer(spec: RuntimeContainerSpec): SimContainer {
    return {
      spec,
      fate: fateFor(spec, this.opts.rules, this.opts.defaultFate),
      current: { state: 'Waiting', detailStatus: '' },
      restartCount: 0,
      events: [],
      logs: [],
    };
  }

  create(spec: RuntimeGroupSpec, onChange: () => void): Promise<void> {
    const g: SimGroup = {
      spec,
      state: 'Pending',
      init: spec.initContainers.map((c) => this.newContainer(c)),
      main: spec.containers.map((c) => this.newContainer(c)),
      events: [],
      timers: new Set(),
      onChange,
      epoch: 0,
    };
    if (spec.ipAddress) g.ip = this.allocateIp();
    this.groups.set(spec.id, g);
    return this.launch(g);
  }

  /** Pulls, then runs init containers one by one, then the main containers. */
  private launch(g: SimGroup): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const all = [...g.init, ...g.main];
      for (const c of all) addEvent(c.events, 'Pulling', 'Normal', `pulling image "${c.spec.image}"`);
      g.onChange();
      this.later(g, this.opts.pullMs, () => {
        const broken = all.find((c) => c.fate.kind === 'pullFails');
        if (broken) {
          const message =
            (broken.fate.kind === 'pullFails' ? broken.fate.message : undefined) ??
            `Failed to pull image "${broken.spec.image}": the image does not exist or its registry cannot be reached.`;
          addEvent(broken.events, 'Failed', 'Warning', message);
          broken.current = { state: 'Waiting', detailStatus: 'ErrImagePull' };
          g.onChange();
          reject(new RuntimeProvisionError('InaccessibleImage', message));
          return;
        }
        for (const c of all) addEvent(c.events, 'Pulled', 'Normal', `Successfully pulled image "${c.spec.image}"`);
        g.onChange();
        this.later(g, this.opts.startMs, () => {
          this.runInit(g, 0);
          resolve();
        });
      });
    });
  }

  private runInit(g: SimGroup, index: number): void {
    const c = g.init[index];
    if (!c) {
      for (const m of g.main) this.startContainer(g, m);
      return;
    }
    this.startContainer(g, c, (code) => {
      if (code === 0) this.runInit(g, index + 1);
      else if (g.spec.restartPolicy === 'Never') this.refreshState(g, true);
      else this.later(g, this.opts.restartDelayMs, () => this.runInit(g, index));
    });
  }

  private log(c: SimContainer, line: string): void {
    c.logs.push({ at: new Date(), line });
    if (c.logs.length > this.opts.maxLogLines) c.logs.shift();
    for (const f of c.followers ?? []) f(line + '\n');
  }

  /** Starts a container; init containers pass `onExit`, main ones follow the restart policy. */
  private startContainer(g: SimGroup, c: SimContainer, onExit?: (code: number) => void): void {
    if (c.current.state === 'Terminated') {
      c.previous = c.current;
      c.restartCount += 1;
    }
    c.current = { state: 'Running', startTime: new Date(), detailStatus: '' };
    addEvent(c.events, 'Started', 'Normal', 'Started container');
    const fate = c.fate;
    if (fate.kind !== 'pullFails')
      for (const line of fate.logs ?? [`simulated container '${c.spec.name}' running image '${c.spec.image}'`])
        this.log(c, line);
    this.refreshState(g);
    const exitCode =
      fate.kind === 'exits' ? fate.exitCode : fate.kind === 'runs' && fate.runMs !== undefined ? 0 : undefined;
    if (exitCode === undefined) return;
    const runMs = (fate.kind === 'exits' || fate.kind === 'runs' ? fate.runMs : undefined) ?? this.opts.exitAfterMs;
    this.later(g, runMs, () => {
      const startTime = c.current.startTime;
      c.current = {
        state: 'Terminated',
        ...(startTime ? { startTime } : {}),
        finishTime: new Date(),
        exitCode,
        detailStatus: exitCode === 0 ? 'Completed' : 'Error',
      };
      for (const f of c.followers ?? []) f('');
      if (onExit) {
        this.refreshState(g);
        onExit(exitCode);
        return;
      }
      const policy = g.spec.restartPolicy;
      const restart = policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
      if (restart) this.later(g, this.opts.restartDelayMs, () => this.startContainer(g, c));
      this.refreshState(g, !restart);
    });
  }

  private refreshState(g: SimGroup, settledFailure = false): void {
    if (g.state !== 'Stopped') {
      const running =
        g.main.some((c) => c.current.state === 'Running') || g.init.some((c) => c.current.state === 'Running');
      const waiting = g.main.some((c) => c.current.state === 'Waiting');
      const restarts =
        g.spec.restartPolicy === 'Always' ||
        (g.spec.restartPolicy === 'OnFailure' && g.main.some((c) => c.current.exitCode !== 0));
      if (running || (!settledFailure && (waiting || restarts))) {
        g.state = running || !waiting ? 'Running' : g.state;
      } else {
        const failedInit = g.init.some((c) => c.current.state === 'Terminated' && c.current.exitCode !== 0);
        const failed = failedInit || g.main.some((c) => c.current.state === 'Terminated' && c.current.exitCode !== 0);
        g.state = failed ? 'Failed' : 'Succeeded';
      }
    }
    g.onChange();
  }

  async usage(id: string): Promise<Record<string, ContainerUsageSample>> {
    const g = this.groups.get(id);
    const out: Record<string, ContainerUsageSample> = {};
    for (const c of [...(g?.init ?? []), ...(g?.main ?? [])]) {
      if (c.current.state === 'Running' && c.current.startTime)
        out[c.spec.name] = simulatedUsage(c.spec, c.fate, c.current.startTime);
    }
    return out;
  }

  view(id: string): RuntimeGroupView | undefined {
    const g = this.groups.get(id);
    if (!g) return undefined;
    const viewOf = (c: SimContainer): RuntimeContainerView => ({
      currentState: c.current,
      ...(c.previous ? { previousState: c.previous } : {}),
      restartCount: c.restartCount,
      events: c.events,
    });
    return {
      state: g.state,
      ...(g.ip ? { ip: g.ip } : {}),
      initContainers: Object.fromEntries(g.init.map((c) => [c.spec.name, viewOf(c)])),
      containers: Object.fromEntries(g.main.map((c) => [c.spec.name, viewOf(c)])),
      events: g.events,
    };
  }

  private need(id: string): SimGroup {
    const g = this.groups.get(id);
    if (!g) throw new Error(`simulated runtime: unknown container group ${id}`);
    return g;
  }

  async stop(id: string): Promise<void> {
    const g = this.need(id);
    this.clearTimers(g);
    for (const c of [...g.init, ...g.main]) {
      if (c.current.state === 'Running') {
        addEvent(c.events, 'Killing', 'Normal', 'Killing container');
        const startTime = c.current.startTime;
        c.current = {
          state: 'Terminated',
          ...(startTime ? { startTime } : {}),
          finishTime: new Date(),
          exitCode: 143,
          detailStatus: 'Stopped',
        };
      }
      for (const f of c.followers ?? []) f('');
    }
    g.state = 'Stopped';
    addEvent(g.events, 'Stopped', 'Normal', 'Container group stopped');
    g.onChange();
  }

  async start(id: string): Promise<void> {
    const g = this.need(id);
    this.clearTimers(g);
    g.state = 'Pending';
    // ACI's start redeploys the group: fresh containers, restart counts from zero.
    g.init = g.spec.initContainers.map((c) => this.newContainer(c));
    g.main = g.spec.containers.map((c) => this.newContainer(c));
    await this.launch(g);
  }

  async restart(id: string): Promise<void> {
    const g = this.need(id);
    this.clearTimers(g);
    for (const c of [...g.init, ...g.main]) {
      if (c.current.state === 'Running') {
        const startTime = c.current.startTime;
        c.current = {
          state: 'Terminated',
          ...(startTime ? { startTime } : {}),
          finishTime: new Date(),
          exitCode: 143,
          detailStatus: 'Restarted',
        };
        addEvent(c.events, 'Killing', 'Normal', 'Killing container for restart');
      }
    }
    g.state = 'Pending';
    await this.launch(g);
  }

  async remove(id: string): Promise<void> {
    const g = this.groups.get(id);
    if (!g) return;
    this.clearTimers(g);
    for (const c of [...g.init, ...g.main]) for (const f of c.followers ?? []) f('');
    if (this.opts.removeMs > 0) await sleep(this.opts.removeMs);
    if (this.groups.get(id) === g) this.groups.delete(id);
  }

  private container(id: string, name: string): SimContainer {
    const g = this.need(id);
    const c = [...g.main, ...g.init].find((x) => x.spec.name === name);
    if (!c) throw new Error(`simulated runtime: unknown container ${name}`);
    return c;
  }

  async logs(id: string, container: string, opts: { tail?: number; timestamps?: boolean }): Promise<string> {
    const c = this.container(id, container);
    const lines = opts.tail !== undefined ? c.logs.slice(Math.max(0, c.logs.length - opts.tail)) : c.logs;
    return lines.map((l) => (opts.timestamps ? `${l.at.toISOString()} ${l.line}\n` : `${l.line}\n`)).join('');
  }

  async exec(
    id: string,
    container: string,
    command: string[],
    _terminal: { cols: number; rows: number },
  ): Promise<ExecSession> {
    const g = this.need(id);
    const c = this.container(id, container);
    if (c.current.state !== 'Running') throw new Error(`container ${container} is not running`);
    const env = Object.fromEntries(c.spec.env.map((e) => [e.name, e.value]));
    // ACI's exec always allocates a terminal, so stderr is merged into stdout.
    return simulatedExec(command, { hostname: g.spec.name, env }, true);
  }

  async attach(id: string, container: string): Promise<ExecSession> {
    const c = this.container(id, container);
    const stdout = new PassThrough();
    let resolveExit: (n: number) => void = () => undefined;
    const exited = new Promise<number>((r) => {
      resolveExit = r;
    });
    const follower = (line: string): void => {
      if (line === '') return close(c.current.exitCode ?? 0);
      stdout.write(line);
    };
    const close = (code: number): void => {
      c.followers?.delete(follower);
      stdout.end();
      resolveExit(code);
    };
    for (const l of c.logs) stdout.write(l.line + '\n');
    if (c.current.state !== 'Running') {
      setImmediate(() => close(c.current.exitCode ?? 0));
    } else {
      (c.followers ??= new Set()).add(follower);
    }
    return { stdin: new PassThrough(), stdout, resize: () => undefined, exited, kill: () => close(137) };
  }

  async close(_opts?: { keep?: boolean }): Promise<void> {
    for (const g of this.groups.values()) this.clearTimers(g);
    this.groups.clear();
  }
}

export function createSimulatedRuntime(options: SimulatedRuntimeOptions = {}): SimulatedRuntime {
  return new SimulatedRuntime(options);
}
