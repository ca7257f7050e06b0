/**
 * The Helm chart as users run it, with helm built from its pinned Go module: lint,
 * the original chart's `--set env.…` line rendered into a Secret and a Deployment
 * the real API server accepts, the schema refusing misspelt values, the chart's own
 * values, and `helm install`/`helm uninstall` against the dev cluster. No node runs
 * the connector's pod here; the objects are what is checked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../../devcluster/cluster.js';
import { adminKubeConfig, freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { chartDir, helmBinDir, isolatedHelm, runProgram, type RunResult } from '../support/helm.js';

const { helm, dispose } = isolatedHelm();
after(dispose);

// The original chart's documented line, with a distinct value per setting.
const SEED_SET =
  'env.azureClientId=A,env.azureClientKey=B,env.azureTenantId=C,env.azureSubscriptionId=D,env.aciResourceGroup=E,env.aciRegion=F';
const SEED_ENV = {
  AZURE_CLIENT_ID: 'A',
  AZURE_CLIENT_KEY: 'B',
  AZURE_TENANT_ID: 'C',
  AZURE_SUBSCRIPTION_ID: 'D',
  ACI_RESOURCE_GROUP: 'E',
  ACI_REGION: 'F',
};

type Obj = k8s.KubernetesObject;

function ok(r: RunResult, what: string): string {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}): ${r.stderr}`);
  return r.stdout;
}

function docs(yamlText: string): Obj[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

async function render(args: string[], namespace = 'kube-system'): Promise<Obj[]> {
  return docs(
    ok(await helm(['template', 'aci-connector', chartDir, '--namespace', namespace, ...args]), 'helm template'),
  );
}

function only<T extends Obj = Obj>(objs: Obj[], kind: string): T {
  const found = objs.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `one ${kind} (found ${found.length})`);
  return found[0] as T;
}

function secretValues(s: k8s.V1Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return { ...out, ...(s.stringData ?? {}) };
}

/**
 * The connector container's AZURE_* and ACI_* variables as the kubelet would set
 * them: envFrom Secrets first, then env entries (which win), as Kubernetes does.
 */
function connectorEnv(dep: k8s.V1Deployment, secrets: k8s.V1Secret[]): Record<string, string> {
  const c = dep.spec?.template.spec?.containers.find((x) => x.name === 'aci-connector');
  assert.ok(c, 'the Deployment has the aci-connector container');
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const name = from.secretRef?.name;
    assert.ok(name, 'envFrom names a Secret');
    const s = secrets.find((x) => x.metadata?.name === name);
    assert.ok(s, `the Secret ${name} the Deployment reads is rendered`);
    Object.assign(env, secretValues(s));
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return Object.fromEntries(Object.entries(env).filter(([k]) => /^(AZURE|ACI)_/.test(k)));
}

