/**
 * The distribution registry (built from its pinned Go module by build.sh) on loopback, for the
 * tests: a free port on 127.0.0.1, plain HTTP, filesystem storage in the run folder. It is a
 * process of the run (recorded in RUNDIR/pids), so it stops with the run even if a test forgets.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, repoRoot } from '../cluster.js';
import { logTail, startProcess, terminate, type Managed } from '../processes.js';

const run = promisify(execFile);

let binDir: Promise<string> | undefined;

/** The folder holding the pinned registry binary: ACI_REGISTRY_BIN (set by scripts/test), else build.sh. */
export function registryBinDir(): Promise<string> {
  binDir ??= process.env.ACI_REGISTRY_BIN
    ? Promise.resolve(process.env.ACI_REGISTRY_BIN)
    : run('bash', [join(repoRoot, 'devcluster/registry/build.sh')], { maxBuffer: 16 * 1024 * 1024 }).then(
        ({ stdout }) => stdout.trim().split('\n').pop() ?? '',
      );
  return binDir;
}

export interface RunningRegistry {
  /** 127.0.0.1:PORT, the registry part of image names pushed here. */
  host: string;
  /** Where its blobs and manifests live. */
  dataDir: string;
  process: Managed;
  stop(): Promise<void>;
}

/** The registry's configuration: loopback only, no debug or metrics listener, quiet logs. */
function configYaml(addr: string, dataDir: string, htpasswdFile?: string): string {
  const auth = htpasswdFile
    ? ['auth:', '  htpasswd:', '    realm: aci-connector-test', `    path: ${JSON.stringify(htpasswdFile)}`]
    : [];
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(dataDir)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${JSON.stringify(addr)}`,
    ...auth,
    '',
  ].join('\n');
}

/** The API root answers: 200, or 401 when it asks for credentials. */
async function answers(host: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.status === 200 || res.status === 401;
  } catch {
    return false;
  }
}

export interface RegistryOptions {
  /** The port (a test that first needs it closed, then open); default: a free one. */
  port?: number;
  /** Names the folder and the process. */
  name?: string;
  /**
   * Basic auth on every request (the registry's htpasswd mode) for one user; the registry
   * accepts only bcrypt hashes, so the caller brings one (a test user's, made once).
   */
  htpasswd?: { username: string; bcryptHash: string };
}

/** Starts a registry in a new folder under `runDir` (the test run's folder). */
export async function startRegistry(runDir: string, opts: RegistryOptions = {}): Promise<RunningRegistry> {
  const bin = join(await registryBinDir(), 'registry');
  const dir = mkdtempSync(join(runDir, `${opts.name ?? 'registry'}-`));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const port = opts.port ?? (await freePort());
  const host = `127.0.0.1:${port}`;
  const config = join(dir, 'config.yml');
  let htpasswdFile: string | undefined;
  if (opts.htpasswd) {
    htpasswdFile = join(dir, 'htpasswd');
    writeFileSync(htpasswdFile, `${opts.htpasswd.username}:${opts.htpasswd.bcryptHash}\n`, { mode: 0o600 });
  }
  writeFileSync(config, configYaml(host, dataDir, htpasswdFile));
  // Tracing would export to an OTLP collector; there is none.
  const env = {
    ...process.env,
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
  };
  const name = `${opts.name ?? 'registry'}-${port}`;
  const proc = startProcess(runDir, name, bin, ['serve', config], { env });
  const stop = () => terminate(proc.child.pid === undefined ? [] : [proc.child.pid]);
  const deadline = Date.now() + 30_000;
  let exited: number | string | undefined;
  void proc.exited.then((c) => (exited = c));
  while (!(await answers(host))) {
    if (exited !== undefined)
      throw new Error(`the registry exited (${exited}) before answering on ${host}:\n${logTail(proc)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the registry did not answer on ${host} within 30 s:\n${logTail(proc)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { host, dataDir, process: proc, stop };
}
