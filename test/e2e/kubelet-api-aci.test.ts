/**
 * kubectl logs / exec through the real API server, the connector's kubelet API
 * and the ACI provider, with the emulator (simulated runtime) standing in for Azure.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';
import { kubectl } from './kubelet-api-support.js';
import { azureEnv } from './aci-emulator-env.js';

let emu: Emulator;
const saved = { ...process.env };

before(async () => {
  emu = await startEmulator({
    simulated: {
      pullMs: 20,
      startMs: 20,
      rules: [
        { image: 'registry.example/talker:1', fate: { kind: 'runs', logs: ['line one', 'line two', 'line three'] } },
      ],
    },
  });
  // The connector child process inherits these.
  Object.assign(process.env, azureEnv(emu, `kubelet-api-${Math.random().toString(36).slice(2, 8)}`));
});

after(async () => {
  await emu?.stop();
  process.env = saved;
});

test('with the ACI provider: kubectl logs and exec reach the container group', async (t) => {
  const ns = await freshNamespace(t, 'kubelet-aci');
  const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
  await core().createNamespacedPod({
    namespace: ns,
    body: boundPod(h.nodeName, 'talker', {
      spec: {
        containers: [{ name: 'main', image: 'registry.example/talker:1', env: [{ name: 'COLOR', value: 'blue' }] }],
      },
    }),
  });
  await waitFor(
    'talker Running',
    async () => (await core().readNamespacedPod({ name: 'talker', namespace: ns })).status?.phase === 'Running',
  );

  const logs = await waitFor('the container log', async () => {
    const r = await kubectl(['-n', ns, 'logs', 'talker']);
    return r.code === 0 && r.stdout.includes('line three') ? r : undefined;
  });
  assert.equal(logs.stdout, 'line one\nline two\nline three\n');
  const tail = await kubectl(['-n', ns, 'logs', 'talker', '--tail=1']);
  assert.equal(tail.code, 0, tail.stderr);
  assert.equal(tail.stdout, 'line three\n');
  const previous = await kubectl(['-n', ns, 'logs', 'talker', '--previous']);
  assert.notEqual(previous.code, 0);
  assert.match(previous.stderr, /previous container instance/);

  const hi = await kubectl(['-n', ns, 'exec', 'talker', '--', 'echo', 'hi']);
  assert.equal(hi.code, 0, hi.stderr);
  assert.equal(hi.stdout, 'hi\n');
  const env = await kubectl(['-n', ns, 'exec', 'talker', '--', 'env']);
  assert.match(env.stdout, /^COLOR=blue$/m);
  const exit = await kubectl(['-n', ns, 'exec', 'talker', '--', 'sh', '-c', 'exit 4']);
  assert.equal(exit.code, 4, exit.stderr);
  // ACI's exec socket has no end-of-input, so stdin is shown with a shell that exits by itself.
  const sh = await kubectl(['-n', ns, 'exec', '-i', 'talker', '--', 'sh'], { stdin: 'echo through ACI\nexit 0\n' });
  assert.equal(sh.code, 0, sh.stderr);
  // ACI's exec is a terminal: it echoes the typed lines too.
  assert.match(sh.stdout, /^through ACI$/m);
});
