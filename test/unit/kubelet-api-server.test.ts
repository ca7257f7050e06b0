/**
 * The kubelet API server end to end in one process: real TLS with client
 * certificates, the mock provider's hooks, and real protocol clients
 * (spdy-transport for SPDY/3.1, ws for the WebSocket channel protocol).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import transport, { type SpdyStream } from 'spdy-transport';
import WebSocket from 'ws';
import { CertificateAuthority, type KeyPairPem } from '../../devcluster/certs.js';
import { createLogger } from '../../src/common/logger.js';
import type { PodContext } from '../../src/core/provider.js';
import type { AccessReviewer } from '../../src/core/access-reviews.js';
import { KubeletApiServer, KubeletAuth } from '../../src/kubelet-api/index.js';
import { MockProvider } from '../../src/providers/mock/index.js';

const ctx: PodContext = {
  env: new Map([
    [
      'main',
      [
        { name: 'GREETING', value: 'hello', sensitive: false },
        { name: 'TOKEN', value: 's3cret', sensitive: true },
        { name: 'LAST', value: 'x', sensitive: false },
      ],
    ],
  ]),
  getSecret: async () => undefined,
  volumeFiles: async () => new Map(),
  recordEvent: () => undefined,
};

const pod: V1Pod = {
  metadata: { namespace: 'ns', name: 'web', uid: 'uid-web' },
  spec: { containers: [{ name: 'main', image: 'registry.example/web:1' }] },
};

let server: KubeletApiServer;
let port: number;
let ca: KeyPairPem;
let client: KeyPairPem;
let stranger: KeyPairPem;
let provider: MockProvider;

/** Stands in for the API server's RBAC: only the API server's kubelet clients may use the node. */
const apiServerOnly: AccessReviewer = {
  reviewAccess: async (user) => ({
    allowed: user.username === 'kube-apiserver-kubelet-client' || user.username === 'apiserver',
  }),
};

function auth(clientCA: string): KubeletAuth {
  return new KubeletAuth({
    nodeName: 'n',
    clientCA,
    access: apiServerOnly,
    mode: 'Webhook',
    log: createLogger('silent'),
  });
}

before(async () => {
  const authority = await CertificateAuthority.create('test-ca');
  const other = await CertificateAuthority.create('other-ca');
  ca = authority.pem;
  const serving = await authority.issue({ commonName: 'kubelet', server: true, serverIps: ['127.0.0.1'] });
  client = await authority.issue({ commonName: 'kube-apiserver-kubelet-client', client: true });
  stranger = await other.issue({ commonName: 'intruder', client: true });
  provider = new MockProvider({ nodeName: 'n', clusterId: 'c' });
  await provider.createPod(pod, ctx);
  server = new KubeletApiServer({
    port: 0,
    address: '127.0.0.1',
    tls: { cert: serving.cert, key: serving.key, clientCA: ca.cert, selfSigned: false },
    auth: auth(ca.cert),
    provider,
    nodeName: 'n',
    lookupPod: (ns, name) => (ns === 'ns' && name === 'web' ? pod : undefined),
    listPods: () => [pod],
    log: createLogger('silent'),
  });
  port = await server.listen();
});

after(async () => {
  await server.close();
  await provider.close();
});

/** `null`: no client certificate at all. */
function tlsOptions(who: KeyPairPem | null): RequestOptions {
  return { host: '127.0.0.1', port, ca: ca.cert, ...(who ? { cert: who.cert, key: who.key } : {}) };
}

function get(path: string, who: KeyPairPem | null = client): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...tlsOptions(who), path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sends an upgrade request; resolves with the upgraded socket, or the refusal. */
function upgrade(
  path: string,
  headers: Record<string, string | string[]>,
  who: KeyPairPem | null = client,
): Promise<{ socket?: Duplex; res?: IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...tlsOptions(who), path, method: 'POST', headers: { Connection: 'Upgrade', ...headers } });
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

interface SpdyResult {
  protocol: string | undefined;
  out: Record<string, string>;
}

