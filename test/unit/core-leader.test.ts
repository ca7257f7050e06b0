/** The leader elector and its fence (core/leader), driven step by step with an injected clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.js';
import {
  checkTiming,
  ElectorTimingError,
  LeaderElector,
  LeaseConflictError,
  NotLeaderError,
  type LeaseLock,
  type LeaseRecord,
} from '../../src/core/leader/elector.js';
import { gatedEvents, gatedProvider, isWriteVerb } from '../../src/core/leader/gate.js';
import { createMockProvider } from '../../src/providers/mock/index.js';
import { silentLogger as log } from '../../src/common/logger.js';

/** One Lease in memory with the API server's optimistic concurrency. */
class MemoryLock implements LeaseLock {
  record: LeaseRecord | undefined;
  rv = 0;
  writes = 0;
  /** When set, the next calls fail as if the API server did not answer. */
  down = false;
  describe = () => 'ns/lease';
  async get() {
    if (this.down) throw new Error('connection refused');
    return this.record ? { ...this.record } : undefined;
  }
  async create(r: LeaseRecord) {
    if (this.down) throw new Error('connection refused');
    if (this.record) throw new LeaseConflictError('exists');
    this.writes++;
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return { ...this.record };
  }
  async update(r: LeaseRecord) {
    if (this.down) throw new Error('connection refused');
    if (!this.record || r.resourceVersion !== this.record.resourceVersion) throw new LeaseConflictError('stale');
    this.writes++;
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return { ...this.record };
  }
}

const TIMING = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

function setup() {
  const clock = { t: 1_000 };
  const lock = new MemoryLock();
  const lost: Record<string, string[]> = {};
  const make = (id: string) => {
    lost[id] = [];
    return new LeaderElector({
      ...TIMING,
      lock,
      identity: id,
      log: silentLogger(),
      now: () => clock.t,
      wallNow: () => new Date(1_700_000_000_000 + clock.t),
      onStoppedLeading: (reason) => lost[id]?.push(reason),
    });
  };
  return { clock, lock, lost, make };
}

test('the first candidate takes a free lease; the second follows while it is renewed', async () => {
  const { clock, lock, make } = setup();
  const a = make('a');
  const b = make('b');
  assert.equal(await a.tryAcquireOrRenew(), true);
  assert.equal(lock.record?.holderIdentity, 'a');
  assert.equal(lock.record?.leaseDurationSeconds, 15);
  assert.equal(await b.tryAcquireOrRenew(), false);
  // a renews every retry period for a minute; b never gets it.
  for (let i = 0; i < 30; i++) {
    clock.t += 2_000;
    assert.equal(await a.tryAcquireOrRenew(), true);
    assert.equal(await b.tryAcquireOrRenew(), false);
    assert.equal(a.allowed(), true);
    assert.equal(b.allowed(), false);
  }
  assert.equal(lock.record?.holderIdentity, 'a');
  assert.equal(lock.record?.leaseTransitions, 0);
});

test('a follower takes over only after seeing the record unchanged for the whole lease duration', async () => {
  const { clock, lock, make } = setup();
  const a = make('a');
  const b = make('b');
  await a.tryAcquireOrRenew();
  await b.tryAcquireOrRenew(); // b sees a's record at t=1000
  // a dies (no more renews). Just before b has seen it for 15 s: still a's.
  clock.t += 14_999;
  assert.equal(await b.tryAcquireOrRenew(), false);
  clock.t += 1;
  assert.equal(await b.tryAcquireOrRenew(), true);
  assert.equal(lock.record?.holderIdentity, 'b');
  assert.equal(lock.record?.leaseTransitions, 1);
  assert.equal(b.allowed(), true);
});

test('the fence: the old leader stops writing before the new one can start', async () => {
  const { clock, make, lost } = setup();
  const a = make('a');
  const b = make('b');
  await a.tryAcquireOrRenew(); // a renewed at t0 = 1000
  await b.tryAcquireOrRenew();
  // a's renews stop landing (partition); it still writes until t0 + renewDeadline.
  clock.t += 9_999;
  assert.equal(a.allowed(), true);
  assert.equal(await b.tryAcquireOrRenew(), false, 'b cannot take it yet');
  clock.t += 1; // t0 + renewDeadline
  assert.equal(a.allowed(), false, 'a stops at its renew deadline');
  assert.throws(() => a.check('PUT containerGroups'), NotLeaderError);
  assert.deepEqual(lost.a, ['the lease was not renewed before the renew deadline']);
  assert.equal(await b.tryAcquireOrRenew(), false, 'still 5 s of margin before b may take it');
  clock.t += 5_000; // t0 + leaseDuration
  assert.equal(await b.tryAcquireOrRenew(), true);
  // At no instant were both allowed: a closed at 11000, b opened at 16000.
  assert.equal(a.allowed(), false, 'a lost leader never leads again');
  assert.equal(await a.tryAcquireOrRenew(), false);
  assert.equal(lost.a?.length, 1, 'told once');
});

test('a leader paused past its deadline (SIGSTOP) wakes fenced, even if its lease is still free', async () => {
  const { clock, lock, make, lost } = setup();
  const a = make('a');
  await a.tryAcquireOrRenew();
  clock.t += 60_000; // paused for a minute; nobody took the lease
  assert.equal(a.allowed(), false);
  assert.equal(await a.tryAcquireOrRenew(), false, 'it does not renew its way back');
  assert.equal(lost.a?.length, 1);
  assert.equal(lock.record?.holderIdentity, 'a', 'the record is left for the next candidate to expire');
});

