import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PodRejectedError, TransientProviderError } from '../../src/core/provider.js';
import { PLACEHOLDER_PORT } from '../../src/providers/aci/mapping/pod-to-group.js';
import { ANNOTATION } from '../../src/providers/aci/mapping/annotations.js';
import { TAG } from '../../src/providers/aci/naming.js';
import { fakeContext, mapPod, mappingOptions as opts, pod } from './aci-fixtures.js';

async function rejection(p: ReturnType<typeof pod>, ctx = fakeContext()): Promise<PodRejectedError> {
  try {
    await mapPod(p, ctx, opts);
  } catch (e) {
    assert.ok(e instanceof PodRejectedError, `expected PodRejectedError, got ${String(e)}`);
    return e;
  }
  assert.fail('pod was not rejected');
}

test('a minimal pod becomes a Linux group with defaults, tags and location', async () => {
  const { name, group } = await mapPod(pod(), fakeContext(), opts);
  assert.match(name, /^default-web-[0-9a-f]{10}$/);
  assert.equal(group.location, 'westus');
  assert.equal(group.osType, 'Linux');
  assert.equal(group.restartPolicy, 'Always');
  assert.equal(group.tags?.[TAG.podUid], '1111-2222');
  assert.equal(group.tags?.[TAG.clusterId], 'cluster-a');
  assert.equal(group.tags?.[TAG.nodeName], 'aci-connector');
  assert.equal(group.tags?.[TAG.namespace], 'default');
  assert.equal(group.tags?.[TAG.podName], 'web');
  assert.deepEqual(group.containers[0]?.resources, { requests: { cpu: 1, memoryInGB: 1.5 } });
  assert.equal(group.containers[0]?.command, undefined);
  assert.equal(group.ipAddress, undefined, 'no ports → no IP');
});

test('command and args combine as a kubelet does, with $(VAR) expansion', async () => {
  const env = { app: [{ name: 'GREETING', value: 'hi', sensitive: false }] };
  const p = pod({
    containers: [
      { name: 'app', image: 'busybox', command: ['sh', '-c'], args: ['echo $(GREETING) $$(HOME) $(MISSING)'] },
    ],
  });
  const { group } = await mapPod(p, fakeContext({ env }), opts);
  assert.deepEqual(group.containers[0]?.command, ['sh', '-c', 'echo hi $(HOME) $(MISSING)']);
});

test('command alone replaces the entrypoint', async () => {
  const p = pod({ containers: [{ name: 'app', image: 'busybox', command: ['sleep', '10'] }] });
  const { group } = await mapPod(p, fakeContext(), opts);
  assert.deepEqual(group.containers[0]?.command, ['sleep', '10']);
});

test('args without command are rejected unless the image entrypoint is given by annotation', async () => {
  const p = pod({ containers: [{ name: 'app', image: 'nginx', args: ['-g', 'daemon off;'] }] });
  const err = await rejection(p);
  assert.equal(err.reason, 'ArgsWithoutCommand');
  assert.equal(err.field, 'spec.containers[0].args');
  assert.match(err.message, /image-entrypoints/);

  p.metadata!.annotations = {
    [ANNOTATION.imageEntrypoints]: JSON.stringify({ app: ['/docker-entrypoint.sh', 'nginx'] }),
  };
  const { group } = await mapPod(p, fakeContext(), opts);
  assert.deepEqual(group.containers[0]?.command, ['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;']);
});

test('secret env becomes secureValue, plain env stays value, later duplicates win', async () => {
  const env = {
    app: [
      { name: 'A', value: 'one', sensitive: false },
      { name: 'PASSWORD', value: 's3cret', sensitive: true },
      { name: 'A', value: 'two', sensitive: false },
    ],
  };
  const { group } = await mapPod(pod(), fakeContext({ env }), opts);
  assert.deepEqual(group.containers[0]?.environmentVariables, [
    { name: 'PASSWORD', secureValue: 's3cret' },
    { name: 'A', value: 'two' },
  ]);
  const json = JSON.stringify({
    ...group,
    containers: group.containers.map((c) => ({
      ...c,
      environmentVariables: c.environmentVariables?.filter((e) => !e.secureValue),
    })),
  });
  assert.ok(!json.includes('s3cret'), 'the secret appears only as a secureValue');
});

