/** The mock provider's logs / exec / attach hooks that the kubelet API tests drive. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import type { ExecStreams, PodContext, PodRef } from '../../src/core/provider.js';
import { MockProvider } from '../../src/providers/mock/index.js';
import { waitFor } from '../support/wait.js';

const ctx: PodContext = {
  env: new Map([['c', [{ name: 'A', value: '1', sensitive: false }]]]),
  getSecret: async () => undefined,
  volumeFiles: async () => new Map(),
  recordEvent: () => undefined,
};

function pod(uid: string, annotations: Record<string, string> = {}, restartPolicy = 'Always'): V1Pod {
  return {
    metadata: { namespace: 'ns', name: `p-${uid}`, uid, annotations },
    spec: { restartPolicy, containers: [{ name: 'c', image: 'img:1' }] },
  };
}

const ref = (uid: string): PodRef => ({ namespace: 'ns', name: `p-${uid}`, uid });

async function text(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += String(c);
  return s;
}

const until = (what: string, check: () => Promise<boolean> | boolean): Promise<true> =>
  waitFor(what, async () => (await check()) || undefined, { timeoutMs: 10_000, intervalMs: 20 });

function streams(stdin?: string): { s: ExecStreams; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (d: Buffer) => (o += d.toString()));
  stderr.on('data', (d: Buffer) => (e += d.toString()));
  return {
    s: { stdin: stdin === undefined ? undefined : Readable.from([stdin]), stdout, stderr, tty: false },
    out: () => o,
    err: () => e,
  };
}

test('logs: the current run, the previous run after a restart, and follow ending at the exit', async () => {
  const m = new MockProvider({ nodeName: 'n', clusterId: 'c' });
  try {
    await m.createPod(
      pod('r1', { 'mock.aci-connector.io/exit-code': '3', 'mock.aci-connector.io/run-ms': '300' }),
      ctx,
    );
    // the first run exits with 3 and restarts (Always)
    await until(
      'a restart',
      async () => ((await m.getPod(ref('r1')))?.status.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
    );
    const previous = await text(await m.getContainerLogs(ref('r1'), 'c', { previous: true }));
    assert.equal(previous, 'started img:1\nenv A=1\nexited with code 3\n');

    await m.createPod(
      pod('f1', { 'mock.aci-connector.io/exit-code': '0', 'mock.aci-connector.io/run-ms': '400' }, 'Never'),
      ctx,
    );
    await until('Running', async () => (await m.getPod(ref('f1')))?.status.phase === 'Running');
    const followed = await text(await m.getContainerLogs(ref('f1'), 'c', { follow: true }));
    assert.equal(followed, 'started img:1\nenv A=1\nexited with code 0\n');
    await assert.rejects(m.getContainerLogs(ref('f1'), 'c', { previous: true }), /previous terminated container/);
    await assert.rejects(m.getContainerLogs(ref('f1'), 'nope', {}), /not in the mock pod/);
  } finally {
    await m.close();
  }
});

test('exec: the built-in commands and their exit codes; a stopped container refuses exec', async () => {
  const m = new MockProvider({ nodeName: 'n', clusterId: 'c' });
  try {
    await m.createPod(pod('e1'), ctx);
    await until('Running', async () => (await m.getPod(ref('e1')))?.status.phase === 'Running');
    const run = async (cmd: string[], stdin?: string) => {
      const io = streams(stdin);
      const r = await m.exec(ref('e1'), 'c', cmd, io.s);
      return { code: r.exitCode, out: io.out(), err: io.err() };
    };
    assert.deepEqual(await run(['echo', 'a', 'b']), { code: 0, out: 'a b\n', err: '' });
    assert.deepEqual(await run(['cat'], 'piped'), { code: 0, out: 'piped', err: '' });
    assert.deepEqual(await run(['env']), { code: 0, out: 'A=1\n', err: '' });
    assert.deepEqual(await run(['hostname']), { code: 0, out: 'p-e1\n', err: '' });
    assert.deepEqual(await run(['sh', '-c', 'exit 5']), { code: 5, out: '', err: '' });
    assert.deepEqual(await run(['exit', '300']), { code: 44, out: '', err: '' });
    assert.deepEqual(await run(['false']), { code: 1, out: '', err: '' });
    assert.deepEqual(await run(['ls']), { code: 127, out: '', err: 'ls: command not found\n' });
    assert.equal((await run(['stty', 'size'])).code, 1);

    await m.createPod(
      pod('e2', { 'mock.aci-connector.io/exit-code': '0', 'mock.aci-connector.io/run-ms': '50' }, 'Never'),
      ctx,
    );
    await until('Succeeded', async () => (await m.getPod(ref('e2')))?.status.phase === 'Succeeded');
    await assert.rejects(m.exec(ref('e2'), 'c', ['echo'], streams().s), /not running/);
  } finally {
    await m.close();
  }
});
