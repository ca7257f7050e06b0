/**
 * args without command, through the real control plane, the ACI provider and the emulator's
 * podman runtime, with a real registry: the distribution registry built from its Go module
 * (devcluster/registry) on loopback, holding an image built here with an ENTRYPOINT and a CMD.
 * The connector reads the ENTRYPOINT from the registry and sends ACI `command = ENTRYPOINT +
 * args`; the emulator pulls the image from the same registry; the container's log shows both.
 * An image on a registry that does not answer keeps its pod Pending with the reason, retried
 * with backoff until the registry is there.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { freePort } from '../../devcluster/cluster.js';
import { startRegistry, type RunningRegistry } from '../../devcluster/registry/registry.js';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import type { AciProvider } from '../../src/providers/aci/index.js';
import { TAG } from '../../src/providers/aci/naming.js';
import { podmanFixture } from '../emulator/podman-fixtures.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { buildTestImage, pushTestImage } from '../support/registry-images.js';
import { boundPod, core, startConnector } from './connector-process.js';
import { azureEnv, inspectorFor } from './aci-emulator-env.js';
import { kubectl } from './kubelet-api-support.js';

/** Prints what it was run as, then stays up (the pod is looked at while it runs). */
const ENTRY_SH = [
  '#!/bin/sh',
  'echo "entrypoint ran as $0"',
  'printf "args:"; printf " [%s]" "$@"; echo',
  'exec sleep 3600',
  '',
].join('\n');
const RECIPE = { files: { '/entry.sh': ENTRY_SH }, entrypoint: ['/entry.sh'], cmd: ['from-cmd'] };

const RESOURCE_GROUP = `args-entrypoint-${Math.random().toString(36).slice(2, 8)}`;
let emu: Emulator | undefined;
let fx: Awaited<ReturnType<typeof podmanFixture>> | undefined;
let inspector: AciProvider | undefined;
const registries: RunningRegistry[] = [];
let localImage = '';
const saved = { ...process.env };

function runDir(): string {
  const dir = process.env.ACI_TEST_RUN_DIR;
  if (!dir) throw new Error('ACI_TEST_RUN_DIR is not set: run this through the test runner');
  return dir;
}

before(async () => {
  fx = await podmanFixture();
  localImage = await buildTestImage(fx.runtime.cli, RECIPE);
  emu = await startEmulator({ runtime: fx.runtime });
  Object.assign(process.env, azureEnv(emu, RESOURCE_GROUP));
  inspector = inspectorFor(emu, RESOURCE_GROUP);
});

after(async () => {
  await inspector?.close();
  if (emu) await emu.stop();
  else await fx?.runtime.close();
  for (const r of registries) await r.stop();
  process.env = saved;
});

/** The private registry's test user; the registry takes bcrypt hashes only, so this one was made once. */
const ROBOT = {
  username: 'robot',
  password: 'aci-test-pull-pw',
  bcryptHash: '$2b$05$cz1AUKmU931ke8W5AwETzO4USQQUyeihRXnET8nbqJlvl253DIGBq',
};

/** A registry on loopback with the test image pushed as `repo:v1`; returns the image name. */
async function registryWithImage(repo: string, opts: { port?: number; private?: boolean } = {}): Promise<string> {
  const reg = await startRegistry(runDir(), {
    ...(opts.port ? { port: opts.port } : {}),
    name: 'registry',
    ...(opts.private ? { htpasswd: { username: ROBOT.username, bcryptHash: ROBOT.bcryptHash } } : {}),
  });
  registries.push(reg);
  const image = `${reg.host}/${repo}:v1`;
  await pushTestImage(fx!.runtime.cli, localImage, image, opts.private ? ROBOT : undefined);
  // The shared test store may hold this name from an earlier run on the same port: drop it, so
  // that the emulator's copy can only come from pulling it.
  await fx!.runtime.cli.exec(['rmi', '--force', image]);
  return image;
}

function argsPod(node: string, name: string, image: string, args: string[]): V1Pod {
  return boundPod(node, name, {
    spec: { automountServiceAccountToken: false, containers: [{ name: 'main', image, args }] },
  });
}

async function runningWithLog(ns: string, name: string, want: RegExp): Promise<string> {
  await waitFor(
    `${name} Running`,
    async () => (await core().readNamespacedPod({ name, namespace: ns })).status?.phase === 'Running',
    { timeoutMs: 240_000 },
  );
  return waitFor(
    `${name}'s log`,
    async () => {
      const r = await kubectl(['-n', ns, 'logs', name]);
      return r.code === 0 && want.test(r.stdout) ? r.stdout : undefined;
    },
    { timeoutMs: 60_000 },
  );
}

