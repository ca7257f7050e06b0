/**
 * Probes the connector runs itself (tcpSocket, gRPC, startup), native sidecars and init
 * container status, through the real API server, the connector with the ACI provider and
 * the emulator's podman runtime: real processes, real ports on the group's loopback IP.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../devcluster/cluster.js';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { podmanFixture } from '../emulator/podman-fixtures.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';
import { kubectl } from './kubelet-api-support.js';
import { cond, events, execIn, isReady, probe, read, TOGGLED_PORT } from './probes-support.js';
import { azureEnv } from './aci-emulator-env.js';

const exec = promisify(execFile);
let emu: Emulator | undefined;
let fx: Awaited<ReturnType<typeof podmanFixture>> | undefined;
let image = '';
let grpcImage = '';
const saved = { ...process.env };

/** The grpc-health test server (test/fixtures/grpc-health, built once per machine) in a busybox image. */
async function grpcHealthImage(f: NonNullable<typeof fx>): Promise<string> {
  const { stdout } = await exec('bash', [join(repoRoot, 'test/fixtures/grpc-health/build.sh')], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const binary = stdout.trim().split('\n').pop() ?? '';
  const tag = createHash('sha256').update(readFileSync(binary)).update(f.image).digest('hex').slice(0, 16);
  const name = `localhost/aci-local/grpc-health:${tag}`;
  if ((await f.runtime.cli.exec(['image', 'exists', name])).code === 0) return name;
  const ctr = `grpc-health-build-${process.pid}`;
  await f.runtime.cli.run(['create', '--name', ctr, f.image, 'true']);
  try {
    await f.runtime.cli.run(['cp', binary, `${ctr}:/bin/grpc-health`]);
    await f.runtime.cli.run(['commit', '--quiet', ctr, name]);
  } finally {
    await f.runtime.cli.exec(['rm', '-f', ctr]);
  }
  return name;
}

before(async () => {
  fx = await podmanFixture();
  image = fx.image;
  grpcImage = await grpcHealthImage(fx);
  emu = await startEmulator({ runtime: fx.runtime });
  Object.assign(process.env, azureEnv(emu, `probes-podman-${Math.random().toString(36).slice(2, 8)}`));
});

after(async () => {
  if (emu) await emu.stop();
  else await fx?.runtime.close();
  process.env = saved;
});

/** Public groups show "nothing listens" on a port the group does not publish (8081): see TOGGLED_PORT. */

test(
  'tcpSocket readiness: Ready when the port accepts, never Ready when nothing listens',
  { timeout: 220_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'probe-tcp');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    const body = (name: string, port: number) =>
      boundPod(h.nodeName, name, {
        spec: {
          containers: [
            {
              name: 'main',
              image,
              command: ['sh', '-c', TOGGLED_PORT],
              ports: [{ containerPort: 8080 }],
              readinessProbe: { tcpSocket: { port }, ...probe },
            },
          ],
        },
      });
    await core().createNamespacedPod({ namespace: ns, body: body('open', 8080) });
    await core().createNamespacedPod({ namespace: ns, body: body('closed', 8081) });
    await waitFor('open Ready', async () => isReady(await read(ns, 'open')), { timeoutMs: 150_000 });
    assert.equal((await read(ns, 'open')).status?.containerStatuses?.[0]?.ready, true);
    const ev = await waitFor(
      'closed: Unhealthy, connection refused',
      async () =>
        (await events(ns, 'closed')).find(
          (e) =>
            e.reason === 'Unhealthy' && /^Readiness probe failed: dial tcp [\d.]+:8081: .*ECONNREFUSED/.test(e.message),
        ),
      { timeoutMs: 150_000 },
    );
    assert.equal(ev.type, 'Warning');
    const closed = await read(ns, 'closed');
    assert.equal(closed.status?.phase, 'Running');
    assert.ok(closed.status?.containerStatuses?.[0]?.state?.running);
    assert.equal(closed.status?.containerStatuses?.[0]?.ready, false);
    assert.equal(closed.status?.containerStatuses?.[0]?.restartCount, 0, 'readiness never restarts a container');
    assert.equal(isReady(closed), false);
    assert.match(cond(closed, 'ContainersReady')?.message ?? '', /unready status: \[main\]/);
  },
);

