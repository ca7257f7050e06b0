/**
 * The official @azure/arm-containerinstance SDK with @azure/identity's ClientSecretCredential,
 * unchanged, against the emulator: create (poller), get, list, logs, exec, restart, stop,
 * start, delete. The client runs in a child process trusting the emulator's CA through
 * NODE_EXTRA_CA_CERTS, the way a user would configure it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';

let emu: Emulator;

before(async () => {
  emu = await startEmulator({
    runtime: 'simulated',
    // The container logs its greeting and keeps running, so that exec always finds it running.
    simulated: {
      pullMs: 10,
      startMs: 10,
      rules: [{ command: 'sdk says hello', fate: { kind: 'runs', logs: ['sdk says hello'] } }],
    },
  });
});
after(async () => {
  await emu?.stop();
});

it('works with the official SDK and ClientSecretCredential, unchanged', { timeout: 120_000 }, async () => {
  const script = fileURLToPath(new URL('./sdk-client.js', import.meta.url));
  const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>(
    (resolve) => {
      execFile(
        process.execPath,
        [script],
        {
          timeout: 110_000,
          env: {
            PATH: process.env.PATH ?? '',
            NODE_EXTRA_CA_CERTS: emu.caCertPath,
            EMULATOR_ENDPOINT: emu.endpoint,
            AZURE_AUTHORITY_HOST: emu.authorityHost,
            AZURE_TENANT_ID: emu.tenantId,
            AZURE_CLIENT_ID: emu.clientId,
            AZURE_CLIENT_SECRET: emu.clientSecret,
            AZURE_SUBSCRIPTION_ID: emu.subscriptionId,
          },
        },
        (err, out, errOut) =>
          resolve({ stdout: out, stderr: errOut, code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
      );
    },
  );
  assert.equal(code, 0, `SDK client failed:\n${stderr}\n${stdout}`);
  const findings = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  assert.equal(findings.created, 'Succeeded');
  assert.equal(findings.deleted, true);
  assert.match(String(findings.exec), /^from-exec$/m);

  const calls = emu.stats().callsByOperation;
  for (const op of [
    'ContainerGroups_CreateOrUpdate',
    'AsyncOperation_Get',
    'ContainerGroups_Get',
    'ContainerGroups_ListByResourceGroup',
    'ContainerGroups_List',
    'Containers_ListLogs',
    'Containers_ExecuteCommand',
    'ContainerGroups_Restart',
    'ContainerGroups_Stop',
    'ContainerGroups_Start',
    'ContainerGroups_Delete',
    'Location_ListUsage',
  ]) {
    assert.ok((calls[op] ?? 0) >= 1, `the SDK called ${op}`);
  }
  assert.ok(emu.stats().tokensIssued >= 1, 'MSAL fetched a token from the emulator');
});
