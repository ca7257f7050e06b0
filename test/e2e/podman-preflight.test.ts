/**
 * A machine that cannot run podman pods fails loudly, not silently:
 * - the emulator with the podman runtime exits at start with one line that names
 *   the missing package (here catatonit, the pause image's init, hidden from podman);
 * - a group that podman cannot create anyway (the preflight skipped) leaves its pod
 *   Pending with CreateContainerError, podman's message, and an Event.
 *
 * The pause binary is hidden the way a fresh machine lacks it: a PATH without it and a
 * containers.conf helper_binaries_dir that is empty, over a fresh podman store (a store
 * that already holds the pause image would not need catatonit again).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import type { PodmanRuntime } from '../../src/emulator/runtimes/podman/podman-runtime.js';
import { busyboxImage } from '../support/images.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { azureEnv } from './aci-emulator-env.js';
import { boundPod, core, startConnector, uniqueNodeName } from './connector-process.js';

const EMULATOR_CLI = fileURLToPath(new URL('../../src/emulator/cli.js', import.meta.url));

/** A podman wrapper whose PATH lacks catatonit, and an empty helper folder. */
function podmanWithoutCatatonit(root: string): { podmanBinary: string; helperBinariesDir: string[] } {
  const bin = join(root, 'bin');
  const empty = join(root, 'helpers');
  mkdirSync(bin, { recursive: true });
  mkdirSync(empty, { recursive: true });
  for (const name of readdirSync('/usr/bin'))
    if (name !== 'catatonit') symlinkSync(join('/usr/bin', name), join(bin, name));
  const wrapper = join(root, 'podman');
  writeFileSync(wrapper, `#!/bin/sh\nPATH=${bin}:/usr/sbin:/sbin exec /usr/bin/podman "$@"\n`);
  chmodSync(wrapper, 0o755);
  return { podmanBinary: wrapper, helperBinariesDir: [empty] };
}

// Short paths: podman refuses a runroot longer than 50 characters.
const root = mkdtempSync('/tmp/pf-');

test(
  'the emulator on podman without catatonit exits non-zero with one line that names the package',
  { timeout: 180_000 },
  async () => {
    const podman = podmanWithoutCatatonit(join(root, 'cli'));
    const child = spawn(
      process.execPath,
      [
        EMULATOR_CLI,
        '--runtime',
        'podman',
        '--port',
        '0',
        '--state-dir',
        join(root, 'cli', 'state'),
        '--podman',
        JSON.stringify(podman),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.notEqual(code, 0, `the emulator must not start:\n${stdout}\n${stderr}`);
    assert.doesNotMatch(stdout, /listening/, 'it never listened');
    const lines = stderr.split('\n').filter((l) => l.startsWith('aci-emulator:'));
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0] ?? '', /preflight failed at 'pod create'.*catatonit.*fix: apt-get install catatonit/);
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  },
);

let emu: Emulator;
let image: string;
const saved = { ...process.env };
before(async () => {
  const { createPodmanRuntime } = await import('../../src/emulator/runtimes/podman/index.js');
  const podman = podmanWithoutCatatonit(join(root, 'rt'));
  const runtime = createPodmanRuntime({ stateDir: join(root, 'rt', 'state'), stopTimeoutSeconds: 2, ...podman });
  // Importing the local image needs no pause image: the pull step passes, the pod creation fails.
  image = await busyboxImage((runtime as PodmanRuntime).cli);
  // The preflight would refuse this machine; skip it to see what a group creation failure looks like.
  emu = await startEmulator({ runtime, preflight: false });
  Object.assign(process.env, azureEnv(emu, 'preflight'));
});
after(async () => {
  await emu?.stop();
  process.env = saved;
  // Last: the runtime's podman wrapper lives in here.
  rmSync(root, { recursive: true, force: true });
});

test(
  'a group podman cannot create leaves the pod Pending with CreateContainerError, the message, and an Event',
  { timeout: 300_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'pf');
    const nodeName = uniqueNodeName('pf');
    await startConnector(t, { nodeName, extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(nodeName, 'web', {
        spec: { containers: [{ name: 'web', image, command: ['sleep', '60'], ports: [{ containerPort: 80 }] }] },
      }),
    });
    const pod = await waitFor(
      'the pod waiting with CreateContainerError',
      async () => {
        const p = await core().readNamespacedPod({ name: 'web', namespace: ns });
        return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerError' ? p : undefined;
      },
      { timeoutMs: 180_000 },
    );
    assert.equal(pod.status?.phase, 'Pending');
    assert.match(pod.status?.containerStatuses?.[0]?.state?.waiting?.message ?? '', /catatonit/);
    const event = await waitFor('a Warning event that says why', async () => {
      const list = await core().listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=web' });
      return list.items.find((e) => e.type === 'Warning' && /catatonit/.test(e.message ?? ''));
    });
    assert.ok(event.reason);
  },
);
