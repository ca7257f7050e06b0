/**
 * Port-forward and the node views of the kubelet API, in one process: real
 * TLS with client certificates, real protocol clients (spdy-transport as
 * client-go's SPDY port-forwarder speaks, ws for the WebSocket channels) and
 * real TCP listeners on loopback standing in for a pod's ports.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import transport, { type SpdyConnection, type SpdyStream } from 'spdy-transport';
import WebSocket from 'ws';
import { CertificateAuthority, type KeyPairPem } from '../../devcluster/certs.js';
import { createLogger } from '../../src/common/logger.js';
import type { PodContext, PodRef } from '../../src/core/provider.js';
import type { AccessReviewer } from '../../src/core/access-reviews.js';
import { KubeletApiServer, KubeletAuth } from '../../src/kubelet-api/index.js';
import { MockProvider } from '../../src/providers/mock/index.js';

const ctx: PodContext = {
  env: new Map(),
  getSecret: async () => undefined,
  volumeFiles: async () => new Map(),
  recordEvent: () => undefined,
};

const pods: V1Pod[] = [
  {
    metadata: { namespace: 'ns', name: 'web', uid: 'uid-web' },
    spec: { containers: [{ name: 'main', image: 'registry.example/web:1' }] },
  },
  {
    metadata: { namespace: 'ns', name: 'noip', uid: 'uid-noip' },
    spec: { containers: [{ name: 'main', image: 'registry.example/web:1' }] },
  },
];

/** The mock provider, with pod IPs the test controls: web is on 127.0.0.1, noip has none. */
class ForwardingProvider extends MockProvider {
  async portForwardAddress(ref: PodRef): Promise<string | undefined> {
    return ref.name === 'web' ? '127.0.0.1' : undefined;
  }
}

let server: KubeletApiServer;
let plainServer: KubeletApiServer;
let port: number;
let plainPort: number;
let ca: KeyPairPem;
let client: KeyPairPem;
let provider: ForwardingProvider;
let plain: MockProvider;
/** The pod's listener: echoes with a prefix, so the answer is recognisably the pod's. */
let echo: Server;
let echoPort: number;
/** A port on 127.0.0.1 where nothing listens. */
let closedPort: number;

const allowAll: AccessReviewer = { reviewAccess: async () => ({ allowed: true }) };

before(async () => {
  const authority = await CertificateAuthority.create('test-ca');
  ca = authority.pem;
  const serving = await authority.issue({ commonName: 'kubelet', server: true, serverIps: ['127.0.0.1'] });
  client = await authority.issue({ commonName: 'kube-apiserver-kubelet-client', client: true });
  provider = new ForwardingProvider({ nodeName: 'n', clusterId: 'c' });
  plain = new MockProvider({ nodeName: 'n', clusterId: 'c' });
  for (const p of pods) {
    await provider.createPod(p, ctx);
    await plain.createPod(p, ctx);
  }
  echo = createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => s.write(`pod says: ${d.toString('utf8')}`));
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as AddressInfo).port;
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));

  const make = (p: MockProvider) =>
    new KubeletApiServer({
      port: 0,
      address: '127.0.0.1',
      tls: { cert: serving.cert, key: serving.key, clientCA: ca.cert, selfSigned: false },
      auth: new KubeletAuth({
        nodeName: 'n',
        clientCA: ca.cert,
        access: allowAll,
        mode: 'Webhook',
        log: createLogger('silent'),
      }),
      provider: p,
      nodeName: 'n',
      lookupPod: (ns, name) => pods.find((x) => x.metadata?.namespace === ns && x.metadata.name === name),
      listPods: () => pods.slice(0, 1),
      log: createLogger('silent'),
    });
  server = make(provider);
  port = await server.listen();
  plainServer = make(plain);
  plainPort = await plainServer.listen();
});

after(async () => {
  await server.close();
  await plainServer.close();
  await provider.close();
  await plain.close();
  await new Promise<void>((r) => echo.close(() => r()));
});

function tlsOptions(p = port): RequestOptions {
  return { host: '127.0.0.1', port: p, ca: ca.cert, cert: client.cert, key: client.key };
}

