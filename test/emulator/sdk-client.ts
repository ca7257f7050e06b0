/**
 * Runs in a child process (see sdk.test.ts) so that NODE_EXTRA_CA_CERTS, read once at
 * start-up, can make Node trust the emulator's CA: the official SDK and @azure/identity
 * are then used exactly as an application would use them, with no custom transport.
 * Prints one JSON line of findings; any failed assertion exits non-zero.
 */
import assert from 'node:assert/strict';
import { ContainerInstanceManagementClient, type ContainerGroup } from '@azure/arm-containerinstance';
import { ClientSecretCredential } from '@azure/identity';
import WebSocket from 'ws';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const endpoint = env('EMULATOR_ENDPOINT');
const credential = new ClientSecretCredential(
  env('AZURE_TENANT_ID'),
  env('AZURE_CLIENT_ID'),
  env('AZURE_CLIENT_SECRET'),
  {
    authorityHost: env('AZURE_AUTHORITY_HOST'),
    // Instance discovery would ask login.microsoftonline.com about the authority; an emulator is a private cloud.
    disableInstanceDiscovery: true,
  },
);
const client = new ContainerInstanceManagementClient(credential, env('AZURE_SUBSCRIPTION_ID'), { endpoint });
const rg = 'sdk-rg';
const poll = { updateIntervalInMs: 100 };

const group: ContainerGroup = {
  location: 'westeurope',
  osType: 'Linux',
  restartPolicy: 'Always',
  containers: [
    {
      name: 'app',
      image: 'busybox',
      command: ['sh', '-c', 'echo sdk says hello'],
      resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } },
      ports: [{ port: 8080 }],
      environmentVariables: [{ name: 'TOKEN', secureValue: 'hidden' }],
    },
  ],
  ipAddress: { type: 'Public', ports: [{ port: 8080, protocol: 'TCP' }] },
};

const findings: Record<string, unknown> = {};

const created = await client.containerGroups.beginCreateOrUpdateAndWait(rg, 'sdk-group', group, poll);
assert.equal(created.provisioningState, 'Succeeded');
findings.created = created.provisioningState;

const got = await client.containerGroups.get(rg, 'sdk-group');
assert.equal(got.instanceView?.state, 'Running');
assert.equal(got.containers[0]?.instanceView?.currentState?.state, 'Running');
assert.ok(got.containers[0]?.instanceView?.currentState?.startTime instanceof Date);
assert.equal(got.containers[0]?.environmentVariables?.[0]?.secureValue, undefined);
findings.ip = got.ipAddress?.ip;

const listed: string[] = [];
for await (const g of client.containerGroups.listByResourceGroup(rg)) listed.push(g.name ?? '');
const all: string[] = [];
for await (const g of client.containerGroups.list()) all.push(g.name ?? '');
assert.deepEqual(listed, ['sdk-group']);
assert.ok(all.includes('sdk-group'));
findings.listed = all.length;

// The simulated container logs its greeting when it starts.
let logs = '';
for (let i = 0; i < 100 && !logs.includes('sdk says hello'); i++) {
  logs = (await client.containers.listLogs(rg, 'sdk-group', 'app', { tail: 5, timestamps: false })).content ?? '';
  if (!logs.includes('sdk says hello')) await new Promise((r) => setTimeout(r, 50));
}
assert.match(logs, /sdk says hello/);
findings.logs = logs.split('\n')[0];

const running = async (): Promise<void> => {
  for (let i = 0; i < 200; i++) {
    const g = await client.containerGroups.get(rg, 'sdk-group');
    if (g.containers[0]?.instanceView?.currentState?.state === 'Running') return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail('container never Running');
};
await running();
// ACI's exec runs one executable without arguments: a shell, with the command typed into it.
const exec = await client.containers.executeCommand(rg, 'sdk-group', 'app', {
  command: '/bin/sh',
  terminalSize: { rows: 24, cols: 80 },
});
assert.ok(exec.webSocketUri && exec.password);
const output = await new Promise<string>((resolve, reject) => {
  const ws = new WebSocket(exec.webSocketUri ?? '');
  const chunks: Buffer[] = [];
  ws.on('open', () => {
    ws.send(exec.password ?? '');
    // The terminal echoes the typed line, which reads `from-$WHAT`: only the output reads `from-exec`.
    ws.send('WHAT=exec; echo from-$WHAT; exit\n');
  });
  ws.on('message', (d: Buffer) => chunks.push(Buffer.from(d)));
  ws.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  ws.on('error', reject);
});
assert.match(output, /from-exec/);
findings.exec = output.trim();

await client.containerGroups.beginRestartAndWait(rg, 'sdk-group', poll);
await client.containerGroups.stop(rg, 'sdk-group');
const stopped = await client.containerGroups.get(rg, 'sdk-group');
assert.equal(stopped.instanceView?.state, 'Stopped');
await client.containerGroups.beginStartAndWait(rg, 'sdk-group', poll);
const started = await client.containerGroups.get(rg, 'sdk-group');
assert.notEqual(started.instanceView?.state, 'Stopped');
findings.restartedStoppedStarted = true;

const usage: string[] = [];
for await (const u of client.location.listUsage('westeurope'))
  usage.push(`${u.name?.value}:${u.currentValue}/${u.limit}`);
assert.ok(usage.some((u) => u.startsWith('ContainerGroups:1/')));
findings.usage = usage;

await client.containerGroups.beginDeleteAndWait(rg, 'sdk-group', poll);
await assert.rejects(
  client.containerGroups.get(rg, 'sdk-group'),
  (err: { statusCode?: number; code?: string }) => err.statusCode === 404 && err.code === 'ResourceNotFound',
);
findings.deleted = true;

await assert.rejects(
  client.containerGroups.beginCreateOrUpdateAndWait(rg, 'Bad_Name', group, poll),
  (err: { statusCode?: number; code?: string }) => err.statusCode === 400 && err.code === 'InvalidContainerGroupName',
);
findings.validation = 'InvalidContainerGroupName';

console.log(JSON.stringify(findings));