test(
  'a pod that sets only args runs the image ENTRYPOINT with those args, read from the registry',
  { timeout: 420_000 },
  async (t) => {
    const image = await registryWithImage('args/entry');
    const ns = await freshNamespace(t, 'args-entrypoint');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: argsPod(h.nodeName, 'args-only', image, ['first', 'second arg']),
    });

    const log = await runningWithLog(ns, 'args-only', /args:/);
    assert.match(log, /^entrypoint ran as \/entry\.sh$/m);
    // args replace CMD, exactly, spaces kept.
    assert.match(log, /^args: \[first\] \[second arg\]$/m);
    assert.ok(!log.includes('from-cmd'), `CMD must not run: ${log}`);

    // What ACI was asked to run: the whole argv, ENTRYPOINT first.
    const groups = await inspector!.arm.listGroups();
    const group = groups.find((g) => g.tags?.[TAG.podName] === 'args-only' && g.tags[TAG.namespace] === ns);
    assert.ok(group, `no group for the pod among ${groups.map((g) => g.name).join(', ')}`);
    const full = await inspector!.arm.getGroup(group.name!);
    assert.deepEqual(full?.containers[0]?.command, ['/entry.sh', 'first', 'second arg']);
    // The emulator's podman pulled the image from the registry (it was not in its store before).
    assert.equal(
      (await fx!.runtime.cli.exec(['image', 'exists', image])).code,
      0,
      'the image was pulled into the emulator store',
    );
  },
);

test(
  'an image on a registry that does not answer keeps the pod Pending with the reason, retried until it answers',
  { timeout: 600_000 },
  async (t) => {
    const port = await freePort(); // nothing listens there yet
    const image = `127.0.0.1:${port}/late/app:v1`;
    const ns = await freshNamespace(t, 'args-unreachable');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({ namespace: ns, body: argsPod(h.nodeName, 'late', image, ['late']) });

    const pending = await waitFor(
      'late waiting in ErrImagePull',
      async () => {
        const p = await core().readNamespacedPod({ name: 'late', namespace: ns });
        return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ErrImagePull' ? p : undefined;
      },
      { timeoutMs: 120_000 },
    );
    assert.equal(pending.status?.phase, 'Pending');
    const message = pending.status?.containerStatuses?.[0]?.state?.waiting?.message ?? '';
    assert.match(message, /sets args without command/);
    assert.ok(message.includes(image), message);
    assert.match(message, new RegExp(`cannot reach registry 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    // Retried with backoff: a second attempt is recorded as an Event.
    const retried = await waitFor(
      'a retry Event',
      async () => {
        const events = (await core().listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=late' }))
          .items;
        return events.find(
          (e) => e.reason === 'ErrImagePull' && e.type === 'Warning' && /attempt [2-9]/.test(e.message ?? ''),
        );
      },
      { timeoutMs: 120_000 },
    );
    assert.match(retried.message ?? '', /ECONNREFUSED/);
    // Nothing was sent to ACI meanwhile.
    assert.ok(!(await inspector!.arm.listGroups()).some((g) => g.containers.some((c) => c.image === image)));

    // The registry comes up on that port with the image: the next retry runs the pod.
    await registryWithImage('late/app', { port });
    const log = await runningWithLog(ns, 'late', /args:/);
    assert.match(log, /^entrypoint ran as \/entry\.sh$/m);
    assert.match(log, /^args: \[late\]$/m);
  },
);

test(
  "a private registry: the pod's imagePullSecret reads the ENTRYPOINT and pulls; without it the pod waits saying so",
  { timeout: 480_000 },
  async (t) => {
    const image = await registryWithImage('private/entry', { private: true });
    const host = image.slice(0, image.indexOf('/'));
    const ns = await freshNamespace(t, 'args-private');
    const auth = Buffer.from(`${ROBOT.username}:${ROBOT.password}`).toString('base64');
    await core().createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: 'pull' },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: { '.dockerconfigjson': JSON.stringify({ auths: { [host]: { auth } } }) },
      },
    });
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    const withSecret = argsPod(h.nodeName, 'with-secret', image, ['private']);
    withSecret.spec!.imagePullSecrets = [{ name: 'pull' }];
    await core().createNamespacedPod({ namespace: ns, body: withSecret });
    await core().createNamespacedPod({ namespace: ns, body: argsPod(h.nodeName, 'no-secret', image, ['private']) });

    const log = await runningWithLog(ns, 'with-secret', /args:/);
    assert.match(log, /^entrypoint ran as \/entry\.sh$/m);
    assert.match(log, /^args: \[private\]$/m);

    const waiting = await waitFor(
      'no-secret waiting in ErrImagePull',
      async () => {
        const p = await core().readNamespacedPod({ name: 'no-secret', namespace: ns });
        const w = p.status?.containerStatuses?.[0]?.state?.waiting;
        return w?.reason === 'ErrImagePull' ? { phase: p.status?.phase, message: w.message ?? '' } : undefined;
      },
      { timeoutMs: 120_000 },
    );
    assert.equal(waiting.phase, 'Pending');
    assert.match(
      waiting.message,
      new RegExp(`${host.replace(/\./g, '\\.')} requires credentials for private/entry .*add an imagePullSecret`),
    );
    assert.ok(!waiting.message.includes(ROBOT.password));
  },
);