function get(path: string, p = port): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...tlsOptions(p), path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

function upgrade(
  path: string,
  headers: Record<string, string | string[]>,
  p = port,
): Promise<{ socket?: Duplex; res?: IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...tlsOptions(p), path, method: 'POST', headers: { Connection: 'Upgrade', ...headers } });
    req.on('upgrade', (res, socket, head) => {
      if (head.length > 0) socket.unshift(head);
      resolve({ socket, res, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ res, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function spdyConnect(path: string): Promise<{ conn: SpdyConnection; socket: Duplex; protocol: unknown }> {
  const up = await upgrade(path, { Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'portforward.k8s.io' });
  assert.ok(up.socket, `upgrade refused: ${up.res?.statusCode} ${up.body}`);
  const conn = transport.connection.create(up.socket, { protocol: 'spdy', isServer: false });
  conn.start(3.1);
  conn.on('error', () => undefined);
  return { conn, socket: up.socket, protocol: up.res?.headers['x-stream-protocol-version'] };
}

function openStream(conn: SpdyConnection, headers: Record<string, string>): Promise<SpdyStream> {
  return new Promise((resolve, reject) => {
    const st = conn.request({ method: 'POST', path: '/', host: '127.0.0.1', headers }, (err) =>
      err ? reject(err) : resolve(st),
    );
  });
}

function readAll(s: SpdyStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('utf8')));
    s.on('end', () => resolve(text));
    s.on('error', () => resolve(text));
  });
}

/** One forwarded connection as client-go makes it: error stream (closed for writing), then data stream. */
async function forwardOnce(
  conn: SpdyConnection,
  remotePort: number,
  requestID: string,
  send: string,
): Promise<{ data: string; error: string }> {
  const error = await openStream(conn, { streamtype: 'error', port: String(remotePort), requestid: requestID });
  error.end();
  const errorText = readAll(error);
  const data = await openStream(conn, { streamtype: 'data', port: String(remotePort), requestid: requestID });
  const dataText = readAll(data);
  data.end(send);
  return { data: await dataText, error: await errorText };
}

test('SPDY port-forward: negotiates portforward.k8s.io and relays each stream pair to the pod’s port over TCP', async () => {
  const { conn, socket, protocol } = await spdyConnect('/portForward/ns/web');
  assert.equal(protocol, 'portforward.k8s.io');
  // Two local connections at once on one SPDY connection, each its own TCP connection to the pod.
  const [a, b] = await Promise.all([
    forwardOnce(conn, echoPort, '0', 'first'),
    forwardOnce(conn, echoPort, '1', 'second'),
  ]);
  assert.deepEqual(a, { data: 'pod says: first', error: '' });
  assert.deepEqual(b, { data: 'pod says: second', error: '' });
  // The connection stays up for the next local connection.
  assert.deepEqual(await forwardOnce(conn, echoPort, '2', 'third'), { data: 'pod says: third', error: '' });
  socket.destroy();
});

test('SPDY port-forward: a client that drops the connection mid-forward leaves no TCP connection to the pod', async () => {
  const { conn, socket } = await spdyConnect('/portForward/ns/web');
  const error = await openStream(conn, { streamtype: 'error', port: String(echoPort), requestid: '0' });
  error.end();
  const data = await openStream(conn, { streamtype: 'data', port: String(echoPort), requestid: '0' });
  const first = new Promise<string>((r) => data.once('data', (d: Buffer) => r(d.toString('utf8'))));
  data.write('still here');
  assert.equal(await first, 'pod says: still here');
  const open = () => new Promise<number>((r) => echo.getConnections((_e, n) => r(n)));
  assert.equal(await open(), 1);
  socket.destroy();
  for (let i = 0; (await open()) > 0; i++) {
    assert.ok(i < 200, 'the connection to the pod is still open 10 s after the client left');
    await new Promise((r) => setTimeout(r, 50));
  }
});

