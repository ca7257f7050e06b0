import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodRejectedError } from '../../src/core/provider.js';
import { ACI_MAX_VOLUMES } from '../../src/providers/aci/mapping/pod-to-group.js';
import { UNCONFINED_SECCOMP } from '../../src/providers/aci/mapping/security-context.js';
import { securityFlags } from '../../src/emulator/runtimes/podman/security.js';
import type { PodmanCli } from '../../src/emulator/runtimes/podman/podman-cli.js';
import { fakeContext, mapPod, mappingOptions as opts, pod } from './aci-fixtures.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

test('securityContext: capabilities, user, group, no privilege escalation and seccomp map to ACI, container over pod', async () => {
  const p = pod({
    securityContext: { runAsUser: 1000, runAsGroup: 3000, seccompProfile: { type: 'Unconfined' } },
    containers: [
      {
        name: 'app',
        image: 'x',
        securityContext: {
          runAsUser: 2000,
          allowPrivilegeEscalation: false,
          capabilities: { add: ['NET_BIND_SERVICE'], drop: ['NET_RAW'] },
          seccompProfile: { type: 'RuntimeDefault' },
        },
      },
      { name: 'side', image: 'x' },
    ],
    initContainers: [{ name: 'init', image: 'x', securityContext: { capabilities: { drop: ['ALL'] } } }],
  });
  const ctx = fakeContext();
  const { group, notes } = await mapPod(p, ctx, opts);
  assert.deepEqual(group.containers[0]?.securityContext, {
    runAsUser: 2000,
    runAsGroup: 3000,
    allowPrivilegeEscalation: false,
    capabilities: { add: ['NET_BIND_SERVICE'], drop: ['NET_RAW'] },
  });
  assert.deepEqual(group.containers[1]?.securityContext, {
    runAsUser: 1000,
    runAsGroup: 3000,
    seccompProfile: b64(UNCONFINED_SECCOMP),
  });
  assert.deepEqual(group.initContainers?.[0]?.securityContext, {
    runAsUser: 1000,
    runAsGroup: 3000,
    seccompProfile: b64(UNCONFINED_SECCOMP),
    capabilities: { drop: ['ALL'] },
  });
  assert.equal(notes, undefined, 'nothing was dropped');
});

test('hardening fields ACI has no field for are dropped and noted in ONE Event, not rejected', async () => {
  const p = pod({
    securityContext: { fsGroup: 2000, runAsNonRoot: true, seLinuxOptions: { level: 's0' } },
    containers: [{ name: 'app', image: 'x', securityContext: { readOnlyRootFilesystem: true, privileged: false } }],
  });
  const { group, notes } = await mapPod(p, fakeContext(), opts);
  assert.equal(group.containers[0]?.securityContext, undefined);
  assert.equal(notes?.length, 1);
  const [n] = notes ?? [];
  assert.equal(n?.reason, 'SecurityContextNotApplied');
  for (const f of [
    'spec.securityContext.fsGroup',
    'spec.securityContext.seLinuxOptions',
    'spec.containers[0].securityContext.readOnlyRootFilesystem',
    'spec.securityContext.runAsNonRoot',
  ]) {
    assert.ok(n?.message.includes(f), `${f} in ${n?.message}`);
  }
  // runAsNonRoot with runAsUser 0 could never run: rejected naming the field.
  const root = pod({
    securityContext: { runAsNonRoot: true },
    containers: [{ name: 'a', image: 'x', securityContext: { runAsUser: 0 } }],
  });
  await assert.rejects(
    mapPod(root, fakeContext(), opts),
    (e: unknown) => e instanceof PodRejectedError && e.field === 'spec.containers[0].securityContext.runAsUser',
  );
  // With runAsUser set, runAsNonRoot is enforced by the mapping, so nothing is noted.
  const ok = await mapPod(pod({ securityContext: { runAsNonRoot: true, runAsUser: 1000 } }), fakeContext(), opts);
  assert.equal(ok.notes, undefined);
});

