/**
 * `kubectl logs -f` shares ARM reads: any number of followers of one container costs the
 * reads of one (one poll loop per container), and each follower still gets every new line.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { contextFor, harness, key, podRef, testPod, waitFor, type Harness } from './aci-provider-fixtures.js';

let h: Harness;
before(async () => {
  // A container that prints `tick` and exits every 300 ms, restarted at once: its log keeps growing.
  h = await harness({
    simulated: {
      pullMs: 20,
      startMs: 20,
      restartDelayMs: 100,
      rules: [{ image: /ticker/, fate: { kind: 'exits', exitCode: 0, runMs: 300, logs: ['tick'] } }],
    },
  });
});
after(async () => {
  await h?.close();
});

const listLogs = () => h.emu.stats().callsByOperation['Containers_ListLogs'] ?? 0;

/** Opens `n` followers for `ms`, returns the listLogs calls made meanwhile and what each follower got. */
async function follow(
  n: number,
  ms: number,
  ref: ReturnType<typeof podRef>,
): Promise<{ reads: number; texts: string[] }> {
  const before = listLogs();
  const streams: Readable[] = await Promise.all(
    Array.from({ length: n }, () => h.provider.getContainerLogs(ref, 'app', { follow: true, tailLines: 0 })),
  );
  const texts = streams.map(() => '');
  streams.forEach((s, i) => s.on('data', (d: Buffer) => (texts[i] += d.toString())));
  await new Promise((r) => setTimeout(r, ms));
  for (const s of streams) s.destroy();
  return { reads: listLogs() - before, texts };
}

test(
  '50 followers of one container cost no more listLogs reads than one, and each gets the new lines',
  { timeout: 120_000 },
  async (t) => {
    const p = testPod('ticker', { restartPolicy: 'Always', containers: [{ name: 'app', image: 'ticker' }] });
    await h.provider.createPod(p, contextFor(h, p));
    await waitFor('Running', () => h.statuses.get(key(podRef(p)))?.phase === 'Running');

    const one = await follow(1, 6_500, podRef(p));
    const fifty = await follow(50, 6_500, podRef(p));
    t.diagnostic(`listLogs reads in 6.5 s: 1 follower ${one.reads}, 50 followers ${fifty.reads}`);
    assert.ok(one.reads >= 2, `one follower polls (${one.reads} reads)`);
    assert.ok(fifty.reads <= one.reads + 1, `50 followers made ${fifty.reads} reads, one made ${one.reads}`);
    // tailLines 0: nothing old, only what the container printed while they listened.
    for (const t of [...one.texts, ...fifty.texts])
      assert.match(t, /^(tick\n)+$/, `each follower got new lines only: ${JSON.stringify(t)}`);
    await h.provider.deletePod(p, 0);
  },
);
