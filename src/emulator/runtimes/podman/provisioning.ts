/**
 * Provisioning a group on podman: images pulled (each distinct one once), the pod with its
 * loopback IP and published ports (or, in a VNet, its own address: vnet.ts), and one
 * container per spec, with env passed privately.
 */
import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeProvisionError } from '../../runtime.js';
import { errorMessage } from '../../../common/errors.js';
import type { LoopbackIpPool } from './ip-pool.js';
import { attachVnet, type VnetSubnetPool } from './vnet.js';
import { ensureImage } from './pull.js';
import { securityFlags } from './security.js';
import { nestedMountPoints } from './volumes.js';
import { PodmanError, type PodmanCli } from './podman-cli.js';
import {
  LABEL_CONTAINER,
  LABEL_GROUP,
  LABEL_INSTANCE,
  LABEL_KIND,
  LABEL_OWNER,
  sanitize,
  type ContainerRecord,
  type GroupRecord,
} from './records.js';

/** What provisioning needs of the runtime. */
export interface ProvisionContext {
  cli: PodmanCli;
  pool: LoopbackIpPool;
  /** /30s for groups in a VNet (`ipAddress.type: Private`). */
  vnetPool: VnetSubnetPool;
  instanceId: string;
  /** This emulator process's owner label (see owner.ts). */
  owner: string;
  /** Timeout of one image pull (ms). */
  pullTimeoutMs: number;
  /** Where a pull's private auth file is written. */
  tmpDir: string;
}