test('a limit above the group total request is clamped, with a note naming container, resource, asked and given', async () => {
  const p = pod({
    containers: [
      {
        name: 'web',
        image: 'x',
        resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '4', memory: '8Gi' } },
      },
      { name: 'side', image: 'x', resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '500m' } } },
    ],
  });
  const { group, notes } = await mapPod(p, fakeContext(), opts);
  assert.deepEqual(group.containers[0]?.resources.limits, { cpu: 0.75, memoryInGB: 0.9 });
  assert.deepEqual(group.containers[1]?.resources.limits, { cpu: 0.5 });
  assert.equal(notes?.length, 1);
  assert.equal(notes?.[0]?.reason, 'LimitLowered');
  assert.match(
    notes?.[0]?.message ?? '',
    /container web cpu limit 4 lowered to 0\.75 CPU; container web memory limit 8Gi lowered to 0\.9 GB/,
  );
  assert.doesNotMatch(notes?.[0]?.message ?? '', /side/);
  const within = await mapPod(
    pod({ containers: [{ name: 'a', image: 'x', resources: { requests: { cpu: '1' }, limits: { cpu: '1' } } }] }),
    fakeContext(),
    opts,
  );
  assert.equal(within.notes, undefined);
});

test('files in subdirectories become one ACI secret volume per directory, mounted at the subdirectory', async () => {
  const ctx = fakeContext({
    configMaps: { conf: { data: { main: 'm', nested: 'n', deep: 'd' } } },
    secrets: { tls: { crt: 'C' } },
  });
  const p = pod({
    containers: [{ name: 'app', image: 'x', volumeMounts: [{ name: 'cfg', mountPath: '/etc/app/', readOnly: true }] }],
    volumes: [
      {
        name: 'cfg',
        projected: {
          sources: [
            {
              configMap: {
                name: 'conf',
                items: [
                  { key: 'main', path: 'main.yaml' },
                  { key: 'nested', path: 'conf.d/nested.yaml' },
                  { key: 'deep', path: 'conf.d/x/deep.yaml' },
                ],
              },
            },
            { secret: { name: 'tls', items: [{ key: 'crt', path: 'tls/tls.crt' }] } },
          ],
        },
      },
    ],
  });
  const { group } = await mapPod(p, ctx, opts);
  assert.deepEqual(group.volumes, [
    { name: 'cfg', secret: { 'main.yaml': b64('m') } },
    { name: 'cfg-d1', secret: { 'nested.yaml': b64('n') } },
    { name: 'cfg-d2', secret: { 'tls.crt': b64('C') } },
    { name: 'cfg-d3', secret: { 'deep.yaml': b64('d') } },
  ]);
  assert.deepEqual(group.containers[0]?.volumeMounts, [
    { name: 'cfg', mountPath: '/etc/app/', readOnly: true },
    { name: 'cfg-d1', mountPath: '/etc/app/conf.d', readOnly: true },
    { name: 'cfg-d2', mountPath: '/etc/app/tls', readOnly: true },
    { name: 'cfg-d3', mountPath: '/etc/app/conf.d/x', readOnly: true },
  ]);
  // Only nested files: no volume at the top, a name no pod volume has.
  const only = pod({
    containers: [{ name: 'app', image: 'x', volumeMounts: [{ name: 's', mountPath: '/s' }] }],
    volumes: [
      { name: 's', secret: { secretName: 'tls', items: [{ key: 'crt', path: 'a/b' }] } },
      { name: 's-d1', emptyDir: {} },
    ],
  });
  const g2 = (await mapPod(only, ctx, opts)).group;
  assert.deepEqual(g2.volumes, [
    { name: 's-d2', secret: { b: b64('C') } },
    { name: 's-d1', emptyDir: {} },
  ]);
  assert.deepEqual(g2.containers[0]?.volumeMounts, [{ name: 's-d2', mountPath: '/s/a', readOnly: false }]);
  // A name that is a file and a directory, or climbs out, is refused.
  const clash = pod({
    volumes: [
      {
        name: 's',
        secret: {
          secretName: 'tls',
          items: [
            { key: 'crt', path: 'a' },
            { key: 'crt', path: 'a/b' },
          ],
        },
      },
    ],
  });
  await assert.rejects(
    mapPod(clash, ctx, opts),
    (e: unknown) => e instanceof PodRejectedError && e.message.includes("'a' is both a file and a directory"),
  );
  const climb = pod({ volumes: [{ name: 's', secret: { secretName: 'tls', items: [{ key: 'crt', path: '../b' }] } }] });
  await assert.rejects(
    mapPod(climb, ctx, opts),
    (e: unknown) => e instanceof PodRejectedError && e.field === 'spec.volumes[0].secret.items[0].path',
  );
});

