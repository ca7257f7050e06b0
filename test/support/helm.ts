/**
 * Helm for tests: the binary built from the pinned Go module (devcluster/helm),
 * found through ACI_HELM_BIN (set by scripts/test) or built on demand, and run
 * with its own config and cache folders so a test never reads the machine's
 * Helm settings or repositories.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../devcluster/cluster.js';

const exec = promisify(execFile);

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

let binDir: Promise<string> | undefined;

/** The folder holding the pinned helm binary. */
export function helmBinDir(): Promise<string> {
  binDir ??= process.env.ACI_HELM_BIN
    ? Promise.resolve(process.env.ACI_HELM_BIN)
    : exec('bash', [join(repoRoot, 'devcluster/helm/build.sh')], { maxBuffer: 16 * 1024 * 1024 }).then(
        ({ stdout }) => stdout.trim().split('\n').pop() ?? '',
      );
  return binDir;
}

export const chartDir = join(repoRoot, 'charts/aci-connector');

/** Runs a program and returns its exit code and output instead of throwing on failure. */
export async function runProgram(
  file: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          const failure: Error = err;
          return reject(failure);
        }
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** A helm with private HELM_* folders; call dispose() when done. */
export function isolatedHelm(): { helm: (args: string[]) => Promise<RunResult>; dispose: () => void } {
  const home = mkdtempSync(join(tmpdir(), 'aci-helm-home-'));
  const env = {
    ...process.env,
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  return {
    helm: async (args) => runProgram(join(await helmBinDir(), 'helm'), args, { env }),
    dispose: () => rmSync(home, { recursive: true, force: true }),
  };
}
