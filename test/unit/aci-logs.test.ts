import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logStream, newPart, shapeLines } from '../../src/providers/aci/logs.js';

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

test('a non-follow read passes tail and applies limitBytes', async () => {
  const asked: unknown[] = [];
  const r = await logStream(async (o) => (asked.push(o), 'hello world\n'), { tailLines: 5, limitBytes: 5 }, () => true);
  assert.equal(await text(r), 'hello');
  assert.deepEqual(asked, [{ tail: 5 }]);
});

test('follow emits only new output and ends when the container is done', async () => {
  const versions = ['one\n', 'one\ntwo\n', 'one\ntwo\nthree\n'];
  let i = 0;
  let done = false;
  const r = await logStream(
    async () => {
      const v = versions[Math.min(i, versions.length - 1)]!;
      i++;
      if (i >= versions.length) done = true;
      return v;
    },
    { follow: true },
    () => done,
    5,
  );
  assert.equal(await text(r), 'one\ntwo\nthree\n');
});