test('a secret value referenced from command is refused rather than written in plain text', async () => {
  const env = { app: [{ name: 'TOKEN', value: 'abc', sensitive: true }] };
  const p = pod({ containers: [{ name: 'app', image: 'busybox', command: ['run', '--token=$(TOKEN)'] }] });
  const err = await rejection(p, fakeContext({ env }));
  assert.equal(err.reason, 'SecretInCommand');
  assert.equal(err.field, 'spec.containers[0].command[1]');
  assert.ok(!err.message.includes('abc'));
});

test('unresolved valueFrom without the core’s env is a transient error', async () => {
  const p = pod({
    containers: [
      { name: 'app', image: 'x', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] },
    ],
  });
  await assert.rejects(mapPod(p, fakeContext(), opts), TransientProviderError);
});

test('resources: requests, limit fallback, rounding up, group total and limit clamping', async () => {
  const p = pod({
    containers: [
      {
        name: 'a',
        image: 'x',
        resources: { requests: { cpu: '250m', memory: '300Mi' }, limits: { cpu: '8', memory: '1Gi' } },
      },
      { name: 'b', image: 'x', resources: { limits: { cpu: '333m', memory: '100M' } } },
      { name: 'c', image: 'x' },
    ],
  });
  const { group } = await mapPod(p, fakeContext(), opts);
  const [a, b, c] = group.containers;
  // 300Mi = 314572800 B → 0.4 GB (rounded up); 333m → 0.34 cores.
  assert.deepEqual(a?.resources.requests, { cpu: 0.25, memoryInGB: 0.4 });
  assert.deepEqual(b?.resources.requests, { cpu: 0.34, memoryInGB: 0.1 });
  assert.deepEqual(c?.resources.requests, { cpu: 1, memoryInGB: 1.5 });
  // Total request is 1.59 cores / 2.0 GB: a's 8-core limit is clamped to it; 1Gi → 1.1 GB fits.
  assert.deepEqual(a?.resources.limits, { cpu: 1.59, memoryInGB: 1.1 });
  assert.equal(b?.resources.limits, undefined, 'limit equal to request adds nothing');
});

test('a pod larger than an ACI group allows is rejected', async () => {
  const p = pod({ containers: [{ name: 'a', image: 'x', resources: { requests: { cpu: '5' } } }] });
  const err = await rejection(p);
  assert.equal(err.reason, 'ResourcesExceedAciLimits');
  const q = pod({ containers: [{ name: 'a', image: 'x', resources: { requests: { memory: '20Gi' } } }] });
  assert.equal((await rejection(q)).reason, 'ResourcesExceedAciLimits');
  const bad = pod({ containers: [{ name: 'a', image: 'x', resources: { requests: { cpu: 'lots' } } }] });
  assert.equal((await rejection(bad)).field, 'spec.containers[0].resources.requests.cpu');
});

