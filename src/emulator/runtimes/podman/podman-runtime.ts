/**
 * The podman runtime: each container group is a podman pod (one network namespace,
 * slirp4netns, ports published on the group's loopback IP) and each container a
 * real container in it.
 *
 * This file holds the runtime's interface and each group's life (create, stop, restart,
 * remove, one operation at a time). The jobs behind it live beside it:
 * - provisioning.ts: images, the pod with its IP and ports, the containers;
 * - supervision.ts: starting containers, restart policies with crash-loop back-off (podman's
 *   --restart has none), probes;
 * - state-cache.ts: one `podman ps -a` for all groups, triggered by `podman events` and a
 *   slow periodic safety net, so view() is cheap;
 * - views.ts: the view of a group from its records; records.ts: the records and labels.
 */
import { createHash, randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  RuntimeProvisionError,
  type ContainerGroupRuntime,
  type ContainerUsageSample,
  type ExecSession,
  type RuntimeContainerSpec,
  type RuntimeGroupSpec,
  type RuntimeGroupView,
} from '../../runtime.js';
import { EventLog } from './event-log.js';
import { sessionFromChild, shellQuote } from './exec-session.js';
import { LoopbackIpPool } from './ip-pool.js';
import { VnetSubnetPool } from './vnet.js';
import { ownerAlive, ownerToken } from './owner.js';
import { containerLogs } from './logs.js';
import type { PodmanCli } from './podman-cli.js';
import { busyboxImage } from './local-images.js';
import { diagnose, PodmanPreflightError, preflightPodman } from './preflight.js';
import { createContainer, createPod, pullImages, removePod, type ProvisionContext } from './provisioning.js';
import {
  LABEL_GROUP,
  LABEL_INSTANCE,
  LABEL_OWNER,
  ProvisionCanceled,
  sanitize,
  type ContainerRecord,
  type GroupRecord,
} from './records.js';
import { preparePodman, type PodmanLayout } from './setup.js';
import { PodmanStateCache } from './state-cache.js';
import { Supervisor } from './supervision.js';
import { viewOf } from './views.js';
import { prepareVolumes } from './volumes.js';
import { PodmanStats } from './stats.js';
import { errorMessage } from '../../../common/errors.js';

export interface PodmanRuntimeOptions {
  /** The emulator's folder for podman's storage, run state, events and volumes. */
  stateDir: string;
  /** Loopback range that group IPs come from. Default 127.20.0.0/16. */
  ipPool?: string;
  /** Where machine-wide IP leases live; default a folder in the OS temp dir. */
  ipLeaseDir?: string;
  /**
   * /30s for groups in a VNet (`ipAddress.type: Private`), each a veth pair into the pod's
   * own network namespace (vnet.ts). Must lie in 198.18.0.0/15; default 198.19.0.0/16.
   */
  vnetPool?: string;
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

export class PodmanRuntime implements ContainerGroupRuntime {
  readonly kind = 'podman' as const;
  readonly instanceId: string;
  readonly cli: PodmanCli;
  readonly layout: PodmanLayout;
  private readonly pool: LoopbackIpPool;
  private readonly vnetPool: VnetSubnetPool;
  private readonly groups = new Map<string, GroupRecord>();
  private podmanStats: PodmanStats | undefined;
  private readonly byCtrName = new Map<string, { group: GroupRecord; record: ContainerRecord }>();
  private readonly opts: PodmanRuntimeOptions;
  private readonly provisioning: ProvisionContext;
  private readonly sup: Supervisor;
  private readonly cache: PodmanStateCache;
  private closed = false;
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
    this.vnetPool = new VnetSubnetPool(opts.vnetPool ?? '198.19.0.0/16', opts.ipLeaseDir);
    this.provisioning = {
      cli: this.cli,
      pool: this.pool,
      vnetPool: this.vnetPool,
      instanceId: this.instanceId,
      owner: this.owner,
      pullTimeoutMs: opts.pullTimeoutMs ?? 600_000,
      tmpDir: this.layout.tmpdir,
    };
    this.cache = new PodmanStateCache({
      cli: this.cli,
      instanceId: this.instanceId,
      startedAt: new Date(),
      refreshIntervalMs: opts.refreshIntervalMs ?? 5000,
      log: opts.log,
      hasGroups: () => this.groups.size > 0,
      applyPs: (byName) => {
        for (const rec of this.groups.values()) {
          for (const c of [...rec.init, ...rec.app]) {
            const ps = byName.get(c.ctrName);
            this.sup.apply(rec, c, ps && (!c.ctrId || ps.Id === c.ctrId) ? ps : undefined);
          }
          this.notify(rec);
        }
      },
      onContainerEvent: (name, ev) => {
        const hit = this.byCtrName.get(name);
        if (hit && hit.record.ctrId === ev.ID && ev.Status)
          this.sup.onContainerEvent(hit.group, hit.record, ev.Status, ev.Time, ev.ContainerExitCode);
      },
    });
    this.sup = new Supervisor(
      {
        cli: this.cli,
        opts,
        closed: () => this.closed,
        refresh: () => this.cache.refresh(),
        requestRefresh: () => this.cache.requestRefresh(),
        notify: (rec, force) => this.notify(rec, force),
      },
      opts.restartBackoff ?? { initialMs: 10_000, maxMs: 300_000 },
    );
    this.cache.start();
    this.ready = opts.reapOrphans ? this.reapOrphans() : Promise.resolve();
  }

