/**
 * Prepares the emulator's private podman set-up: its state folder and the
 * containers.conf it points podman to (CONTAINERS_CONF). The conf is rendered at
 * start because its ulimits must fit this machine's hard limits.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PodmanCli } from './podman-cli.js';

export interface PodmanLayout {
  stateDir: string;
  root: string;
  runroot: string;
  tmpdir: string;
  containersConf: string;
  registriesConf: string;
  eventsLog: string;
  /** Per-group folders for volumes and env files. */
  groupsDir: string;
  /** Emulated Azure file shares, shared by every group that mounts the same share. */
  fileSharesDir: string;
}

export function podmanLayout(stateDir: string): PodmanLayout {
  return {
    stateDir,
    root: join(stateDir, 'storage'),
    runroot: join(stateDir, 'run'),
    tmpdir: join(stateDir, 'tmp'),
    containersConf: join(stateDir, 'containers.conf'),
    registriesConf: join(stateDir, 'registries.conf'),
    eventsLog: join(stateDir, 'events', 'events.log'),
    groupsDir: join(stateDir, 'groups'),
    fileSharesDir: join(stateDir, 'fileshares'),
  };
}

export interface ContainerUlimits {
  nofile: number;
  nproc: number;
}

function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Hard limit of one resource from /proc/self/limits (Node has no getrlimit). */
function hardLimit(resource: string): number | undefined {
  const text = readFileSync('/proc/self/limits', 'utf8');
  const line = text.split('\n').find((l) => l.startsWith(resource));
  if (!line) return undefined;
  const fields = line.slice(resource.length).trim().split(/\s+/);
  const hard = fields[1];
  if (hard === undefined || hard === 'unlimited') return undefined;
  const n = Number(hard);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Ulimits that runc can set without CAP_SYS_RESOURCE: at or below our own hard
 * limits. nproc is also capped at kernel.pid_max: on the machines we measured, runc
 * fails with EPERM ("error setting rlimit type 6") for any nproc above pid_max,
 * even when the hard limit is higher. nofile is capped at fs.nr_open likewise.
 */
export function machineUlimits(): ContainerUlimits {
  const fallback = 1024;
  const nofile = Math.min(hardLimit('Max open files') ?? 1048576, readNumber('/proc/sys/fs/nr_open') ?? 1048576);
  const nproc = Math.min(hardLimit('Max processes') ?? 4194304, readNumber('/proc/sys/kernel/pid_max') ?? 32768);
  return { nofile: nofile > 0 ? nofile : fallback, nproc: nproc > 0 ? nproc : fallback };
}

/** The containers.conf the emulator ships; values are TOML strings and numbers only. */
export function renderContainersConf(
  limits: ContainerUlimits,
  eventsLog: string,
  networkConfigDir: string,
  helperBinariesDir?: string[],
): string {
  return [
    '# Written by the ACI emulator at start; podman reads it through CONTAINERS_CONF.',
    '[containers]',
    "# podman's built-in defaults (nofile 1048576) exceed what runc may set here.",
    `default_ulimits = ["nofile=${limits.nofile}:${limits.nofile}", "nproc=${limits.nproc}:${limits.nproc}"]`,
    '# k8s-file keeps stdout and stderr apart with nanosecond timestamps, for ACI logs.',
    'log_driver = "k8s-file"',
    '',
    '[engine]',
    '# crun fails on hybrid cgroup hosts; runc works on both cgroup v1 and v2.',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = ${JSON.stringify(eventsLog)}`,
    ...(helperBinariesDir
      ? [`helper_binaries_dir = [${helperBinariesDir.map((d) => JSON.stringify(d)).join(', ')}]`]
      : []),
    '',
    '[network]',
    '# Pods use slirp4netns and create no networks; should one appear, it stays in our folder.',
    `network_config_dir = ${JSON.stringify(networkConfigDir)}`,
    '',
  ].join('\n');
}

const SYSTEM_REGISTRIES_CONF = '/etc/containers/registries.conf';

/**
 * ACI resolves an unqualified image name (`nginx`) on Docker Hub. When the machine's
 * registries.conf names no search registry (Debian's doesn't), podman would refuse
 * such names, so the emulator ships a registries.conf that searches docker.io.
 * A machine that configures its own search registries keeps its file.
 */
function needsOwnRegistriesConf(): boolean {
  try {
    return !/^\s*unqualified-search-registries\s*=\s*\[\s*"/m.test(readFileSync(SYSTEM_REGISTRIES_CONF, 'utf8'));
  } catch {
    return true;
  }
}

export function renderRegistriesConf(): string {
  return [
    '# Written by the ACI emulator: unqualified names resolve on Docker Hub, as in ACI.',
    'unqualified-search-registries = ["docker.io"]',
    'short-name-mode = "permissive"',
    '',
  ].join('\n');
}

/** Writes through a temporary file and a rename: other runtimes may read it meanwhile. */
function writeAtomically(path: string, content: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

export interface PodmanSetup {
  layout: PodmanLayout;
  cli: PodmanCli;
  ulimits: ContainerUlimits;
}

export function preparePodman(opts: {
  stateDir: string;
  binary?: string;
  storageDriver?: string;
  helperBinariesDir?: string[];
}): PodmanSetup {
  const layout = podmanLayout(opts.stateDir);
  for (const dir of [
    layout.stateDir,
    layout.root,
    layout.runroot,
    layout.tmpdir,
    layout.groupsDir,
    layout.fileSharesDir,
    join(layout.stateDir, 'events'),
    join(layout.stateDir, 'networks'),
  ]) {
    mkdirSync(dir, { recursive: true });
  }
  const ulimits = machineUlimits();
  writeAtomically(
    layout.containersConf,
    renderContainersConf(ulimits, layout.eventsLog, join(layout.stateDir, 'networks'), opts.helperBinariesDir),
  );
  let registriesConf: string | undefined;
  if (needsOwnRegistriesConf()) {
    writeAtomically(layout.registriesConf, renderRegistriesConf());
    registriesConf = layout.registriesConf;
  }
  const cli = new PodmanCli({
    binary: opts.binary ?? 'podman',
    root: layout.root,
    runroot: layout.runroot,
    tmpdir: layout.tmpdir,
    storageDriver: opts.storageDriver ?? 'overlay',
    containersConf: layout.containersConf,
    registriesConf,
  });
  return { layout, cli, ulimits };
}
