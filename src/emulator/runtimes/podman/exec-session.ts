/**
 * Turns a `podman exec` / `podman attach` child process into an ExecSession.
 *
 * A terminal needs a pty on podman's side, and Node has none built in: for tty
 * sessions podman runs under util-linux `script`, which owns a pty pair. Resizing
 * sets the pty's size with `stty -F`, and the kernel then signals podman
 * (SIGWINCH), which resizes the container's terminal.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import type { ExecSession } from '../../runtime.js';

export function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Child pids of `pid`, depth first, from /proc. */
function descendants(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    let children = '';
    try {
      children = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const c of children.trim().split(/\s+/).filter(Boolean)) {
      const n = Number(c);
      out.push(n, ...descendants(n));
    }
  }
  return out;
}

function ptyOf(rootPid: number): string | undefined {
  for (const pid of descendants(rootPid)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/0`);
      if (target.startsWith('/dev/pts/')) return target;
    } catch {
      // raced with exit
    }
  }
  return undefined;
}

export function sessionFromChild(child: ChildProcess, opts: { tty: boolean }): ExecSession {
  const exited = new Promise<number>((resolve) => {
    child.on('error', () => resolve(126));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1)));
  });
  const stdin = child.stdin ?? new PassThrough();
  // A client that goes away while writing must not crash the emulator.
  stdin.on('error', () => undefined);
  return {
    stdin,
    stdout: child.stdout ?? new PassThrough(),
    stderr: opts.tty ? undefined : (child.stderr ?? undefined),
    resize(cols: number, rows: number): void {
      if (!opts.tty || child.pid === undefined || !(cols > 0 && rows > 0)) return;
      const pty = ptyOf(child.pid);
      if (!pty) return;
      execFile(
        'stty',
        ['-F', pty, 'cols', String(Math.floor(cols)), 'rows', String(Math.floor(rows))],
        () => undefined,
      );
    },
    exited,
    kill(): void {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}
