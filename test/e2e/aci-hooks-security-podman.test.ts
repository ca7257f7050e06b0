/**
 * Lifecycle hooks, securityContext, the limit clamp Event and nested volume items, through
 * the real control plane, the connector's ACI provider and the emulator's podman runtime
 * (real containers: the hooks' exec, capabilities and users are real processes').
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { podmanFixture } from '../emulator/podman-fixtures.js';
import { podmanTestStateDir } from '../support/images.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { azureEnv, inspectorFor } from './aci-emulator-env.js';

let emu: Emulator | undefined;
let fx: Awaited<ReturnType<typeof podmanFixture>> | undefined;
let image = '';
const saved = { ...process.env };
const account = `hooks${process.pid}`;
const shareDir = join(podmanTestStateDir(), 'fileshares', account, 'prestop');

before(async () => {
  fx = await podmanFixture();
  image = fx.image;
  emu = await startEmulator({ runtime: fx.runtime });
  Object.assign(process.env, azureEnv(emu, `hooks-podman-${Math.random().toString(36).slice(2, 8)}`));
});

after(async () => {
  if (emu) await emu.stop();
  else await fx?.runtime.close();
  rmSync(join(podmanTestStateDir(), 'fileshares', account), { recursive: true, force: true });
  process.env = saved;
});

async function running(ns: string, name: string): Promise<V1Pod> {
  return waitFor(
    `${name} Running`,
    async () => {
      const p = await core().readNamespacedPod({ name, namespace: ns });
      return p.status?.phase === 'Running' ? p : undefined;
    },
    { timeoutMs: 300_000 },
  );
}

async function logOf(ns: string, name: string, container: string, re: RegExp): Promise<string> {
  return waitFor(
    `${name}/${container} log matching ${re}`,
    async () => {
      const log = await core().readNamespacedPodLog({ name, namespace: ns, container });
      return re.test(log) ? log : undefined;
    },
    { timeoutMs: 120_000 },
  );
}

async function eventsOf(ns: string, name: string, reason: string): Promise<{ message: string; count: number }[]> {
  const list = await core().listNamespacedEvent({
    namespace: ns,
    fieldSelector: `involvedObject.name=${name},reason=${reason}`,
  });
  return list.items.map((e) => ({ message: e.message ?? '', count: e.count ?? 1 }));
}

test(
  'with the ACI provider on podman: postStart runs once the container runs, a failing one kills it, preStop runs before deletion',
  { timeout: 480_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'hooks');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: 'share' },
        stringData: { azurestorageaccountname: account, azurestorageaccountkey: 'a2V5' },
      },
    });
    // The app waits for the file its postStart hook writes, and prints it.
    const wait =
      'i=0; while [ ! -f /tmp/started ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; echo "poststart: $(cat /tmp/started)"; exec sleep 3600';
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'hooked', {
        spec: {
          terminationGracePeriodSeconds: 60,
          containers: [
            {
              name: 'main',
              image,
              command: ['sh', '-c', wait],
              volumeMounts: [{ name: 'share', mountPath: '/share' }],
              lifecycle: {
                postStart: { exec: { command: ['sh', '-c', 'echo "hook-ran as $(id -u)" > /tmp/started'] } },
                preStop: {
                  exec: { command: ['sh', '-c', 'echo "prestop saw: $(cat /tmp/started)" > /share/prestop.txt'] },
                },
              },
            },
          ],
          volumes: [{ name: 'share', azureFile: { secretName: 'share', shareName: 'prestop' } }],
        },
      }),
    });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'bad-hook', {
        spec: {
          containers: [
            {
              name: 'main',
              image,
              command: ['sleep', '3600'],
              lifecycle: { postStart: { exec: { command: ['sh', '-c', 'echo nope; exit 7'] } } },
            },
          ],
        },
      }),
    });

    await running(ns, 'hooked');
    const log = await logOf(ns, 'hooked', 'main', /poststart: /);
    assert.match(log, /poststart: hook-ran as 0/);

    // The failing hook: the kubelet's Event with the exit code and output, then the container is killed
    // (ACI restarts the group) and started again, so the hook fails a second time.
    const failed = await waitFor(
      'FailedPostStartHook twice',
      async () => {
        const evs = await eventsOf(ns, 'bad-hook', 'FailedPostStartHook');
        return evs.reduce((n, e) => n + e.count, 0) >= 2 ? evs : undefined;
      },
      { timeoutMs: 300_000 },
    );
    assert.match(
      failed[0]?.message ?? '',
      /Exec lifecycle hook .* for Container "main" .* failed - error: command 'sh -c echo nope; exit 7' exited with 7: nope/,
    );
    // Events follow the status writes (they wait while pod work is queued): wait for them.
    await waitFor('a Killing Event naming FailedPostStartHook', async () =>
      (await eventsOf(ns, 'bad-hook', 'Killing')).some((e) => /FailedPostStartHook/.test(e.message)),
    );

    // preStop runs before the group goes: its file, written from inside the container, outlives the pod.
    rmSync(join(shareDir, 'prestop.txt'), { force: true });
    await core().deleteNamespacedPod({ name: 'hooked', namespace: ns });
    await waitFor(
      'hooked gone',
      async () => {
        try {
          await core().readNamespacedPod({ name: 'hooked', namespace: ns });
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 180_000 },
    );
    assert.ok(
      existsSync(join(shareDir, 'prestop.txt')),
      'the preStop hook wrote its file before the group was deleted',
    );
    assert.equal(readFileSync(join(shareDir, 'prestop.txt'), 'utf8'), 'prestop saw: hook-ran as 0\n');
    assert.deepEqual(await eventsOf(ns, 'hooked', 'FailedPreStopHook'), []);
  },
);

test(
  'with the ACI provider on podman: an httpGet postStart hook reaches the container’s own server',
  { timeout: 180_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'hooks-http');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    // busybox httpd -vv logs every request it serves ("url:/path", "response:200") to stderr.
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'http-hook', {
        spec: {
          containers: [
            {
              name: 'web',
              image,
              command: ['sh', '-c', 'mkdir -p /www && echo ok > /www/started && exec httpd -f -vv -p 8080 -h /www'],
              ports: [{ name: 'http', containerPort: 8080 }],
              lifecycle: { postStart: { httpGet: { path: '/started', port: 'http' } } },
            },
          ],
        },
      }),
    });
    await running(ns, 'http-hook');
    const log = await logOf(ns, 'http-hook', 'web', /url:\/started[\s\S]*response:200/);
    assert.match(log, /url:\/started/, 'the hook’s GET reached the container’s httpd, on the named port');
    const pod = await core().readNamespacedPod({ name: 'http-hook', namespace: ns });
    assert.equal(pod.status?.containerStatuses?.[0]?.restartCount, 0, 'a hook answered 200 kills nothing');
    assert.deepEqual(await eventsOf(ns, 'http-hook', 'FailedPostStartHook'), []);
  },
);

test(
  'with the ACI provider on podman: a failing postStart under restartPolicy Never stops the group; the pod ends Failed, not restarted',
  { timeout: 120_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'hooks-never');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    const before = emu!.stats().callsByOperation;
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'never', {
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'main',
              image,
              command: ['sleep', '3600'],
              lifecycle: { postStart: { exec: { command: ['sh', '-c', 'echo refused; exit 3'] } } },
            },
          ],
        },
      }),
    });
    const failed = await waitFor(
      'never Failed with its container terminated',
      async () => {
        const p = await core().readNamespacedPod({ name: 'never', namespace: ns });
        return p.status?.phase === 'Failed' && p.status.containerStatuses?.[0]?.state?.terminated ? p : undefined;
      },
      { timeoutMs: 90_000 },
    );
    assert.equal(failed.status?.reason, 'FailedPostStartHook');
    assert.match(failed.status?.message ?? '', /Container main was killed because its postStart hook failed/);
    const cs = failed.status?.containerStatuses?.[0];
    assert.equal(cs?.restartCount, 0);
    assert.equal(cs?.ready, false);
    assert.notEqual(cs?.state?.terminated?.exitCode, 0);
    assert.match(
      cs?.state?.terminated?.message ?? '',
      /postStart hook failed: command 'sh -c echo refused; exit 3' exited with 3/,
    );
    await waitFor('a FailedPostStartHook Event with the hook’s output', async () =>
      (await eventsOf(ns, 'never', 'FailedPostStartHook')).some((e) => /exited with 3: refused/.test(e.message)),
    );
    // The emulator stopped the group (ACI's stop) and restarted nothing.
    const after = emu!.stats().callsByOperation;
    assert.ok((after.ContainerGroups_Stop ?? 0) > (before.ContainerGroups_Stop ?? 0), JSON.stringify(after));
    assert.equal(after.ContainerGroups_Restart ?? 0, before.ContainerGroups_Restart ?? 0, 'no group restart');
    const inspector = inspectorFor(emu!, process.env.ACI_RESOURCE_GROUP ?? '');
    t.after(() => inspector.close());
    const listed = (await inspector.arm.listGroups()).find((g) => g.tags?.[ACI_TAGS.podUid] === failed.metadata?.uid);
    const g = listed?.name ? await inspector.arm.getGroup(listed.name) : undefined;
    assert.equal(g?.instanceView?.state, 'Stopped', 'the group is stopped, and kept');
    assert.equal(g?.containers[0]?.instanceView?.restartCount ?? 0, 0, 'its container was not restarted');
    assert.equal(g?.containers[0]?.instanceView?.currentState?.state, 'Terminated');
  },
);

test(
  'with the ACI provider on podman: capabilities, runAsUser/runAsGroup and no-new-privileges apply; a clamped limit and dropped hardening are Events',
  { timeout: 480_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'secctx');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    const show = 'grep -E "^(CapEff|NoNewPrivs):" /proc/self/status; id; exec sleep 3600';
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'secure', {
        spec: {
          securityContext: { fsGroup: 2000 },
          containers: [
            {
              name: 'caps',
              image,
              command: ['sh', '-c', show],
              resources: { requests: { cpu: '250m', memory: '128Mi' }, limits: { cpu: '2', memory: '256Mi' } },
              securityContext: {
                capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
                readOnlyRootFilesystem: true,
              },
            },
            {
              name: 'user',
              image,
              command: ['sh', '-c', show],
              resources: { requests: { cpu: '250m', memory: '128Mi' } },
              securityContext: {
                runAsUser: 1000,
                runAsGroup: 3000,
                allowPrivilegeEscalation: false,
                capabilities: { drop: ['NET_RAW'] },
              },
            },
          ],
        },
      }),
    });
    await running(ns, 'secure');
    // Only NET_BIND_SERVICE (bit 10) is left after dropping ALL.
    const caps = await logOf(ns, 'secure', 'caps', /uid=/);
    assert.match(caps, /CapEff:\s+0000000000000400/);
    assert.match(caps, /uid=0\(root\)/);
    const user = await logOf(ns, 'secure', 'user', /uid=/);
    assert.match(user, /uid=1000(\(\d+\))? gid=3000(\(\d+\))?/);
    assert.match(user, /NoNewPrivs:\s+1/);

    const clamp = await waitFor('LimitLowered event', async () => (await eventsOf(ns, 'secure', 'LimitLowered'))[0]);
    assert.match(clamp.message, /container caps cpu limit 2 lowered to 0\.5 CPU/);
    const dropped = await waitFor(
      'SecurityContextNotApplied event',
      async () => (await eventsOf(ns, 'secure', 'SecurityContextNotApplied'))[0],
    );
    assert.match(dropped.message, /spec\.securityContext\.fsGroup/);
    assert.match(dropped.message, /spec\.containers\[0\]\.securityContext\.readOnlyRootFilesystem/);
  },
);

test(
  'with the ACI provider on podman: nested item paths are readable, 38 mounts run, and what ACI cannot do fails naming the field',
  { timeout: 480_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'vols');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'conf' }, data: { main: 'top-level', nested: 'in-a-subdir' } },
    });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'nested', {
        spec: {
          containers: [
            {
              name: 'main',
              image,
              command: [
                'sh',
                '-c',
                'echo "main=$(cat /etc/app/main.conf) nested=$(cat /etc/app/conf.d/nested.conf)"; exec sleep 3600',
              ],
              volumeMounts: [{ name: 'cfg', mountPath: '/etc/app', readOnly: true }],
            },
          ],
          volumes: [
            {
              name: 'cfg',
              projected: {
                sources: [
                  {
                    configMap: {
                      name: 'conf',
                      items: [
                        { key: 'main', path: 'main.conf' },
                        { key: 'nested', path: 'conf.d/nested.conf' },
                      ],
                    },
                  },
                ],
              },
            },
          ],
        },
      }),
    });
    // 19 emptyDirs, each mounted twice (38 mounts), plus the ServiceAccount volume: ACI's 20 volumes.
    const vols = Array.from({ length: 19 }, (_, i) => ({ name: `v${i}`, emptyDir: {} }));
    const mounts = Array.from({ length: 38 }, (_, i) => ({ name: `v${i % 19}`, mountPath: `/m/${i}` }));
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'mounts38', {
        spec: {
          containers: [
            {
              name: 'main',
              image,
              command: [
                'sh',
                '-c',
                'echo shared > /m/0/f; echo "mounts: $(ls -d /m/* | wc -l) $(cat /m/19/f)"; exec sleep 3600',
              ],
              volumeMounts: mounts,
            },
          ],
          volumes: vols,
        },
      }),
    });
    const many = Array.from({ length: 21 }, (_, i) => ({ name: `v${i}`, emptyDir: {} }));
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(h.nodeName, 'volumes21', {
        spec: { containers: [{ name: 'main', image, command: ['true'] }], volumes: many },
      }),
    });
    const rejected: [string, Partial<V1Pod>, RegExp][] = [
      [
        'host-aliases',
        { spec: { hostAliases: [{ ip: '10.0.0.1', hostnames: ['db'] }], containers: [{ name: 'main', image }] } },
        /spec\.hostAliases/,
      ],
      [
        'sub-path',
        {
          spec: {
            containers: [{ name: 'main', image, volumeMounts: [{ name: 'e', mountPath: '/e', subPath: 'x' }] }],
            volumes: [{ name: 'e', emptyDir: {} }],
          },
        },
        /spec\.containers\[0\]\.volumeMounts\[0\]\.subPath/,
      ],
      [
        'working-dir',
        { spec: { containers: [{ name: 'main', image, workingDir: '/app' }] } },
        /spec\.containers\[0\]\.workingDir/,
      ],
      [
        'sysctls',
        {
          spec: {
            securityContext: { sysctls: [{ name: 'net.core.somaxconn', value: '1024' }] },
            containers: [{ name: 'main', image }],
          },
        },
        /spec\.securityContext\.sysctls/,
      ],
    ];
    for (const [name, extra] of rejected)
      await core().createNamespacedPod({ namespace: ns, body: boundPod(h.nodeName, name, extra) });

    await running(ns, 'nested');
    assert.match(await logOf(ns, 'nested', 'main', /main=/), /main=top-level nested=in-a-subdir/);
    await running(ns, 'mounts38');
    assert.match(await logOf(ns, 'mounts38', 'main', /mounts:/), /mounts: 38 shared/);

    const failed = await waitFor(
      'volumes21 Failed',
      async () => {
        const p = await core().readNamespacedPod({ name: 'volumes21', namespace: ns });
        return p.status?.phase === 'Failed' ? p : undefined;
      },
      { timeoutMs: 120_000 },
    );
    assert.equal(failed.status?.reason, 'TooManyVolumes');
    assert.match(
      failed.status?.message ?? '',
      /spec\.volumes: the pod needs 2\d Azure Container Instances volumes.*at most 20/,
    );
    for (const [name, , re] of rejected) {
      const p = await waitFor(
        `${name} Failed`,
        async () => {
          const x = await core().readNamespacedPod({ name, namespace: ns });
          return x.status?.phase === 'Failed' ? x : undefined;
        },
        { timeoutMs: 120_000 },
      );
      assert.match(p.status?.message ?? '', re, `${name}: ${p.status?.message}`);
    }
  },
);