test('ports give a public IP by default; annotations choose Private, None and a DNS label', async () => {
  const ports = [
    { name: 'http', containerPort: 80 },
    { containerPort: 53, protocol: 'UDP' },
  ];
  const p = pod({
    containers: [
      { name: 'app', image: 'nginx', ports },
      { name: 'side', image: 'x', ports: [{ containerPort: 80 }] },
    ],
  });
  let { group } = await mapPod(p, fakeContext(), opts);
  assert.deepEqual(group.containers[0]?.ports, [
    { port: 80, protocol: 'TCP' },
    { port: 53, protocol: 'UDP' },
  ]);
  assert.deepEqual(group.ipAddress, {
    type: 'Public',
    ports: [
      { port: 80, protocol: 'TCP' },
      { port: 53, protocol: 'UDP' },
    ],
  });

  p.metadata!.annotations = { [ANNOTATION.dnsNameLabel]: 'my-web' };
  ({ group } = await mapPod(p, fakeContext(), opts));
  assert.equal(group.ipAddress?.dnsNameLabel, 'my-web');

  p.metadata!.annotations = { [ANNOTATION.ipAddressType]: 'None' };
  ({ group } = await mapPod(p, fakeContext(), opts));
  assert.equal(group.ipAddress, undefined);

  p.metadata!.annotations = { [ANNOTATION.ipAddressType]: 'Private' };
  assert.match((await rejection(p)).message, /subnet/);
  const subnet = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/aci';
  p.metadata!.annotations = { [ANNOTATION.ipAddressType]: 'private', [ANNOTATION.subnetIds]: subnet };
  ({ group } = await mapPod(p, fakeContext(), opts));
  assert.equal(group.ipAddress?.type, 'Private');
  assert.deepEqual(group.subnetIds, [{ id: subnet }]);

  p.metadata!.annotations = { [ANNOTATION.ipAddressType]: 'Elastic' };
  const err = await rejection(p);
  assert.equal(err.reason, 'InvalidAnnotation');
  assert.equal(err.field, `metadata.annotations['${ANNOTATION.ipAddressType}']`);
});

test('in a VNet every group gets a private IP: a pod without ports declares a placeholder port; outside one it gets none, with the reason', async () => {
  const subnet = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/aci';
  const vnet = { ...opts, defaultSubnetIds: [subnet] };
  const bare = pod({
    containers: [
      { name: 'app', image: 'nginx' },
      { name: 'side', image: 'x' },
    ],
  });
  const inVnet = await mapPod(bare, fakeContext(), vnet);
  assert.deepEqual(inVnet.group.ipAddress, { type: 'Private', ports: [PLACEHOLDER_PORT] });
  assert.deepEqual(inVnet.group.containers[0]?.ports, [PLACEHOLDER_PORT], "ACI's IP ports must be container ports");
  assert.equal(inVnet.group.containers[1]?.ports, undefined);
  assert.deepEqual(inVnet.group.subnetIds, [{ id: subnet }]);
  assert.equal(inVnet.noIpReason, undefined);

  // Declared ports are used as they are, and stay private in a VNet.
  const web = pod({ containers: [{ name: 'app', image: 'nginx', ports: [{ containerPort: 80 }] }] });
  assert.deepEqual((await mapPod(web, fakeContext(), vnet)).group.ipAddress, {
    type: 'Private',
    ports: [{ port: 80, protocol: 'TCP' }],
  });

  // Outside a VNet: no public port is ever invented; the reason comes back for an Event.
  const outside = await mapPod(bare, fakeContext(), opts);
  assert.equal(outside.group.ipAddress, undefined);
  assert.match(outside.noIpReason ?? '', /no containerPort.*ACI_SUBNET_IDS/);
  // Asked for None: no IP and nothing to explain.
  const none = pod({ containers: [{ name: 'app', image: 'nginx' }] });
  none.metadata!.annotations = { [ANNOTATION.ipAddressType]: 'None' };
  const asked = await mapPod(none, fakeContext(), vnet);
  assert.equal(asked.group.ipAddress, undefined);
  assert.equal(asked.noIpReason, undefined);
  // Public without ports is refused rather than opening a port to the internet.
  none.metadata!.annotations = { [ANNOTATION.ipAddressType]: 'Public' };
  assert.match((await rejection(none)).message, /at least one containerPort/);
});