/** Runs one remote command over SPDY with a real spdy-transport client, like client-go's v4 executor. */
async function spdyExec(path: string, types: string[], stdin?: string | Buffer, resize?: string): Promise<SpdyResult> {
  const up = await upgrade(path, {
    Upgrade: 'SPDY/3.1',
    'X-Stream-Protocol-Version': ['v5.channel.k8s.io', 'v4.channel.k8s.io'],
  });
  assert.ok(up.socket, `upgrade refused: ${up.res?.statusCode} ${up.body}`);
  const protocol = up.res?.headers['x-stream-protocol-version'] as string | undefined;
  const conn = transport.connection.create(up.socket, { protocol: 'spdy', isServer: false });
  conn.start(3.1);
  conn.on('error', () => undefined);
  const out: Record<string, string> = {};
  const streams: SpdyStream[] = [];
  for (const type of types) {
    const s = await new Promise<SpdyStream>((resolve, reject) => {
      const st = conn.request({ method: 'POST', path: '/', host: '127.0.0.1', headers: { streamtype: type } }, (err) =>
        err ? reject(err) : resolve(st),
      );
    });
    streams.push(s);
    out[type] = '';
  }
  const ends = streams.map(
    (s, i) =>
      new Promise<void>((resolve) => {
        const type = types[i] ?? '';
        s.on('data', (d: Buffer) => (out[type] += d.toString('utf8')));
        s.on('end', () => resolve());
        s.on('error', () => resolve());
      }),
  );
  const resizeStream = streams[types.indexOf('resize')];
  if (resizeStream && resize !== undefined) resizeStream.write(resize);
  const stdinStream = streams[types.indexOf('stdin')];
  if (stdinStream) stdinStream.end(stdin ?? '');
  await Promise.all(ends.filter((_, i) => types[i] !== 'stdin' && types[i] !== 'resize'));
  up.socket.destroy();
  return { protocol, out };
}

test('GET /healthz answers an authorized caller; like every path of a kubelet port it needs credentials', async () => {
  const r = await get('/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body.trim(), 'ok');
  assert.equal((await get('/healthz', null)).status, 401);
});

test('no client certificate, or one from another CA: 401 for logs, pods and exec upgrades', async () => {
  for (const who of [null, stranger]) {
    const logs = await get('/containerLogs/ns/web/main', who);
    assert.equal(logs.status, 401, logs.body);
    assert.match(logs.body, /client certificate/);
    assert.equal((await get('/pods', who)).status, 401);
    const up = await upgrade(
      '/exec/ns/web/main?command=echo&command=hi&output=1',
      { Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'v4.channel.k8s.io' },
      who,
    );
    assert.equal(up.socket, undefined);
    assert.equal(up.res?.statusCode, 401);
  }
});

test('container logs: the run’s lines, tailLines, timestamps, limitBytes; unknown pod or container is 404; bad query 400', async () => {
  const all = await get('/containerLogs/ns/web/main');
  assert.equal(all.status, 200, all.body);
  assert.equal(all.body, 'started registry.example/web:1\nenv GREETING=hello\nenv TOKEN=(secret)\nenv LAST=x\n');
  assert.doesNotMatch(all.body, /s3cret/);
  assert.equal((await get('/containerLogs/ns/web/main?tailLines=2')).body, 'env TOKEN=(secret)\nenv LAST=x\n');
  const stamped = await get('/containerLogs/ns/web/main?tailLines=1&timestamps=true');
  assert.match(stamped.body, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z env LAST=x\n$/);
  assert.equal((await get('/containerLogs/ns/web/main?limitBytes=7')).body, 'started');
  const missing = await get('/containerLogs/ns/nope/main');
  assert.equal(missing.status, 404);
  assert.match(missing.body, /ns\/nope/);
  assert.equal((await get('/containerLogs/ns/web/sidecar')).status, 404);
  assert.equal((await get('/containerLogs/ns/web/main?tailLines=x')).status, 400);
  const previous = await get('/containerLogs/ns/web/main?previous=true');
  assert.equal(previous.status, 500);
  assert.match(previous.body, /previous terminated container/);
});

test('GET /pods lists the node’s pods', async () => {
  const r = await get('/pods');
  assert.equal(r.status, 200);
  const list = JSON.parse(r.body) as { kind: string; items: V1Pod[] };
  assert.equal(list.kind, 'PodList');
  assert.deepEqual(
    list.items.map((p) => p.metadata?.name),
    ['web'],
  );
});

test('SPDY exec (spdy-transport client): negotiates v4, stdout, and a Success status on the error stream', async () => {
  const r = await spdyExec('/exec/ns/web/main?command=echo&command=hi&command=there&output=1&error=1', [
    'error',
    'stdout',
    'stderr',
  ]);
  assert.equal(r.protocol, 'v4.channel.k8s.io');
  assert.equal(r.out.stdout, 'hi there\n');
  assert.equal(r.out.stderr, '');
  assert.deepEqual(JSON.parse(r.out.error ?? ''), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
  });
});

