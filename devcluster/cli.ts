#!/usr/bin/env node
/**
 * devcluster up [--run-root DIR] [--worker]
 *                                  start a control plane (and a real worker node: containerd and a
 *                                  kubelet); prints `export ...` lines for a shell
 * devcluster down RUNDIR|ROOT      stop every process of one run (or of all runs under ROOT)
 * devcluster env RUNDIR            print the exports of a running cluster again
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { startCluster, stopCluster, type ClusterInfo } from './cluster.js';
import { removeRecordedNamespaces } from './netns.js';
import { processesMentioning, stopRun } from './processes.js';
import { errorMessage } from '../src/common/errors.js';
import { startWorker, stopWorkersIn } from './worker/worker.js';

function exportsFor(info: ClusterInfo): string {
  return [
    `export KUBECONFIG=${info.kubeconfig}`,
    `export ACI_TEST_CLUSTER=${join(info.runDir, 'cluster.json')}`,
    `export ACI_KUBE_BIN=${info.binDir}`,
    `export PATH=${info.binDir}:$PATH`,
    `# stop with: node dist/devcluster/cli.js down ${info.runDir}`,
  ].join('\n');
}

const program = new Command('devcluster').description(
  'A real Kubernetes control plane on loopback, for the tests and the demo.',
);

program
  .command('up')
  .option('--run-root <dir>', 'parent folder of the run folder')
  .option('--worker', 'also start a real worker node (containerd and a kubelet built from the pinned module)')
  .action(async (o: { runRoot?: string; worker?: boolean }) => {
    const log = (l: string) => process.stderr.write(`devcluster: ${l}\n`);
    const info = await startCluster({ runRoot: o.runRoot, outliveParent: true, log });
    if (o.worker) {
      try {
        const w = await startWorker(info, { outliveParent: true, log });
        log(
          `worker node ${w.nodeName}: import images with ctr --address ${w.containerdSocket} -n k8s.io images import FILE`,
        );
      } catch (err) {
        await stopCluster(info);
        throw err;
      }
    }
    process.stdout.write(`${exportsFor(info)}\n`);
  });

program.command('env <runDir>').action((runDir: string) => {
  const info = JSON.parse(readFileSync(join(runDir, 'cluster.json'), 'utf8')) as ClusterInfo;
  process.stdout.write(`${exportsFor(info)}\n`);
});

program
  .command('down <dir>')
  .description('stop one run, or every run under a run root')
  .action(async (dir: string) => {
    if (!existsSync(dir)) return;
    // Only folders that are runs (they hold pids/) are stopped and removed: a root such as /tmp
    // holds much else, which `down` must never delete.
    const isRun = (d: string): boolean => existsSync(join(d, 'pids'));
    const runs = isRun(dir)
      ? [dir]
      : readdirSync(dir)
          .map((d) => join(dir, d))
          .filter(isRun);
    for (const r of runs) {
      // A worker's containers and mounts first: stopping its processes alone would leave them.
      await stopWorkersIn(r);
      await stopCluster({ runDir: r });
    }
    // Anything else still naming the folder (a connector or emulator a test left behind) goes too.
    await stopRun(dir);
    // Network namespaces tests made (netns.ts): their fronts were processes of the run, stopped above.
    await removeRecordedNamespaces(dir);
    const left = processesMentioning(dir);
    if (left.length > 0) {
      process.stderr.write(
        `devcluster: still running after down: ${left.map((p) => `${p.pid} ${p.cmd}`).join('; ')}\n`,
      );
      process.exitCode = 1;
    }
  });

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`devcluster: ${errorMessage(err)}\n`);
  process.exit(1);
});