test('priority and sku annotations', async () => {
  const p = pod({}, { annotations: { [ANNOTATION.priority]: 'Spot', [ANNOTATION.sku]: 'Dedicated' } });
  const { group } = await mapPod(p, fakeContext(), opts);
  assert.equal(group.priority, 'Spot');
  assert.equal(group.sku, 'Dedicated');
  const q = pod({}, { annotations: { [ANNOTATION.priority]: 'Cheap' } });
  assert.equal((await rejection(q)).reason, 'InvalidAnnotation');
});

test('probes: exec and httpGet with named ports go to ACI; tcpSocket, gRPC and gated probes stay with the connector', async () => {
  const p = pod({
    containers: [
      {
        name: 'app',
        image: 'nginx',
        ports: [{ name: 'web', containerPort: 8080 }],
        livenessProbe: { exec: { command: ['cat', '/tmp/ok'] }, periodSeconds: 5, failureThreshold: 2 },
        readinessProbe: {
          httpGet: { path: '/healthz', port: 'web', httpHeaders: [{ name: 'X', value: 'y' }] },
          initialDelaySeconds: 3,
        },
      },
    ],
  });
  const { group } = await mapPod(p, fakeContext(), opts);
  assert.deepEqual(group.containers[0]?.livenessProbe, {
    exec: { command: ['cat', '/tmp/ok'] },
    periodSeconds: 5,
    failureThreshold: 2,
  });
  assert.deepEqual(group.containers[0]?.readinessProbe, {
    httpGet: { port: 8080, path: '/healthz', scheme: 'http', httpHeaders: [{ name: 'X', value: 'y' }] },
    initialDelaySeconds: 3,
  });

  const unnamed = pod({ containers: [{ name: 'app', image: 'x', livenessProbe: { httpGet: { port: 'nope' } } }] });
  assert.equal((await rejection(unnamed)).field, 'spec.containers[0].livenessProbe.httpGet.port');
  const tcp = pod({
    containers: [
      { name: 'app', image: 'x', readinessProbe: { tcpSocket: { port: 80 } }, livenessProbe: { grpc: { port: 9090 } } },
    ],
  });
  const tg = (await mapPod(tcp, fakeContext(), opts)).group.containers[0];
  assert.equal(tg?.readinessProbe, undefined, 'the connector runs tcpSocket probes');
  assert.equal(tg?.livenessProbe, undefined, 'the connector runs gRPC probes');
  // A startupProbe gates the others, which ACI cannot do: the connector runs all three.
  const startup = pod({
    containers: [
      {
        name: 'app',
        image: 'x',
        startupProbe: { exec: { command: ['true'] } },
        livenessProbe: { httpGet: { port: 80, host: 'h' } },
        readinessProbe: { exec: { command: ['true'] } },
      },
    ],
  });
  const sg = (await mapPod(startup, fakeContext(), opts)).group.containers[0];
  assert.equal(sg?.livenessProbe, undefined);
  assert.equal(sg?.readinessProbe, undefined);
  // httpGet.host is refused only where ACI runs the probe.
  const host = pod({ containers: [{ name: 'app', image: 'x', livenessProbe: { httpGet: { port: 80, host: 'h' } } }] });
  assert.equal((await rejection(host)).field, 'spec.containers[0].livenessProbe.httpGet.host');
});

test('a native sidecar (init container with restartPolicy Always) becomes a regular container of the group', async () => {
  const p = pod({
    initContainers: [
      { name: 'setup', image: 'busybox', command: ['true'] },
      {
        name: 'proxy',
        image: 'envoy',
        restartPolicy: 'Always',
        ports: [{ containerPort: 15001 }],
        readinessProbe: { tcpSocket: { port: 15001 } },
      },
    ],
    containers: [{ name: 'app', image: 'nginx', resources: { requests: { cpu: '500m', memory: '512Mi' } } }],
  });
  const { group } = await mapPod(p, fakeContext(), opts);
  assert.deepEqual(
    group.initContainers?.map((c) => c.name),
    ['setup'],
  );
  assert.deepEqual(
    group.containers.map((c) => c.name),
    ['app', 'proxy'],
  );
  const proxy = group.containers[1];
  assert.ok(
    proxy?.resources.requests.cpu && proxy.resources.requests.memoryInGB,
    'the sidecar gets resources like any container',
  );
  assert.deepEqual(proxy.ports, [{ port: 15001, protocol: 'TCP' }]);
  assert.equal(proxy.readinessProbe, undefined, 'its tcpSocket probe is the connector’s');
  assert.deepEqual(group.ipAddress?.ports, [{ port: 15001, protocol: 'TCP' }]);
  const bad = pod({ initContainers: [{ name: 'i', image: 'x', restartPolicy: 'OnFailure' }] });
  assert.equal((await rejection(bad)).field, 'spec.initContainers[0].restartPolicy');
});