test('SPDY exec: stdin reaches the process and 200 KiB come back intact (more than one flow-control window)', async () => {
  const input = Buffer.alloc(200 * 1024);
  for (let i = 0; i < input.length; i++) input[i] = 97 + (i % 26);
  const r = await spdyExec(
    '/exec/ns/web/main?command=cat&input=1&output=1&error=1',
    ['error', 'stdin', 'stdout', 'stderr'],
    input,
  );
  assert.equal(r.out.stdout?.length, input.length);
  assert.equal(r.out.stdout, input.toString('utf8'));
});

test('SPDY exec: a non-zero exit is a NonZeroExitCode status with the code; stderr is its own stream', async () => {
  const r = await spdyExec('/exec/ns/web/main?command=sh&command=-c&command=exit%2042&output=1&error=1', [
    'error',
    'stdout',
    'stderr',
  ]);
  const status = JSON.parse(r.out.error ?? '') as {
    status: string;
    reason: string;
    details: { causes: Array<{ reason: string; message: string }> };
  };
  assert.equal(status.status, 'Failure');
  assert.equal(status.reason, 'NonZeroExitCode');
  assert.deepEqual(status.details.causes, [{ reason: 'ExitCode', message: '42' }]);
  const err = await spdyExec('/exec/ns/web/main?command=nosuchcmd&output=1&error=1', ['error', 'stdout', 'stderr']);
  assert.equal(err.out.stderr, 'nosuchcmd: command not found\n');
  assert.equal(err.out.stdout, '');
  assert.match(err.out.error ?? '', /"message":"127"/);
});

test('SPDY: a client offering no supported protocol gets 403 and the accepted list', async () => {
  const up = await upgrade('/exec/ns/web/main?command=echo&output=1', {
    Upgrade: 'SPDY/3.1',
    'X-Stream-Protocol-Version': 'channel.k8s.io',
  });
  assert.equal(up.res?.statusCode, 403);
  assert.match(String(up.res?.headers['x-accepted-stream-protocol-versions']), /v4\.channel\.k8s\.io/);
});

test('SPDY attach with stdin echoes it back', async () => {
  const r = await spdyExec('/attach/ns/web/main?input=1&output=1', ['error', 'stdin', 'stdout'], 'typed line\n');
  assert.equal(r.out.stdout, 'typed line\n');
  assert.match(r.out.error ?? '', /"status":"Success"/);
});

test('SPDY exec with a terminal: no stderr stream, a resize stream whose sizes reach the process', async () => {
  const r = await spdyExec(
    '/exec/ns/web/main?command=stty&command=size&input=1&output=1&error=1&tty=1',
    ['error', 'stdin', 'stdout', 'resize'],
    undefined,
    '{"Width":132,"Height":43}\n',
  );
  assert.equal(r.out.stdout, '43 132\n', JSON.stringify(r.out));
  assert.match(r.out.error ?? '', /"status":"Success"/);
  // without a terminal there is no size to read
  const plain = await spdyExec('/exec/ns/web/main?command=stty&command=size&output=1&error=1', [
    'error',
    'stdout',
    'stderr',
  ]);
  assert.match(plain.out.stderr ?? '', /Inappropriate ioctl/);
  assert.match(plain.out.error ?? '', /"message":"1"/);
});

/** Runs one remote command over the WebSocket channel protocol with the ws client. */
async function wsExec(
  path: string,
  protocol: string,
  stdin?: string,
  resize?: string,
): Promise<{ protocol: string; channels: Record<number, string>; first: number[] }> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, [protocol], {
    ca: ca.cert,
    cert: client.cert,
    key: client.key,
  });
  const channels: Record<number, string> = {};
  const first: number[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => {
      if (resize !== undefined) ws.send(Buffer.concat([Buffer.from([4]), Buffer.from(resize)]));
      if (stdin !== undefined) {
        ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(stdin)]));
        ws.send(Buffer.from([255, 0])); // v5: stdin closed
      }
    });
    ws.on('message', (data: Buffer) => {
      const ch = data[0] ?? -1;
      if (data.length === 1) first.push(ch);
      channels[ch] = (channels[ch] ?? '') + data.subarray(1).toString('utf8');
    });
    ws.on('close', () => resolve());
    ws.on('error', reject);
  });
  return { protocol: ws.protocol, channels, first };
}