test(
  'an httpGet readiness probe behind a startupProbe is the connector’s, and flips Ready both ways',
  { timeout: 220_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'probe-http');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'web', {
        spec: {
          containers: [
            {
              name: 'main',
              image,
              // busybox httpd answers 404 for a folder without index.html.
              command: ['sh', '-c', `echo ok > /tmp/index.html; ${TOGGLED_PORT}`],
              ports: [{ containerPort: 8080 }],
              startupProbe: { exec: { command: ['true'] }, periodSeconds: 1 },
              readinessProbe: { httpGet: { port: 8080, path: '/' }, ...probe },
            },
          ],
        },
      }),
    });
    await waitFor('web Ready', async () => isReady(await read(ns, 'web')), { timeoutMs: 150_000 });
    const up = await read(ns, 'web');
    assert.equal(up.status?.containerStatuses?.[0]?.started, true, 'the exec startup probe passed through ACI exec');
    await execIn(ns, 'web', 'main', 'touch', '/tmp/closed');
    const down = await waitFor(
      'web not Ready once the server stopped',
      async () => {
        const p = await read(ns, 'web');
        return !isReady(p) && p;
      },
      { timeoutMs: 90_000 },
    );
    assert.equal(down.status?.phase, 'Running');
    assert.equal(down.status?.containerStatuses?.[0]?.ready, false);
    assert.equal(down.status?.containerStatuses?.[0]?.restartCount, 0);
    await execIn(ns, 'web', 'main', 'rm', '/tmp/closed');
    await waitFor('web Ready again', async () => isReady(await read(ns, 'web')), { timeoutMs: 90_000 });
  },
);

test('a gRPC readiness probe asks a real grpc.health.v1 server, both ways', { timeout: 220_000 }, async (t) => {
  const ns = await freshNamespace(t, 'probe-grpc');
  const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
  await core().createNamespacedPod({
    namespace: ns,
    body: boundPod(h.nodeName, 'grpc', {
      spec: {
        containers: [
          {
            name: 'server',
            image: grpcImage,
            command: ['/bin/grpc-health', '-port', '9090', '-unhealthy-file', '/tmp/unhealthy'],
            ports: [{ containerPort: 9090 }],
            readinessProbe: { grpc: { port: 9090 }, ...probe },
          },
        ],
      },
    }),
  });
  await waitFor('grpc Ready (SERVING)', async () => isReady(await read(ns, 'grpc')), { timeoutMs: 150_000 });
  await execIn(ns, 'grpc', 'server', 'touch', '/tmp/unhealthy');
  await waitFor('grpc not Ready (NOT_SERVING)', async () => !isReady(await read(ns, 'grpc')), { timeoutMs: 90_000 });
  const ev = await waitFor('the Unhealthy event names the serving status', async () =>
    (await events(ns, 'grpc')).find((e) => e.reason === 'Unhealthy' && /NOT_SERVING/.test(e.message)),
  );
  assert.match(ev.message, /^Readiness probe failed: service unhealthy/);
  await execIn(ns, 'grpc', 'server', 'rm', '/tmp/unhealthy');
  await waitFor('grpc Ready again', async () => isReady(await read(ns, 'grpc')), { timeoutMs: 90_000 });
});

test(
  'a failing gRPC liveness probe restarts the container, with Unhealthy then Killing',
  { timeout: 220_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'probe-live');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'live', {
        spec: {
          containers: [
            {
              name: 'server',
              image: grpcImage,
              command: ['/bin/grpc-health', '-port', '9090', '-unhealthy-file', '/tmp/unhealthy'],
              ports: [{ containerPort: 9090 }],
              livenessProbe: { grpc: { port: 9090 }, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 2 },
            },
          ],
        },
      }),
    });
    await waitFor('live Running and Ready', async () => isReady(await read(ns, 'live')), { timeoutMs: 150_000 });
    await execIn(ns, 'live', 'server', 'touch', '/tmp/unhealthy');
    const restarted = await waitFor(
      'restartCount grows',
      async () => {
        const p = await read(ns, 'live');
        const s = p.status?.containerStatuses?.[0];
        return (s?.restartCount ?? 0) >= 1 && s?.state?.running && p;
      },
      { timeoutMs: 150_000 },
    );
    assert.equal(restarted.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 137);
    // The restart gives a fresh container (a fresh /tmp): it serves again and stays alive.
    await waitFor('Ready after the restart', async () => isReady(await read(ns, 'live')), { timeoutMs: 90_000 });
    const ev = await events(ns, 'live');
    const unhealthy = ev.find(
      (e) =>
        e.reason === 'Unhealthy' &&
        /^Liveness probe failed: service unhealthy \(responded with "NOT_SERVING"\)/.test(e.message),
    );
    const killing = ev.find(
      (e) => e.reason === 'Killing' && /Container server failed liveness probe, will be restarted/.test(e.message),
    );
    assert.ok(unhealthy, `no Unhealthy event: ${JSON.stringify(ev)}`);
    assert.ok(killing, `no Killing event: ${JSON.stringify(ev)}`);
    assert.equal(unhealthy.type, 'Warning');
    assert.equal((await read(ns, 'live')).status?.containerStatuses?.[0]?.restartCount, 1, 'one failure, one restart');
  },
);

