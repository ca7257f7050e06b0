/**
 * The original connector's walkthrough, as written, with the emulator on the
 * podman runtime standing in for Azure: the node `aci-connector` is Ready, the
 * nginx pod (examples/nginx-pod.yaml) runs and answers HTTP on its address, and
 * the tolerations example (examples/nginx-pod-tolerations.yaml) is placed by the
 * real scheduler.
 *
 * No registry is reachable here, so `nginx` is a local stand-in committed from the
 * busybox test image: an httpd serving a page on port 80.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type * as k8s from '@kubernetes/client-node';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { podmanFixture } from '../emulator/podman-fixtures.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { core, setConnectorEnv, startConnector } from './connector-process.js';
import { azureEnv } from './aci-emulator-env.js';

const NGINX_STAND_IN = 'docker.io/library/nginx:latest';
const PAGE = 'Welcome to nginx (a busybox httpd stand-in)';
let emu: Emulator;

function example(name: string): k8s.V1Pod {
  return parse(readFileSync(fileURLToPath(new URL(`../../../examples/${name}`, import.meta.url)), 'utf8')) as k8s.V1Pod;
}

before(async () => {
  // The podman tests' runtime settings and shared store, so the busybox image is built once per machine.
  const { runtime, image: busybox } = await podmanFixture();
  if ((await runtime.cli.exec(['image', 'exists', NGINX_STAND_IN])).code !== 0) {
    const name = `nginx-stand-in-${process.pid}`;
    await runtime.cli.run(['create', '--name', name, busybox]);
    try {
      await runtime.cli.run([
        'commit',
        '--quiet',
        '--change',
        `CMD ["sh","-c","echo '${PAGE}' > /www/index.html && exec httpd -f -p 80 -h /www"]`,
        name,
        NGINX_STAND_IN,
      ]);
    } finally {
      await runtime.cli.exec(['rm', '-f', name]);
    }
  }
  emu = await startEmulator({ runtime });
  setConnectorEnv({ ...azureEnv(emu, 'walkthrough'), ACI_REGION: 'westus' });
});

after(async () => {
  setConnectorEnv({});
  await emu?.stop();
});

test(
  'the walkthrough: node aci-connector Ready, nginx answers HTTP on its pod IP, the tolerations example is scheduled',
  { timeout: 600_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'walkthrough');
    await startConnector(t, { nodeName: 'aci-connector', extraArgs: ['--provider', 'aci'] });
    await waitFor('node aci-connector Ready', async () => {
      const n = await core().readNode({ name: 'aci-connector' });
      return n.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True';
    });

    await core().createNamespacedPod({ namespace: ns, body: example('nginx-pod.yaml') });
    const pod = await waitFor(
      'nginx Running with an IP',
      async () => {
        const p = await core().readNamespacedPod({ name: 'nginx', namespace: ns });
        return p.status?.phase === 'Running' && p.status.podIP ? p : undefined;
      },
      { timeoutMs: 300_000 },
    );
    const body = await waitFor(
      'nginx to answer HTTP',
      async () => {
        const res = await fetch(`http://${pod.status!.podIP}:80/`).catch(() => undefined);
        return res?.status === 200 ? res.text() : undefined;
      },
      { timeoutMs: 120_000 },
    );
    assert.match(body, new RegExp(PAGE.replace(/[()]/g, '\\$&')));

    // As written, except that other test files run virtual nodes (same label and taint) at the same
    // time: the hostname label keeps the scheduler's choice among this file's node only.
    const tolerating = example('nginx-pod-tolerations.yaml');
    tolerating.spec!.nodeSelector = { ...tolerating.spec!.nodeSelector, 'kubernetes.io/hostname': 'aci-connector' };
    await core().createNamespacedPod({ namespace: ns, body: tolerating });
    const placed = await waitFor(
      'nginx-tolerations scheduled and Running',
      async () => {
        const p = await core().readNamespacedPod({ name: 'nginx-tolerations', namespace: ns });
        return p.status?.phase === 'Running' ? p : undefined;
      },
      { timeoutMs: 300_000 },
    );
    assert.equal(placed.spec?.nodeName, 'aci-connector');
    assert.ok(placed.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'True'));

    for (const name of ['nginx', 'nginx-tolerations']) await core().deleteNamespacedPod({ name, namespace: ns });
    await waitFor('no container group left', async () => emu.stats().groups === 0, { timeoutMs: 120_000 });
  },
);
