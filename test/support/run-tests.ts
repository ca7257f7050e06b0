/**
 * The test runner: one real control plane for the whole run (node:test on Node 20
 * has no global setup), every test file against it, then teardown and a check
 * that no process the run started is still alive.
 *
 *   node dist/test/support/run-tests.js [--run-root DIR] [FILTER ...]
 *
 * FILTERs are substrings of test file paths. Ends with the plain line
 * `tests: N passed, N failed` and exits non-zero when anything failed.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Transform } from 'node:stream';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { repoRoot, startCluster, stopCluster } from '../../devcluster/cluster.js';
import { processesMentioning, stopRun } from '../../devcluster/processes.js';

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (entry.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

function parseArgs(argv: string[]): { runRoot?: string; filters: string[] } {
  const filters: string[] = [];
  let runRoot: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--run-root') runRoot = argv[++i];
    else filters.push(a);
  }
  return { runRoot, filters };
}

async function main(): Promise<number> {
  const { runRoot: givenRoot, filters } = parseArgs(process.argv.slice(2));
  const testDir = join(repoRoot, 'dist', 'test');
  const files = findTests(testDir).filter((f) => filters.length === 0 || filters.some((flt) => f.includes(flt)));
  if (files.length === 0) {
    console.error(`no test files match ${filters.join(' ')}`);
    return 1;
  }

  const runRoot = givenRoot ?? join(tmpdir(), 'aci-connector-runs');
  mkdirSync(runRoot, { recursive: true });
  // Everything this run starts has this folder in its arguments or environment.
  const runDir = mkdtempSync(join(runRoot, 'tests-'));
  const log = (l: string) => console.log(`# ${l}`);

  // Ctrl-C or a CI kill still tears everything down.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      console.error(`# ${sig}: stopping everything this run started`);
      void stopRun(runDir).finally(() => process.exit(130));
    });
  }

  let passed = 0;
  let failed = 0;
  const cluster = await startCluster({ runRoot: runDir, log });
  log(`control plane up in ${cluster.startSeconds.toFixed(1)} s; ${files.length} test files`);
  process.env.ACI_TEST_CLUSTER = join(cluster.runDir, 'cluster.json');
  process.env.ACI_TEST_RUN_DIR = runDir;
  try {
    const concurrency = Number(process.env.ACI_TEST_CONCURRENCY ?? 2);
    const stream = run({ files, concurrency, timeout: 10 * 60_000 });
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
  } finally {
    await stopCluster(cluster, { keepDir: true });
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
  if (failed === 0) rmSync(runDir, { recursive: true, force: true });
  else console.log(`# logs kept in ${relative(process.cwd(), runDir) || runDir}`);

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
