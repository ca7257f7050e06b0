/**
 * The podman runtime: each container group is a podman pod (one network namespace,
 * slirp4netns, ports published on the group's loopback IP) and each container a
 * real container in it.
 *
 * State is cached in memory so view() is cheap. The cache is refreshed from one
 * `podman ps -a` over all of this runtime's containers, triggered by
 * `podman events` and by a slow periodic safety net. Restart policies are
 * supervised here rather than by podman's --restart, because podman restarts
 * without backoff and ACI (like the kubelet) backs off crash loops.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync, mkdirSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  RuntimeProvisionError,
  type ContainerGroupRuntime,
  type ExecSession,
  type RuntimeContainerSpec,
  type RuntimeContainerState,
  type RuntimeContainerView,
  type RuntimeGroupSpec,
  type RuntimeGroupState,
  type RuntimeGroupView,
} from '../../runtime.js';
import { EventLog } from './event-log.js';
import { sessionFromChild, shellQuote } from './exec-session.js';
import { LoopbackIpPool } from './ip-pool.js';
import { ownerAlive, ownerToken } from './owner.js';
import { containerLogs } from './logs.js';
import { PodmanError, type PodmanCli } from './podman-cli.js';
import { ProbeRunner } from './probes.js';
import { busyboxImage } from './local-images.js';
import { diagnose, PodmanPreflightError, preflightPodman } from './preflight.js';
import { preparePodman, type PodmanLayout } from './setup.js';
import { nestedMountPoints, prepareVolumes } from './volumes.js';
import { securityFlags } from './security.js';

export interface PodmanRuntimeOptions {
  /** The emulator's folder for podman's storage, run state, events and volumes. */
  stateDir: string;
  /** Loopback range that group IPs come from. Default 127.20.0.0/16. */
  ipPool?: string;
  /** Where machine-wide IP leases live; default a folder in the OS temp dir. */
  ipLeaseDir?: string;
  /** podman binary; default `podman` on PATH. */
  podmanBinary?: string;
  /** Storage driver: overlay (default) or vfs. One state folder sticks to one driver. */
  storageDriver?: string;
  /** Labels every pod and container; default a random id. */
  instanceId?: string;
  /** Crash-loop back-off; default 10 s doubling up to 5 min, like the kubelet. */
  restartBackoff?: { initialMs: number; maxMs: number };
  /** Safety-net refresh period; events trigger refreshes in between. Default 5 s. */
  refreshIntervalMs?: number;
  /** Timeout of one image pull. Default 10 min. */
  pullTimeoutMs?: number;
  /** Grace period of stop and delete. Default 10 s. */
  stopTimeoutSeconds?: number;
  /**
   * At start, remove pods in the state folder whose emulator process has died
   * (a crash, say). Off by default: it also removes pods a closed runtime kept.
   */
  reapOrphans?: boolean;
  /**
   * podman's helper_binaries_dir (where it looks for catatonit and the like before
   * PATH). Default podman's own list; the preflight tests point it at an empty folder.
   */
  helperBinariesDir?: string[];
  /** Optional logger for runtime trouble (never receives secret values). */
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

const LABEL_INSTANCE = 'aci-emulator.instance';
const LABEL_GROUP = 'aci-emulator.group';
const LABEL_CONTAINER = 'aci-emulator.container';
const LABEL_KIND = 'aci-emulator.kind';
const LABEL_OWNER = 'aci-emulator.owner';
/** How long a died event may trail `podman ps` before ps alone decides a restart. */
const MISSED_EVENT_MS = 5000;

type Phase = 'provisioning' | 'init' | 'running' | 'stopped' | 'failed';

interface ContainerRecord {
  spec: RuntimeContainerSpec;
  kind: 'init' | 'app';
  ctrName: string;
  /** podman's id, once created: events of an earlier container by the same name are not ours. */
  ctrId?: string;
  current: RuntimeContainerState;
  previous?: RuntimeContainerState;
  /** podman `start` events seen for this container: restartCount is one less. */
  starts: number;
  ready?: boolean;
  events: EventLog;
  /** Between a back-off's `podman start` and the refresh after it: ps may still show the old run. */
  restarting?: boolean;
  /** Time of the last `start` event, to the nanosecond podman reports. */
  lastStartAt?: Date;
  /** lastStartAt of the run whose end was handled: each run's end is handled once. */
  handledRunOf?: Date;
  /** Set when `podman start` itself failed: podman leaves the container "created". */
  startFailure?: { at: Date; exitCode: number };
  restartTimer?: NodeJS.Timeout;
  backoffMs: number;
  probes: ProbeRunner[];
  probesForRun?: number;
}

interface GroupRecord {
  spec: RuntimeGroupSpec;
  onChange: () => void;
  key: string;
  podName: string;
  dir: string;
  ip?: string;
  phase: Phase;
  /** Bumped by stop, restart and remove so that running async chains give up. */
  generation: number;
  init: ContainerRecord[];
  app: ContainerRecord[];
  events: EventLog;
  probePorts: Map<number, { host: string; port: number }>;
  signature: string;
  /** Mutating operations on the group run one after another, in call order. */
  lock: Promise<void>;
}

