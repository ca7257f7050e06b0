/**
 * The podman runtime's stop/start/restart, logs, attach, resources and gitRepo
 * volumes, against real podman. Runs beside podman.test.ts on the same store,
 * which also shows that two runtimes on one machine keep apart.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../support/wait.js';
import { collect, podmanFixture, type PodmanFixture } from './podman-fixtures.js';

const TIMEOUT = 240_000;
let fx: PodmanFixture;

async function fetchText(url: string): Promise<string | undefined> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return res.ok ? res.text() : undefined;
}

describe('podman runtime lifecycle', { timeout: 15 * 60_000 }, () => {
  before(async () => {
    fx = await podmanFixture();
  });
  after(async () => {
    await fx?.runtime.close();
  });

  it('stops, starts and restarts a group, keeping its address', { timeout: TIMEOUT }, async (t) => {
    const { runtime } = fx;
    const spec = fx.group(
      'lifecycle',
      [
        // A fresh UUID per start: busybox's date has no %N, and a start and a restart within one
        // second would otherwise serve the same body.
        fx.container(
          'web',
          ['sh', '-c', 'cat /proc/sys/kernel/random/uuid > /www/index.html && exec httpd -f -p 8080 -h /www'],
          {
            ports: [{ port: 8080, protocol: 'TCP' }],
          },
        ),
      ],
      { restartPolicy: 'Always', ipAddress: { type: 'Public', ports: [{ port: 8080, protocol: 'TCP' }] } },
    );
    let changes = 0;
    t.after(() => runtime.remove(spec.id));
    await runtime.create(spec, () => (changes += 1));
    const ip = runtime.view(spec.id)?.ip;
    assert.ok(ip);
    const first = await waitFor('the group to serve', () => fetchText(`http://${ip}:8080/`).catch(() => undefined), {
      timeoutMs: 60_000,
    });

    t.diagnostic('serving; stopping');
    await runtime.stop(spec.id);
    t.diagnostic('stopped');
    const stopped = runtime.view(spec.id);
    assert.equal(stopped?.state, 'Stopped');
    assert.equal(stopped?.containers.web?.currentState.state, 'Terminated');
    assert.ok(
      stopped?.containers.web?.events.some((e) => e.name === 'Killing'),
      'stop reports Killing',
    );
    await assert.rejects(fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(10_000) }));
    assert.ok(changes > 0, 'onChange was called');

    await runtime.start(spec.id);
    t.diagnostic('started');
    assert.equal(runtime.view(spec.id)?.ip, ip);
    const second = await waitFor(
      'the started group to serve anew',
      async () => {
        const body = await fetchText(`http://${ip}:8080/`).catch(() => undefined);
        return body !== undefined && body !== first ? body : undefined;
      },
      { timeoutMs: 60_000 },
    );
    await waitFor('the view to show Running', () => runtime.view(spec.id)?.state === 'Running');

    t.diagnostic('serving again; restarting');
    await runtime.restart(spec.id);
    t.diagnostic('restarted');
    await waitFor(
      'the restarted group to serve anew',
      async () => {
        const body = await fetchText(`http://${ip}:8080/`).catch(() => undefined);
        return body !== undefined && body !== second ? body : undefined;
      },
      { timeoutMs: 60_000 },
    );
  });

  // conmon timestamps a pipe's data when it reads it, so lines written to both streams
  // at once have no order; the pauses give each line its own read.
  it('returns logs with tail and timestamps, stdout and stderr merged in order', { timeout: TIMEOUT }, async (t) => {
    const { runtime } = fx;
    const spec = fx.group('logs', [
      fx.container('c', ['sh', '-c', 'echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three; exec sleep 3600']),
    ]);
    await fx.createGroup(t, spec);
    const all = await waitFor('three log lines', async () => {
      const l = await runtime.logs(spec.id, 'c', {});
      return l.includes('three') ? l : undefined;
    });
    assert.equal(all, 'one\ntwo\nthree\n');
    assert.equal(await runtime.logs(spec.id, 'c', { tail: 1 }), 'three\n');
    const stamped = await runtime.logs(spec.id, 'c', { timestamps: true });
    const lines = stamped.trim().split('\n');
    assert.equal(lines.length, 3);
    for (const line of lines)
      assert.match(line, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}) (one|two|three)$/);
  });

  it('attaches to a running container and streams its output', { timeout: TIMEOUT }, async (t) => {
    const { runtime } = fx;
    const spec = fx.group('attach', [
      fx.container('c', ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']),
    ]);
    await fx.createGroup(t, spec);
    await waitFor('the container to run', () => runtime.view(spec.id)?.containers.c?.currentState.state === 'Running');
    const session = await runtime.attach(spec.id, 'c');
    t.after(() => session.kill());
    let out = '';
    session.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    await waitFor('attached output', () => /tick \d+\n.*tick \d+/s.test(out));
    session.kill();
    await session.exited;
  });

  it('applies cpu and memory limits and the machine-fitting ulimits', { timeout: TIMEOUT }, async (t) => {
    const { runtime } = fx;
    const spec = fx.group('resources', [
      fx.container('c', ['sleep', '3600'], { cpu: 0.5, memoryInGB: 0.25, limits: { cpu: 1, memoryInGB: 0.5 } }),
    ]);
    await fx.createGroup(t, spec);
    await waitFor('the container to run', () => runtime.view(spec.id)?.containers.c?.currentState.state === 'Running');
    // cgroup v2 files first, v1 as fallback.
    const read = async (v2: string, v1: string) =>
      (
        await collect(
          await runtime.exec(
            spec.id,
            'c',
            ['sh', '-c', `cat /sys/fs/cgroup/${v2} 2>/dev/null || cat /sys/fs/cgroup/${v1}`],
            { cols: 0, rows: 0 },
          ),
        )
      ).stdout.trim();
    const memory = await read('memory.max', 'memory/memory.limit_in_bytes');
    assert.equal(memory, String(512 * 1024 * 1024));
    const cpu = await read('cpu.max', 'cpu/cpu.cfs_quota_us');
    assert.match(cpu, /^100000( 100000)?$/);
    const limits = await collect(
      await runtime.exec(spec.id, 'c', ['sh', '-c', 'ulimit -n; ulimit -u'], { cols: 0, rows: 0 }),
    );
    const [nofile, nproc] = limits.stdout.trim().split('\n').map(Number);
    assert.ok(nofile !== undefined && nofile > 1024, `nofile ${nofile}`);
    assert.ok(nproc !== undefined && nproc > 1024, `nproc ${nproc}`);
  });

  it('mounts a gitRepo volume at the asked revision', { timeout: TIMEOUT }, async (t) => {
    const { runtime } = fx;
    const repo = mkdtempSync(join(tmpdir(), 'aci-git-'));
    t.after(() => rmSync(repo, { recursive: true, force: true }));
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args], {
        encoding: 'utf8',
      }).trim();
    git('init', '-q');
    writeFileSync(join(repo, 'greeting.txt'), 'old\n');
    git('add', '.');
    git('commit', '-q', '-m', 'first');
    const firstCommit = git('rev-parse', 'HEAD');
    writeFileSync(join(repo, 'greeting.txt'), 'new\n');
    git('commit', '-q', '-am', 'second');

    const spec = fx.group(
      'gitrepo',
      [
        fx.container('c', ['sh', '-c', 'cat /repo/src/greeting.txt /repo/head/greeting.txt; exec sleep 3600'], {
          volumeMounts: [
            { name: 'pinned', mountPath: '/repo/src', readOnly: true },
            { name: 'head', mountPath: '/repo/head', readOnly: false },
          ],
        }),
      ],
      {
        volumes: [
          { name: 'pinned', gitRepo: { repository: repo, directory: '.', revision: firstCommit } },
          { name: 'head', gitRepo: { repository: repo, directory: '.' } },
        ],
      },
    );
    await fx.createGroup(t, spec);
    const logs = await waitFor('the container to print the files', async () => {
      const l = await runtime.logs(spec.id, 'c', {});
      return l.split('\n').length >= 3 ? l : undefined;
    });
    assert.equal(logs, 'old\nnew\n');
  });
});

describe('podman runtime orphans', { timeout: 5 * 60_000 }, () => {
  it('reaps the pods of an emulator process that was killed', { timeout: 240_000 }, async (t) => {
    // A store of its own: other test files' runtimes reap orphans in the shared one at their start,
    // and would take this pod away between the kill and the check.
    const store = mkdtempSync('/tmp/orph-');
    const runtimes: PodmanFixture[] = [];
    t.after(async () => {
      for (const f of runtimes) await f.runtime.close();
      rmSync(store, { recursive: true, force: true });
    });
    const child = spawn(process.execPath, [fileURLToPath(new URL('./podman-orphan-child.js', import.meta.url))], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ACI_TEST_PODMAN_DIR: store },
    });
    t.after(() => child.kill('SIGKILL'));
    const instance = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString('utf8');
        const m = /ready (\S+)\n/.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`child exited with ${code} before creating its group`)));
    });
    const label = `aci-emulator.instance=${instance}`;
    const probe = await podmanFixture(store);
    runtimes.push(probe);
    assert.equal((await probe.podsOf(label)).length, 1, 'the child left a pod while alive');
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.equal((await probe.podsOf(label)).length, 1, 'the pod outlives its killed owner');

    // A new runtime that reaps at start removes it.
    const reaper = await podmanFixture(store);
    runtimes.push(reaper);
    await reaper.createGroup(t, reaper.group('after-reap', [reaper.container('c', ['true'])]));
    assert.deepEqual(await probe.podsOf(label), []);
  });
});
