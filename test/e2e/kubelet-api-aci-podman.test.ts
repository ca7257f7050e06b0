/**
 * kubectl exec through the real API server, the connector's kubelet API and the ACI
 * provider, on the emulator's podman runtime (real containers, a real /bin/sh).
 * ACI's exec runs one executable without arguments, so the provider types a quoted
 * `exec` line into /bin/sh: arguments must arrive exactly, and an image without a
 * shell must be refused, never run as something else.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { podmanFixture } from '../emulator/podman-fixtures.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';
import { kubectl } from './kubelet-api-support.js';
import { azureEnv } from './aci-emulator-env.js';

const NO_SHELL = 'localhost/aci-local/no-shell:exec-test';
let emu: Emulator | undefined;
let fx: Awaited<ReturnType<typeof podmanFixture>> | undefined;
let image = '';
const saved = { ...process.env };

before(async () => {
  fx = await podmanFixture();
  image = fx.image;
  if ((await fx.runtime.cli.exec(['image', 'exists', NO_SHELL])).code !== 0) {
    // The busybox image without /bin/sh: the binary stays, so single executables still run.
    const name = `no-shell-${process.pid}`;
    await fx.runtime.cli.run(['run', '--network', 'none', '--name', name, image, 'rm', '/bin/sh'], {
      timeoutMs: 120_000,
    });
    try {
      await fx.runtime.cli.run(['commit', '--quiet', name, NO_SHELL]);
    } finally {
      await fx.runtime.cli.exec(['rm', '-f', name]);
    }
  }
  emu = await startEmulator({ runtime: fx.runtime });
  Object.assign(process.env, azureEnv(emu, `exec-podman-${Math.random().toString(36).slice(2, 8)}`));
});

after(async () => {
  // The emulator closes its runtime; without one (a failed set-up) the runtime is closed here.
  if (emu) await emu.stop();
  else await fx?.runtime.close();
  process.env = saved;
});

test(
  'with the ACI provider on podman: kubectl exec passes arguments exactly through /bin/sh',
  { timeout: 600_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'exec-podman');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'shell', {
        spec: { containers: [{ name: 'main', image, command: ['sleep', '3600'] }] },
      }),
    });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'bare', {
        spec: { containers: [{ name: 'main', image: NO_SHELL, command: ['/bin/sleep', '3600'] }] },
      }),
    });
    for (const name of ['shell', 'bare']) {
      // Exec needs the container running, not only the group: ACI reports a group Running (the pod's
      // phase) while a container may still be starting, and then refuses an exec into it.
      await waitFor(
        `${name} Running, its container started`,
        async () => {
          const s = (await core().readNamespacedPod({ name, namespace: ns })).status;
          return s?.phase === 'Running' && Boolean(s.containerStatuses?.[0]?.state?.running);
        },
        { timeoutMs: 300_000 },
      );
    }

    // The acceptance: spaces inside an argument survive.
    const printed = await kubectl([
      '-n',
      ns,
      'exec',
      'shell',
      '--',
      'sh',
      '-c',
      'printf "%s|" "$@"',
      'x',
      'a   b',
      'c',
    ]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout, 'a   b|c|');

    // Quotes, %, backslashes, an empty argument, a tab, a newline and UTF-8, through a terminal and a line editor.
    const tricky = ["it's", '100%', 'back\\slash', '', 'tab\there', 'two\nlines', 'grüße', '$HOME', '*'];
    const exact = await kubectl(['-n', ns, 'exec', 'shell', '--', 'printf', '[%s]', ...tricky]);
    assert.equal(exact.code, 0, exact.stderr);
    assert.equal(exact.stdout, tricky.map((a) => `[${a}]`).join(''));

    // The command's exit code, and stdin until its end (no terminal: no echo, no \r\n).
    const exit = await kubectl(['-n', ns, 'exec', 'shell', '--', 'sh', '-c', 'exit 3']);
    assert.equal(exit.code, 3, exit.stderr);
    const piped = await kubectl(['-n', ns, 'exec', '-i', 'shell', '--', 'sh', '-c', 'cat; echo "end of input"'], {
      stdin: 'one\ntwo\n',
    });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, 'one\ntwo\nend of input\n');

    // A single executable runs directly, also where there is no shell.
    const single = await kubectl(['-n', ns, 'exec', 'bare', '--', 'hostname']);
    assert.equal(single.code, 0, single.stderr);
    assert.ok(single.stdout.trim().length > 0);
    // With arguments and no shell: refused, saying why.
    const refused = await kubectl(['-n', ns, 'exec', 'bare', '--', 'touch', '/tmp/should-not-exist']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /without arguments.*\/bin\/sh/s);
  },
);