test('WebSocket v5 exec: ready signal, stdin with the close signal, stdout and the status on channel 3', async () => {
  const r = await wsExec(
    '/exec/ns/web/main?command=cat&input=1&output=1&error=1',
    'v5.channel.k8s.io',
    'over websocket',
  );
  assert.equal(r.protocol, 'v5.channel.k8s.io');
  assert.deepEqual(r.first, [1]);
  assert.equal(r.channels[1], 'over websocket');
  assert.match(r.channels[3] ?? '', /"status":"Success"/);
});

test('WebSocket v4 exec: exit code status', async () => {
  const r = await wsExec('/exec/ns/web/main?command=exit&command=7&output=1&error=1', 'v4.channel.k8s.io');
  assert.equal(r.protocol, 'v4.channel.k8s.io');
  const status = JSON.parse(r.channels[3] ?? '') as { reason: string; details: { causes: Array<{ message: string }> } };
  assert.equal(status.reason, 'NonZeroExitCode');
  assert.equal(status.details.causes[0]?.message, '7');
});

test('WebSocket exec with a terminal: sizes on channel 4 reach the process', async () => {
  const r = await wsExec(
    '/exec/ns/web/main?command=stty&command=size&output=1&tty=1',
    'v5.channel.k8s.io',
    undefined,
    '{"Width":80,"Height":24}',
  );
  assert.equal(r.channels[1], '24 80\n');
  assert.match(r.channels[3] ?? '', /"status":"Success"/);
});

test('WebSocket without a client certificate is refused with 401', async () => {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/exec/ns/web/main?command=echo&output=1`, ['v5.channel.k8s.io'], {
    ca: ca.cert,
  });
  const status = await new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => resolve(-1));
  });
  assert.equal(status, 401);
});

test('close() ends open sessions with a ServiceUnavailable status and frees the port', async () => {
  const serving = await CertificateAuthority.create('shutdown-ca');
  const pair = await serving.issue({ commonName: 'kubelet', server: true, serverIps: ['127.0.0.1'] });
  const caller = await serving.issue({ commonName: 'apiserver', client: true });
  const s2 = new KubeletApiServer({
    port: 0,
    address: '127.0.0.1',
    tls: { cert: pair.cert, key: pair.key, clientCA: serving.pem.cert, selfSigned: false },
    auth: auth(serving.pem.cert),
    provider,
    nodeName: 'n',
    lookupPod: (ns, name) => (ns === 'ns' && name === 'web' ? pod : undefined),
    log: createLogger('silent'),
  });
  const p2 = await s2.listen();
  const ws = new WebSocket(
    `wss://127.0.0.1:${p2}/exec/ns/web/main?command=sleep&command=2&output=1`,
    ['v5.channel.k8s.io'],
    {
      ca: serving.pem.cert,
      cert: caller.cert,
      key: caller.key,
    },
  );
  let status = '';
  let closing: Promise<void> | undefined;
  const closed = new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      if (data[0] === 1 && data.length === 1) closing = s2.close();
      if (data[0] === 3) status += data.subarray(1).toString('utf8');
    });
    ws.on('close', () => resolve());
    ws.on('error', reject);
  });
  await closed;
  const parsed = JSON.parse(status) as { status: string; reason: string; message: string };
  assert.equal(parsed.status, 'Failure');
  assert.equal(parsed.reason, 'ServiceUnavailable');
  assert.match(parsed.message, /shutting down/);
  await closing;
  // the port is free again
  const refused = await new Promise<string>((resolve) => {
    const req = request({ host: '127.0.0.1', port: p2, path: '/healthz', ca: serving.pem.cert }, (res) => {
      res.resume();
      resolve(`answered ${res.statusCode ?? 0}`);
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    req.end();
  });
  assert.equal(refused, 'ECONNREFUSED');
});