test('a renew that answers after the deadline does not reopen the fence', async () => {
  const { clock, lock, make, lost } = setup();
  const a = make('a');
  await a.tryAcquireOrRenew();
  const slow = lock.update.bind(lock);
  lock.update = async (r) => {
    clock.t += 11_000; // the API server answered 11 s later
    return slow(r);
  };
  clock.t += 2_000;
  assert.equal(await a.tryAcquireOrRenew(), false);
  assert.equal(a.allowed(), false);
  assert.equal(lost.a?.length, 1);
});

test('failed renews keep the leader only until its deadline; then a follower takes over', async () => {
  const { clock, lock, make, lost } = setup();
  const a = make('a');
  const b = make('b');
  await a.tryAcquireOrRenew();
  await b.tryAcquireOrRenew();
  lock.down = true;
  for (let i = 0; i < 4; i++) {
    clock.t += 2_000;
    assert.equal(await a.tryAcquireOrRenew(), true, `renew ${i} failed but within the deadline`);
  }
  clock.t += 2_000; // 10 s after the last good renew
  assert.equal(await a.tryAcquireOrRenew(), false);
  assert.equal(lost.a?.length, 1);
  lock.down = false;
  clock.t += 5_000;
  assert.equal(await b.tryAcquireOrRenew(), true);
});

test('a renew that meets another holder loses at once', async () => {
  const { clock, lock, make, lost } = setup();
  const a = make('a');
  await a.tryAcquireOrRenew();
  // Someone (an operator, a bug) rewrote the lease under a.
  lock.record = { ...lock.record, holderIdentity: 'z', resourceVersion: String(++lock.rv) };
  clock.t += 2_000;
  assert.equal(await a.tryAcquireOrRenew(), true, 'the renew conflicts; a is still within its deadline');
  assert.equal(lock.record?.holderIdentity, 'z', 'and did not overwrite z');
  clock.t += 2_000;
  assert.equal(await a.tryAcquireOrRenew(), false, 'the re-read shows z');
  assert.deepEqual(lost.a, ['the lease is held by z']);
});

test('stop(release) hands the lease back; a follower takes it at its next try', async () => {
  const { clock, lock, make } = setup();
  const a = make('a');
  const b = make('b');
  await a.tryAcquireOrRenew();
  await b.tryAcquireOrRenew();
  await a.stop(true);
  assert.equal(lock.record?.holderIdentity, undefined);
  assert.equal(a.allowed(), false);
  clock.t += 2_000;
  assert.equal(await b.tryAcquireOrRenew(), true);
});

test('two candidates racing for a free lease: exactly one wins', async () => {
  const { make, lock } = setup();
  const a = make('a');
  const b = make('b');
  const [ra, rb] = await Promise.all([a.tryAcquireOrRenew(), b.tryAcquireOrRenew()]);
  assert.equal(Number(ra) + Number(rb), 1);
  assert.equal(lock.writes, 1);
  assert.equal(a.allowed() !== b.allowed(), true);
});

test('timing rules: renew deadline inside the lease duration, retry inside the renew deadline', () => {
  checkTiming(TIMING);
  assert.throws(
    () => checkTiming({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    ElectorTimingError,
  );
  assert.throws(
    () => checkTiming({ leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    ElectorTimingError,
  );
  assert.throws(
    () => checkTiming({ leaseDurationMs: 15_500, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    ElectorTimingError,
  );
});

test('the gate: provider writes and events refused when closed, reads open', async () => {
  let open = true;
  const gate = {
    allowed: () => open,
    check: (what: string) => {
      if (!open) throw new NotLeaderError(what);
    },
  };
  const inner = createMockProvider({
    nodeName: 'n',
    clusterId: 'c',
    nodeIP: '127.0.0.1',
    env: {},
    log: log(),
  });
  const p = gatedProvider(inner, gate);
  const pod = {
    metadata: { namespace: 'ns', name: 'p', uid: 'u1' },
    spec: { containers: [{ name: 'c', image: 'i' }] },
  };
  const ctx = {
    env: new Map(),
    getSecret: async () => undefined,
    volumeFiles: async () => new Map(),
    recordEvent: () => undefined,
  };
  await p.createPod(pod, ctx);
  assert.equal((await p.listPods()).length, 1);
  open = false;
  await assert.rejects(
    () => p.createPod({ ...pod, metadata: { ...pod.metadata, name: 'q', uid: 'u2' } }, ctx),
    NotLeaderError,
  );
  await assert.rejects(() => p.deletePod(pod, 0), NotLeaderError);
  assert.equal((await p.listPods()).length, 1, 'reads still answer; nothing was written');
  const recorded: string[] = [];
  const events = gatedEvents({ record: (_p, _t, reason) => recorded.push(reason) }, gate);
  events.record({ namespace: 'ns', name: 'p', uid: 'u1' }, 'Normal', 'Dropped', '');
  open = true;
  events.record({ namespace: 'ns', name: 'p', uid: 'u1' }, 'Normal', 'Sent', '');
  assert.deepEqual(recorded, ['Sent']);
  assert.deepEqual(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'].map(isWriteVerb), [
    false,
    false,
    true,
    true,
    true,
    true,
  ]);
});
