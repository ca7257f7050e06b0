/**
 * The connector's container image as users get it: built with podman from a clean clone
 * (devcluster/image/build.sh, local Debian 13 bases since no registry is reachable), holding
 * the connector and its production dependencies only, running as non-root, and, run with
 * podman against the dev cluster and the emulator, registering a Ready node that runs a pod.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { before, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { freePort, repoRoot } from '../../devcluster/cluster.js';
import { nodeKubeconfig, nodeUser } from '../../devcluster/node-identity.js';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { adminKubeConfig, freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { buildImageFromCleanClone, imagePodman, type BuiltImage } from '../support/connector-image.js';
import { azureEnv, useEmulatorForFile } from './aci-emulator-env.js';
import { placeOn, uniqueNodeName } from './connector-process.js';

const RG = `image-${Math.random().toString(36).slice(2, 8)}`;
const aci = useEmulatorForFile(RG, { simulated: { pullMs: 50, startMs: 50 } });
const podman = imagePodman();
const IMAGE = 'localhost/aci-connector:e2e';
let built: BuiltImage | undefined;

function image(): BuiltImage {
  assert.ok(built, 'the image was built (see the first test)');
  return built;
}

// The build is the first test's subject; the other tests use its image.
before(async () => {
  built = await buildImageFromCleanClone(podman, IMAGE);
  console.log(
    `# image ${IMAGE} built from a clean clone at ${built.commit.slice(0, 12)} in ${built.seconds.toFixed(0)} s`,
  );
});

test('the image builds with podman from a clean clone, on the base given as a build argument', async () => {
  const b = image();
  const inspect = JSON.parse(await podman.run(['image', 'inspect', b.image])) as {
    Config: { User?: string; Entrypoint?: string[]; Env?: string[] };
  }[];
  const config = inspect[0]?.Config;
  assert.ok(config, 'podman knows the image');
  // Not root, and numeric so Kubernetes' runAsNonRoot can check it.
  assert.equal(config.User, '65532:65532');
  assert.deepEqual(config.Entrypoint, ['node', 'dist/src/cli/main.js']);
  assert.ok(config.Env?.includes('NODE_ENV=production'));
  // The base came in as a build argument (base.sh's local Debian 13 image), never from a registry.
  assert.match(b.log, /STEP 1\/\d+: FROM localhost\/aci-connector-base\/build:/);
  assert.match(b.log, /FROM localhost\/aci-connector-base\/runtime:/);

  const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const out = await podman.run(['run', '--rm', '--network', 'none', b.image, '--version']);
  assert.equal(out.trim(), version.version, 'the entrypoint is the connector');
  const id = await podman.run(['run', '--rm', '--network', 'none', '--entrypoint', 'id', b.image, '-u']);
  assert.equal(id.trim(), '65532');
  const node = await podman.run(['run', '--rm', '--network', 'none', '--entrypoint', 'node', b.image, '--version']);
  const [major, minor] = node.trim().replace(/^v/, '').split('.').map(Number);
  assert.ok(
    (major ?? 0) > 20 || (major === 20 && (minor ?? 0) >= 19),
    `Node.js ${node.trim()} is at least 20.19 (package.json engines)`,
  );
});

/** Every path in the image's file system, from `podman export` of a created (never started) container. */
async function imageFiles(img: string): Promise<string[]> {
  const id = (await podman.run(['create', img])).trim();
  const dir = mkdtempSync(join(tmpdir(), 'aci-image-export-'));
  try {
    const archive = join(dir, 'fs.tar');
    await podman.run(['export', '-o', archive, id], { timeoutMs: 300_000 });
    const { stdout: listing } = await promisify(execFile)('tar', ['-tf', archive], { maxBuffer: 256 * 1024 * 1024 });
    return listing
      .split('\n')
      .filter(Boolean)
      .map((l) => `/${l.replace(/^\.?\//, '').replace(/\/$/, '')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await podman.exec(['rm', '-f', id]);
  }
}

interface LockEntry {
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
}

test('the image holds the connector and its production dependencies only: no emulator, tests, dev cluster, bench or devDependencies', async () => {
  const files = await imageFiles(image().image);
  const app = files.filter((f) => f.startsWith('/app/'));
  assert.ok(app.includes('/app/dist/src/cli/main.js'), 'the connector is there');
  assert.ok(app.includes('/app/package.json'), 'package.json is there (the connector reads its version from it)');
  assert.ok(app.includes('/app/node_modules/@kubernetes/client-node/package.json'));

  const own = app.filter((f) => f !== '/app/node_modules' && !f.startsWith('/app/node_modules/'));
  const strays = own.filter(
    (f) =>
      !/^\/app\/(package\.json|dist|dist\/src(\/.*)?)$/.test(f) ||
      /^\/app\/dist\/src\/emulator(\/|$)/.test(f) ||
      /\.ts$/.test(f),
  );
  assert.deepEqual(
    strays,
    [],
    'outside node_modules only package.json and the compiled connector (dist/src, no emulator)',
  );
  // Nowhere in the image: our development tools, under any folder.
  const forbidden =
    /\/(aci-connector\/)?(test|devcluster|bench|emulator)(\/|$)|\/src\/emulator\/|\/dist\/(test|devcluster|bench)\//;
  const ours = own.filter((f) => forbidden.test(f));
  assert.deepEqual(ours, [], 'no emulator, test, devcluster or bench files');
  assert.ok(
    own.some((f) => f.startsWith('/app/dist/src/providers/aci/')),
    'the ACI provider is there',
  );

  // node_modules is exactly package-lock.json's production tree.
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const installed = new Set(
    app
      .filter((f) => f.endsWith('/package.json') && f.startsWith('/app/node_modules/'))
      .map((f) => f.slice('/app/'.length, -'/package.json'.length))
      .filter((p) => Object.hasOwn(lock.packages, p)),
  );
  const dev = Object.entries(lock.packages)
    .filter(([p, e]) => p.startsWith('node_modules/') && e.dev === true)
    .map(([p]) => p);
  const prod = Object.entries(lock.packages)
    .filter(([p, e]) => p.startsWith('node_modules/') && !e.dev && !e.optional && !e.devOptional)
    .map(([p]) => p);
  assert.ok(
    dev.length > 50 && prod.length > 50,
    `the lock file lists both trees (${dev.length} dev, ${prod.length} production)`,
  );
  assert.deepEqual(
    dev.filter((p) => installed.has(p)),
    [],
    'no devDependency (or a package only they need) is installed',
  );
  assert.deepEqual(
    prod.filter((p) => !installed.has(p)),
    [],
    'every production package is installed',
  );
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  for (const name of Object.keys(pkg.dependencies))
    assert.ok(installed.has(`node_modules/${name}`), `dependency ${name} is installed`);
  for (const name of Object.keys(pkg.devDependencies)) {
    if (lock.packages[`node_modules/${name}`]?.dev)
      assert.ok(!installed.has(`node_modules/${name}`), `devDependency ${name} is not installed`);
  }
  // No npm or TypeScript toolchain shipped with the connector.
  assert.equal(
    files.some((f) => /\/node_modules\/(typescript|eslint|npm)\/package\.json$/.test(f)),
    false,
    'no typescript, eslint or npm',
  );
  console.log(`# image files: ${files.length}, of them /app: ${app.length}, production packages: ${installed.size}`);
});

/**
 * A folder the container reads at /creds: the node identity's kubeconfig with its certificates
 * inline, the kubelet API's serving pair and client CA, the emulator's CA, and an env file with
 * the Azure settings (the client key is never on a command line). Readable by the image's
 * non-root user, and removed when the test ends.
 */
async function credentials(nodeName: string): Promise<{ dir: string; envFile: string }> {
  const cluster = testCluster();
  const dir = mkdtempSync(join(tmpdir(), 'aci-image-creds-'));
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(await nodeKubeconfig(cluster, nodeName));
  const user = kc.getCurrentUser();
  assert.ok(user?.certFile && user.keyFile, 'the node identity has a client certificate');
  const b64 = (path: string) => readFileSync(path).toString('base64');
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'dev', cluster: { server: cluster.server, 'certificate-authority-data': b64(cluster.caCert) } }],
    users: [
      {
        name: nodeUser(nodeName),
        user: { 'client-certificate-data': b64(user.certFile), 'client-key-data': b64(user.keyFile) },
      },
    ],
    contexts: [{ name: 'dev', context: { cluster: 'dev', user: nodeUser(nodeName) } }],
    'current-context': 'dev',
  };
  const write = (name: string, content: string | Buffer) => writeFileSync(join(dir, name), content, { mode: 0o644 });
  write('kubeconfig', stringify(kubeconfig));
  write('kubelet.crt', readFileSync(cluster.kubeletServingCert));
  write('kubelet.key', readFileSync(cluster.kubeletServingKey));
  write('cluster-ca.crt', readFileSync(cluster.caCert));
  write('emulator-ca.crt', aci.emu.caPem);
  const env = { ...azureEnv(aci.emu, RG), ACI_CA_FILE: '/creds/emulator-ca.crt' };
  const envFile = join(dir, 'azure.env');
  write(
    'azure.env',
    Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
  );
  chmodSync(dir, 0o755);
  return { dir, envFile };
}

