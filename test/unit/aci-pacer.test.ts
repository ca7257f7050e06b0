/** The ACI provider's pacer (src/providers/aci/arm/pacer.ts) on an injected clock: slots under several windows, 429s, budgets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACI_WINDOWS, TokenPacer, WindowPacer } from '../../src/providers/aci/arm/pacer.js';
import { TokenBucket } from '../../src/common/token-bucket.js';

const MIN5 = 300_000;
const HOUR = 3_600_000;

/** Runs `n` keys through the pacer as a queue would: each asks, and asks again at its slot. Returns when each went. */
function drain(p: WindowPacer, clock: { now: number }, keys: string[]): Map<string, number> {
  const went = new Map<string, number>();
  const due = new Map<string, number>(keys.map((k) => [k, clock.now]));
  while (due.size > 0) {
    const next = Math.min(...due.values());
    clock.now = Math.max(clock.now, next);
    for (const [k, at] of [...due]) {
      if (at > clock.now) continue;
      const d = p.acquire(k);
      if (d.go) {
        went.set(k, clock.now);
        due.delete(k);
      } else {
        assert.ok(d.at > clock.now, `${k}: a slot in the future`);
        due.set(k, d.at);
      }
    }
  }
  return went;
}

/** The most operations of `times` in any window of `ms` (the window ACI counts). */
function maxInWindow(times: number[], ms: number): number {
  const s = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; j < s.length; j++) {
    while ((s[j] ?? 0) - (s[i] ?? 0) >= ms) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

test("ACI's windows: 250 creations at once go as 100 now, 100 after 5 minutes, 50 after 10, never over either window", () => {
  const clock = { now: 1_000_000 };
  const p = new WindowPacer({ windows: ACI_WINDOWS, now: () => clock.now, marginMs: 1_000 });
  const start = clock.now;
  const keys = Array.from({ length: 250 }, (_, i) => `g-${i}`);
  const went = drain(p, clock, keys);
  const times = keys.map((k) => went.get(k) ?? NaN);
  assert.equal(times.filter((t) => t === start).length, 100, 'the first 100 at once');
  // Each waiting key is told which window holds it back (not a 429).
  const probe = new WindowPacer({ windows: ACI_WINDOWS, now: () => start, marginMs: 1_000 });
  for (let i = 0; i < 100; i++) assert.ok(probe.acquire(`x-${i}`).go);
  for (let i = 100; i < 250; i++) {
    const d = probe.acquire(`x-${i}`);
    assert.ok(!d.go && d.window?.windowMs === MIN5, `x-${i} is held back by the 5-minute window`);
  }
  assert.equal(
    times.filter((t) => t === start + MIN5 + 1_000).length,
    100,
    'the next 100 once the first leave the 5-minute window',
  );
  assert.equal(times.filter((t) => t === start + 2 * (MIN5 + 1_000)).length, 50);
  assert.ok(maxInWindow(times, MIN5) <= 100);
  assert.ok(maxInWindow(times, HOUR) <= 300);
  // First come, first served.
  for (let i = 1; i < times.length; i++)
    assert.ok((times[i] ?? 0) >= (times[i - 1] ?? 0), `g-${i} not before g-${i - 1}`);
  assert.equal(p.waiting, 0);
});

test('the hour window holds back what the 5-minute window would let through', () => {
  const clock = { now: 0 };
  const p = new WindowPacer({ windows: ACI_WINDOWS, now: () => clock.now, marginMs: 0 });
  const went = drain(
    p,
    clock,
    Array.from({ length: 400 }, (_, i) => `g-${i}`),
  );
  const times = [...went.values()];
  assert.ok(maxInWindow(times, HOUR) <= 300, 'at most 300 an hour');
  assert.ok(maxInWindow(times, MIN5) <= 100);
  // 300 go in the first 10 minutes (100, 100, 100); the 301st waits for the first to leave the hour window.
  assert.equal(Math.min(...times.slice(300)), HOUR);
});

test('a key asking again before its slot gets the same slot, and a newcomer queues behind it', () => {
  let now = 0;
  const p = new WindowPacer({ windows: [{ count: 2, windowMs: 10_000 }], now: () => now, marginMs: 0 });
  assert.equal(p.acquire('a').go, true);
  assert.equal(p.acquire('b').go, true);
  const c = p.acquire('c');
  assert.equal(c.go, false);
  assert.equal(!c.go && c.at, 10_000);
  assert.deepEqual(!c.go && c.window, { count: 2, windowMs: 10_000 });
  now = 5_000;
  const again = p.acquire('c');
  assert.equal(!again.go && again.at, 10_000, 'same slot');
  const d = p.acquire('d');
  assert.equal(!d.go && d.at, 10_000, "b's leaving frees the second place at the same moment");
  const e = p.acquire('e');
  assert.equal(!e.go && e.at, 20_000, 'behind c and d');
  now = 10_000;
  assert.equal(p.acquire('c').go, true);
  assert.equal(p.acquire('d').go, true);
});

test('a released slot is not kept, a cancelled operation leaves the window', () => {
  const p = new WindowPacer({ windows: [{ count: 1, windowMs: 10_000 }], now: () => 0, marginMs: 0 });
  const a = p.acquire('a');
  assert.ok(a.go);
  assert.equal(p.acquire('b').go, false);
  p.release('b');
  assert.equal(p.waiting, 0);
  p.cancel(a.stamp);
  assert.equal(p.acquire('c').go, true, 'the refused operation no longer counts');
});

test('a postponed operation leaves the window but keeps its place in line', () => {
  let now = 0;
  const p = new WindowPacer({ windows: [{ count: 1, windowMs: 10_000 }], now: () => now, marginMs: 0 });
  assert.ok(p.acquire('a').go);
  const b = p.acquire('b');
  assert.equal(!b.go && b.at, 10_000);
  now = 10_000;
  const go = p.acquire('b');
  assert.ok(go.go);
  const c = p.acquire('c');
  assert.equal(!c.go && c.at, 20_000, 'c queues behind b');
  // b cannot go after all (its token comes 100 ms later): it keeps a slot ahead of c.
  p.postpone('b', go.stamp, 10_100);
  now = 10_100;
  assert.equal(p.acquire('b').go, true, 'b goes at its new slot, before c');
  now = 20_000;
  assert.equal(p.acquire('c').go, false, "b's operation at 10.1 s holds the window until 20.1 s");
});

test('an operation answered late counts from its answer: the slot after it waits for that', () => {
  let now = 0;
  const p = new WindowPacer({ windows: [{ count: 1, windowMs: 10_000 }], now: () => now, marginMs: 0 });
  const a = p.acquire('a');
  assert.ok(a.go);
  now = 3_000; // the request waited in our own queue, and ACI counted it on arrival
  p.confirm(a.stamp);
  const b = p.acquire('b');
  assert.equal(!b.go && b.at, 13_000, 'not before the answered operation leaves the window');
  now = 10_000;
  assert.equal(p.acquire('b').go, false);
  now = 13_000;
  assert.equal(p.acquire('b').go, true);
});

test("a 429's Retry-After blocks every slot until it passes", () => {
  let now = 0;
  const p = new WindowPacer({ windows: ACI_WINDOWS, now: () => now, marginMs: 0 });
  assert.equal(p.acquire('a').go, true);
  p.throttled(30_000);
  const b = p.acquire('b');
  assert.equal(!b.go && b.at, 30_000);
  assert.equal(!b.go && b.window, undefined, 'held back by the 429, not by a window');
  now = 30_000;
  assert.equal(p.acquire('b').go, true);
  assert.equal(p.acquire('c').go, true);
});

test("ARM's budget: calls that would wait for a token get one slot each, a refill interval apart", () => {
  let now = 0;
  const bucket = new TokenBucket({ perSecond: 10, burst: 2, now: () => now });
  const p = new TokenPacer(bucket, () => now);
  for (const k of ['a', 'b']) {
    assert.equal(p.acquire(k), undefined);
    assert.ok(bucket.tryTake());
  }
  assert.equal(p.acquire('c'), 100);
  assert.equal(p.acquire('d'), 200);
  assert.equal(p.acquire('c'), 100, 'the same slot when asked again early');
  now = 100;
  assert.equal(p.acquire('c'), undefined, 'goes at its slot');
  p.release('d');
  now = 300;
  bucket.tryTake();
  assert.equal(p.acquire('e'), undefined, 'no one waits: goes while tokens last');
});
