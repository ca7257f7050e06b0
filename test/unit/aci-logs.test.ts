import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TransientProviderError } from '../../src/core/provider.js';
import { LogFollowerHub, lastLines } from '../../src/providers/aci/streams/log-followers.js';
import { newPart, shapeLines } from '../../src/providers/aci/streams/logs.js';
import { waitFor } from '../support/wait.js';

const hub = (pollMs = 5, maxFollowers = 100) => new LogFollowerHub({ pollMs, maxFollowers });

async function text(r: NodeJS.ReadableStream): Promise<string> {
  let s = '';
  for await (const c of r) s += c.toString();
  return s;
}

test('sinceSeconds filters by timestamp; stamps are stripped unless asked for', () => {
  const now = Date.parse('2026-01-01T00:01:00Z');
  const log = '2026-01-01T00:00:00Z old\n2026-01-01T00:00:50.5Z new\n';
  assert.equal(shapeLines(log, { sinceSeconds: 30 }, now), 'new\n');
  assert.equal(shapeLines(log, { sinceSeconds: 30, timestamps: true }, now), '2026-01-01T00:00:50.5Z new\n');
  assert.equal(shapeLines(log, {}, now), 'old\nnew\n');
});

test('newPart finds what was appended, also when the front was trimmed', () => {
  assert.equal(newPart('a\nb\n', 'a\nb\nc\n'), 'c\n');
  assert.equal(newPart('a\nb\n', 'b\nc\n'), 'c\n');
  assert.equal(newPart('a\n', 'x\n'), 'x\n');
});

test('a non-follow read applies tail locally (one whole-log read) and limitBytes', async () => {
  const asked: unknown[] = [];
  const r = await hub().open(
    'g/c',
    async (o) => (asked.push(o), 'zero\nhello world\n'),
    { tailLines: 1, limitBytes: 5 },
    () => true,
  );
  assert.equal(await text(r), 'hello');
  assert.deepEqual(asked, [{}]);
  assert.equal(lastLines('a\nb\nc', 2), 'b\nc');
  assert.equal(lastLines('a\nb\n', 5), 'a\nb\n');
  assert.equal(lastLines('a\n', 0), '');
});

test('follow emits only new output and ends when the container is done', async () => {
  const versions = ['one\n', 'one\ntwo\n', 'one\ntwo\nthree\n'];
  let i = 0;
  let done = false;
  const r = await hub().open(
    'g/c',
    async () => {
      const v = versions[Math.min(i, versions.length - 1)]!;
      i++;
      if (i >= versions.length) done = true;
      return v;
    },
    { follow: true },
    () => done,
  );
  assert.equal(await text(r), 'one\ntwo\nthree\n');
});

test('many followers of one container share one poll, each from its own tail, and each gets new lines', async () => {
  let log = 'a\nb\n';
  let reads = 0;
  let done = false;
  const h = hub(20);
  const fetch = async () => {
    reads++;
    return log;
  };
  const streams = await Promise.all(
    Array.from({ length: 50 }, (_, i) => h.open('g/c', fetch, { follow: true, tailLines: i % 2 }, () => done)),
  );
  assert.equal(reads, 1, 'the first snapshot is shared');
  assert.equal(h.count, 50);
  const texts = streams.map((s) => text(s));
  log += 'c\n';
  // A poll after the new line reached every follower: then the log may end.
  await waitFor('a poll that saw the new line', () => reads >= 2, { timeoutMs: 10_000, intervalMs: 5 });
  done = true;
  const got = await Promise.all(texts);
  got.forEach((g, i) => assert.equal(g, i % 2 ? 'b\nc\n' : 'c\n'));
  assert.ok(reads <= 6, `${reads} reads for 50 followers over ~4 polls`);
  assert.equal(h.count, 0, 'followers are released when they end');
});

test('past the cap the next follower is refused with a clear, transient error', async () => {
  const h = hub(1000, 2);
  const fetch = async () => 'x\n';
  const a = await h.open('g/c', fetch, { follow: true }, () => false);
  const b = await h.open('g/d', fetch, { follow: true }, () => false);
  await assert.rejects(
    h.open('g/c', fetch, { follow: true }, () => false),
    (e: unknown) => e instanceof TransientProviderError && /2 log followers/.test(e.message),
  );
  const plain = await h.open('g/c', fetch, {}, () => false);
  assert.equal(await text(plain), 'x\n', 'a plain read is not a follower');
  a.destroy();
  await new Promise((r) => setImmediate(r));
  const c = await h.open('g/c', fetch, { follow: true }, () => false);
  for (const s of [b, c]) s.destroy();
});