test(
  'a tcpSocket liveness probe on a port nothing listens on restarts the container',
  { timeout: 220_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'probe-tcplive');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'dead', {
        spec: {
          containers: [
            {
              name: 'main',
              image,
              command: ['sleep', '3600'],
              ports: [{ containerPort: 8080 }],
              livenessProbe: { tcpSocket: { port: 8081 }, periodSeconds: 1, failureThreshold: 2 },
            },
          ],
        },
      }),
    });
    await waitFor(
      'restarted',
      async () => ((await read(ns, 'dead')).status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
      { timeoutMs: 150_000 },
    );
    const ev = await waitFor('Unhealthy and Killing', async () => {
      const list = await events(ns, 'dead');
      return (
        list.some((e) => e.reason === 'Unhealthy' && /^Liveness probe failed: dial tcp [\d.]+:8081/.test(e.message)) &&
        list.some((e) => e.reason === 'Killing' && /Container main failed liveness probe/.test(e.message)) &&
        list
      );
    });
    assert.ok(ev.length >= 2);
  },
);

test(
  'a startupProbe that never passes: the container is restarted and never Ready',
  { timeout: 220_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'probe-start');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'start', {
        spec: {
          containers: [
            {
              name: 'main',
              image,
              command: ['sleep', '3600'],
              ports: [{ containerPort: 8080 }],
              // Nothing listens on 8081 (not published: see TOGGLED_PORT); the readiness probe would
              // pass, but it must wait for the startup probe.
              startupProbe: { tcpSocket: { port: 8081 }, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 2 },
              readinessProbe: { exec: { command: ['true'] }, periodSeconds: 1 },
            },
          ],
        },
      }),
    });
    let everReady = false;
    let sawRunning = false;
    const restarted = await waitFor(
      'restarted after the startup probe failed',
      async () => {
        const p = await read(ns, 'start');
        const s = p.status?.containerStatuses?.[0];
        if (isReady(p) || s?.ready || s?.started) everReady = true;
        if (s?.state?.running) sawRunning = true;
        return (s?.restartCount ?? 0) >= 1 && s?.state?.running && p;
      },
      { timeoutMs: 150_000, intervalMs: 250 },
    );
    assert.ok(sawRunning);
    assert.equal(everReady, false, 'a container whose startup probe never passed was reported started or Ready');
    assert.equal(restarted.status?.containerStatuses?.[0]?.started, false);
    await waitFor('Unhealthy and Killing for the startup probe', async () => {
      const list = await events(ns, 'start');
      return (
        list.some((e) => e.reason === 'Unhealthy' && /^Startup probe failed/.test(e.message)) &&
        list.some((e) => e.reason === 'Killing' && /failed startup probe, will be restarted/.test(e.message))
      );
    });
    assert.equal(isReady(await read(ns, 'start')), false);
  },
);