test('unsupported fields fail the pod naming the field', async () => {
  const cases: [ReturnType<typeof pod>, string][] = [
    [pod({ hostNetwork: true }), 'spec.hostNetwork'],
    [pod({ hostPID: true }), 'spec.hostPID'],
    [pod({ hostIPC: true }), 'spec.hostIPC'],
    [pod({ shareProcessNamespace: true }), 'spec.shareProcessNamespace'],
    [pod({ hostAliases: [{ ip: '1.2.3.4', hostnames: ['a'] }] }), 'spec.hostAliases'],
    [
      pod({ containers: [{ name: 'a', image: 'x', securityContext: { privileged: true } }] }),
      'spec.containers[0].securityContext.privileged',
    ],
    [
      pod({
        containers: [
          {
            name: 'a',
            image: 'x',
            securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'p.json' } },
          },
        ],
      }),
      'spec.containers[0].securityContext.seccompProfile.type',
    ],
    [
      pod({ securityContext: { sysctls: [{ name: 'net.core.somaxconn', value: '1024' }] } }),
      'spec.securityContext.sysctls',
    ],
    [
      pod({ containers: [{ name: 'a', image: 'x', securityContext: { procMount: 'Unmasked' } }] }),
      'spec.containers[0].securityContext.procMount',
    ],
    [pod({ hostUsers: false }), 'spec.hostUsers'],
    [pod({ containers: [{ name: 'a', image: 'x', workingDir: '/app' }] }), 'spec.containers[0].workingDir'],
    [
      pod({ containers: [{ name: 'a', image: 'x', lifecycle: { preStop: { tcpSocket: { port: 80 } } } }] }),
      'spec.containers[0].lifecycle.preStop.tcpSocket',
    ],
    [
      pod({ containers: [{ name: 'a', image: 'x', volumeDevices: [{ name: 'b', devicePath: '/dev/b' }] }] }),
      'spec.containers[0].volumeDevices',
    ],
    [
      pod({ containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 80, hostIP: '1.2.3.4' }] }] }),
      'spec.containers[0].ports[0].hostIP',
    ],
    [
      pod({ containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 80, hostPort: 8080 }] }] }),
      'spec.containers[0].ports[0].hostPort',
    ],
    [
      pod({ containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 80, protocol: 'SCTP' }] }] }),
      'spec.containers[0].ports[0].protocol',
    ],
    [
      pod({
        containers: [{ name: 'a', image: 'x', volumeMounts: [{ name: 'v', mountPath: '/v', subPath: 'x' }] }],
        volumes: [{ name: 'v', emptyDir: {} }],
      }),
      'spec.containers[0].volumeMounts[0].subPath',
    ],
    [
      pod({ containers: [{ name: 'a', image: 'x', resources: { limits: { 'nvidia.com/gpu': '1' } } }] }),
      "spec.containers[0].resources['nvidia.com/gpu']",
    ],
  ];
  for (const [p, field] of cases) {
    const err = await rejection(p);
    assert.equal(err.field, field);
    assert.equal(err.reason, 'UnsupportedField', field);
    assert.ok(err.message.includes(field), `message names ${field}: ${err.message}`);
  }
});

