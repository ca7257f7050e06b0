/**
 * `kubectl port-forward` through the real API server and the connector's
 * kubelet API to a pod on the emulator's podman runtime (ACI provider): the
 * pod's busybox httpd answers on a local port; a port where nothing listens
 * and a pod without an IP give kubectl's error line with the connector's reason.
 * Then the same route over a WebSocket straight to the kubelet port, and the
 * node views (/runningpods/, /spec/, /healthz) with a token the cluster issued.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../../devcluster/cluster.js';
import WebSocket from 'ws';
import { parseQuantity } from '../../src/common/quantity.js';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { podmanFixture } from '../emulator/podman-fixtures.js';
import { freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector, type ConnectorHandle } from './connector-process.js';
import { azureEnv } from './aci-emulator-env.js';
import { call, clusterCa, serviceAccountToken, waitUntilAllowed } from './kubelet-api-callers.js';

const PAGE = 'served by the pod through kubectl port-forward';
let emu: Emulator;
let busybox: string;
const saved = { ...process.env };

before(async () => {
  const { runtime, image } = await podmanFixture();
  busybox = image;
  emu = await startEmulator({ runtime });
  Object.assign(process.env, azureEnv(emu, `port-forward-${Math.random().toString(36).slice(2, 8)}`));
});

after(async () => {
  await emu?.stop();
  process.env = saved;
});

/** A local port free right now on 127.0.0.1 (rather than a fixed 18080 another test might hold). */
interface PortForward {
  local: number;
  stderr(): string;
}