export async function pullImages(ctx: ProvisionContext, rec: GroupRecord): Promise<void> {
  const all = [...rec.init, ...rec.app];
  // Every distinct image is fetched side by side; results are reported per container.
  const pulled = new Map<string, Promise<string | undefined>>();
  for (const c of all) {
    c.events.add('Pulling', 'Normal', `pulling image "${c.spec.image}"`);
    if (!pulled.has(c.spec.image))
      pulled.set(
        c.spec.image,
        pullImage(ctx, c.spec.image, rec.spec.registryCredentials).catch((e: unknown) => errorMessage(e)),
      );
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

/** Resolves undefined when the image is present (pulled if need be), else the reason (pull.ts). */
function pullImage(
  ctx: ProvisionContext,
  image: string,
  credentials: GroupRecord['spec']['registryCredentials'],
): Promise<string | undefined> {
  return ensureImage(ctx.cli, image, { timeoutMs: ctx.pullTimeoutMs, credentials, tmpDir: ctx.tmpDir });
}

export async function createPod(ctx: ProvisionContext, rec: GroupRecord): Promise<void> {
  if (rec.spec.ipAddress?.type === 'Private') return createVnetPod(ctx, rec);
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
    const ip = rec.ip ?? (rec.spec.ipAddress ? ctx.pool.allocate(unusable) : undefined);
    rec.ip = ip;
    const args = [
      ...podCreateArgs(ctx, rec),
      // A private user-mode network per group: no shared bridge or iptables state
      // that two emulators (or other podman users) could collide on.
      '--network',
      'slirp4netns:port_handler=slirp4netns',
    ];
    if (ip) for (const p of groupPorts) args.push('--publish', `${ip}:${p.port}:${p.port}/${p.protocol.toLowerCase()}`);
    for (const p of probePorts) args.push('--publish', `127.0.0.1::${p}/tcp`);
    await ctx.cli.run(args);
    // Starting the infra container binds the published ports, so a taken address shows now.
    const started = await ctx.cli.exec(['pod', 'start', rec.podName]);
    if (started.code === 0) break;
    await ctx.cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', rec.podName]);
    if (ip && /address already in use/i.test(started.stderr) && attempt < 5) {
      unusable.add(ip);
      ctx.pool.release(ip);
      rec.ip = undefined;
      continue;
    }
    throw new PodmanError(['pod', 'start', rec.podName], started.code, started.stderr);
  }
  rec.probePorts.clear();
  for (const p of groupTcp) if (rec.ip) rec.probePorts.set(p, { host: rec.ip, port: p });
  if (probePorts.size) {
    const out = await ctx.cli.run(['pod', 'inspect', rec.podName, '--format', '{{json .InfraConfig.PortBindings}}']);
    const bindings = JSON.parse(out) as Record<string, { HostIp: string; HostPort: string }[] | null>;
    for (const p of probePorts) {
      const b = bindings[`${p}/tcp`]?.[0];
      if (b) rec.probePorts.set(p, { host: b.HostIp || '127.0.0.1', port: Number(b.HostPort) });
    }
  }
}

function podCreateArgs(ctx: ProvisionContext, rec: GroupRecord): string[] {
  return [
    'pod',
    'create',
    '--name',
    rec.podName,
    '--label',
    `${LABEL_INSTANCE}=${ctx.instanceId}`,
    '--label',
    `${LABEL_GROUP}=${rec.key}`,
    '--label',
    `${LABEL_OWNER}=${ctx.owner}`,
    '--hostname',
    sanitize(rec.spec.name),
  ];
}

/**
 * A group in a VNet: a pod with a network namespace of its own and no forwarder, joined to
 * the host by a veth pair (vnet.ts). Every port of the group IP is the containers' own: a
 * closed one refuses, as in ACI's VNet. The /30 stays the group's across re-provisioning.
 */
async function createVnetPod(ctx: ProvisionContext, rec: GroupRecord): Promise<void> {
  rec.vnetSubnet ??= await ctx.vnetPool.allocate();
  await ctx.cli.run([...podCreateArgs(ctx, rec), '--network', 'none']);
  try {
    await ctx.cli.run(['pod', 'start', rec.podName]);
    const infra = (await ctx.cli.run(['pod', 'inspect', rec.podName, '--format', '{{.InfraContainerID}}'])).trim();
    const pid = Number((await ctx.cli.run(['inspect', infra, '--format', '{{.State.Pid}}'])).trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`the infra container of pod ${rec.podName} has no process`);
    rec.vnet = await attachVnet(pid, rec.vnetSubnet, rec.vnet?.hostIf);
  } catch (e) {
    await ctx.cli.exec(['pod', 'rm', '--force', '--ignore', '-t', '0', rec.podName]);
    throw e;
  }
  rec.ip = rec.vnetSubnet.groupAddress;
  // The emulator's own httpGet probes dial the group IP as a kubelet in the VNet would.
  rec.probePorts.clear();
  for (const c of [...rec.init, ...rec.app]) {
    for (const probe of [c.spec.livenessProbe, c.spec.readinessProbe]) {
      if (probe?.httpGet) rec.probePorts.set(probe.httpGet.port, { host: rec.ip, port: probe.httpGet.port });
    }
  }
  for (const p of rec.spec.ipAddress?.ports ?? []) rec.probePorts.set(p.port, { host: rec.ip, port: p.port });
}

export async function createContainer(
  ctx: ProvisionContext,
  rec: GroupRecord,
  c: ContainerRecord,
  volumes: Map<string, { hostPath: string; readOnly: boolean }>,
): Promise<void> {
  const s = c.spec;
  const cpus = s.limits?.cpu ?? s.cpu;
  const memGb = s.limits?.memoryInGB ?? s.memoryInGB;
  const args = [
    'create',
    '--pod',
    rec.podName,
    '--name',
    c.ctrName,
    '--label',
    `${LABEL_INSTANCE}=${ctx.instanceId}`,
    '--label',
    `${LABEL_GROUP}=${rec.key}`,
    '--label',
    `${LABEL_CONTAINER}=${s.name}`,
    '--label',
    `${LABEL_KIND}=${c.kind}`,
    '--restart',
    'no',
  ];
  if (cpus > 0) args.push('--cpus', String(cpus));
  if (memGb > 0) args.push('--memory', `${Math.max(6, Math.round(memGb * 1024))}m`);
  if (s.limits?.memoryInGB !== undefined && s.memoryInGB > 0 && s.memoryInGB < s.limits.memoryInGB) {
    args.push('--memory-reservation', `${Math.max(6, Math.round(s.memoryInGB * 1024))}m`);
  }
  nestedMountPoints(s.volumeMounts, volumes);
  for (const m of s.volumeMounts) {
    const v = volumes.get(m.name);
    if (!v)
      throw new RuntimeProvisionError('InvalidVolumeMount', `container '${s.name}' mounts unknown volume '${m.name}'`);
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
  args.push(...(await securityFlags(ctx.cli, s.image, c.ctrName, s.security, join(rec.dir, 'seccomp'))));
  // ACI's command is the whole argv: it replaces the image's entrypoint and its cmd.
  if (s.command?.length) args.push('--entrypoint', JSON.stringify(s.command));
  args.push(s.image);
  try {
    c.ctrId = (await ctx.cli.run(args, { env: passEnv })).trim().split('\n').pop();
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

export async function removePod(cli: PodmanCli, rec: GroupRecord): Promise<void> {
  await cli.run(['pod', 'rm', '--force', '--ignore', '-t', '0', rec.podName]);
}