test(
  'a native sidecar runs beside the app container; the pod is Ready when both are',
  { timeout: 220_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'sidecar');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'sc', {
        spec: {
          initContainers: [
            {
              name: 'proxy',
              image: grpcImage,
              restartPolicy: 'Always',
              // NOT_SERVING until the test removes the file. ACI reports no readiness verdict of its
              // own probes (instanceView has no `ready`), so the sidecar's readiness is a gRPC probe,
              // which the connector runs.
              command: [
                'sh',
                '-c',
                'touch /tmp/unhealthy && exec /bin/grpc-health -port 9090 -unhealthy-file /tmp/unhealthy',
              ],
              ports: [{ containerPort: 9090 }],
              readinessProbe: { grpc: { port: 9090 }, periodSeconds: 1, failureThreshold: 1 },
            },
          ],
          containers: [{ name: 'app', image, command: ['sleep', '3600'] }],
        },
      }),
    });
    const waiting = await waitFor(
      'app ready, sidecar running but not ready',
      async () => {
        const p = await read(ns, 'sc');
        const side = p.status?.initContainerStatuses?.[0];
        return p.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.ready && side?.state?.running && p;
      },
      { timeoutMs: 150_000 },
    );
    assert.equal(cond(waiting, 'Initialized')?.status, 'True', 'a started sidecar initializes the pod');
    assert.equal(waiting.status?.initContainerStatuses?.[0]?.name, 'proxy');
    assert.equal(waiting.status?.initContainerStatuses?.[0]?.started, true);
    assert.equal(waiting.status?.initContainerStatuses?.[0]?.ready, false);
    assert.equal(isReady(waiting), false);
    assert.match(cond(waiting, 'ContainersReady')?.message ?? '', /unready status: \[proxy\]/);
    assert.deepEqual(
      waiting.status?.containerStatuses?.map((c) => c.name),
      ['app'],
      'the sidecar is not reported as an app container',
    );

    await execIn(ns, 'sc', 'proxy', 'rm', '/tmp/unhealthy');
    const ready = await waitFor(
      'pod Ready',
      async () => {
        const p = await read(ns, 'sc');
        return isReady(p) && p;
      },
      { timeoutMs: 90_000 },
    );
    assert.equal(ready.status?.initContainerStatuses?.[0]?.ready, true);
    assert.equal(ready.status?.containerStatuses?.[0]?.ready, true);
    const got = await kubectl(['-n', ns, 'get', 'pod', 'sc', '--no-headers']);
    assert.match(got.stdout, /^sc\s+2\/2\s+Running\s/);
  },
);

test(
  'init containers: Pending and Initialized=False while they run or crash-loop, Running after',
  { timeout: 220_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'init-status');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'slow', {
        spec: {
          initContainers: [{ name: 'init', image, command: ['sleep', '20'] }],
          containers: [{ name: 'app', image, command: ['sleep', '3600'] }],
        },
      }),
    });
    const initRunning = await waitFor(
      'slow: its init container runs',
      async () => {
        const p = await read(ns, 'slow');
        return p.status?.initContainerStatuses?.[0]?.state?.running && p;
      },
      { timeoutMs: 150_000, intervalMs: 100 },
    );
    assert.equal(initRunning.status?.phase, 'Pending');
    assert.equal(cond(initRunning, 'Initialized')?.status, 'False');
    assert.equal(initRunning.status?.containerStatuses?.[0]?.state?.waiting?.reason, 'PodInitializing');
    assert.match(
      (await kubectl(['-n', ns, 'get', 'pod', 'slow', '--no-headers'])).stdout,
      /^slow\s+0\/1\s+Init:0\/1\s/,
    );

    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'crash', {
        spec: {
          initContainers: [{ name: 'init', image, command: ['sh', '-c', 'echo failing; exit 1'] }],
          containers: [{ name: 'app', image, command: ['sleep', '3600'] }],
        },
      }),
    });
    const looping = await waitFor(
      'the init container crash-loops',
      async () => {
        const p = await read(ns, 'crash');
        const s = p.status?.initContainerStatuses?.[0];
        return s?.state?.waiting?.reason === 'CrashLoopBackOff' && (s.restartCount ?? 0) >= 1 && p;
      },
      { timeoutMs: 150_000, intervalMs: 200 },
    );
    assert.equal(looping.status?.phase, 'Pending');
    assert.equal(cond(looping, 'Initialized')?.status, 'False');
    assert.equal(cond(looping, 'Initialized')?.reason, 'ContainersNotInitialized');
    assert.equal(looping.status?.containerStatuses?.[0]?.state?.waiting?.reason, 'PodInitializing');
    await waitFor(
      'kubectl shows Init:CrashLoopBackOff',
      async () =>
        /^crash\s+0\/1\s+Init:CrashLoopBackOff\s/.test(
          (await kubectl(['-n', ns, 'get', 'pod', 'crash', '--no-headers'])).stdout,
        ),
      {
        timeoutMs: 60_000,
        intervalMs: 100,
      },
    );

    const done = await waitFor(
      'slow Running after its init container succeeded',
      async () => {
        const p = await read(ns, 'slow');
        return p.status?.phase === 'Running' && p;
      },
      { timeoutMs: 90_000 },
    );
    assert.equal(done.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode, 0);
    assert.equal(cond(done, 'Initialized')?.status, 'True');
    assert.equal((await read(ns, 'crash')).status?.phase, 'Pending');
  },
);
