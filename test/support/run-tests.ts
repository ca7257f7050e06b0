/**
 * The test runner: the tiers in order (unit, e2e, scale; see tiers.ts), one real control plane
 * shared by every file that needs it (node:test on Node 20 has no global setup), started only when
 * a selected file needs it, then teardown and a check that no process the run started is still alive.
 *
 *   node dist/test/support/run-tests.js [--run-root DIR] [--keep-logs DIR] [--tier TIER]... [--list] [FILTER ...]
 *
 * FILTERs are substrings of test file paths; --tier (repeatable) selects tiers (default: all);
 * --list prints the selected files with their tier and whether they need the control plane, and
 * runs nothing. Prints each tier's time, and ends with the plain line `tests: N passed, N failed`;
 * exits non-zero when anything failed. The logs of a failed run are copied to --keep-logs
 * (default $TMPDIR/aci-connector-test-logs), which outlives the run folder.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import type { Transform } from 'node:stream';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { repoRoot, startCluster, stopCluster, type ClusterInfo } from '../../devcluster/cluster.js';
import { removeRecordedNamespaces } from '../../devcluster/netns.js';
import { processesMentioning, stopRun } from '../../devcluster/processes.js';
import { FILE_TIMEOUT_MS, TIERS, isTier, needsControlPlane, tierOf, type Tier } from './tiers.js';

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (entry.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

interface Args {
  runRoot?: string;
  keepLogs: string;
  tiers: Tier[];
  list: boolean;
  filters: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { keepLogs: join(tmpdir(), 'aci-connector-test-logs'), tiers: [], list: false, filters: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--run-root') args.runRoot = value();
    else if (a === '--keep-logs') args.keepLogs = value();
    else if (a === '--list') args.list = true;
    else if (a === '--tier' || a.startsWith('--tier=')) {
      const t = a === '--tier' ? value() : a.slice('--tier='.length);
      for (const one of t.split(',')) {
        if (!isTier(one)) throw new Error(`unknown tier ${one}: expected ${TIERS.join(', ')}`);
        args.tiers.push(one);
      }
    } else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else args.filters.push(a);
  }
  return args;
}

/** Copies every *.log under `from` to `to`, keeping relative paths: the logs, not etcd's data or keys. */
function copyLogs(from: string, to: string): number {
  let n = 0;
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const p = join(from, entry.name);
    if (entry.isDirectory()) n += copyLogs(p, join(to, entry.name));
    else if (entry.isFile() && entry.name.endsWith('.log')) {
      mkdirSync(to, { recursive: true });
      cpSync(p, join(to, entry.name));
      n++;
    }
  }
  return n;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const distRoot = join(repoRoot, 'dist');
  const clusterModule = join(distRoot, 'test', 'support', 'cluster.js');
  const wanted = args.tiers.length > 0 ? args.tiers : [...TIERS];
  const files = findTests(join(distRoot, 'test'))
    .filter((f) => args.filters.length === 0 || args.filters.some((flt) => f.includes(flt)))
    .map((f) => ({ file: f, tier: tierOf(relative(distRoot, f)), cluster: needsControlPlane(f, clusterModule) }))
    .filter((f) => wanted.includes(f.tier));
  if (files.length === 0) {
    console.error(`no test files match ${[...args.filters, ...args.tiers.map((t) => `--tier ${t}`)].join(' ')}`);
    return 1;
  }
  if (args.list) {
    for (const f of files)
      console.log(`${f.tier}\t${f.cluster ? 'control plane' : '-'}\t${relative(repoRoot, f.file)}`);
    return 0;
  }

  const runRoot = args.runRoot ?? join(tmpdir(), 'aci-connector-runs');
  mkdirSync(runRoot, { recursive: true });
  // Everything this run starts has this folder in its arguments or environment.
  const runDir = mkdtempSync(join(runRoot, 'tests-'));
  process.env.ACI_TEST_RUN_DIR = runDir;
  const log = (l: string) => console.log(`# ${l}`);

  // Ctrl-C or a CI kill still tears everything down.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`# ${sig}: stopping everything this run started`);
      void stopRun(runDir)
        .then(() => removeRecordedNamespaces(runDir))
        .finally(() => process.exit(130));
    });
  }

  let passed = 0;
  let failed = 0;
  const times: string[] = [];
  let cluster: ClusterInfo | undefined;
  const concurrency = Number(process.env.ACI_TEST_CONCURRENCY ?? 2);
  try {
    for (const tier of TIERS) {
      const selected = files.filter((f) => f.tier === tier);
      if (selected.length === 0) continue;
      if (!cluster && selected.some((f) => f.cluster)) {
        cluster = await startCluster({ runRoot: runDir, log });
        log(`control plane up in ${cluster.startSeconds.toFixed(1)} s`);
        process.env.ACI_TEST_CLUSTER = join(cluster.runDir, 'cluster.json');
      }
      log(`tier ${tier}: ${selected.length} test files`);
      const started = Date.now();
      const before = { passed, failed };
      const stream = run({ files: selected.map((f) => f.file), concurrency, timeout: FILE_TIMEOUT_MS[tier] });
      stream.on('test:pass', (d) => {
        if (d.details.type !== 'suite') passed++;
      });
      stream.on('test:fail', (d) => {
        if (d.details.type !== 'suite') failed++;
      });
      await new Promise<void>((resolve, reject) => {
        const out = stream.compose<Transform>(new spec());
        out.on('data', (chunk: Buffer | string) => process.stdout.write(chunk));
        out.on('end', () => resolve());
        out.on('error', reject);
      });
      const took = seconds(Date.now() - started);
      times.push(`${tier} ${took}`);
      log(`tier ${tier}: ${passed - before.passed} passed, ${failed - before.failed} failed in ${took}`);
    }
  } finally {
    if (cluster) await stopCluster(cluster, { keepDir: true });
    // Network namespaces (devcluster/netns.ts) a test file could not tear down, e.g. killed at its cap.
    const namespaces = await removeRecordedNamespaces(runDir);
    if (namespaces.length > 0) log(`removed network namespaces left by tests: ${namespaces.join(', ')}`);
  }

  // The last check of every run: nothing it started outlives it.
  const left = processesMentioning(runDir);
  if (left.length === 0) {
    passed++;
    console.log('✔ no process started by this run is still alive after teardown');
  } else {
    failed++;
    console.log(`✖ processes still alive after teardown:\n${left.map((p) => `  ${p.pid} ${p.cmd}`).join('\n')}`);
  }
  log(`tier times: ${times.join(', ')}`);
  if (failed > 0) {
    // The run folder may be removed by the caller (scripts/test does); the logs are copied out of it.
    const kept = join(args.keepLogs, basename(runDir));
    const n = copyLogs(runDir, kept);
    log(n > 0 ? `${n} log files kept in ${kept}` : `no log files were written (run folder ${runDir})`);
  } else rmSync(runDir, { recursive: true, force: true });

  console.log(`tests: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    console.log('tests: 0 passed, 1 failed');
    process.exit(1);
  },
);
