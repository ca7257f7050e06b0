/**
 * Starting and stopping the control-plane processes so that none outlives its run.
 * Every process is recorded in RUNDIR/pids, and every one has RUNDIR in its
 * arguments (data dir, certificates), so a later `down` — even from another
 * process after a crash — finds and stops all of them by scanning /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';

export interface Managed {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
}

export function startProcess(
  runDir: string,
  name: string,
  bin: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; outliveParent?: boolean } = {},
): Managed {
  const logs = join(runDir, 'logs');
  const pids = join(runDir, 'pids');
  mkdirSync(logs, { recursive: true });
  mkdirSync(pids, { recursive: true });
  const logFile = join(logs, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', fd, fd], env: opts.env ?? process.env });
  closeSync(fd);
  // `devcluster up` returns while the cluster keeps running: don't let the children hold its event loop.
  if (opts.outliveParent) child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${name} (${bin})`);
  writeFileSync(join(pids, name), String(child.pid));
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (err) => resolve(`error: ${err.message}`));
  });
  return { name, child, logFile, exited };
}

/** The last lines of a process's log, for error messages. */
export function logTail(m: Managed, lines = 15): string {
  try {
    return readFileSync(m.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Processes (other than this one and its ancestors) whose arguments or
 * environment mention `marker`: with the run folder as the marker, that is every
 * process a run started, directly or through a child, including the connector
 * and emulator processes that tests spawn with the run's environment.
 */
export function processesMentioning(marker: string): { pid: number; cmd: string }[] {
  const skip = new Set<number>([process.pid, process.ppid]);
  const out: { pid: number; cmd: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || skip.has(pid)) continue;
    const cmdline = readProc(pid, 'cmdline');
    if (cmdline === '') continue; // kernel threads and zombies
    if (cmdline.includes(marker) || readProc(pid, 'environ').includes(marker)) {
      out.push({ pid, cmd: cmdline.split('\0').join(' ').trim().slice(0, 200) });
    }
  }
  return out;
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = left.filter(alive);
  }
  return left;
}

/** SIGTERM, then SIGKILL after graceMs, for the given pids. */
export async function terminate(pids: number[], graceMs = 5_000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const left = await waitGone(pids, graceMs);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await waitGone(left, 2_000);
}

/** Stops every process of a run: the recorded pids first (in reverse start order), then any straggler found by scanning. */
export async function stopRun(runDir: string, opts: { removeDir?: boolean } = {}): Promise<void> {
  const pidsDir = join(runDir, 'pids');
  let recorded: number[] = [];
  try {
    recorded = readdirSync(pidsDir)
      .map((f) => Number(readFileSync(join(pidsDir, f), 'utf8')))
      .filter((p) => Number.isInteger(p) && p > 0);
  } catch {
    /* nothing recorded */
  }
  // Order matters a little: the API server's clients first, etcd last, so shutdown logs stay quiet.
  await terminate(recorded.reverse());
  const stragglers = processesMentioning(runDir).map((p) => p.pid);
  if (stragglers.length > 0) await terminate(stragglers, 3_000);
  if (opts.removeDir) rmSync(runDir, { recursive: true, force: true });
}