test('SPDY port-forward with the uid form of the path; a wrong uid or unknown pod is 404', async () => {
  const { conn, socket } = await spdyConnect('/portForward/ns/web/uid-web');
  assert.deepEqual(await forwardOnce(conn, echoPort, '0', 'x'), { data: 'pod says: x', error: '' });
  socket.destroy();
  for (const path of ['/portForward/ns/web/other-uid', '/portForward/ns/nosuch']) {
    const up = await upgrade(path, { Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'portforward.k8s.io' });
    assert.equal(up.socket, undefined);
    assert.equal(up.res?.statusCode, 404, path);
  }
});

test('SPDY port-forward errors go on the error stream in the kubelet’s words: nothing listening, no pod IP', async () => {
  const { conn, socket } = await spdyConnect('/portForward/ns/web');
  const refused = await forwardOnce(conn, closedPort, '0', 'hello?');
  assert.equal(refused.data, '');
  assert.equal(
    refused.error,
    `error forwarding port ${closedPort} to pod ns/web, uid uid-web: cannot connect to 127.0.0.1:${closedPort}: connection refused (nothing listens on that port)`,
  );
  socket.destroy();

  const noip = await spdyConnect('/portForward/ns/noip');
  const r = await forwardOnce(noip.conn, 80, '0', 'hello?');
  assert.equal(
    r.error,
    'error forwarding port 80 to pod ns/noip, uid uid-noip: pod ns/noip has no IP address the node can reach (status.podIP is empty)',
  );
  noip.socket.destroy();
});

test('SPDY port-forward refuses streams without a valid port or type, and a client without the protocol', async () => {
  const { conn, socket } = await spdyConnect('/portForward/ns/web');
  // The server resets them (RST_STREAM CANCEL, as spdystream's Reset), which closes them on the client.
  for (const headers of [
    { streamtype: 'data', port: '0', requestid: '0' },
    { streamtype: 'stdout', port: '80', requestid: '0' },
  ]) {
    const s = await openStream(conn, headers);
    await new Promise<void>((r) => s.once('close', () => r()));
  }
  // The connection is still good for a valid pair.
  assert.deepEqual(await forwardOnce(conn, echoPort, '1', 'ok'), { data: 'pod says: ok', error: '' });
  socket.destroy();

  const bad = await upgrade('/portForward/ns/web', {
    Upgrade: 'SPDY/3.1',
    'X-Stream-Protocol-Version': 'v4.channel.k8s.io',
  });
  assert.equal(bad.res?.statusCode, 403);
  assert.equal(bad.res?.headers['x-accepted-stream-protocol-versions'], 'portforward.k8s.io');
  const noUpgrade = await get('/portForward/ns/web');
  assert.equal(noUpgrade.status, 400);
});

interface WsOutcome {
  frames: Map<number, Buffer[]>;
}

/** The client hangs up once `enough` holds (v4 has no half-close: the session lasts until one side closes). */
function wsForward(
  path: string,
  protocol: string | undefined,
  onOpen: (ws: WebSocket) => void,
  enough: (text: (ch: number) => string) => boolean,
): Promise<WsOutcome> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, protocol ? [protocol] : [], {
    ca: ca.cert,
    cert: client.cert,
    key: client.key,
  });
  const frames = new Map<number, Buffer[]>();
  return new Promise((resolve, reject) => {
    ws.on('open', () => onOpen(ws));
    ws.on('message', (data: Buffer, isBinary) => {
      const buf = isBinary
        ? data
        : Buffer.concat([
            Buffer.from([data.toString('utf8').charCodeAt(0) - 48]),
            Buffer.from(data.toString('utf8').slice(1), 'base64'),
          ]);
      const ch = buf[0] ?? -1;
      frames.set(ch, [...(frames.get(ch) ?? []), buf.subarray(1)]);
      if (enough((c) => Buffer.concat((frames.get(c) ?? []).slice(1)).toString('utf8'))) ws.close(1000);
    });
    ws.on('close', () => resolve({ frames }));
    ws.on('error', reject);
  });
}

