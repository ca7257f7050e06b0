/**
 * `npm run bench -- [options]`: the connector and its peers side by side, in one run
 * on one dev cluster of its own. Figures, never assertions (see bench/README.md).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import * as k8s from '@kubernetes/client-node';
import { repoRoot, startCluster, stopCluster } from '../devcluster/cluster.js';
import { formatTable, plots, tableRows } from './lib/report.js';
import { runSystem, type RunOptions, type SystemResult, type Workload } from './lib/run.js';
import { buildPeer, DEFAULT_SYSTEMS, liveProcesses, SYSTEM_IDS, SYSTEMS, type SystemId } from './lib/systems.js';

const WORKLOADS: Workload[] = ['burst', 'steady', 'scheduled', 'delete'];

function list<T extends string>(allowed: readonly T[]) {
  return (v: string): T[] => {
    const items = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const i of items)
      if (!allowed.includes(i as T)) throw new InvalidArgumentError(`unknown "${i}" (one of ${allowed.join(', ')})`);
    return items as T[];
  };
}
function positive(v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('must be a positive number');
  return n;
}

const program = new Command('bench')
  .description('pod startup and deletion of the connector and its peers, side by side on one dev cluster')
  .addOption(
    new Option('-s, --systems <list>', `comma-separated, of ${SYSTEM_IDS.join(', ')}`)
      .argParser(list(SYSTEM_IDS))
      .default(DEFAULT_SYSTEMS, DEFAULT_SYSTEMS.join(',')),
  )
  .addOption(
    new Option('-w, --workloads <list>', `comma-separated, of ${WORKLOADS.join(', ')}`)
      .argParser(list(WORKLOADS))
      .default(['burst', 'steady', 'delete'], 'burst,steady,delete'),
  )
  .option('-n, --pods <N>', 'pods of the burst and of the scheduled Deployment', positive, 100)
  .option('-r, --rate <R>', 'steady: pods created per second', positive, 10)
  .option('-t, --duration <T>', 'steady: seconds of creation', positive, 10)
  .option('-o, --out <dir>', 'folder for results.json and the plots (default: bench-results/<time>)')
  .option('--timeout <s>', 'seconds each phase may take before the system is marked failed', positive, 600)
  .option('--create-concurrency <n>', 'burst: concurrent pod creations', positive, 32)
  .option('--cpu-prof', "V8 CPU profiles of the connector's systems, in <out>/cpu-prof/<node>/ (node --cpu-prof)");

program.parse();
const opts = program.opts<{
  systems: SystemId[];
  workloads: Workload[];
  pods: number;
  rate: number;
  duration: number;
  out?: string;
  timeout: number;
  createConcurrency: number;
  cpuProf?: boolean;
}>();

const tty = process.stderr.isTTY;
let interrupted = false;
let transientShown = false;
function progress(line: string, transient = false): void {
  if (transient && !tty) return;
  if (transientShown) process.stderr.write('\r\x1b[K');
  process.stderr.write(transient ? line : `${line}\n`);
  transientShown = transient;
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? '',
    memoryBytes: os.totalmem(),
    node: process.version,
    kernel: os.release(),
    platform: `${os.platform()} ${os.arch()}`,
    loadavgAtStart: os.loadavg(),
    hostname: os.hostname(),
  };
}

async function main(): Promise<void> {
  const started = new Date();
  const out = resolve(opts.out ?? join(repoRoot, 'bench-results', started.toISOString().replace(/[:.]/g, '-')));
  mkdirSync(out, { recursive: true });
  if (opts.cpuProf) process.env.BENCH_CPU_PROF_DIR = join(out, 'cpu-prof');
  const ro: RunOptions = {
    workloads: opts.workloads,
    pods: Math.round(opts.pods),
    rate: opts.rate,
    durationSeconds: opts.duration,
    timeoutSeconds: opts.timeout,
    createConcurrency: Math.round(opts.createConcurrency),
  };
  const skipped: Array<{ id: string; reason: string }> = [];
  const peers: Partial<Record<'kwok' | 'vk', string>> = {};
  for (const tool of ['kwok', 'vk'] as const) {
    if (!opts.systems.includes(tool)) continue;
    const b = await buildPeer(tool, (l) => progress(l));
    if (b.bin) peers[tool] = b.bin;
    else {
      skipped.push({ id: tool, reason: `could not build: ${b.error ?? ''}` });
      progress(`${tool}: left out, it could not be built: ${b.error ?? ''}`);
    }
  }
  const systems = opts.systems.filter((s) => !skipped.some((k) => k.id === s));

  const runRoot = mkdtempSync(join(os.tmpdir(), 'aci-bench-'));
  progress(`starting a dev cluster in ${runRoot}`);
  const cluster = await startCluster({ runRoot, log: (l) => progress(`  ${l}`) });
  // An interrupted run still ends its agents and its cluster.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;
      progress(`${sig}: stopping the agents and the dev cluster`);
      for (const p of liveProcesses) p.kill('SIGKILL');
      void stopCluster(cluster)
        .catch(() => undefined)
        .finally(() => {
          rmSync(runRoot, { recursive: true, force: true });
          process.exit(130);
        });
    });
  }
  const results: SystemResult[] = [];
  const kubeVersion = (() => {
    try {
      return JSON.parse(
        execFileSync(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfig, 'version', '-o', 'json'], {
          encoding: 'utf8',
        }),
      ) as unknown;
    } catch {
      return undefined;
    }
  })();
  try {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    for (const id of systems) {
      if (interrupted) break;
      progress(`== ${id}: ${SYSTEMS[id].label}`);
      results.push(await runSystem(SYSTEMS[id], cluster, kc, peers, runRoot, ro, progress));
      progress(formatTable(tableRows(results)));
    }
  } finally {
    await stopCluster(cluster);
    rmSync(runRoot, { recursive: true, force: true });
  }

  const rows = tableRows(results);
  const report = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    options: ro,
    machine: machine(),
    git: { commit: git(['rev-parse', 'HEAD']), dirty: git(['status', '--porcelain']).length > 0 },
    kubernetes: kubeVersion,
    peers,
    skipped,
    apiAttribution:
      'apiserver_request_total has no user or user-agent label, so requests are attributed to a system by running the systems one after another and taking the counter delta around each phase. The delta includes the benchmark client (pod creates in steady, the deletecollection call, its watch) and the controller-manager and scheduler (scheduled workload: ReplicaSet creates, bindings, their events).',
    systems: results,
    tableMarkdown: formatTable(rows, true),
  };
  writeFileSync(join(out, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  for (const p of plots(results)) writeFileSync(join(out, p.file), p.svg);
  process.stdout.write(`\n${formatTable(rows)}\n\n${formatTable(rows, true)}\n\nresults and plots in ${out}\n`);
  if (skipped.length) process.stdout.write(`left out: ${skipped.map((s) => `${s.id} (${s.reason})`).join('; ')}\n`);
}

main().catch((err: unknown) => {
  if (interrupted) return; // the signal handler is stopping the cluster and exits with 130
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