test('38 volume mounts over 20 volumes map; more than 20 ACI volumes are refused naming the limit', async () => {
  const volumes = Array.from({ length: ACI_MAX_VOLUMES }, (_, i) => ({ name: `v${i}`, emptyDir: {} }));
  const mounts = Array.from({ length: 38 }, (_, i) => ({ name: `v${i % 19}`, mountPath: `/m/${i}` }));
  const { group } = await mapPod(
    pod({ containers: [{ name: 'app', image: 'x', volumeMounts: mounts }], volumes }),
    fakeContext(),
    opts,
  );
  assert.equal(group.volumes?.length, 20);
  assert.equal(group.containers[0]?.volumeMounts?.length, 38);

  const many = Array.from({ length: 38 }, (_, i) => ({ name: `v${i}`, emptyDir: {} }));
  await assert.rejects(
    mapPod(
      pod({
        containers: [
          { name: 'app', image: 'x', volumeMounts: many.map((v, i) => ({ name: v.name, mountPath: `/m/${i}` })) },
        ],
        volumes: many,
      }),
      fakeContext(),
      opts,
    ),
    (e: unknown) =>
      e instanceof PodRejectedError &&
      e.reason === 'TooManyVolumes' &&
      e.field === 'spec.volumes' &&
      /38 Azure Container Instances volumes.*at most 20/.test(e.message),
  );
});

test('podman flags for ACI securityContext: drops before adds, user:group, no-new-privileges, seccomp file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sec-'));
  try {
    const calls: string[][] = [];
    const cli = { run: async (args: string[]) => (calls.push(args), 'app:staff\n') } as unknown as PodmanCli;
    const flags = await securityFlags(
      cli,
      'img',
      'ctr',
      {
        capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL', 'CAP_NET_RAW'] },
        runAsUser: 1000,
        runAsGroup: 2000,
        allowPrivilegeEscalation: false,
        seccompProfile: '{"defaultAction":"SCMP_ACT_ALLOW"}',
      },
      dir,
    );
    assert.deepEqual(flags, [
      '--cap-drop',
      'ALL',
      '--cap-drop',
      'CAP_NET_RAW',
      '--cap-add',
      'CAP_NET_BIND_SERVICE',
      '--user',
      '1000:2000',
      '--security-opt',
      'no-new-privileges',
      '--security-opt',
      `seccomp=${join(dir, 'ctr.seccomp.json')}`,
    ]);
    assert.equal(readFileSync(join(dir, 'ctr.seccomp.json'), 'utf8'), '{"defaultAction":"SCMP_ACT_ALLOW"}');
    assert.equal(calls.length, 0, 'a user given needs no image lookup');
    // A group alone keeps the image's user.
    assert.deepEqual(await securityFlags(cli, 'img', 'ctr', { runAsGroup: 5 }, dir), ['--user', 'app:5']);
    assert.deepEqual(await securityFlags(cli, 'img', 'ctr', undefined, dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