/** kind/namespace/name, to compare sets of objects. */
function ref(o: Obj): string {
  return `${o.kind ?? ''}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function container(dep: k8s.V1Deployment): k8s.V1Container {
  const c = dep.spec?.template.spec?.containers[0];
  assert.ok(c);
  return c;
}

async function kubectl(args: string[], input?: string): Promise<RunResult> {
  const { binDir, kubeconfig } = testCluster();
  return runProgram(
    join(binDir, 'kubectl'),
    ['--kubeconfig', kubeconfig, ...args],
    input === undefined ? {} : { input },
  );
}

test('helm is the pinned version, built once and reused', async () => {
  const pinned = /^HELM_VERSION=(\S+)/m.exec(readFileSync(join(repoRoot, 'devcluster/helm/versions.env'), 'utf8'))?.[1];
  assert.ok(pinned, 'versions.env names HELM_VERSION');
  const version = ok(await helm(['version', '--template', '{{.Version}}']), 'helm version');
  assert.equal(version.trim(), pinned);
  const again = await runProgram('bash', [join(repoRoot, 'devcluster/helm/build.sh')]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /reusing built helm/);
  assert.equal(again.stdout.trim(), await helmBinDir());
});

test('helm lint passes: as shipped, with the original values and with an existing Secret', async () => {
  const plain = ok(await helm(['lint', '--strict', chartDir]), 'helm lint');
  assert.match(plain, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  const seed = ok(await helm(['lint', '--strict', chartDir, '--set', SEED_SET]), 'helm lint');
  assert.match(seed, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  const existing = ok(
    await helm(['lint', '--strict', chartDir, '--set', 'credentials.existingSecret=azure']),
    'helm lint',
  );
  assert.match(existing, /0 chart\(s\) failed/);
});

test("the original chart's --set env.… line renders a Secret and a Deployment carrying exactly those values, and the API server accepts them", async (t) => {
  const ns = await freshNamespace(t, 'helm-template');
  const objs = await render(['--set', SEED_SET], ns);
  const secret = only<k8s.V1Secret>(objs, 'Secret');
  const dep = only<k8s.V1Deployment>(objs, 'Deployment');
  assert.deepEqual(connectorEnv(dep, [secret]), SEED_ENV);
  // The credentials travel in the Secret, not in the Deployment's spec.
  assert.deepEqual(secretValues(secret), {
    AZURE_CLIENT_ID: 'A',
    AZURE_CLIENT_KEY: 'B',
    AZURE_TENANT_ID: 'C',
    AZURE_SUBSCRIPTION_ID: 'D',
    ACI_RESOURCE_GROUP: 'E',
  });
  assert.doesNotMatch(JSON.stringify(dep), /"value":"B"/);

  // The real API server validates and defaults every object (the ClusterRole too) without storing any.
  const manifest = ok(
    await helm(['template', 'aci-connector', chartDir, '--namespace', ns, '--set', SEED_SET]),
    'helm template',
  );
  const applied = await kubectl(['apply', '--dry-run=server', '-o', 'json', '-f', '-'], manifest);
  assert.equal(applied.code, 0, `kubectl apply --dry-run=server: ${applied.stderr}`);
  const items = (JSON.parse(applied.stdout) as { items: Obj[] }).items;
  assert.deepEqual(items.map(ref).sort(), objs.map(ref).sort(), 'the server returns every rendered object');
  assert.ok(
    ['Deployment', 'Secret', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].every((k) =>
      items.some((o) => o.kind === k),
    ),
  );
  const serverSecret = only<k8s.V1Secret>(items, 'Secret');
  const serverDep = only<k8s.V1Deployment>(items, 'Deployment');
  assert.equal(serverDep.metadata?.namespace, ns);
  assert.deepEqual(connectorEnv(serverDep, [serverSecret]), SEED_ENV);
  // Dry run: nothing was stored.
  const stored = await kubectl(['-n', ns, 'get', 'deployment,secret', '-o', 'name']);
  assert.equal(ok(stored, 'kubectl get').includes('aci-connector'), false);
});

test('the structured values give the same Secret and environment as the original names', async () => {
  const structured = await render([
    '--set',
    'credentials.clientId=A,credentials.clientKey=B,credentials.tenantId=C,credentials.subscriptionId=D,credentials.resourceGroup=E,region=F',
  ]);
  const seed = await render(['--set', SEED_SET]);
  assert.deepEqual(only(structured, 'Secret'), only(seed, 'Secret'));
  assert.deepEqual(only(structured, 'Deployment'), only(seed, 'Deployment'));
  // One setting under both names agrees, so it is accepted.
  const both = await render(['--set', `${SEED_SET},credentials.clientId=A`]);
  assert.deepEqual(connectorEnv(only(both, 'Deployment'), [only(both, 'Secret')]), SEED_ENV);
});

test('two replicas by default: leader election on a Lease the ServiceAccount may hold, a PodDisruptionBudget, anti-affinity', async () => {
  const objs = await render(['--set', SEED_SET], 'connectors');
  const dep = only<k8s.V1Deployment>(objs, 'Deployment');
  assert.equal(dep.spec?.replicas, 2);
  assert.deepEqual(dep.spec?.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
  const args = container(dep).args ?? [];
  for (const a of [
    '--leader-elect',
    '--leader-elect-resource-namespace=connectors',
    '--leader-elect-lease-duration=15s',
    '--leader-elect-renew-deadline=10s',
    '--leader-elect-retry-period=2s',
  ])
    assert.ok(args.includes(a), `the Deployment passes ${a}`);
  assert.deepEqual(
    container(dep).env?.find((e) => e.name === 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath,
    'metadata.namespace',
  );
  const term = dep.spec?.template.spec?.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0];
  assert.equal(term?.podAffinityTerm.topologyKey, 'kubernetes.io/hostname');
  assert.deepEqual(term?.podAffinityTerm.labelSelector?.matchLabels, dep.spec?.selector.matchLabels);
  const pdb = only<k8s.V1PodDisruptionBudget>(objs, 'PodDisruptionBudget');
  assert.equal(pdb.spec?.minAvailable, 1);
  assert.deepEqual(pdb.spec?.selector?.matchLabels, dep.spec?.selector.matchLabels);
  const role = only<k8s.V1Role>(objs, 'Role');
  assert.equal(role.metadata?.namespace, 'connectors');
  assert.deepEqual(JSON.parse(JSON.stringify(role.rules)), [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  ]);
  const binding = only<k8s.V1RoleBinding>(objs, 'RoleBinding');
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'aci-connector', namespace: 'connectors' }]);
  assert.equal(binding.roleRef.name, role.metadata?.name);
  // One replica: no budget (it would block every drain); leader election off: no Role, no flag.
  const single = await render(['--set', `${SEED_SET},replicas=1,leaderElection.enabled=false`]);
  assert.equal(single.filter((o) => o.kind === 'PodDisruptionBudget' || o.kind === 'Role').length, 0);
  assert.ok(!(container(only<k8s.V1Deployment>(single, 'Deployment')).args ?? []).includes('--leader-elect'));
});

test('credentials.existingSecret: the chart creates no Secret and the Deployment reads the given one', async () => {
  const objs = await render(['--set', 'credentials.existingSecret=my-azure,env.aciRegion=eastus']);
  assert.equal(objs.filter((o) => o.kind === 'Secret').length, 0);
  const c = container(only<k8s.V1Deployment>(objs, 'Deployment'));
  assert.deepEqual(c.envFrom, [{ secretRef: { name: 'my-azure' } }]);
  assert.equal(c.env?.find((e) => e.name === 'ACI_REGION')?.value, 'eastus');
});

async function refused(args: string[]): Promise<string> {
  const r = await helm(['template', 'aci-connector', chartDir, ...args]);
  assert.notEqual(r.code, 0, `helm template ${args.join(' ')} should fail`);
  assert.equal(r.stdout.includes('kind: Deployment'), false, 'nothing is rendered');
  return r.stderr;
}

test('a misspelt value is a schema error, at every level', async () => {
  const wrongCase = await refused(['--set', `${SEED_SET},env.azureClientID=x`]);
  assert.match(wrongCase, /values don't meet the specifications of the schema/);
  assert.match(wrongCase, /azureClientID/);
  const topLevel = await refused(['--set', `${SEED_SET},replica=2`]);
  assert.match(topLevel, /schema/);
  assert.match(topLevel, /'replica'/);
  const nested = await refused(['--set', `${SEED_SET},image.pullpolicy=Always`]);
  assert.match(nested, /pullpolicy/);
  const badType = await refused(['--set', `${SEED_SET},replicas=two`]);
  assert.match(badType, /replicas/);
});

test('contradictory or missing settings fail with a message naming them', async () => {
  assert.match(await refused([]), /needs a subscription and a resource group: set credentials\.existingSecret/);
  assert.match(
    await refused(['--set', `${SEED_SET},credentials.clientId=Z`]),
    /credentials\.clientId and env\.azureClientId name the same setting/,
  );
  assert.match(
    await refused(['--set', `${SEED_SET},region=westus`]),
    /region and env\.aciRegion name the same setting/,
  );
  const mixed = await refused(['--set', 'credentials.existingSecret=s,env.azureClientKey=B']);
  assert.match(mixed, /credentials\.existingSecret is set.*AZURE_CLIENT_KEY/);
  assert.match(
    await refused(['--set', 'env.azureClientKey=B,env.azureSubscriptionId=D,env.aciResourceGroup=E']),
    /only usable with the client id and tenant id/,
  );
  assert.match(
    await refused(['--set', `${SEED_SET},replicas=2,leaderElection.enabled=false`]),
    /replicas above 1 need leaderElection\.enabled/,
  );
  // A secret value is never echoed in an error.
  assert.doesNotMatch(mixed, /\bB\b/);
});

test('replicas, resources, node name, taints, extra args, image and placement are values', async (t) => {
  const ns = await freshNamespace(t, 'helm-values');
  const args = [
    '--set',
    'credentials.existingSecret=azure',
    '--set',
    'replicas=0,nodeName=virtual-aci-1,taints={example.com/a=b:NoExecute,example.com/c:NoSchedule}',
    '--set',
    'image.repository=registry.example/aci-connector,image.tag=canary,image.pullPolicy=Always',
    '--set',
    'resources.requests.cpu=250m,resources.limits.memory=1Gi',
    '--set',
    'extraArgs={--kubelet-address=0.0.0.0,--log-level=debug}',
    '--set',
    'extraEnv[0].name=ACI_ARM_ENDPOINT,extraEnv[0].value=https://arm.example',
    '--set',
    'nodeSelector.pool=system,tolerations[0].key=CriticalAddonsOnly,tolerations[0].operator=Exists',
  ];
  const dep = only<k8s.V1Deployment>(await render(args, ns), 'Deployment');
  const c = container(dep);
  assert.equal(dep.spec?.replicas, 0);
  assert.equal(c.image, 'registry.example/aci-connector:canary');
  assert.equal(c.imagePullPolicy, 'Always');
  assert.deepEqual(c.resources, { requests: { cpu: '250m', memory: '128Mi' }, limits: { memory: '1Gi' } });
  assert.ok(c.args?.includes('--node-name=virtual-aci-1'));
  assert.deepEqual(
    c.args?.filter((a) => a.startsWith('--taint=')),
    ['--taint=example.com/a=b:NoExecute', '--taint=example.com/c:NoSchedule'],
  );
  assert.deepEqual(c.args?.slice(-2), ['--kubelet-address=0.0.0.0', '--log-level=debug']);
  assert.deepEqual(
    c.env?.find((e) => e.name === 'ACI_ARM_ENDPOINT'),
    { name: 'ACI_ARM_ENDPOINT', value: 'https://arm.example' },
  );
  assert.deepEqual(dep.spec?.template.spec?.nodeSelector, { pool: 'system' });
  assert.deepEqual(dep.spec?.template.spec?.tolerations, [{ key: 'CriticalAddonsOnly', operator: 'Exists' }]);

  const noTaints = container(
    only<k8s.V1Deployment>(await render(['--set', 'credentials.existingSecret=azure,taints=null']), 'Deployment'),
  );
  assert.deepEqual(
    noTaints.args?.filter((a) => a.startsWith('--taint')),
    ['--taint=none'],
  );

  const manifest = ok(await helm(['template', 'aci-connector', chartDir, '--namespace', ns, ...args]), 'helm template');
  const applied = await kubectl(['apply', '--dry-run=server', '-f', '-'], manifest);
  assert.equal(applied.code, 0, `kubectl apply --dry-run=server: ${applied.stderr}`);
});

test('workload identity: the ServiceAccount names the identity, the pod asks for the token, no client secret', async () => {
  const objs = await render([
    '--set',
    'workloadIdentity.enabled=true,workloadIdentity.clientId=11111111-2222-3333-4444-555555555555,env.azureSubscriptionId=D,env.aciResourceGroup=E',
  ]);
  const sa = only<k8s.V1ServiceAccount>(objs, 'ServiceAccount');
  assert.equal(sa.metadata?.annotations?.['azure.workload.identity/client-id'], '11111111-2222-3333-4444-555555555555');
  const dep = only<k8s.V1Deployment>(objs, 'Deployment');
  assert.equal(dep.spec?.template.metadata?.labels?.['azure.workload.identity/use'], 'true');
  assert.deepEqual(secretValues(only<k8s.V1Secret>(objs, 'Secret')), {
    AZURE_SUBSCRIPTION_ID: 'D',
    ACI_RESOURCE_GROUP: 'E',
  });
  assert.match(await refused(['--set', `workloadIdentity.enabled=true,${SEED_SET}`]), /workloadIdentity\.enabled/);
});

async function gone(what: string, read: () => Promise<unknown>): Promise<void> {
  await waitFor(`${what} to be deleted`, () =>
    read().then(
      () => false,
      (err: unknown) => err instanceof k8s.ApiException && err.code === 404,
    ),
  );
}

test('helm install creates the objects in the dev cluster, and helm uninstall removes them', async (t) => {
  const ns = await freshNamespace(t, 'helm-install');
  const release = `aci-${ns}`;
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const kubeconfig = testCluster().kubeconfig;
  t.after(() => helm(['uninstall', release, '--namespace', ns, '--kubeconfig', kubeconfig]));

  // A misspelt value installs nothing.
  const bad = await helm([
    'install',
    release,
    chartDir,
    '--namespace',
    ns,
    '--kubeconfig',
    kubeconfig,
    '--set',
    `${SEED_SET},env.azureClientID=x`,
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /azureClientID/);
  assert.equal((await apps.listNamespacedDeployment({ namespace: ns })).items.length, 0);
  assert.equal(
    ok(await helm(['list', '--namespace', ns, '--kubeconfig', kubeconfig, '--short']), 'helm list').trim(),
    '',
  );

  // No node carries this label, so the connector's pod stays Pending wherever this suite runs.
  const values = ['--set', SEED_SET, '--set', `nodeSelector.helm-test=${ns}`];
  ok(
    await helm(['install', release, chartDir, '--namespace', ns, '--kubeconfig', kubeconfig, ...values]),
    'helm install',
  );
  const status = JSON.parse(
    ok(await helm(['status', release, '--namespace', ns, '--kubeconfig', kubeconfig, '-o', 'json']), 'helm status'),
  ) as { info: { status: string } };
  assert.equal(status.info.status, 'deployed');

  // Every object the chart renders with these values is in the cluster (RBAC objects included, whatever their number).
  const rendered = docs(ok(await helm(['template', release, chartDir, '--namespace', ns, ...values]), 'helm template'));
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const header = (o: Obj) => ({
    apiVersion: o.apiVersion ?? '',
    kind: o.kind ?? '',
    metadata: { name: o.metadata?.name ?? '', ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}) },
  });
  assert.ok(rendered.length >= 5, `the chart renders its objects (${rendered.map(ref).join(', ')})`);
  for (const o of rendered) {
    const live = await objects.read(header(o));
    assert.equal(
      live.metadata?.annotations?.['meta.helm.sh/release-name'],
      release,
      `${ref(o)} belongs to the release`,
    );
    if (o.kind === 'ClusterRole')
      assert.deepEqual(
        JSON.parse(JSON.stringify((live as k8s.V1ClusterRole).rules)),
        (o as k8s.V1ClusterRole).rules,
        `${ref(o)} has the chart's rules`,
      );
  }

  const secret = await core.readNamespacedSecret({ name: `${release}-credentials`, namespace: ns });
  const dep = await apps.readNamespacedDeployment({ name: release, namespace: ns });
  assert.deepEqual(connectorEnv(dep, [secret]), SEED_ENV);
  assert.equal(dep.spec?.replicas, 2, 'two replicas by default (leader election)');
  assert.ok(container(dep).args?.includes('--leader-elect'));
  assert.equal(dep.spec?.template.spec?.serviceAccountName, release);
  assert.deepEqual(dep.spec?.template.spec?.nodeSelector, { 'helm-test': ns });
  await core.readNamespacedServiceAccount({ name: release, namespace: ns });
  const binding = await rbac.readClusterRoleBinding({ name: release });
  assert.deepEqual(
    binding.subjects?.map((x) => ({ kind: x.kind, name: x.name, namespace: x.namespace })),
    [{ kind: 'ServiceAccount', name: release, namespace: ns }],
  );
  assert.equal(binding.roleRef.name, release);
  // The controller-manager acts on it: a ReplicaSet and a pod waiting for a node.
  await waitFor(
    'the two pods of the release',
    async () => (await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${release}` })).items.length === 2,
  );

  ok(await helm(['uninstall', release, '--namespace', ns, '--kubeconfig', kubeconfig, '--wait']), 'helm uninstall');
  for (const o of rendered) await gone(ref(o), () => objects.read(header(o)));
  assert.equal(
    ok(await helm(['list', '--namespace', ns, '--kubeconfig', kubeconfig, '--all', '--short']), 'helm list').trim(),
    '',
  );
});