test('WebSocket port-forward: port bytes first on every channel, data on 2n, errors on 2n+1', async () => {
  const path = `/portForward/ns/web?port=${echoPort},${closedPort}`;
  const out = await wsForward(
    path,
    'v4.channel.k8s.io',
    (ws) => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('over ws')])),
    (text) => text(0) === 'pod says: over ws' && text(3).includes('refused'),
  );
  const le = (p: number) => Buffer.from([p & 255, p >> 8]);
  // channel 0: the port, then the pod's answer
  assert.deepEqual(out.frames.get(0)?.[0], le(echoPort));
  assert.equal(Buffer.concat(out.frames.get(0)!.slice(1)).toString('utf8'), 'pod says: over ws');
  assert.deepEqual(out.frames.get(1), [le(echoPort)]);
  // the second port's pair: its port, and the refusal
  assert.deepEqual(out.frames.get(2), [le(closedPort)]);
  assert.deepEqual(out.frames.get(3)?.[0], le(closedPort));
  assert.match(
    Buffer.concat(out.frames.get(3)!.slice(1)).toString('utf8'),
    new RegExp(`^error forwarding port ${closedPort} to pod ns/web, uid uid-web: .*connection refused`),
  );
});

test('WebSocket port-forward, base64 framing; the port query is required', async () => {
  const out = await wsForward(
    `/portForward/ns/web?port=${echoPort}`,
    'v4.base64.channel.k8s.io',
    (ws) => ws.send('0' + Buffer.from('b64').toString('base64')),
    (text) => text(0) === 'pod says: b64',
  );
  assert.equal(Buffer.concat(out.frames.get(0)!.slice(1)).toString('utf8'), 'pod says: b64');
  const missing = await upgrade('/portForward/ns/web', {
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
  });
  assert.equal(missing.res?.statusCode, 400);
  assert.match(missing.body, /"port" is required/);
  const bad = await get('/portForward/ns/web?port=70000');
  assert.equal(bad.status, 400);
});

test('a provider without port-forward (the mock: its pod IPs are made up) answers 501', async () => {
  const up = await upgrade(
    '/portForward/ns/web',
    { Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'portforward.k8s.io' },
    plainPort,
  );
  assert.equal(up.res?.statusCode, 501);
  assert.match(up.body, /does not support port-forward/);
});

test('/runningpods/ and /runningpods: what the provider runs, in the kubelet’s ToAPIPod shape', async () => {
  for (const path of ['/runningpods/', '/runningpods']) {
    const r = await get(path);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.type, 'application/json');
    const list = JSON.parse(r.body) as { kind: string; apiVersion: string; items: unknown[] };
    assert.equal(list.kind, 'PodList');
    assert.equal(list.apiVersion, 'v1');
    // Both pods run in the backend, although the informer's /pods lists only one here.
    const byName = new Map(list.items.map((p) => [(p as { metadata: { name: string } }).metadata.name, p]));
    assert.deepEqual(byName.get('noip'), {
      metadata: { name: 'noip', namespace: 'ns', uid: 'uid-noip', creationTimestamp: null },
      spec: { containers: [{ name: 'main', image: 'registry.example/web:1', resources: {} }] },
      status: {},
    });
    assert.ok(byName.has('web'));
  }
  const informer = JSON.parse((await get('/pods')).body) as { items: V1Pod[] };
  assert.deepEqual(
    informer.items.map((p) => p.metadata?.name),
    ['web'],
  );
});

test('/spec/ is the node capacity as cAdvisor MachineInfo; /healthz is ok', async () => {
  const node = await provider.nodeInfo();
  for (const path of ['/spec/', '/spec']) {
    const r = await get(path);
    assert.equal(r.status, 200, r.body);
    const spec = JSON.parse(r.body) as { num_cores: number; memory_capacity: number; machine_id: string };
    assert.equal(String(spec.num_cores), String(Math.floor(Number(node.capacity.cpu))));
    assert.ok(spec.memory_capacity > 0);
    assert.equal(spec.machine_id, 'n');
  }
  const h = await get('/healthz');
  assert.equal(h.status, 200);
  assert.equal(h.body, 'ok\n');
});
