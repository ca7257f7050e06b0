/**
 * Reading an image's ENTRYPOINT from its registry (image-config*.ts): references, auth
 * challenges, index selection, caching, and how a pod's args become ACI's command. The
 * registry here is a tiny in-process one (logic only); test/e2e/aci-args-entrypoint runs the
 * real distribution registry.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { TransientProviderError } from '../../src/core/provider.js';
import { parseChallenges } from '../../src/providers/aci/image-config-auth.js';
import {
  isLoopbackRegistry,
  parseImageReference,
  registryNamesMatch,
} from '../../src/providers/aci/image-config-reference.js';
import { choosePlatform, ImageConfigError, ImageConfigResolver } from '../../src/providers/aci/image-config.js';
import { podToContainerGroup } from '../../src/providers/aci/mapping/pod-to-group.js';
import { ANNOTATION } from '../../src/providers/aci/mapping/annotations.js';
import { fakeContext, mappingOptions, pod } from './aci-fixtures.js';
import { DOCKER_LIST, DOCKER_MANIFEST, TinyRegistry } from './tiny-registry.js';

const LINUX = { os: 'linux', architecture: 'amd64' };
const registries: TinyRegistry[] = [];
async function registry(opts?: ConstructorParameters<typeof TinyRegistry>[0]): Promise<TinyRegistry> {
  const r = await new TinyRegistry(opts).start();
  registries.push(r);
  return r;
}
after(async () => {
  for (const r of registries) await r.stop();
});

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function failure(p: Promise<unknown>): Promise<ImageConfigError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ImageConfigError, `expected ImageConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('resolution did not fail');
}

test('image references normalize as a container runtime reads them', () => {
  assert.deepEqual(parseImageReference('nginx'), {
    registry: 'docker.io',
    apiHost: 'registry-1.docker.io',
    repository: 'library/nginx',
    reference: 'latest',
    pinned: false,
  });
  assert.deepEqual(parseImageReference('bitnami/redis:7.2'), {
    registry: 'docker.io',
    apiHost: 'registry-1.docker.io',
    repository: 'bitnami/redis',
    reference: '7.2',
    pinned: false,
  });
  assert.equal(parseImageReference('index.docker.io/nginx').repository, 'library/nginx');
  const local = parseImageReference('127.0.0.1:5000/team/app:v1');
  assert.deepEqual(local, {
    registry: '127.0.0.1:5000',
    apiHost: '127.0.0.1:5000',
    repository: 'team/app',
    reference: 'v1',
    pinned: false,
  });
  assert.equal(parseImageReference('localhost/app').registry, 'localhost');
  assert.equal(parseImageReference('myreg.azurecr.io/app').registry, 'myreg.azurecr.io');
  const d = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseImageReference(`quay.io/org/app:1.0@${d}`), {
    registry: 'quay.io',
    apiHost: 'quay.io',
    repository: 'org/app',
    reference: d,
    pinned: true,
  });
  assert.throws(() => parseImageReference('Bad/Name'), /invalid reference format/);
});

test('loopback registries, and credential servers matched as a kubelet matches them', () => {
  assert.ok(isLoopbackRegistry('127.0.0.1:5000'));
  assert.ok(isLoopbackRegistry('127.3.4.5:80'));
  assert.ok(isLoopbackRegistry('localhost:5000'));
  assert.ok(isLoopbackRegistry('[::1]:5000'));
  assert.ok(!isLoopbackRegistry('10.0.0.1:5000'));
  assert.ok(!isLoopbackRegistry('myreg.azurecr.io'));
  assert.ok(!isLoopbackRegistry('127.0.0.1.example.com'));

  assert.ok(registryNamesMatch('index.docker.io', 'docker.io'));
  assert.ok(registryNamesMatch('https://index.docker.io/v1/', 'docker.io'));
  assert.ok(registryNamesMatch('MyReg.azurecr.io', 'myreg.azurecr.io'));
  assert.ok(registryNamesMatch('*.azurecr.io', 'myreg.azurecr.io'));
  assert.ok(!registryNamesMatch('*.azurecr.io', 'a.b.azurecr.io'));
  assert.ok(!registryNamesMatch('other.io', 'myreg.azurecr.io'));
  assert.ok(registryNamesMatch('127.0.0.1:5000', '127.0.0.1:5000'));
  assert.ok(!registryNamesMatch('127.0.0.1:5000', '127.0.0.1:5001'));
});

test('WWW-Authenticate challenges parse with quoted commas, escapes and several schemes', () => {
  assert.deepEqual(
    parseChallenges(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
    ),
    [
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:library/nginx:pull',
        },
      },
    ],
  );
  // A scope naming two repositories holds a comma inside quotes; an escaped quote stays.
  assert.deepEqual(
    parseChallenges(
      'bearer realm="https://r/t", scope="repository:a:pull,push repository:b:pull", error="say \\"hi\\""',
    ),
    [
      {
        scheme: 'bearer',
        params: { realm: 'https://r/t', scope: 'repository:a:pull,push repository:b:pull', error: 'say "hi"' },
      },
    ],
  );
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm", Bearer realm=https://t/x,service=s'), [
    { scheme: 'basic', params: { realm: 'Registry Realm' } },
    { scheme: 'bearer', params: { realm: 'https://t/x', service: 's' } },
  ]);
  assert.deepEqual(parseChallenges(''), []);
});

test('an index yields the linux/amd64 manifest: variants and attestations aside', () => {
  const entries = [
    { digest: 'sha256:arm', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { digest: 'sha256:att', platform: { os: 'unknown', architecture: 'unknown' } },
    { digest: 'sha256:v3', platform: { os: 'linux', architecture: 'amd64', variant: 'v3' } },
    { digest: 'sha256:plain', platform: { os: 'linux', architecture: 'amd64' } },
    { digest: 'sha256:win', platform: { os: 'windows', architecture: 'amd64' } },
  ];
  assert.equal(choosePlatform(entries, LINUX), 'sha256:plain');
  assert.equal(
    choosePlatform(
      entries.filter((e) => e.digest !== 'sha256:plain'),
      LINUX,
    ),
    'sha256:v3',
  );
  assert.equal(choosePlatform(entries, { os: 'windows', architecture: 'amd64' }), 'sha256:win');
  assert.equal(choosePlatform(entries.slice(0, 2), LINUX), undefined);
});

test('an OCI index is followed to the platform manifest and its config; digests are cached, tags briefly', async () => {
  const reg = await registry();
  const amd = reg.addImage('team/app', undefined, { Entrypoint: ['/bin/app', '--serve'], Cmd: ['--port=80'] });
  const arm = reg.addImage('team/app', undefined, { Entrypoint: ['/bin/app-arm'] });
  reg.addIndex('team/app', 'v1', [
    { digest: arm, os: 'linux', architecture: 'arm64' },
    { digest: amd, os: 'linux', architecture: 'amd64' },
  ]);
  const resolver = new ImageConfigResolver({ tagTtlMs: 200 });

  const cfg = await resolver.resolve(`${reg.host}/team/app:v1`, { credentials: [], platform: LINUX });
  assert.deepEqual(cfg.entrypoint, ['/bin/app', '--serve']);
  assert.deepEqual(cfg.cmd, ['--port=80']);
  assert.equal(cfg.manifestDigest, amd);
  assert.deepEqual(reg.requests, [
    'GET /v2/team/app/manifests/v1',
    `GET /v2/team/app/manifests/${amd}`,
    `GET /v2/team/app/blobs/${cfg.configDigest}`,
  ]);

  // Within the tag's short life: no request at all.
  await resolver.resolve(`${reg.host}/team/app:v1`, { credentials: [], platform: LINUX });
  assert.equal(reg.requests.length, 3);
  // After it: the tag is read again (it may have moved), the config blob is not (its digest is known).
  await new Promise((r) => setTimeout(r, 300));
  reg.requests.length = 0;
  await resolver.resolve(`${reg.host}/team/app:v1`, { credentials: [], platform: LINUX });
  assert.deepEqual(reg.requests, ['GET /v2/team/app/manifests/v1', `GET /v2/team/app/manifests/${amd}`]);
  // By digest: the platform manifest is remembered for good.
  reg.requests.length = 0;
  const byDigest = `${reg.host}/team/app@${amd}`;
  await resolver.resolve(byDigest, { credentials: [], platform: LINUX });
  await resolver.resolve(byDigest, { credentials: [], platform: LINUX });
  assert.deepEqual(reg.requests, [`GET /v2/team/app/manifests/${amd}`]);
});

test('Docker v2 manifests and manifest lists, and an image with no ENTRYPOINT', async () => {
  const reg = await registry();
  const plain = reg.addImage('legacy', 'latest', { Entrypoint: null, Cmd: ['/bin/sh'] }, DOCKER_MANIFEST);
  const cfg = await new ImageConfigResolver().resolve(`${reg.host}/legacy`, { credentials: [], platform: LINUX });
  assert.deepEqual(cfg.entrypoint, []);
  assert.deepEqual(cfg.cmd, ['/bin/sh']);
  reg.addManifest(
    'legacy',
    'list',
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_LIST,
        manifests: [
          { mediaType: DOCKER_MANIFEST, digest: plain, size: 1, platform: { os: 'linux', architecture: 'amd64' } },
        ],
      }),
    ),
    DOCKER_LIST,
  );
  const viaList = await new ImageConfigResolver().resolve(`${reg.host}/legacy:list`, {
    credentials: [],
    platform: LINUX,
  });
  assert.equal(viaList.manifestDigest, plain);
});

test('an index without the platform, a missing tag and a corrupt blob fail saying why', async () => {
  const reg = await registry();
  const arm = reg.addImage('multi', undefined, { Entrypoint: ['/x'] });
  reg.addIndex('multi', 'v1', [{ digest: arm, os: 'linux', architecture: 'arm64', variant: 'v8' }]);
  const resolver = new ImageConfigResolver();
  const noPlatform = await failure(resolver.resolve(`${reg.host}/multi:v1`, { credentials: [], platform: LINUX }));
  assert.equal(noPlatform.kind, 'no-platform');
  assert.match(noPlatform.message, /no image for linux\/amd64 \(it offers linux\/arm64\/v8\)/);

  const missing = await failure(resolver.resolve(`${reg.host}/multi:v2`, { credentials: [], platform: LINUX }));
  assert.equal(missing.kind, 'not-found');
  assert.match(missing.message, /manifest v2 not found/);

  const good = reg.addImage('bad', 'v1', { Entrypoint: ['/good'] });
  const { configDigest } = await new ImageConfigResolver().resolve(`${reg.host}/bad@${good}`, {
    credentials: [],
    platform: LINUX,
  });
  reg.corruptBlob('bad', configDigest);
  const corrupt = await failure(
    new ImageConfigResolver().resolve(`${reg.host}/bad:v1`, { credentials: [], platform: LINUX }),
  );
  assert.equal(corrupt.kind, 'invalid');
  assert.match(corrupt.message, /does not match its digest/);
});

test('an unreachable registry says so, with the socket error', async () => {
  const port = await closedPort();
  const e = await failure(
    new ImageConfigResolver().resolve(`127.0.0.1:${port}/app:v1`, { credentials: [], platform: LINUX }),
  );
  assert.equal(e.kind, 'unreachable');
  assert.match(e.message, new RegExp(`cannot reach registry 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
});

test('anonymous Bearer tokens: the challenge is answered, and the token reused', async () => {
  const reg = await registry({ auth: 'bearer' });
  reg.addImage('public/app', 'v1', { Entrypoint: ['/entry'] });
  reg.addImage('public/app', 'v2', { Entrypoint: ['/entry2'] });
  const resolver = new ImageConfigResolver();
  const one = await resolver.resolve(`${reg.host}/public/app:v1`, { credentials: [], platform: LINUX });
  assert.deepEqual(one.entrypoint, ['/entry']);
  assert.equal(reg.tokensIssued, 1);
  const two = await resolver.resolve(`${reg.host}/public/app:v2`, { credentials: [], platform: LINUX });
  assert.deepEqual(two.entrypoint, ['/entry2']);
  assert.equal(reg.tokensIssued, 1, 'the same scope reuses its token');
});

test("a private repository needs the pull secret's credentials, for its own registry only", async () => {
  const reg = await registry({
    auth: 'bearer',
    privateRepos: { 'private/app': { username: 'robot', password: 'pa55' } },
  });
  reg.addImage('private/app', 'v1', { Entrypoint: ['/private'] });
  const resolver = new ImageConfigResolver();
  const anonymous = await failure(resolver.resolve(`${reg.host}/private/app:v1`, { credentials: [], platform: LINUX }));
  assert.equal(anonymous.kind, 'unauthorized');
  assert.match(anonymous.message, /refused a pull token anonymously/);

  const elsewhere = [{ server: 'other.io', username: 'robot', password: 'pa55' }];
  assert.equal(
    (await failure(resolver.resolve(`${reg.host}/private/app:v1`, { credentials: elsewhere, platform: LINUX }))).kind,
    'unauthorized',
  );

  const wrong = [{ server: reg.host, username: 'robot', password: 'nope' }];
  const refused = await failure(
    resolver.resolve(`${reg.host}/private/app:v1`, { credentials: wrong, platform: LINUX }),
  );
  assert.match(refused.message, /with the pull secret's credentials for user robot/);
  assert.ok(!refused.message.includes('nope'), 'a password never appears in a message');

  const right = [...elsewhere, { server: reg.host, username: 'robot', password: 'pa55' }];
  const cfg = await resolver.resolve(`${reg.host}/private/app:v1`, { credentials: right, platform: LINUX });
  assert.deepEqual(cfg.entrypoint, ['/private']);
});

test('a Basic challenge is answered with the credentials, and refused without them', async () => {
  const reg = await registry({ auth: 'basic', privateRepos: { app: { username: 'u', password: 'p' } } });
  reg.addImage('app', 'v1', { Entrypoint: ['/basic'] });
  const resolver = new ImageConfigResolver();
  const none = await failure(resolver.resolve(`${reg.host}/app:v1`, { credentials: [], platform: LINUX }));
  assert.match(none.message, /requires credentials for app .*add an imagePullSecret/);
  const cfg = await resolver.resolve(`${reg.host}/app:v1`, {
    credentials: [{ server: reg.host, username: 'u', password: 'p' }],
    platform: LINUX,
  });
  assert.deepEqual(cfg.entrypoint, ['/basic']);
});

test("args without command become ACI's command: ENTRYPOINT + args, or args alone without ENTRYPOINT", async () => {
  const reg = await registry();
  reg.addImage('with-ep', 'v1', { Entrypoint: ['/docker-entrypoint.sh', 'nginx'], Cmd: ['-g', 'daemon off;'] });
  reg.addImage('no-ep', 'v1', { Cmd: ['/bin/sh'] });
  const opts = { ...mappingOptions, imageConfigs: new ImageConfigResolver() };
  const env = { app: [{ name: 'LEVEL', value: 'debug', sensitive: false }] };
  const p = pod({
    initContainers: [{ name: 'init', image: `${reg.host}/no-ep:v1`, args: ['echo', 'ready'] }],
    containers: [
      { name: 'app', image: `${reg.host}/with-ep:v1`, args: ['-e', '$(LEVEL)'] },
      { name: 'plain', image: `${reg.host}/no-ep:v1`, args: ['sleep', '5'] },
      { name: 'explicit', image: `${reg.host}/with-ep:v1`, command: ['nginx'], args: ['-t'] },
      { name: 'defaults', image: `${reg.host}/with-ep:v1` },
    ],
  });
  const { group } = await podToContainerGroup(p, fakeContext({ env }), opts);
  const cmd = (name: string) => group.containers.find((c) => c.name === name)?.command;
  // args replace CMD; $(VAR) still expands.
  assert.deepEqual(cmd('app'), ['/docker-entrypoint.sh', 'nginx', '-e', 'debug']);
  assert.deepEqual(cmd('plain'), ['sleep', '5']);
  assert.deepEqual(cmd('explicit'), ['nginx', '-t']);
  assert.equal(cmd('defaults'), undefined, 'neither set: ACI runs the image as it is');
  assert.deepEqual(group.initContainers?.[0]?.command, ['echo', 'ready']);
});

test('the entrypoint annotation overrides the registry, which is then not asked', async () => {
  const port = await closedPort();
  const p = pod(
    { containers: [{ name: 'app', image: `127.0.0.1:${port}/app:v1`, args: ['-v'] }] },
    { annotations: { [ANNOTATION.imageEntrypoints]: JSON.stringify({ app: ['/custom'] }) } },
  );
  const { group } = await podToContainerGroup(p, fakeContext(), {
    ...mappingOptions,
    imageConfigs: new ImageConfigResolver(),
  });
  assert.deepEqual(group.containers[0]?.command, ['/custom', '-v']);
});

test('imagePullSecrets reach the registry lookup', async () => {
  const reg = await registry({
    auth: 'bearer',
    privateRepos: { 'private/app': { username: 'robot', password: 'pa55' } },
  });
  reg.addImage('private/app', 'v1', { Entrypoint: ['/private'] });
  const json = JSON.stringify({
    auths: { [`http://${reg.host}`]: { auth: Buffer.from('robot:pa55').toString('base64') } },
  });
  const ctx = fakeContext({ secrets: { pull: { '.dockerconfigjson': json } } });
  const p = pod({
    imagePullSecrets: [{ name: 'pull' }],
    containers: [{ name: 'app', image: `${reg.host}/private/app:v1`, args: ['x'] }],
  });
  const { group } = await podToContainerGroup(p, ctx, { ...mappingOptions, imageConfigs: new ImageConfigResolver() });
  assert.deepEqual(group.containers[0]?.command, ['/private', 'x']);
});

test('a registry that cannot answer is a transient ErrImagePull naming the container, image and cause', async () => {
  const port = await closedPort();
  const p = pod({ containers: [{ name: 'app', image: `127.0.0.1:${port}/app:v1`, args: ['-v'] }] });
  await assert.rejects(
    podToContainerGroup(p, fakeContext(), { ...mappingOptions, imageConfigs: new ImageConfigResolver() }),
    (e: unknown) => {
      assert.ok(e instanceof TransientProviderError, String(e));
      assert.equal(e.reason, 'ErrImagePull');
      assert.match(e.message, /spec\.containers\[0\] \(app\) sets args without command/);
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}/app:v1`));
      assert.match(e.message, /ECONNREFUSED/);
      return true;
    },
  );
});