/** Thrown inside provisioning when the group was stopped, removed or re-provisioned meanwhile. */
class ProvisionCanceled extends Error {
  override readonly name = 'ProvisionCanceled';
}

/** ps -a --format json, the fields used. */
interface PsEntry {
  Id: string;
  Names?: string[];
  State: string;
  ExitCode?: number;
  StartedAt?: number;
  ExitedAt?: number;
  Labels?: Record<string, string> | null;
  IsInfra?: boolean;
}

interface PodmanEventLine {
  Name?: string;
  Status?: string;
  Type?: string;
  Time?: string;
  ID?: string;
  ContainerExitCode?: number;
}

function unixToDate(seconds: number | undefined): Date | undefined {
  // podman reports the zero time.Time as -62135596800.
  return seconds !== undefined && seconds > 0 ? new Date(seconds * 1000) : undefined;
}

function sanitize(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'group';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function startFailureExitCode(message: string): number {
  if (/not found|no such file/i.test(message)) return 127;
  if (/permission denied/i.test(message)) return 126;
  return 128;
}

export class PodmanRuntime implements ContainerGroupRuntime {
  readonly kind = 'podman' as const;
  readonly instanceId: string;
  readonly cli: PodmanCli;
  readonly layout: PodmanLayout;
  private readonly pool: LoopbackIpPool;
  private readonly groups = new Map<string, GroupRecord>();
  private readonly byCtrName = new Map<string, { group: GroupRecord; record: ContainerRecord }>();
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly opts: PodmanRuntimeOptions;
  private readonly startedAt = new Date();
  private eventsChild: ChildProcess | undefined;
  private lastEventTime: string | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshPending: Promise<void> | undefined;
  private refreshChain: Promise<void> = Promise.resolve();
  private debounce: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly seenEvents = new Set<string>();
  private creations = 0;
  private readonly owner = ownerToken();
  /** Settles when start-up chores (reaping orphans) are done; create waits for it. */
  private readonly ready: Promise<void>;

  constructor(opts: PodmanRuntimeOptions) {
    this.opts = opts;
    this.instanceId = opts.instanceId ?? randomUUID();
    const setup = preparePodman({
      stateDir: opts.stateDir,
      binary: opts.podmanBinary,
      storageDriver: opts.storageDriver,
      helperBinariesDir: opts.helperBinariesDir,
    });
    this.cli = setup.cli;
    this.layout = setup.layout;
    this.pool = new LoopbackIpPool(opts.ipPool ?? '127.20.0.0/16', opts.ipLeaseDir);
    this.backoff = opts.restartBackoff ?? { initialMs: 10_000, maxMs: 300_000 };
    this.watchEvents();
    this.refreshTimer = setInterval(() => this.requestRefresh(), opts.refreshIntervalMs ?? 5000);
    this.refreshTimer.unref();
    this.ready = opts.reapOrphans ? this.reapOrphans() : Promise.resolve();
  }

  // ---- public interface ----

  async create(spec: RuntimeGroupSpec, onChange: () => void): Promise<void> {
    this.assertOpen();
    if (spec.osType !== 'Linux') {
      throw new RuntimeProvisionError('OsTypeNotSupported', `container group '${spec.name}': the podman runtime runs Linux containers only`);
    }
    await this.ready;
    const existing = this.groups.get(spec.id);
    if (existing) await this.remove(spec.id);
    // Unique per creation: a group deleted and created again at once must not share
    // a pod name with the old pod that is still being removed.
    this.creations += 1;
    const key = createHash('sha256').update(`${this.instanceId}\n${spec.id}\n${this.creations}`).digest('hex').slice(0, 12);
    const rec: GroupRecord = {
      spec,
      onChange,
      key,
      podName: `aci-${sanitize(spec.name)}-${key}`,
      dir: join(this.layout.groupsDir, key),
      phase: 'provisioning',
      generation: 0,
      init: [],
      app: [],
      events: new EventLog(),
      probePorts: new Map(),
      signature: '',
      lock: Promise.resolve(),
    };
    this.groups.set(spec.id, rec);
    await this.serial(rec, () => this.provision(rec, rec.generation));
  }

  /**
   * Proves this machine can run a group: builds the local image, then creates a pod and
   * runs the image in it. Rejects with PodmanPreflightError naming the fix.
   */
  async preflight(): Promise<void> {
    this.assertOpen();
    let image: string;
    try {
      image = await busyboxImage(this.cli);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      throw new PodmanPreflightError('build the local image', message.split('\n')[0] ?? message, diagnose(message));
    }
    const ms = await preflightPodman(this.cli, { image, label: `${LABEL_INSTANCE}=${this.instanceId}` });
    this.opts.log?.('podman preflight passed', { ms });
  }

  view(id: string): RuntimeGroupView | undefined {
    const rec = this.groups.get(id);
    return rec ? this.viewOf(rec) : undefined;
  }

  async stop(id: string): Promise<void> {
    const rec = this.groups.get(id);
    if (!rec) return;
    this.quiesce(rec);
    await this.serial(rec, async () => {
      // The cached states can lag podman's events by a refresh period; read them now, so
      // every container that is really running gets its Killing event.
      await this.refresh();
      rec.phase = 'stopped';
      for (const c of [...rec.init, ...rec.app]) {
        if (c.current.state === 'Running') c.events.add('Killing', 'Normal', `Killing container with id ${c.ctrId?.slice(0, 12) ?? c.ctrName}.`);
      }
      await this.cli.run(['pod', 'stop', '--ignore', '-t', String(this.opts.stopTimeoutSeconds ?? 10), rec.podName]);
      for (const c of [...rec.init, ...rec.app]) c.ready = c.spec.readinessProbe ? false : undefined;
      await this.refresh();
      this.notify(rec, true);
    });
  }

  async start(id: string): Promise<void> {
    const rec = this.groups.get(id);
    if (!rec) throw new Error(`container group ${id} is not known to the podman runtime`);
    await this.reprovision(rec);
  }

  async restart(id: string): Promise<void> {
    const rec = this.groups.get(id);
    if (!rec) throw new Error(`container group ${id} is not known to the podman runtime`);
    await this.reprovision(rec);
  }

  async remove(id: string): Promise<void> {
    const rec = this.groups.get(id);
    if (!rec) return;
    this.quiesce(rec);
    // Gone from view at once; the podman side follows any operation still in flight.
    if (this.groups.get(id) === rec) this.groups.delete(id);
    await this.serial(rec, async () => {
      await this.removePod(rec);
      this.forgetContainers(rec);
      rmSync(rec.dir, { recursive: true, force: true });
      if (rec.ip) this.pool.release(rec.ip);
    });
  }

  async logs(id: string, container: string, opts: { tail?: number; timestamps?: boolean }): Promise<string> {
    const { record } = this.containerOf(id, container);
    if (!record.ctrId) return ''; // never created (provisioning failed before it)
    return containerLogs(this.cli, record.ctrName, opts);
  }

  async exec(id: string, container: string, command: string[], terminal: { cols: number; rows: number }): Promise<ExecSession> {
    const { record } = this.containerOf(id, container);
    if (command.length === 0) throw new Error('exec needs a command');
    const tty = terminal.cols > 0 && terminal.rows > 0;
    if (!tty) {
      return sessionFromChild(this.cli.spawn(['exec', '-i', record.ctrName, ...command]), { tty: false });
    }
    // podman needs a terminal on its own stdin to give the container one: see exec-session.ts.
    const podmanArgs = [this.cli.config.binary, ...this.cli.globalArgs(), 'exec', '-it', '-e', 'TERM=xterm', record.ctrName, ...command];
    const script = `stty cols ${Math.floor(terminal.cols)} rows ${Math.floor(terminal.rows)} 2>/dev/null; exec ${podmanArgs.map(shellQuote).join(' ')}`;
    const child = spawn('script', ['-q', '-f', '-e', '-c', script, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: this.cli.env(),
    });
    return sessionFromChild(child, { tty: true });
  }

  async attach(id: string, container: string): Promise<ExecSession> {
    const { record } = this.containerOf(id, container);
    const child = this.cli.spawn(['attach', '--no-stdin', '--sig-proxy=false', record.ctrName]);
    return sessionFromChild(child, { tty: false });
  }

  async close(opts: { keep?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.debounce) clearTimeout(this.debounce);
    this.eventsChild?.kill('SIGTERM');
    for (const rec of this.groups.values()) this.quiesce(rec);
    // In-flight provisioning notices the close at its next step and undoes itself.
    await Promise.all([...this.groups.values()].map((g) => g.lock));
    if (!opts.keep) {
      // podman removes the pods of one call one by one; a few calls side by side go faster.
      const pods = [...this.groups.values()].map((g) => g.podName);
      const batches = Array.from({ length: Math.min(4, pods.length) }, (_, i) => pods.filter((_p, j) => j % 4 === i));
      await Promise.all(batches.map((b) => this.cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', ...b])));
      // Anything else carrying our label (a pod whose create half failed, say).
      const stray = await this.cli.exec(['ps', '-a', '-q', '--filter', `label=${LABEL_INSTANCE}=${this.instanceId}`]);
      const ids = stray.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
      if (ids.length) await this.cli.exec(['rm', '--force', '--ignore', '-t', '0', ...ids]);
      const strayPods = await this.cli.exec(['pod', 'ps', '-q', '--filter', `label=${LABEL_INSTANCE}=${this.instanceId}`]);
      const podIds = strayPods.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
      if (podIds.length) await this.cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', ...podIds]);
      for (const rec of this.groups.values()) rmSync(rec.dir, { recursive: true, force: true });
      this.pool.releaseAll();
      this.groups.clear();
      this.byCtrName.clear();
    }
  }

  /** Removes pods whose owning emulator process is gone; failures only get logged. */
  private async reapOrphans(): Promise<void> {
    try {
      const out = await this.cli.run(['pod', 'ps', '--format', 'json', '--filter', `label=${LABEL_INSTANCE}`]);
      const pods = JSON.parse(out || '[]') as { Id: string; Labels?: Record<string, string> | null }[];
      const dead = pods.filter((p) => {
        const owner = p.Labels?.[LABEL_OWNER];
        return owner !== undefined && !ownerAlive(owner);
      });
      if (dead.length) {
        this.opts.log?.('removing pods of emulators that are gone', { count: dead.length });
        await this.cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', ...dead.map((p) => p.Id)]);
        for (const p of dead) {
          const key = p.Labels?.[LABEL_GROUP];
          if (key && /^[0-9a-f]{12}$/.test(key)) rmSync(join(this.layout.groupsDir, key), { recursive: true, force: true });
        }
      }
    } catch (e) {
      this.opts.log?.('reaping orphaned pods failed', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  // ---- provisioning ----

  /** Runs `fn` after every earlier mutating operation on the group has settled. */
  private serial(rec: GroupRecord, fn: () => Promise<void>): Promise<void> {
    const run = rec.lock.then(fn);
    rec.lock = run.catch(() => undefined);
    return run;
  }

  /** Must run under the group's lock (see serial). */
  private async provision(rec: GroupRecord, gen: number): Promise<void> {
    const alive = () => {
      if (gen !== rec.generation || this.closed) throw new ProvisionCanceled();
    };
    rec.phase = 'provisioning';
    rec.init = rec.spec.initContainers.map((c) => this.newContainer(rec, c, 'init'));
    rec.app = rec.spec.containers.map((c) => this.newContainer(rec, c, 'app'));
    try {
      alive();
      await this.pullImages(rec);
      alive();
      // Volumes start fresh on each provisioning, as a re-created ACI group's do.
      rmSync(join(rec.dir, 'volumes'), { recursive: true, force: true });
      const volumes = await prepareVolumes(rec.dir, this.layout.fileSharesDir, rec.spec.volumes);
      alive();
      await this.createPod(rec);
      alive();
      for (const c of [...rec.init, ...rec.app]) await this.createContainer(rec, c, volumes);
      alive();
      if (rec.init.length) {
        rec.phase = 'init';
        void this.runInitContainers(rec, gen);
      } else {
        rec.phase = 'running';
        await this.startApps(rec, rec.app);
      }
      this.requestRefresh();
      this.notify(rec, true);
    } catch (e) {
      await this.removePod(rec).catch(() => undefined);
      // Whoever canceled (stop, restart, remove, close) owns the group now.
      if (e instanceof ProvisionCanceled || gen !== rec.generation || this.closed) return;
      rec.phase = 'failed';
      this.quiesce(rec, false);
      if (e instanceof RuntimeProvisionError) {
        if (e.code === 'FailedMount') rec.events.add('FailedMount', 'Warning', e.message);
        this.notify(rec, true);
        throw e;
      }
      const message = e instanceof Error ? e.message : String(e);
      // What a kubelet reports when the runtime cannot create a container: the container
      // waits with CreateContainerError and says why (an event alone is easy to miss).
      for (const c of [...rec.init, ...rec.app]) {
        if (c.current.state !== 'Waiting' || c.current.detailStatus) continue;
        c.current = { state: 'Waiting', detailStatus: 'CreateContainerError' };
        c.events.add('Failed', 'Warning', `Error: ${message}`);
      }
      rec.events.add('Failed', 'Warning', message);
      this.notify(rec, true);
      throw new RuntimeProvisionError('ContainerGroupDeploymentFailed', `container group '${rec.spec.name}' could not be deployed: ${message}`);
    }
  }

  private async reprovision(rec: GroupRecord): Promise<void> {
    this.quiesce(rec);
    const gen = rec.generation;
    await this.serial(rec, async () => {
      if (gen !== rec.generation) return; // a later stop, restart or remove wins
      await this.removePod(rec);
      this.forgetContainers(rec);
      await this.provision(rec, gen);
    });
  }

  private newContainer(rec: GroupRecord, spec: RuntimeContainerSpec, kind: 'init' | 'app'): ContainerRecord {
    const record: ContainerRecord = {
      spec,
      kind,
      ctrName: `${rec.podName}-${kind === 'init' ? 'init-' : ''}${spec.name}`,
      current: { state: 'Waiting' },
      starts: 0,
      ready: spec.readinessProbe ? false : undefined,
      events: new EventLog(),
      backoffMs: this.backoff.initialMs,
      probes: [],
    };
    this.byCtrName.set(record.ctrName, { group: rec, record });
    return record;
  }

  private async pullImages(rec: GroupRecord): Promise<void> {
    const all = [...rec.init, ...rec.app];
    // Every distinct image is fetched side by side; results are reported per container.
    const pulled = new Map<string, Promise<string | undefined>>();
    for (const c of all) {
      c.events.add('Pulling', 'Normal', `pulling image "${c.spec.image}"`);
      if (!pulled.has(c.spec.image)) pulled.set(c.spec.image, this.ensureImage(c.spec.image).catch((e: unknown) => (e instanceof Error ? e.message : String(e))));
    }
    for (const c of all) {
      const image = c.spec.image;
      const failure = await pulled.get(image);
      if (failure !== undefined) {
        c.events.add('Failed', 'Warning', `Failed to pull image "${image}": ${failure}`);
        c.current = { state: 'Waiting', detailStatus: 'ErrImagePull' };
        throw new RuntimeProvisionError(
          'InaccessibleImage',
          `The image '${image}' in container group '${rec.spec.name}' is not accessible. Please check the image and registry credential.`,
        );
      }
      c.events.add('Pulled', 'Normal', `Successfully pulled image "${image}"`);
    }
  }

  /** Resolves undefined when the image is present (pulled if need be), else the reason. */
  private async ensureImage(image: string): Promise<string | undefined> {
    const exists = await this.cli.exec(['image', 'exists', image]);
    if (exists.code === 0) return undefined;
    const pull = await this.cli.exec(['pull', '--quiet', image], { timeoutMs: this.opts.pullTimeoutMs ?? 600_000 });
    if (pull.code === 0) return undefined;
    const lines = pull.stderr.trim().split('\n');
    return lines[lines.length - 1]?.replace(/^Error:\s*/, '') || `podman pull exited with ${pull.code}`;
  }

  private async createPod(rec: GroupRecord): Promise<void> {
    const groupPorts = rec.spec.ipAddress?.ports ?? [];
    const groupTcp = new Set(groupPorts.filter((p) => p.protocol === 'TCP').map((p) => p.port));
    // httpGet probes reach ports the group does not publish through 127.0.0.1:<random>.
    const probePorts = new Set<number>();
    for (const c of [...rec.init, ...rec.app]) {
      for (const probe of [c.spec.livenessProbe, c.spec.readinessProbe]) {
        if (probe?.httpGet && !groupTcp.has(probe.httpGet.port)) probePorts.add(probe.httpGet.port);
      }
    }
    const unusable = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      const ip = rec.ip ?? (rec.spec.ipAddress ? this.pool.allocate(unusable) : undefined);
      rec.ip = ip;
      const args = [
        'pod', 'create',
        '--name', rec.podName,
        '--label', `${LABEL_INSTANCE}=${this.instanceId}`,
        '--label', `${LABEL_GROUP}=${rec.key}`,
        '--label', `${LABEL_OWNER}=${this.owner}`,
        '--hostname', sanitize(rec.spec.name),
        // A private user-mode network per group: no shared bridge or iptables state
        // that two emulators (or other podman users) could collide on.
        '--network', 'slirp4netns:port_handler=slirp4netns',
      ];
      if (ip) for (const p of groupPorts) args.push('--publish', `${ip}:${p.port}:${p.port}/${p.protocol.toLowerCase()}`);
      for (const p of probePorts) args.push('--publish', `127.0.0.1::${p}/tcp`);
      await this.cli.run(args);
      // Starting the infra container binds the published ports, so a taken address shows now.
      const started = await this.cli.exec(['pod', 'start', rec.podName]);
      if (started.code === 0) break;
      await this.cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', rec.podName]);
      if (ip && /address already in use/i.test(started.stderr) && attempt < 5) {
        unusable.add(ip);
        this.pool.release(ip);
        rec.ip = undefined;
        continue;
      }
      throw new PodmanError(['pod', 'start', rec.podName], started.code, started.stderr);
    }
    rec.probePorts.clear();
    for (const p of groupTcp) if (rec.ip) rec.probePorts.set(p, { host: rec.ip, port: p });
    if (probePorts.size) {
      const out = await this.cli.run(['pod', 'inspect', rec.podName, '--format', '{{json .InfraConfig.PortBindings}}']);
      const bindings = JSON.parse(out) as Record<string, { HostIp: string; HostPort: string }[] | null>;
      for (const p of probePorts) {
        const b = bindings[`${p}/tcp`]?.[0];
        if (b) rec.probePorts.set(p, { host: b.HostIp || '127.0.0.1', port: Number(b.HostPort) });
      }
    }
  }

  private async createContainer(rec: GroupRecord, c: ContainerRecord, volumes: Map<string, { hostPath: string; readOnly: boolean }>): Promise<void> {
    const s = c.spec;
    const cpus = s.limits?.cpu ?? s.cpu;
    const memGb = s.limits?.memoryInGB ?? s.memoryInGB;
    const args = [
      'create',
      '--pod', rec.podName,
      '--name', c.ctrName,
      '--label', `${LABEL_INSTANCE}=${this.instanceId}`,
      '--label', `${LABEL_GROUP}=${rec.key}`,
      '--label', `${LABEL_CONTAINER}=${s.name}`,
      '--label', `${LABEL_KIND}=${c.kind}`,
      '--restart', 'no',
    ];
    if (cpus > 0) args.push('--cpus', String(cpus));
    if (memGb > 0) args.push('--memory', `${Math.max(6, Math.round(memGb * 1024))}m`);
    if (s.limits?.memoryInGB !== undefined && s.memoryInGB > 0 && s.memoryInGB < s.limits.memoryInGB) {
      args.push('--memory-reservation', `${Math.max(6, Math.round(s.memoryInGB * 1024))}m`);
    }
    nestedMountPoints(s.volumeMounts, volumes);
    for (const m of s.volumeMounts) {
      const v = volumes.get(m.name);
      if (!v) throw new RuntimeProvisionError('InvalidVolumeMount', `container '${s.name}' mounts unknown volume '${m.name}'`);
      args.push('--volume', `${v.hostPath}:${m.mountPath}:${m.readOnly || v.readOnly ? 'ro' : 'rw'}`);
    }
    // Env values (secure ones included) go through a private file or podman's own
    // environment, never the command line, where `ps` would show them.
    const passEnv: Record<string, string> = {};
    const fileLines: string[] = [];
    for (const e of s.env) {
      if (/[\r\n]/.test(e.value) || /^\s/.test(e.value)) {
        passEnv[e.name] = e.value;
        args.push('--env', e.name);
      } else {
        fileLines.push(`${e.name}=${e.value}`);
      }
    }
    let envFile: string | undefined;
    if (fileLines.length) {
      mkdirSync(join(rec.dir, 'env'), { recursive: true, mode: 0o700 });
      envFile = join(rec.dir, 'env', `${c.ctrName}.env`);
      writeFileSync(envFile, `${fileLines.join('\n')}\n`, { mode: 0o600 });
      args.push('--env-file', envFile);
    }
    args.push(...(await securityFlags(this.cli, s.image, c.ctrName, s.security, join(rec.dir, 'seccomp'))));
    // ACI's command is the whole argv: it replaces the image's entrypoint and its cmd.
    if (s.command?.length) args.push('--entrypoint', JSON.stringify(s.command));
    args.push(s.image);
    try {
      c.ctrId = (await this.cli.run(args, { env: passEnv })).trim().split('\n').pop();
    } finally {
      if (envFile) {
        try {
          unlinkSync(envFile);
        } catch {
          // already gone
        }
      }
    }
  }

  private async startApps(rec: GroupRecord, containers: ContainerRecord[]): Promise<void> {
    for (const c of containers) await this.startContainer(rec, c);
  }

  private async startContainer(rec: GroupRecord, c: ContainerRecord): Promise<boolean> {
    const r = await this.cli.exec(['start', c.ctrName]);
    if (r.code === 0) {
      c.startFailure = undefined;
      return true;
    }
    const message = r.stderr.trim().replace(/^Error:\s*/, '');
    c.events.add('Failed', 'Warning', `Error: failed to start container "${c.spec.name}": ${message}`);
    const at = new Date();
    c.startFailure = { at, exitCode: startFailureExitCode(message) };
    c.current = { state: 'Terminated', startTime: at, finishTime: at, exitCode: c.startFailure.exitCode, detailStatus: 'Error' };
    if (c.kind === 'app') this.exited(rec, c, c.startFailure.exitCode, at);
    this.requestRefresh();
    this.notify(rec);
    return false;
  }

  private async runInitContainers(rec: GroupRecord, gen: number): Promise<void> {
    try {
      for (const c of rec.init) {
        let backoff = this.backoff.initialMs;
        for (;;) {
          if (gen !== rec.generation || this.closed) return;
          let code: number;
          if (await this.startContainer(rec, c)) {
            const waited = await this.cli.exec(['wait', c.ctrName], { timeoutMs: 0 });
            code = waited.code === 0 ? Number(waited.stdout.trim()) : 1;
          } else {
            code = c.startFailure?.exitCode ?? 128;
          }
          if (gen !== rec.generation || this.closed) return;
          await this.refresh();
          if (code === 0) break;
          if (rec.spec.restartPolicy === 'Never') {
            rec.phase = 'failed';
            this.notify(rec, true);
            return;
          }
          c.previous = c.current;
          c.current = { state: 'Waiting', detailStatus: 'CrashLoopBackOff' };
          this.notify(rec);
          await sleep(backoff);
          backoff = Math.min(backoff * 2, this.backoff.maxMs);
        }
      }
      if (gen !== rec.generation || this.closed) return;
      rec.phase = 'running';
      await this.startApps(rec, rec.app);
      this.requestRefresh();
      this.notify(rec, true);
    } catch (e) {
      this.opts.log?.('init containers failed', { group: rec.spec.id, error: e instanceof Error ? e.message : String(e) });
      if (gen === rec.generation) {
        rec.phase = 'failed';
        this.notify(rec, true);
      }
    }
  }

  // ---- supervision ----

  /** Stops timers and probes of a group and makes its running async chains give up. */
  private quiesce(rec: GroupRecord, bump = true): void {
    if (bump) rec.generation += 1;
    for (const c of [...rec.init, ...rec.app]) {
      if (c.restartTimer) clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      for (const p of c.probes) p.stop();
      c.probes = [];
      c.probesForRun = undefined;
    }
  }

  private forgetContainers(rec: GroupRecord): void {
    for (const c of [...rec.init, ...rec.app]) {
      if (this.byCtrName.get(c.ctrName)?.group === rec) this.byCtrName.delete(c.ctrName);
    }
  }

  private async removePod(rec: GroupRecord): Promise<void> {
    await this.cli.run(['pod', 'rm', '--force', '--ignore', '-t', '0', rec.podName]);
  }

  private shouldRestart(policy: RuntimeGroupSpec['restartPolicy'], exitCode: number): boolean {
    return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
  }

  /**
   * Applies one container's podman state (from ps) to its record, for display.
   * Restarts are decided on `died` events (see exited), which name each run's end
   * exactly; ps times have whole-second resolution and cannot tell two quick runs apart.
   */
  private apply(rec: GroupRecord, c: ContainerRecord, ps: PsEntry | undefined): void {
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
      c.current = { state: 'Terminated', startTime, finishTime, exitCode, detailStatus: exitCode === 0 ? 'Completed' : 'Error' };
      // Safety net for a died event that never came (its watcher restarted, say): an
      // exit seconds old and still unhandled is handled from ps.
      if (finishTime && Date.now() - finishTime.getTime() > MISSED_EVENT_MS && c.lastStartAt && c.handledRunOf !== c.lastStartAt) {
        this.exited(rec, c, exitCode, new Date(Math.max(finishTime.getTime(), c.lastStartAt.getTime())));
      }
      return;
    }
    if (ps.State === 'created' || ps.State === 'configured' || ps.State === 'initialized') {
      if (c.current.state !== 'Waiting') c.current = { state: 'Waiting' };
    }
  }

  /** One run of an app container ended (a `died` event, or a failed start): restart it if the policy says so. */
  private exited(rec: GroupRecord, c: ContainerRecord, exitCode: number, at: Date): void {
    if (c.kind !== 'app' || rec.phase !== 'running' || c.restartTimer || c.restarting || this.closed) return;
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
    if (!this.shouldRestart(rec.spec.restartPolicy, exitCode)) {
      this.notify(rec);
      return;
    }
    // Crash-loop back-off; a run that lasted long resets it, as the kubelet does.
    const ranMs = state.startTime ? at.getTime() - state.startTime.getTime() : 0;
    if (ranMs > 10 * 60_000) c.backoffMs = this.backoff.initialMs;
    const delay = c.backoffMs;
    c.backoffMs = Math.min(c.backoffMs * 2, this.backoff.maxMs);
    c.previous = state;
    c.current = { state: 'Waiting', detailStatus: 'CrashLoopBackOff' };
    const gen = rec.generation;
    c.restartTimer = setTimeout(() => {
      c.restartTimer = undefined;
      if (gen !== rec.generation || this.closed) return;
      c.restarting = true;
      void this.startContainer(rec, c)
        .then(() => this.refresh())
        .catch((e: unknown) => this.opts.log?.('restart failed', { container: c.ctrName, error: e instanceof Error ? e.message : String(e) }))
        .finally(() => {
          c.restarting = false;
          this.requestRefresh();
        });
    }, delay);
    this.notify(rec);
  }

  private ensureProbes(rec: GroupRecord, c: ContainerRecord, run: number): void {
    if (c.probesForRun === run) return;
    this.stopProbes(c);
    c.probesForRun = run;
    const target = {
      cli: this.cli,
      container: c.ctrName,
      hostPortFor: (port: number) => rec.probePorts.get(port),
    };
    if (c.spec.readinessProbe) {
      const p = new ProbeRunner(c.spec.readinessProbe, target, (ok) => {
        c.ready = ok;
        if (!ok) c.events.add('Unhealthy', 'Warning', 'Readiness probe failed');
        this.notify(rec);
      });
      c.probes.push(p);
      p.start();
    }
    if (c.spec.livenessProbe) {
      const p = new ProbeRunner(c.spec.livenessProbe, target, (ok) => {
        if (ok) return;
        c.events.add('Unhealthy', 'Warning', 'Liveness probe failed');
        c.events.add('Killing', 'Normal', `Killing container with id ${c.ctrName}: liveness probe failed`);
        this.notify(rec);
        void this.cli.exec(['stop', '-t', String(this.opts.stopTimeoutSeconds ?? 10), c.ctrName]).then(() => this.requestRefresh());
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

  // ---- state cache ----

  private requestRefresh(): void {
    if (this.closed) return;
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.refresh().catch((e: unknown) => this.opts.log?.('refresh failed', { error: e instanceof Error ? e.message : String(e) }));
    }, 50);
  }

  /**
   * One `podman ps -a` for all of this runtime's containers. Calls are serialized;
   * a call made while one runs gets the next one, which sees its cause.
   */
  private refresh(): Promise<void> {
    if (this.refreshPending) return this.refreshPending;
    const next = this.refreshChain.then(() => {
      this.refreshPending = undefined;
      return this.refreshNow();
    });
    this.refreshPending = next;
    this.refreshChain = next.catch(() => undefined);
    return next;
  }

  private async refreshNow(): Promise<void> {
    if (this.groups.size === 0 || this.closed) return;
    const out = await this.cli.run(['ps', '-a', '--format', 'json', '--filter', `label=${LABEL_INSTANCE}=${this.instanceId}`]);
    const entries = JSON.parse(out || '[]') as PsEntry[];
    const byName = new Map<string, PsEntry>();
    for (const e of entries) for (const n of e.Names ?? []) byName.set(n, e);
    for (const rec of this.groups.values()) {
      for (const c of [...rec.init, ...rec.app]) {
        const ps = byName.get(c.ctrName);
        this.apply(rec, c, ps && (!c.ctrId || ps.Id === c.ctrId) ? ps : undefined);
      }
      this.notify(rec);
    }
  }

  private watchEvents(): void {
    if (this.closed) return;
    const since = this.lastEventTime ?? this.startedAt.toISOString();
    const child = this.cli.spawn(['events', '--format', 'json', '--since', since, '--filter', `label=${LABEL_INSTANCE}=${this.instanceId}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.eventsChild = child;
    child.stderr?.resume();
    const lines = createInterface({ input: child.stdout! });
    const seen = this.seenEvents;
    lines.on('line', (line) => {
      let ev: PodmanEventLine;
      try {
        ev = JSON.parse(line) as PodmanEventLine;
      } catch {
        return;
      }
      if (ev.Type !== 'container' || !ev.Name) return;
      // A restarted watcher replays from the last time it saw: skip what it already counted.
      const id = `${ev.ID}|${ev.Status}|${ev.Time}`;
      if (seen.has(id)) return;
      seen.add(id);
      if (seen.size > 10_000) seen.clear();
      if (ev.Time) this.lastEventTime = ev.Time;
      const hit = this.byCtrName.get(ev.Name);
      if (hit && hit.record.ctrId === ev.ID) {
        if (ev.Status === 'start') {
          hit.record.starts += 1;
          const at = ev.Time ? new Date(ev.Time) : undefined;
          if (at && !Number.isNaN(at.getTime())) hit.record.lastStartAt = at;
          hit.record.events.add('Started', 'Normal', 'Started container');
        } else if (ev.Status === 'died') {
          const at = ev.Time ? new Date(ev.Time) : new Date();
          this.exited(hit.group, hit.record, ev.ContainerExitCode ?? 0, Number.isNaN(at.getTime()) ? new Date() : at);
        }
      }
      this.requestRefresh();
    });
    child.on('close', () => {
      if (this.closed) return;
      this.opts.log?.('podman events watcher ended; restarting it');
      setTimeout(() => this.watchEvents(), 1000).unref();
    });
    child.on('error', (e) => this.opts.log?.('podman events failed', { error: e.message }));
  }

  // ---- views ----

  private containerOf(id: string, container: string): { group: GroupRecord; record: ContainerRecord } {
    const group = this.groups.get(id);
    if (!group) throw new Error(`container group ${id} is not known to the podman runtime`);
    const record = [...group.app, ...group.init].find((c) => c.spec.name === container);
    if (!record) throw new Error(`container group ${id} has no container '${container}'`);
    return { group, record };
  }

  private containerView(c: ContainerRecord): RuntimeContainerView {
    const v: RuntimeContainerView = {
      currentState: { ...c.current },
      restartCount: Math.max(0, c.starts - 1),
      events: c.events.list(),
    };
    if (c.previous) v.previousState = { ...c.previous };
    if (c.ready !== undefined) v.ready = c.ready;
    return v;
  }

  private groupState(rec: GroupRecord): RuntimeGroupState {
    switch (rec.phase) {
      case 'stopped':
        return 'Stopped';
      case 'failed':
        return 'Failed';
      case 'provisioning':
      case 'init':
        return 'Pending';
      case 'running': {
        if (rec.app.some((c) => c.current.state !== 'Terminated')) return 'Running';
        // An exit the policy restarts is not an end, even before its died event arrives.
        if (rec.app.some((c) => this.shouldRestart(rec.spec.restartPolicy, c.current.exitCode ?? 0))) return 'Running';
        return rec.app.every((c) => c.current.exitCode === 0) ? 'Succeeded' : 'Failed';
      }
    }
  }

  private viewOf(rec: GroupRecord): RuntimeGroupView {
    const v: RuntimeGroupView = {
      state: this.groupState(rec),
      initContainers: {},
      containers: {},
      events: rec.events.list(),
    };
    if (rec.ip) v.ip = rec.ip;
    for (const c of rec.init) v.initContainers[c.spec.name] = this.containerView(c);
    for (const c of rec.app) v.containers[c.spec.name] = this.containerView(c);
    return v;
  }

  /** Calls the group's onChange when its view changed (or always, when forced). */
  private notify(rec: GroupRecord, force = false): void {
    if (this.groups.get(rec.spec.id) !== rec) return;
    const signature = JSON.stringify(this.viewOf(rec));
    if (!force && signature === rec.signature) return;
    rec.signature = signature;
    try {
      rec.onChange();
    } catch (e) {
      this.opts.log?.('onChange threw', { error: e instanceof Error ? e.message : String(e) });
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the podman runtime is closed');
  }
}
