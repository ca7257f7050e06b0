/**
 * kubectl logs / exec / attach through the real API server (v1.36) to the
 * connector's kubelet API (mock provider), and the kubelet port refusing
 * callers without the API server's client certificate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector, type ConnectorHandle } from './connector-process.js';
import { kubectl, runProgram } from './kubelet-api-support.js';

async function runningPod(h: ConnectorHandle, ns: string, name: string, extra: Partial<V1Pod> = {}): Promise<void> {
  const pod = boundPod(h.nodeName, name, extra);
  await core().createNamespacedPod({ namespace: ns, body: pod });
  await waitFor(
    `pod ${ns}/${name} Running`,
    async () => (await core().readNamespacedPod({ name, namespace: ns })).status?.phase === 'Running',
  );
}

async function kubeletPort(h: ConnectorHandle): Promise<number> {
  return waitFor('the node to advertise its kubelet port', async () => {
    const node = await core().readNode({ name: h.nodeName });
    const port = node.status?.daemonEndpoints?.kubeletEndpoint?.Port;
    return port && port > 0 ? port : undefined;
  });
}

const spec = (containerExtra: Record<string, unknown> = {}): Partial<V1Pod> => ({
  spec: {
    containers: [
      {
        name: 'main',
        image: 'registry.example/app:1',
        env: [
          { name: 'ALPHA', value: 'one' },
          { name: 'BETA', value: 'two' },
          { name: 'GAMMA', value: 'three' },
        ],
        ...containerExtra,
      },
    ],
  },
});

test('kubectl logs, exec and attach through the API server reach the node’s kubelet API', async (t) => {
  const ns = await freshNamespace(t, 'kubelet-api');
  const h = await startConnector(t);
  await runningPod(h, ns, 'app', spec({ stdin: true }));

  await t.test('kubectl logs prints the container’s log; --tail keeps the last lines', async () => {
    const all = await kubectl(['-n', ns, 'logs', 'app']);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, 'started registry.example/app:1\nenv ALPHA=one\nenv BETA=two\nenv GAMMA=three\n');
    const tail = await kubectl(['-n', ns, 'logs', 'app', '--tail=2']);
    assert.equal(tail.code, 0, tail.stderr);
    assert.equal(tail.stdout, 'env BETA=two\nenv GAMMA=three\n');
    const stamped = await kubectl(['-n', ns, 'logs', 'app', '--tail=1', '--timestamps']);
    assert.match(stamped.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z env GAMMA=three\n$/);
    const bytes = await kubectl(['-n', ns, 'logs', 'app', '--limit-bytes=7']);
    assert.equal(bytes.stdout, 'started');
  });

  await t.test('kubectl exec POD -- echo hi prints hi and exits 0 (WebSocket to the API server)', async () => {
    const r = await kubectl(['-n', ns, 'exec', 'app', '--', 'echo', 'hi']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hi\n');
    // The API server spoke SPDY to the kubelet API (it translates kubectl's WebSocket).
    assert.match(
      h.output(),
      /"protocol":"v4\.channel\.k8s\.io"[^\n]*"msg":"streaming session started"|"msg":"streaming session started"[^\n]*"protocol":"v4\.channel\.k8s\.io"/,
    );
  });

  await t.test('kubectl exec with SPDY all the way (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false)', async () => {
    const r = await kubectl(['-n', ns, 'exec', 'app', '--', 'echo', 'over', 'spdy'], {
      env: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'over spdy\n');
  });

  await t.test('kubectl exec -i passes stdin through, 300 KiB intact', async () => {
    const small = await kubectl(['-n', ns, 'exec', '-i', 'app', '--', 'cat'], { stdin: 'line one\nline two\n' });
    assert.equal(small.code, 0, small.stderr);
    assert.equal(small.stdout, 'line one\nline two\n');
    const big = Buffer.alloc(300 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = 48 + (i % 43);
    const r = await kubectl(['-n', ns, 'exec', '-i', 'app', '--', 'cat'], { stdin: big });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, big.length);
    assert.ok(r.stdout === big.toString('utf8'), 'the output differs from the input');
  });

  await t.test('an exec that exits non-zero makes kubectl exit with that code; stderr goes to stderr', async () => {
    const r = await kubectl(['-n', ns, 'exec', 'app', '--', 'sh', '-c', 'exit 3']);
    assert.equal(r.code, 3, r.stderr);
    const spdy = await kubectl(['-n', ns, 'exec', 'app', '--', 'exit', '42'], {
      env: { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' },
    });
    assert.equal(spdy.code, 42, spdy.stderr);
    const err = await kubectl(['-n', ns, 'exec', 'app', '--', 'echoerr', 'oops']);
    assert.equal(err.code, 0, err.stderr);
    assert.equal(err.stdout, '');
    assert.match(err.stderr, /oops/);
  });

  await t.test('kubectl exec -it on a terminal: the terminal size reaches the process', async () => {
    // `script` gives kubectl a pseudo-terminal of a known size; kubectl sends it on the resize stream.
    const c = testCluster();
    const cmd = `stty rows 43 cols 132; ${join(c.binDir, 'kubectl')} --kubeconfig ${c.kubeconfig} -n ${ns} exec -it app -- stty size`;
    const r = await runProgram('script', ['-qec', cmd, '/dev/null']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /43 132/);
  });

  await t.test('kubectl attach -i joins the main process', async () => {
    const r = await kubectl(['-n', ns, 'attach', '-i', 'app', '-c', 'main'], { stdin: 'hello attach\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hello attach\n/);
  });

  await t.test('kubectl logs -f follows the run until the container exits', async () => {
    await runningPod(h, ns, 'short', {
      metadata: { annotations: { 'mock.aci-connector.io/exit-code': '0', 'mock.aci-connector.io/run-ms': '4000' } },
      spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'registry.example/short:1' }] },
    });
    const r = await kubectl(['-n', ns, 'logs', '-f', 'short']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'started registry.example/short:1\nexited with code 0\n');
  });

  await t.test('the kubelet port refuses a caller without the API server’s client certificate', async () => {
    const port = await kubeletPort(h);
    const ca = readFileSync(testCluster().caCert, 'utf8');
    const status = (path: string, method: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method, ca }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await status(`/containerLogs/${ns}/app/main`, 'GET'), 401);
    assert.equal(await status(`/exec/${ns}/app/main?command=echo&command=hi&output=1`, 'POST'), 401);
    assert.equal(await status('/pods', 'GET'), 401);
  });
});
