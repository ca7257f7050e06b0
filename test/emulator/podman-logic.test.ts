/**
 * The podman runtime's pure logic, without podman: the loopback IP pool, the VNet subnet
 * pool and their machine-wide leases, the merge of podman's two log streams, and ACI event counting.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EventLog } from '../../src/emulator/runtimes/podman/event-log.js';
import { IpPoolError, LoopbackIpPool } from '../../src/emulator/runtimes/podman/ip-pool.js';
import { mergeLogStreams } from '../../src/emulator/runtimes/podman/logs.js';
import { VnetSubnetPool } from '../../src/emulator/runtimes/podman/vnet.js';

function leaseDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'aci-ip-leases-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('loopback IP pool', () => {
  it('refuses ranges outside 127.0.0.0/8 and malformed CIDRs', () => {
    assert.throws(() => new LoopbackIpPool('10.0.0.0/16'), IpPoolError);
    assert.throws(() => new LoopbackIpPool('127.20.0.0'), IpPoolError);
    assert.throws(() => new LoopbackIpPool('127.300.0.0/16'), IpPoolError);
  });

  it('never hands one address to two pools sharing the lease folder, and runs out cleanly', (t) => {
    const dir = leaseDir(t);
    const a = new LoopbackIpPool('127.21.0.0/29', dir);
    const b = new LoopbackIpPool('127.21.0.0/29', dir);
    const got = [a.allocate(), b.allocate(), a.allocate(), b.allocate(), a.allocate(), b.allocate()];
    assert.equal(new Set(got).size, 6, got.join(' '));
    for (const ip of got) assert.match(ip, /^127\.21\.0\.[1-6]$/);
    assert.throws(() => a.allocate(), /exhausted/);
    b.release(got[1]!);
    assert.equal(a.allocate(), got[1]);
  });

  it('takes over the lease of a process that is gone, not of one that lives', (t) => {
    const dir = leaseDir(t);
    writeFileSync(join(dir, '127.22.0.1'), '999999999'); // no such pid
    writeFileSync(join(dir, '127.22.0.2'), String(process.ppid)); // alive
    const pool = new LoopbackIpPool('127.22.0.0/30', dir);
    const got = [
      pool.allocate(),
      (() => {
        try {
          return pool.allocate();
        } catch {
          return 'none';
        }
      })(),
    ];
    assert.ok(got.includes('127.22.0.1'));
    assert.ok(!got.includes('127.22.0.2'));
  });
});

describe('VNet subnet pool', () => {
  it('refuses ranges outside 198.18.0.0/15, the never-routed test range', () => {
    assert.throws(() => new VnetSubnetPool('10.0.0.0/16'), IpPoolError);
    assert.throws(() => new VnetSubnetPool('198.20.0.0/16'), IpPoolError);
    assert.throws(() => new VnetSubnetPool('198.0.0.0/8'), IpPoolError);
    assert.doesNotThrow(() => new VnetSubnetPool('198.18.0.0/15', leaseDir({ after: () => undefined })));
  });

  it('hands out aligned /30s (host side .1, group side .2), each to one pool of those sharing the leases', async (t) => {
    const dir = leaseDir(t);
    const a = new VnetSubnetPool('198.19.255.0/28', dir);
    const b = new VnetSubnetPool('198.19.255.0/28', dir);
    const got = [await a.allocate(), await b.allocate(), await a.allocate(), await b.allocate()];
    assert.equal(new Set(got.map((g) => g.hostAddress)).size, 4, JSON.stringify(got));
    for (const g of got) {
      const last = Number(g.hostAddress.split('.')[3]);
      assert.equal(last % 4, 1, g.hostAddress);
      assert.equal(g.groupAddress, `198.19.255.${last + 1}`);
    }
    await assert.rejects(a.allocate(), /exhausted/);
    b.release(got[1]!.hostAddress);
    assert.deepEqual(await a.allocate(), got[1]);
  });
});

describe('log stream merge', () => {
  it('orders lines of both streams by their nanosecond timestamps, trailing zeros trimmed', () => {
    const stdout = '2026-01-01T00:00:00.3025Z b\n2026-01-01T00:00:01Z d\n';
    const stderr = '2026-01-01T00:00:00.30251Z c\n2026-01-01T00:00:00.1Z a\n';
    assert.equal(mergeLogStreams(stdout, stderr, false), 'a\nb\nc\nd\n');
    assert.equal(mergeLogStreams(stdout, '', true), stdout);
    assert.equal(mergeLogStreams('', '', false), '');
  });
});

describe('ACI event log', () => {
  it('counts repeats of one event instead of adding rows', () => {
    const log = new EventLog();
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-01T00:00:05Z');
    log.add('Started', 'Normal', 'Started container', t1);
    log.add('Pulled', 'Normal', 'Successfully pulled image "x"', t1);
    log.add('Started', 'Normal', 'Started container', t2);
    const started = log.list().find((e) => e.name === 'Started');
    assert.deepEqual(started, {
      name: 'Started',
      type: 'Normal',
      message: 'Started container',
      count: 2,
      firstTimestamp: t1,
      lastTimestamp: t2,
    });
    assert.equal(log.list().length, 2);
  });
});