test('run with podman against the dev cluster and the emulator, the image registers a Ready node and runs a pod', async (t) => {
  const nodeName = uniqueNodeName('image');
  const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const ns = await freshNamespace(t, 'image-run');
  const creds = await credentials(nodeName);
  const [kubeletPort, metricsPort] = await Promise.all([freePort(), freePort()]);
  const name = `aci-connector-${nodeName}`;
  let passed = false;
  t.after(async () => {
    const logs = await podman.exec(['logs', name]);
    if (!passed) console.log(`# connector container output:\n${logs.stdout}${logs.stderr}`);
    await podman.exec(['rm', '-f', '-t', '5', name]);
    await core.deleteNode({ name: nodeName }).catch(() => undefined);
    rmSync(creds.dir, { recursive: true, force: true });
  });
  // Host network: the API server and the emulator listen on the host's loopback.
  await podman.run([
    'run',
    '-d',
    '--name',
    name,
    '--network',
    'host',
    '-v',
    `${creds.dir}:/creds:ro`,
    '--env-file',
    creds.envFile,
    image().image,
    '--provider',
    'aci',
    '--kubeconfig',
    '/creds/kubeconfig',
    '--node-name',
    nodeName,
    '--node-ip',
    '127.0.0.1',
    '--kubelet-address',
    '127.0.0.1',
    '--kubelet-port',
    String(kubeletPort),
    '--kubelet-tls-cert',
    '/creds/kubelet.crt',
    '--kubelet-tls-key',
    '/creds/kubelet.key',
    '--kubelet-client-ca',
    '/creds/cluster-ca.crt',
    '--metrics-address',
    '127.0.0.1',
    '--metrics-port',
    String(metricsPort),
  ]);

  const running = async () => {
    const state = (await podman.run(['inspect', '--format', '{{.State.Status}}', name])).trim();
    if (state !== 'running') {
      const logs = await podman.exec(['logs', name]);
      throw new Error(`the connector container is ${state}:\n${logs.stdout}${logs.stderr}`);
    }
  };
  const node = await waitFor(
    'the image’s node Ready',
    async () => {
      await running();
      const n = await core.readNode({ name: nodeName }).catch(() => undefined);
      return n?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? n : undefined;
    },
    { timeoutMs: 120_000 },
  );
  assert.equal(node.metadata?.labels?.type, 'virtual-kubelet');
  assert.ok(
    node.spec?.taints?.some((x) => x.key === 'azure.com/aci' && x.effect === 'NoSchedule'),
    'the ACI taint',
  );

  // The README's tolerations example, placed on this node by the real scheduler.
  await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'nginx' },
      spec: { ...placeOn(nodeName), containers: [{ name: 'nginx', image: 'nginx', ports: [{ containerPort: 80 }] }] },
    },
  });
  const pod = await waitFor(
    'the pod Running on the image’s node',
    async () => {
      await running();
      const p = await core.readNamespacedPod({ name: 'nginx', namespace: ns });
      return p.status?.phase === 'Running' ? p : undefined;
    },
    { timeoutMs: 120_000 },
  );
  assert.equal(pod.spec?.nodeName, nodeName);
  const groups = (await aci.inspector.arm.listGroups()).filter(
    (g) => g.tags?.[ACI_TAGS.nodeName] === nodeName && g.tags?.[ACI_TAGS.namespace] === ns,
  );
  assert.equal(groups.length, 1, 'one container group in the emulator for the pod');
  assert.equal(pod.status?.podIP, (await aci.inspector.arm.getGroup(groups[0]!.name!))?.ipAddress?.ip);

  // The container's own operations endpoint, on the host's loopback.
  const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
  assert.equal(ready.status, 200);
  // The process in the container is not root.
  const uid = await podman.run(['exec', name, 'id', '-u']);
  assert.equal(uid.trim(), '65532');
  passed = true;
});
