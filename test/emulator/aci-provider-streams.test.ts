/** Logs, exec, attach and secret handling of the ACI provider against the emulator; adoption after a restart. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createAciProvider, loadAciConfig, containerGroupName } from '../../src/providers/aci/index.js';
import { contextFor, envFor, harness, key, podRef, testPod, waitFor, type Harness } from './aci-provider-fixtures.js';
import type { ProviderPodStatus } from '../../src/core/provider.js';

let h: Harness;
before(async () => {
  h = await harness();
});
after(async () => {
  await h?.close();
});

async function text(r: NodeJS.ReadableStream): Promise<string> {
  let s = '';
  for await (const c of r) s += c.toString();
  return s;
}

test('logs come from containers.listLogs, with tail', async () => {
  const p = testPod('logger', {
    restartPolicy: 'Never',
    containers: [{ name: 'app', image: 'busybox', command: ['sh', '-c', 'echo hello-from-aci'] }],
  });
  await h.provider.createPod(p, contextFor(h, p));
  await waitFor('Succeeded', () => h.statuses.get(key(podRef(p)))?.phase === 'Succeeded');
  const logs = await text(await h.provider.getContainerLogs(podRef(p), 'app', {}));
  assert.match(logs, /hello-from-aci/);
  const tail = await text(await h.provider.getContainerLogs(podRef(p), 'app', { tailLines: 1, timestamps: true }));
  assert.match(tail, /^\d{4}-\d\d-\d\dT\S+ hello-from-aci\n$/);
  await h.provider.deletePod(p, 0);
});

test('a secret env value reaches the container as secureValue and is never returned by ARM', async () => {
  const p = testPod('secretive');
  const env = {
    app: [
      { name: 'PLAIN', value: 'visible', sensitive: false },
      { name: 'PASSWORD', value: 'hunter2-secret', sensitive: true },
    ],
  };
  await h.provider.createPod(p, contextFor(h, p, env));
  await waitFor('Running', () => h.statuses.get(key(podRef(p)))?.phase === 'Running');

  const name = containerGroupName({
    clusterId: 'cluster-under-test',
    namespace: 'default',
    podName: 'secretive',
    podUid: p.metadata!.uid!,
  });
  const group = await h.provider.arm.getGroup(name);
  const vars = group?.containers[0]?.environmentVariables ?? [];
  assert.deepEqual(
    vars.find((v) => v.name === 'PLAIN'),
    { name: 'PLAIN', value: 'visible' },
  );
  assert.ok(
    vars.some((v) => v.name === 'PASSWORD'),
    'the variable exists',
  );
  assert.ok(!JSON.stringify(group).includes('hunter2-secret'), 'ARM never echoes a secureValue');
  assert.ok(!JSON.stringify(h.statuses.get(key(podRef(p)))).includes('hunter2-secret'));

  const out = new PassThrough();
  const collected = text(out);
  const res = await h.provider.exec(podRef(p), 'app', ['env'], { stdout: out, tty: true });
  out.end();
  assert.equal(res.exitCode, 0);
  assert.match(await collected, /PASSWORD=hunter2-secret/, 'the value reached the container');
  await h.provider.deletePod(p, 0);
});

test('exec reports the exit code and passes stdin; attach streams output', async () => {
  const p = testPod('shell');
  await h.provider.createPod(p, contextFor(h, p));
  await waitFor('Running', () => h.statuses.get(key(podRef(p)))?.phase === 'Running');

  const out = new PassThrough();
  const collected = text(out);
  const stdin = new PassThrough();
  const done = h.provider.exec(podRef(p), 'app', ['sh'], { stdin, stdout: out, tty: true });
  stdin.write('echo from-stdin\n');
  stdin.write('exit 4\n');
  const res = await done;
  out.end();
  assert.equal(res.exitCode, 4);
  assert.match(await collected, /from-stdin/);

  const aout = new PassThrough();
  const got = waitFor('attach output', async () => {
    const chunk = aout.read() as Buffer | null;
    return chunk && chunk.toString().length > 0 ? chunk.toString() : undefined;
  });
  const attached = h.provider.attach(podRef(p), 'app', { stdout: aout, tty: false });
  assert.match(await got, /simulated container|nginx/);
  await h.provider.deletePod(p, 0);
  await attached;
});

test('a restarted connector adopts the existing groups: listPods finds them with status, and it keeps pushing changes', async () => {
  const pods = [
    testPod('adopt-a'),
    testPod('adopt-b', {
      restartPolicy: 'Never',
      containers: [{ name: 'app', image: 'busybox', command: ['sh', '-c', 'sleep 3'] }],
    }),
  ];
  for (const p of pods) await h.provider.createPod(p, contextFor(h, p));
  await waitFor('Running', () => pods.every((p) => h.statuses.get(key(podRef(p)))?.phase === 'Running'));

  const config = loadAciConfig(envFor(h.emu), { listIntervalMs: 1_000 });
  const second = createAciProvider({
    config,
    clusterId: 'cluster-under-test',
    nodeName: 'aci-connector',
    passIntervalMs: 200,
    steadyRefreshMs: 1_000,
  });
  const pushed = new Map<string, ProviderPodStatus>();
  second.onStatus((ref, s) => pushed.set(key(ref), s));
  try {
    const listed = await second.listPods();
    for (const p of pods) {
      const found = listed.find((x) => x.ref.uid === p.metadata!.uid);
      assert.ok(found, `${p.metadata!.name} adopted`);
      assert.equal(found.ref.name, p.metadata!.name);
    }
    // adopt-b's container exits: the new instance notices and pushes it.
    await waitFor(
      'Succeeded pushed by the new instance',
      () => pushed.get(key(podRef(pods[1]!)))?.phase === 'Succeeded',
      60_000,
    );
    for (const p of pods) await second.deletePod(p, 0);
    assert.equal((await second.listPods()).filter((x) => pods.some((p) => p.metadata!.uid === x.ref.uid)).length, 0);
  } finally {
    await second.close();
  }
});