/** Runs `kubectl port-forward` until the test ends; resolves once it listens. */
async function portForward(t: TestContext, ns: string, pod: string, remote: number): Promise<PortForward> {
  const c = testCluster();
  const local = await freePort();
  const p = spawn(
    join(c.binDir, 'kubectl'),
    [
      '--kubeconfig',
      c.kubeconfig,
      '-n',
      ns,
      'port-forward',
      '--address',
      '127.0.0.1',
      `pod/${pod}`,
      `${local}:${remote}`,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  p.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  t.after(async () => {
    p.kill('SIGKILL');
    await exited;
  });
  let ended = false;
  void exited.then(() => (ended = true));
  await waitFor(`kubectl port-forward ${local}:${remote} to listen`, () => {
    if (ended && !out.includes('Forwarding from')) throw new Error(`kubectl port-forward exited: ${err}`);
    return out.includes(`Forwarding from 127.0.0.1:${local} -> ${remote}`);
  });
  return { local, stderr: () => err };
}

async function runningWithIp(ns: string, name: string): Promise<string> {
  return waitFor(
    `${name} Running with an IP`,
    async () => {
      const p = await core().readNamespacedPod({ name, namespace: ns });
      return p.status?.phase === 'Running' && p.status.podIP ? p.status.podIP : undefined;
    },
    { timeoutMs: 300_000 },
  );
}

async function kubeletPort(h: ConnectorHandle): Promise<number> {
  return waitFor('the node to advertise its kubelet port', async () => {
    const port = (await core().readNode({ name: h.nodeName })).status?.daemonEndpoints?.kubeletEndpoint?.Port;
    return port && port > 0 ? port : undefined;
  });
}

test(
  'kubectl port-forward to a podman-runtime ACI pod: HTTP through the connector; clear errors without a listener or an IP',
  { timeout: 600_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'port-forward');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    const httpd = `mkdir -p /www && echo '${PAGE}' > /www/index.html && exec httpd -f -p 80 -h /www`;
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'web', {
        spec: {
          containers: [{ name: 'web', image: busybox, command: ['sh', '-c', httpd], ports: [{ containerPort: 80 }] }],
        },
      }),
    });
    // No port and no IP address type: the group gets no address at all.
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'quiet', {
        annotations: { 'aci-connector.io/ip-address-type': 'None' },
        spec: { containers: [{ name: 'main', image: busybox, command: ['sleep', '3600'] }] },
      }),
    });
    const ip = await runningWithIp(ns, 'web');
    assert.match(ip, /^127\./);

    await t.test('the pod’s page on a local port, over SPDY through the API server', async (t) => {
      const pf = await portForward(t, ns, 'web', 80);
      const body = await waitFor('the page through the forward', async () => {
        const res = await fetch(`http://127.0.0.1:${pf.local}/`).catch(() => undefined);
        return res?.status === 200 ? res.text() : undefined;
      });
      assert.equal(body, `${PAGE}\n`);
      // Every local connection is its own stream pair and TCP connection to the pod.
      const again = await fetch(`http://127.0.0.1:${pf.local}/index.html`, { headers: { Connection: 'close' } });
      assert.equal(again.status, 200);
      assert.equal(await again.text(), `${PAGE}\n`);
      assert.doesNotMatch(pf.stderr(), /error/);
    });

    await t.test('a port where nothing listens: kubectl shows the refusal', async (t) => {
      const pf = await portForward(t, ns, 'web', 81);
      await fetch(`http://127.0.0.1:${pf.local}/`).catch(() => undefined);
      const line = await waitFor(
        'kubectl to print the forwarding error',
        () => /an error occurred forwarding .*/.exec(pf.stderr())?.[0],
      );
      assert.match(
        line,
        new RegExp(
          `an error occurred forwarding ${pf.local} -> 81: error forwarding port 81 to pod ${ns}/web, uid [0-9a-f-]+: cannot connect to ${ip.replace(/\./g, '\\.')}:81: connection refused`,
        ),
      );
    });

    await waitFor(
      'quiet Running',
      async () => (await core().readNamespacedPod({ name: 'quiet', namespace: ns })).status?.phase === 'Running',
      { timeoutMs: 300_000 },
    );
    await t.test('a pod without an IP: kubectl shows that the pod has no address', async (t) => {
      const pf = await portForward(t, ns, 'quiet', 80);
      await fetch(`http://127.0.0.1:${pf.local}/`).catch(() => undefined);
      const line = await waitFor(
        'kubectl to print the forwarding error',
        () => /an error occurred forwarding .*/.exec(pf.stderr())?.[0],
      );
      assert.match(
        line,
        new RegExp(
          `-> 80: error forwarding port 80 to pod ${ns}/quiet, uid [0-9a-f-]+: pod ${ns}/quiet has no IP address the node can reach`,
        ),
      );
    });

    const port = await kubeletPort(h);
    const rules = [
      { apiGroups: [''], resources: ['nodes/proxy'], verbs: ['create'] },
      { apiGroups: [''], resources: ['nodes/pods', 'nodes/healthz', 'nodes/spec'], verbs: ['get'] },
    ];
    const sa = await serviceAccountToken(t, ns, 'node-reader', rules);
    const groups = ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];
    const node = (verb: string, subresource: string) => ({
      verb,
      resource: 'nodes',
      subresource,
      name: h.nodeName,
      version: 'v1',
      group: '',
    });
    await waitUntilAllowed(sa.username, groups, node('create', 'proxy'));
    await waitUntilAllowed(sa.username, groups, node('get', 'pods'));
    await waitUntilAllowed(sa.username, groups, node('get', 'spec'));
    const who = { token: sa.token };

    await t.test('the same route over a WebSocket (v4.channel.k8s.io) straight to the kubelet port', async () => {
      const ws = new WebSocket(`wss://127.0.0.1:${port}/portForward/${ns}/web?port=80`, ['v4.channel.k8s.io'], {
        ca: clusterCa(),
        headers: { Authorization: `Bearer ${sa.token}` },
      });
      const data: Buffer[] = [];
      const got = await new Promise<string>((resolve, reject) => {
        ws.on('open', () => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('GET / HTTP/1.0\r\n\r\n')])));
        ws.on('message', (m: Buffer) => {
          if (m[0] === 0) data.push(m.subarray(1));
          if (m[0] === 1 && m.length > 3) reject(new Error(`error channel: ${m.subarray(3).toString('utf8')}`));
        });
        // HTTP/1.0: httpd closes the connection after the answer, so the kubelet side ends the session.
        ws.on('close', () => resolve(Buffer.concat(data).subarray(2).toString('utf8')));
        ws.on('error', reject);
      });
      assert.deepEqual(data[0], Buffer.from([80, 0]));
      assert.match(got, /^HTTP\/1\.[01] 200 OK\r\n/);
      assert.ok(got.endsWith(`${PAGE}\n`), got);
    });

    await t.test('/runningpods/ lists the groups the backend runs; /spec/ and /healthz answer', async () => {
      const pods = await Promise.all(['web', 'quiet'].map((name) => core().readNamespacedPod({ name, namespace: ns })));
      for (const path of ['/runningpods/', '/runningpods']) {
        const r = await call(port, path, who);
        assert.equal(r.status, 200, r.body);
        const list = JSON.parse(r.body) as {
          kind: string;
          apiVersion: string;
          items: {
            metadata: { name: string; namespace: string; uid: string };
            spec: { containers: { name: string; image: string }[] };
          }[];
        };
        assert.equal(list.kind, 'PodList');
        assert.equal(list.apiVersion, 'v1');
        for (const p of pods) {
          const item = list.items.find((i) => i.metadata.uid === p.metadata?.uid);
          assert.ok(item, `${p.metadata?.name} missing from ${r.body}`);
          assert.deepEqual(item.metadata, {
            name: p.metadata?.name,
            namespace: ns,
            uid: p.metadata?.uid,
            creationTimestamp: null,
          });
          assert.deepEqual(
            item.spec.containers.map((c) => [c.name, c.image]),
            [[p.spec!.containers[0]!.name, busybox]],
          );
        }
      }
      const spec = await call(port, '/spec/', who);
      assert.equal(spec.status, 200, spec.body);
      const machine = JSON.parse(spec.body) as { num_cores: number; memory_capacity: number };
      const capacity = (await core().readNode({ name: h.nodeName })).status?.capacity ?? {};
      // The node's capacity, as the provider reports it (e.g. cpu 10k, memory 4Ti), in cores and bytes.
      assert.equal(
        machine.num_cores,
        Math.floor(parseQuantity(capacity.cpu ?? '0')),
        `${spec.body} vs ${JSON.stringify(capacity)}`,
      );
      assert.equal(machine.memory_capacity, parseQuantity(capacity.memory ?? '0'));
      assert.ok(machine.num_cores > 0 && machine.memory_capacity > 0);
      const health = await call(port, '/healthz', who);
      assert.equal(health.status, 200);
      assert.equal(health.body, 'ok\n');
    });
  },
);