  // ---- public interface ----

  async create(spec: RuntimeGroupSpec, onChange: () => void): Promise<void> {
    this.assertOpen();
    if (spec.osType !== 'Linux') {
      throw new RuntimeProvisionError(
        'OsTypeNotSupported',
        `container group '${spec.name}': the podman runtime runs Linux containers only`,
      );
    }
    await this.ready;
    const existing = this.groups.get(spec.id);
    if (existing) await this.remove(spec.id);
    // Unique per creation: a group deleted and created again at once must not share
    // a pod name with the old pod that is still being removed.
    this.creations += 1;
    const key = createHash('sha256')
      .update(`${this.instanceId}\n${spec.id}\n${this.creations}`)
      .digest('hex')
      .slice(0, 12);
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
      const message = errorMessage(e);
      throw new PodmanPreflightError('build the local image', message.split('\n')[0] ?? message, diagnose(message));
    }
    const ms = await preflightPodman(this.cli, { image, label: `${LABEL_INSTANCE}=${this.instanceId}` });
    this.opts.log?.('podman preflight passed', { ms });
  }

  view(id: string): RuntimeGroupView | undefined {
    const rec = this.groups.get(id);
    return rec ? viewOf(rec) : undefined;
  }

  async stop(id: string): Promise<void> {
    const rec = this.groups.get(id);
    if (!rec) return;
    this.sup.quiesce(rec);
    await this.serial(rec, async () => {
      // The cached states can lag podman's events by a refresh period; read them now, so
      // every container that is really running gets its Killing event.
      await this.cache.refresh();
      rec.phase = 'stopped';
      for (const c of [...rec.init, ...rec.app]) {
        if (c.current.state === 'Running')
          c.events.add('Killing', 'Normal', `Killing container with id ${c.ctrId?.slice(0, 12) ?? c.ctrName}.`);
      }
      await this.cli.run(['pod', 'stop', '--ignore', '-t', String(this.opts.stopTimeoutSeconds ?? 10), rec.podName]);
      for (const c of [...rec.init, ...rec.app]) c.ready = c.spec.readinessProbe ? false : undefined;
      await this.cache.refresh();
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
    this.sup.quiesce(rec);
    // Gone from view at once; the podman side follows any operation still in flight.
    if (this.groups.get(id) === rec) this.groups.delete(id);
    await this.serial(rec, async () => {
      await removePod(this.cli, rec);
      this.forgetContainers(rec);
      rmSync(rec.dir, { recursive: true, force: true });
      if (rec.vnetSubnet) this.vnetPool.release(rec.vnetSubnet.hostAddress);
      else if (rec.ip) this.pool.release(rec.ip);
    });
  }

  /** Real figures from `podman stats` (stats.ts) for the group's running containers. */
  async usage(id: string): Promise<Record<string, ContainerUsageSample>> {
    const rec = this.groups.get(id);
    if (!rec) return {};
    const running = [...rec.init, ...rec.app].filter((c) => c.ctrId && c.current.state === 'Running');
    this.podmanStats ??= new PodmanStats(this.cli);
    const started = new Map(
      running.flatMap((c) => (c.current.startTime ? [[c.ctrName, c.current.startTime] as const] : [])),
    );
    const figures = await this.podmanStats.read(
      running.map((c) => c.ctrName),
      started,
    );
    const out: Record<string, ContainerUsageSample> = {};
    for (const c of running) {
      const f = figures.get(c.ctrName);
      if (f) out[c.spec.name] = f;
    }
    return out;
  }

  async logs(id: string, container: string, opts: { tail?: number; timestamps?: boolean }): Promise<string> {
    const { record } = this.containerOf(id, container);
    if (!record.ctrId) return ''; // never created (provisioning failed before it)
    return containerLogs(this.cli, record.ctrName, opts);
  }

  async exec(
    id: string,
    container: string,
    command: string[],
    terminal: { cols: number; rows: number },
  ): Promise<ExecSession> {
    const { record } = this.containerOf(id, container);
    if (command.length === 0) throw new Error('exec needs a command');
    const tty = terminal.cols > 0 && terminal.rows > 0;
    if (!tty) {
      return sessionFromChild(this.cli.spawn(['exec', '-i', record.ctrName, ...command]), { tty: false });
    }
    // podman needs a terminal on its own stdin to give the container one: see exec-session.ts.
    const podmanArgs = [
      this.cli.config.binary,
      ...this.cli.globalArgs(),
      'exec',
      '-it',
      '-e',
      'TERM=xterm',
      record.ctrName,
      ...command,
    ];
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
    this.cache.close();
    for (const rec of this.groups.values()) this.sup.quiesce(rec);
    // In-flight provisioning notices the close at its next step and undoes itself.
    await Promise.all([...this.groups.values()].map((g) => g.lock));
    if (!opts.keep) {
      // podman removes the pods of one call one by one; a few calls side by side go faster.
      const pods = [...this.groups.values()].map((g) => g.podName);
      const batches = Array.from({ length: Math.min(4, pods.length) }, (_, i) => pods.filter((_p, j) => j % 4 === i));
      await Promise.all(batches.map((b) => this.cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', ...b])));
      // Anything else carrying our label (a pod whose create half failed, say).
      const stray = await this.cli.exec(['ps', '-a', '-q', '--filter', `label=${LABEL_INSTANCE}=${this.instanceId}`]);
      const ids = stray.stdout
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
      if (ids.length) await this.cli.exec(['rm', '--force', '--ignore', '-t', '0', ...ids]);
      const strayPods = await this.cli.exec([
        'pod',
        'ps',
        '-q',
        '--filter',
        `label=${LABEL_INSTANCE}=${this.instanceId}`,
      ]);
      const podIds = strayPods.stdout
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
      if (podIds.length) await this.cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', ...podIds]);
      for (const rec of this.groups.values()) rmSync(rec.dir, { recursive: true, force: true });
      this.pool.releaseAll();
      this.vnetPool.releaseAll();
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
          if (key && /^[0-9a-f]{12}$/.test(key))
            rmSync(join(this.layout.groupsDir, key), { recursive: true, force: true });
        }
      }
    } catch (e) {
      this.opts.log?.('reaping orphaned pods failed', { error: errorMessage(e) });
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
      await pullImages(this.provisioning, rec);
      alive();
      // Volumes start fresh on each provisioning, as a re-created ACI group's do.
      rmSync(join(rec.dir, 'volumes'), { recursive: true, force: true });
      const volumes = await prepareVolumes(rec.dir, this.layout.fileSharesDir, rec.spec.volumes);
      alive();
      await createPod(this.provisioning, rec);
      alive();
      for (const c of [...rec.init, ...rec.app]) await createContainer(this.provisioning, rec, c, volumes);
      alive();
      if (rec.init.length) {
        rec.phase = 'init';
        void this.sup.runInitContainers(rec, gen);
      } else {
        rec.phase = 'running';
        await this.sup.startApps(rec, rec.app);
      }
      this.cache.requestRefresh();
      this.notify(rec, true);
    } catch (e) {
      await removePod(this.cli, rec).catch(() => undefined);
      // Whoever canceled (stop, restart, remove, close) owns the group now.
      if (e instanceof ProvisionCanceled || gen !== rec.generation || this.closed) return;
      rec.phase = 'failed';
      this.sup.quiesce(rec, false);
      if (e instanceof RuntimeProvisionError) {
        if (e.code === 'FailedMount') rec.events.add('FailedMount', 'Warning', e.message);
        this.notify(rec, true);
        throw e;
      }
      const message = errorMessage(e);
      // What a kubelet reports when the runtime cannot create a container: the container
      // waits with CreateContainerError and says why (an event alone is easy to miss).
      for (const c of [...rec.init, ...rec.app]) {
        if (c.current.state !== 'Waiting' || c.current.detailStatus) continue;
        c.current = { state: 'Waiting', detailStatus: 'CreateContainerError' };
        c.events.add('Failed', 'Warning', `Error: ${message}`);
      }
      rec.events.add('Failed', 'Warning', message);
      this.notify(rec, true);
      throw new RuntimeProvisionError(
        'ContainerGroupDeploymentFailed',
        `container group '${rec.spec.name}' could not be deployed: ${message}`,
      );
    }
  }

  private async reprovision(rec: GroupRecord): Promise<void> {
    this.sup.quiesce(rec);
    const gen = rec.generation;
    await this.serial(rec, async () => {
      if (gen !== rec.generation) return; // a later stop, restart or remove wins
      await removePod(this.cli, rec);
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
      crashLoops: 0,
      probes: [],
    };
    this.byCtrName.set(record.ctrName, { group: rec, record });
    return record;
  }

  private forgetContainers(rec: GroupRecord): void {
    for (const c of [...rec.init, ...rec.app]) {
      if (this.byCtrName.get(c.ctrName)?.group === rec) this.byCtrName.delete(c.ctrName);
    }
  }

  // ---- views ----

  private containerOf(id: string, container: string): { group: GroupRecord; record: ContainerRecord } {
    const group = this.groups.get(id);
    if (!group) throw new Error(`container group ${id} is not known to the podman runtime`);
    const record = [...group.app, ...group.init].find((c) => c.spec.name === container);
    if (!record) throw new Error(`container group ${id} has no container '${container}'`);
    return { group, record };
  }

  /** Calls the group's onChange when its view changed (or always, when forced). */
  private notify(rec: GroupRecord, force = false): void {
    if (this.groups.get(rec.spec.id) !== rec) return;
    const signature = JSON.stringify(viewOf(rec));
    if (!force && signature === rec.signature) return;
    rec.signature = signature;
    try {
      rec.onChange();
    } catch (e) {
      this.opts.log?.('onChange threw', { error: errorMessage(e) });
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the podman runtime is closed');
  }
}
