/** Runs the dev cluster's real kubectl for the kubelet API end-to-end tests. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { testCluster } from '../support/cluster.js';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion (killed after 90 s), feeding it stdin. */
export function runProgram(
  file: string,
  args: string[],
  opts: { stdin?: string | Buffer; env?: Record<string, string> } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.stdin ?? '');
  });
}

/** kubectl with the admin kubeconfig of the dev cluster. */
export function kubectl(
  args: string[],
  opts: { stdin?: string | Buffer; env?: Record<string, string> } = {},
): Promise<Run> {
  const c = testCluster();
  return runProgram(join(c.binDir, 'kubectl'), ['--kubeconfig', c.kubeconfig, '--request-timeout=60s', ...args], opts);
}
