/**
 * A tcpSocket readiness probe in a VNet, through the real API server, the connector with the ACI
 * provider and the emulator's podman runtime: a group in a VNet gets its own network namespace
 * (a veth pair with a /30 of 198.18.0.0/15, which the emulator creates), so its IP is the
 * container's own and a port nothing listens on refuses the connection. The probe then follows the
 * real listener both ways, which slirp4netns's accept-first forwarder (public groups) cannot show.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { podmanFixture } from '../emulator/podman-fixtures.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';
import { cond, events, execIn, isReady, probe, read, TOGGLED_PORT } from './probes-support.js';
import { azureEnv } from './aci-emulator-env.js';

let emu: Emulator | undefined;
let fx: Awaited<ReturnType<typeof podmanFixture>> | undefined;
let image = '';
const saved = { ...process.env };

before(async () => {
  fx = await podmanFixture();
  image = fx.image;
  emu = await startEmulator({ runtime: fx.runtime });
  Object.assign(process.env, azureEnv(emu, `probes-vnet-${Math.random().toString(36).slice(2, 8)}`));
});

after(async () => {
  if (emu) await emu.stop();
  else await fx?.runtime.close();
  process.env = saved;
});

const SUBNET = '/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci';

test(
  'in a VNet, tcpSocket readiness flips the Ready condition both ways as the container stops and starts listening',
  { timeout: 240_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'probe-tcp-vnet');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'], env: { ACI_SUBNET_IDS: SUBNET } });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'toggle', {
        spec: {
          containers: [
            {
              name: 'main',
              image,
              command: ['sh', '-c', TOGGLED_PORT],
              // No containerPort: in a VNet every port of the group IP is the container's.
              readinessProbe: { tcpSocket: { port: 8080 }, ...probe },
            },
          ],
        },
      }),
    });
    // Every Ready condition the API server shows, in order (a change of status or transition time).
    const seen: { status: string; at: string }[] = [];
    const observe = async () => {
      const p = await read(ns, 'toggle');
      const c = cond(p, 'Ready');
      const last = seen[seen.length - 1];
      const at = String(c?.lastTransitionTime ?? '');
      if (c?.status && (last?.status !== c.status || last.at !== at)) seen.push({ status: c.status, at });
      return p;
    };
    const up = await waitFor(
      'Ready while 8080 accepts',
      async () => {
        const p = await observe();
        return isReady(p) && p;
      },
      {
        timeoutMs: 150_000,
        intervalMs: 250,
      },
    );
    const ip = up.status?.podIP ?? '';
    assert.match(ip, /^198\.(18|19)\.\d+\.\d+$/, 'the group IP is its own namespace’s, in the test range');
    assert.equal(up.status?.containerStatuses?.[0]?.ready, true);

    await execIn(ns, 'toggle', 'main', 'touch', '/tmp/closed');
    const down = await waitFor(
      'not Ready once nothing listens',
      async () => {
        const p = await observe();
        return !isReady(p) && p;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    const refused = await waitFor('Unhealthy: the closed port refused the connection', async () =>
      (await events(ns, 'toggle')).find(
        (e) => e.reason === 'Unhealthy' && e.message.startsWith(`Readiness probe failed: dial tcp ${ip}:8080: `),
      ),
    );
    assert.match(refused.message, /ECONNREFUSED/, 'refused at once (RST), not timed out');
    assert.equal(down.status?.phase, 'Running');
    const s = down.status?.containerStatuses?.[0];
    assert.ok(s?.state?.running, 'the container still runs: only its listener stopped');
    assert.equal(s?.ready, false);
    assert.equal(s?.restartCount, 0, 'readiness never restarts a container');

    await execIn(ns, 'toggle', 'main', 'rm', '/tmp/closed');
    const again = await waitFor(
      'Ready again once 8080 accepts',
      async () => {
        const p = await observe();
        return isReady(p) && p;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    assert.equal(again.status?.containerStatuses?.[0]?.restartCount, 0);
    const flips = seen.map((x) => x.status).filter((x, i, all) => i === 0 || all[i - 1] !== x);
    assert.deepEqual(flips.slice(-3), ['True', 'False', 'True'], `Ready conditions seen: ${JSON.stringify(seen)}`);
    const [t1, t2, t3] = seen.filter((x, i, all) => i === 0 || all[i - 1]?.status !== x.status).slice(-3);
    assert.ok(t1 && t2 && t3 && t1.at !== t2.at && t2.at !== t3.at, 'each flip is a transition of the condition');
  },
);
