/**
 * Runs the podman binary with the emulator's private global flags, so every call
 * sees the same storage, run state, events file and containers.conf — and none of
 * the machine's other podman state.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface PodmanCliConfig {
  binary: string;
  root: string;
  runroot: string;
  tmpdir: string;
  storageDriver: string;
  containersConf: string;
  /** Set when the emulator ships its own registries.conf (see setup.ts). */
  registriesConf?: string;
}

export interface PodmanResult {
  code: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 120_000;

export class PodmanError extends Error {
  override readonly name = 'PodmanError';
  constructor(
    readonly args: string[],
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`podman ${args.slice(0, 3).join(' ')} failed (exit ${code}): ${stderr.trim().slice(0, 2000)}`);
  }
}

export class PodmanCli {
  constructor(readonly config: PodmanCliConfig) {}

  /** Global flags that pin podman to the emulator's state folder. */
  globalArgs(): string[] {
    const c = this.config;
    return [
      '--root',
      c.root,
      '--runroot',
      c.runroot,
      '--tmpdir',
      c.tmpdir,
      '--storage-driver',
      c.storageDriver,
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'file',
      '--runtime',
      'runc',
    ];
  }

  env(extra?: Record<string, string>): NodeJS.ProcessEnv {
    const own: Record<string, string> = { CONTAINERS_CONF: this.config.containersConf };
    if (this.config.registriesConf) own.CONTAINERS_REGISTRIES_CONF = this.config.registriesConf;
    // Ours last: a container env var must never redirect podman itself.
    return { ...process.env, ...extra, ...own };
  }

  /** Spawns podman with piped stdio; the caller owns the process. */
  spawn(args: string[], opts: Omit<SpawnOptions, 'env'> & { env?: Record<string, string> } = {}): ChildProcess {
    const { env, ...rest } = opts;
    return spawn(this.config.binary, [...this.globalArgs(), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...rest,
      env: this.env(env),
    });
  }

  /**
   * Runs podman to completion; never throws for a non-zero exit (see `run`).
   * A podman that hangs (a stuck lock, say) is killed after `timeoutMs`, default
   * two minutes; 0 waits forever (for `podman wait`).
   */
  exec(
    args: string[],
    opts: { input?: string | Buffer; timeoutMs?: number; env?: Record<string, string> } = {},
  ): Promise<PodmanResult> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(args, {
        env: opts.env,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timer: NodeJS.Timeout | undefined;
      const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      if (timeoutMs > 0) {
        timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      }
      child.stdout?.on('data', (b: Buffer) => out.push(b));
      child.stderr?.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (timer) clearTimeout(timer);
        reject(e.code === 'ENOENT' ? new Error(`podman is not installed: '${this.config.binary}' was not found`) : e);
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        const stderr = Buffer.concat(err).toString('utf8');
        resolve({
          code: code ?? (signal ? 128 + 9 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: signal && timeoutMs > 0 ? `${stderr}\n(killed after ${timeoutMs} ms)` : stderr,
        });
      });
      if (opts.input !== undefined) child.stdin?.end(opts.input);
    });
  }

  /** Runs podman and throws PodmanError on a non-zero exit. */
  async run(
    args: string[],
    opts: { input?: string | Buffer; timeoutMs?: number; env?: Record<string, string> } = {},
  ): Promise<string> {
    const r = await this.exec(args, opts);
    if (r.code !== 0) throw new PodmanError(args, r.code, r.stderr);
    return r.stdout;
  }
}