test('restartPolicy, init containers and volumeMounts', async () => {
  const p = pod({
    restartPolicy: 'OnFailure',
    initContainers: [
      {
        name: 'init',
        image: 'busybox',
        command: ['sh', '-c', 'echo hi > /work/x'],
        volumeMounts: [{ name: 'work', mountPath: '/work' }],
      },
    ],
    containers: [
      { name: 'app', image: 'busybox', volumeMounts: [{ name: 'work', mountPath: '/work', readOnly: true }] },
    ],
    volumes: [{ name: 'work', emptyDir: { medium: 'Memory' } }],
  });
  const { group } = await mapPod(p, fakeContext(), opts);
  assert.equal(group.restartPolicy, 'OnFailure');
  assert.deepEqual(group.initContainers, [
    {
      name: 'init',
      image: 'busybox',
      command: ['sh', '-c', 'echo hi > /work/x'],
      volumeMounts: [{ name: 'work', mountPath: '/work', readOnly: false }],
    },
  ]);
  assert.deepEqual(group.containers[0]?.volumeMounts, [{ name: 'work', mountPath: '/work', readOnly: true }]);
  assert.deepEqual(group.volumes, [{ name: 'work', emptyDir: {} }]);
  const dangling = pod({ containers: [{ name: 'a', image: 'x', volumeMounts: [{ name: 'nope', mountPath: '/n' }] }] });
  assert.equal((await rejection(dangling)).reason, 'InvalidPod');
});

test('imagePullSecrets: .dockerconfigjson and .dockercfg become registry credentials; a missing one is an event', async () => {
  const json = JSON.stringify({
    auths: { 'https://myreg.azurecr.io/v1/': { auth: Buffer.from('user1:pw1').toString('base64') } },
  });
  const cfg = JSON.stringify({ 'other.io': { username: 'user2', password: 'pw2' } });
  const ctx = fakeContext({ secrets: { j: { '.dockerconfigjson': json }, c: { '.dockercfg': cfg } } });
  const p = pod({ imagePullSecrets: [{ name: 'j' }, { name: 'c' }, { name: 'gone' }] });
  const { group } = await mapPod(p, ctx, opts);
  assert.deepEqual(group.imageRegistryCredentials, [
    { server: 'myreg.azurecr.io', username: 'user1', password: 'pw1' },
    { server: 'other.io', username: 'user2', password: 'pw2' },
  ]);
  assert.equal(ctx.events.length, 1);
  assert.equal(ctx.events[0]?.reason, 'FailedToRetrieveImagePullSecret');
});

test('dnsConfig maps where ACI can express it', async () => {
  const p = pod({
    dnsPolicy: 'None',
    dnsConfig: {
      nameservers: ['1.1.1.1'],
      searches: ['a.local', 'b.local'],
      options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }],
    },
  });
  const { group } = await mapPod(p, fakeContext(), opts);
  assert.deepEqual(group.dnsConfig, {
    nameServers: ['1.1.1.1'],
    searchDomains: 'a.local b.local',
    options: 'ndots:2 edns0',
  });
  const noNs = pod({ dnsConfig: { searches: ['a.local'] } });
  assert.equal((await rejection(noNs)).field, 'spec.dnsConfig.nameservers');
  const { group: plain } = await mapPod(pod({ dnsPolicy: 'ClusterFirst' }), fakeContext(), opts);
  assert.equal(plain.dnsConfig, undefined);
});

test('nodeSelector kubernetes.io/os: windows gives a Windows group', async () => {
  const { group } = await mapPod(pod({ nodeSelector: { 'kubernetes.io/os': 'windows' } }), fakeContext(), opts);
  assert.equal(group.osType, 'Windows');
  const err = await rejection(
    pod({ nodeSelector: { 'kubernetes.io/os': 'windows' }, initContainers: [{ name: 'i', image: 'x' }] }),
  );
  assert.equal(err.field, 'spec.initContainers');
});
