/**
 * devcluster/netns.ts: a network namespace with a front that relays ADDRESS:PORT
 * (inside it) to a loopback port, and nothing left once it is torn down, whether
 * by teardown() or by `devcluster down` after a crash.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createNetworkNamespace, removeRecordedNamespaces } from '../../devcluster/netns.js';
import { processesMentioning, stopRun } from '../../devcluster/processes.js';

const exec = promisify(execFile);

async function namespaces(): Promise<string[]> {
  const { stdout } = await exec('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

async function rootAddresses(): Promise<string> {
  return (await exec('ip', ['-4', '-o', 'addr', 'show'])).stdout;
}

/** A loopback server that answers each connection with a greeting and then echoes. */
async function loopbackEcho(t: { after(fn: () => Promise<void> | void): void }): Promise<number> {
  const srv: Server = createServer((s) => {
    s.write(`hello from ${s.localAddress}\n`);
    s.pipe(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  const addr = srv.address();
  assert.ok(addr && typeof addr === 'object');
  return addr.port;
}

function talk(host: string, port: number, send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = createConnection({ host, port });
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      got += d;
      if (got.includes(send)) s.end();
    });
    s.once('connect', () => s.write(send));
    s.once('close', () => resolve(got));
    s.once('error', reject);
  });
}

function runDir(): string {
  return mkdtempSync(join(process.env.ACI_TEST_RUN_DIR ?? tmpdir(), 'netns-'));
}

test('a front in a test namespace relays its address to a loopback port, and teardown leaves nothing', async (t) => {
  const dir = runDir();
  const echo = await loopbackEcho(t);
  const ns = await createNetworkNamespace(dir);
  t.after(() => ns.teardown());

  assert.ok((await namespaces()).includes(ns.name), `${ns.name} in ip netns list`);
  assert.match(ns.address, /^198\.(18|19)\.\d+\.\d+$/);
  // The front's address lives only in the namespace; the root namespace holds its peer.
  const root = await rootAddresses();
  assert.ok(!root.includes(` ${ns.address}/`), 'the namespace side is not a root-namespace address');
  assert.ok(root.includes(` ${ns.hostAddress}/30`), 'the root side of the pair');

  const front = await ns.front(10250, echo);
  assert.equal(await talk(ns.address, 10250, 'ping\n'), 'hello from 127.0.0.1\nping\n');
  // Many connections at once, each its own relay.
  const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => talk(ns.address, 10250, `n${i}\n`)));
  replies.forEach((r, i) => assert.equal(r, `hello from 127.0.0.1\nn${i}\n`));
  assert.equal(front.target, echo);
  assert.ok(processesMentioning(dir).length >= 1, 'the front is a process of the run');

  await ns.teardown();
  assert.ok(!(await namespaces()).includes(ns.name), 'namespace deleted');
  assert.ok(!(await rootAddresses()).includes(` ${ns.hostAddress}/`), 'veth pair deleted');
  assert.deepEqual(processesMentioning(dir), [], 'no front left');
  assert.deepEqual(readdirSync(join(dir, 'netns')), [], 'no record or socket left');
  await assert.rejects(ns.front(80, echo), /torn down/);
});

test('devcluster down removes a namespace and its front that a crashed run left behind', async (t) => {
  const dir = runDir();
  const echo = await loopbackEcho(t);
  const ns = await createNetworkNamespace(dir);
  t.after(() => ns.teardown());
  await ns.front(8443, echo);
  assert.equal(await talk(ns.address, 8443, 'x\n'), 'hello from 127.0.0.1\nx\n');

  // What `devcluster down DIR` does, without the run that made them tearing anything down.
  await stopRun(dir);
  assert.deepEqual(await removeRecordedNamespaces(dir), [ns.name]);
  assert.ok(!(await namespaces()).includes(ns.name));
  assert.ok(!existsSync(`/sys/class/net/acih${ns.name.slice(4)}`), 'host side of the pair gone');
  assert.deepEqual(processesMentioning(dir), []);
});
