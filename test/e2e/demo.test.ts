/**
 * The README's first command works: the demo brings up a control plane, the
 * emulator on podman, the connector and a pod that answers HTTP and kubectl exec,
 * then (with --exit-after-check) stops all of it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../devcluster/cluster.js';
import { processesMentioning } from '../../devcluster/processes.js';
import { testCluster } from '../support/cluster.js';

test(
  'the demo serves its page over HTTP and kubectl exec, then leaves nothing running',
  { timeout: 600_000 },
  async (t) => {
    // Short paths: podman refuses a runroot longer than 50 characters.
    const root = mkdtempSync('/tmp/demo-');
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const child = spawn(
      process.execPath,
      [join(repoRoot, 'dist/devcluster/demo.js'), '--run-root', root, '--exit-after-check'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ACI_KUBE_BIN: testCluster().binDir },
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, out);
    const page = 'Hello from a pod on the aci-connector node, running in the ACI emulator.';
    assert.match(out, /node aci-connector is Ready/);
    assert.ok(out.includes(`GET http://127.`), out);
    assert.ok(
      out.split('\n').some((l) => l.trim() === page),
      `the page came back over HTTP:\n${out}`,
    );
    assert.ok(out.includes(`cat /www/index.html: ${page}`), `and through kubectl exec:\n${out}`);
    assert.deepEqual(processesMentioning(root), [], 'no process of the demo is left');
  },
);

test('./scripts/demo --help prints its options without installing anything', { timeout: 60_000 }, async () => {
  const child = spawn('bash', [join(repoRoot, 'scripts/demo'), '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, out);
  for (const option of ['--exit-after-check', '--image', '--run-root', '--help'])
    assert.ok(out.includes(option), `${option} in:\n${out}`);
  assert.doesNotMatch(out, /==>|installing|compiling/, 'nothing was installed or built');
});

test('a demo pod that cannot start stops the demo at once with the pod’s Warning', { timeout: 300_000 }, async (t) => {
  const root = mkdtempSync('/tmp/demo-');
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'dist/devcluster/demo.js'),
      '--run-root',
      root,
      '--exit-after-check',
      '--image',
      'localhost/aci-local/does-not-exist:1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ACI_KUBE_BIN: testCluster().binDir } },
  );
  let out = '';
  let podCreatedAt = 0;
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (!podCreatedAt && out.includes('4/5 creating pod')) podCreatedAt = Date.now();
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const afterPod = (Date.now() - podCreatedAt) / 1000;
  assert.notEqual(code, 0, out);
  assert.ok(podCreatedAt > 0, `the demo got as far as the pod:\n${out}`);
  assert.match(out, /warning: Failed: .*does-not-exist/, `the pod's Warning is shown:\n${out}`);
  assert.match(out, /demo failed: pod hello cannot start/, out);
  assert.ok(
    afterPod < 30,
    `the demo stopped ${afterPod.toFixed(1)} s after creating the pod, not after its 300 s wait:\n${out}`,
  );
  assert.match(out, /1\/5 took \d+\.\d s/, 'each step says how long it took');
  assert.deepEqual(processesMentioning(root), [], 'no process of the demo is left');
});
