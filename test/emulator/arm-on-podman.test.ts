/**
 * The ARM layer on the podman runtime: a container group created through the API is a real
 * pod whose published port answers on the IP the API reports; logs and exec (over the
 * WebSocket) reach the real container; delete leaves no pod behind. Spec validation applies
 * to every call, as in the other API tests.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import WebSocket from 'ws';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { API, ArmTestClient, groupPath, waitFor, type GroupBody } from './arm-client.js';
import { podmanFixture, type PodmanFixture } from './podman-fixtures.js';

let fx: PodmanFixture;
let emu: Emulator;
let arm: ArmTestClient;

before(async () => {
  fx = await podmanFixture();
  emu = await startEmulator({ runtime: fx.runtime });
  arm = new ArmTestClient(emu);
});
after(async () => {
  arm?.close();
  await emu?.stop();
});

it(
  'runs a group as a real pod: HTTP on its IP, logs, exec, and delete removes the pod',
  { timeout: 300_000 },
  async () => {
    const path = `${groupPath(emu.subscriptionId, 'podman-rg', 'httpd')}?${API}`;
    const body = {
      location: 'westeurope',
      properties: {
        osType: 'Linux',
        restartPolicy: 'Always',
        containers: [
          {
            name: 'web',
            properties: {
              image: fx.image,
              command: [
                'sh',
                '-c',
                'echo "served by $WHO" > /www/index.html && echo started web && exec httpd -f -p 8080 -h /www',
              ],
              ports: [{ port: 8080, protocol: 'TCP' }],
              environmentVariables: [{ name: 'WHO', secureValue: 'aci-emulator' }],
              resources: { requests: { cpu: 0.5, memoryInGB: 0.25 } },
            },
          },
        ],
        ipAddress: { type: 'Public', ports: [{ port: 8080, protocol: 'TCP' }] },
      },
    };
    const put = await arm.call('PUT', path, { body });
    assert.equal(put.status, 201);
    const group = await waitFor(
      'provisioned and running',
      async () => {
        const g = (await arm.call('GET', path)).body as GroupBody;
        assert.notEqual(g.properties.provisioningState, 'Failed', JSON.stringify(g));
        return g.properties.provisioningState === 'Succeeded' &&
          g.properties.containers[0]?.properties.instanceView?.currentState.state === 'Running'
          ? g
          : undefined;
      },
      180_000,
      250,
    );
    const ip = group.properties.ipAddress?.ip;
    assert.match(String(ip), /^127\./);
    const page = await waitFor(
      'httpd answers',
      async () => {
        try {
          const res = await fetch(`http://${ip}:8080/`);
          return res.ok ? await res.text() : undefined;
        } catch {
          return undefined;
        }
      },
      60_000,
      250,
    );
    assert.equal(page, 'served by aci-emulator\n');

    const logs = await waitFor(
      'logs',
      async () => {
        const res = await arm.call(
          'GET',
          `${groupPath(emu.subscriptionId, 'podman-rg', 'httpd')}/containers/web/logs?${API}&tail=10`,
        );
        const content = (res.body as { content: string }).content;
        return content.includes('started web') ? content : undefined;
      },
      30_000,
      250,
    );
    assert.match(logs, /started web/);

    const execute = async (command: string, typed?: string): Promise<{ output: string; reason: string }> => {
      const exec = await arm.call(
        'POST',
        `${groupPath(emu.subscriptionId, 'podman-rg', 'httpd')}/containers/web/exec?${API}`,
        { body: { command, terminalSize: { rows: 24, cols: 80 } } },
      );
      assert.equal(exec.status, 200);
      const { webSocketUri, password } = exec.body as { webSocketUri: string; password: string };
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(webSocketUri, { ca: emu.caPem });
        const chunks: Buffer[] = [];
        ws.on('open', () => {
          ws.send(password);
          if (typed) ws.send(typed);
        });
        ws.on('message', (d: Buffer) => chunks.push(Buffer.from(d)));
        ws.on('close', (_code, reason) =>
          resolve({ output: Buffer.concat(chunks).toString('utf8'), reason: reason.toString() }),
        );
        ws.on('error', reject);
      });
    };
    // As on ACI, the command is one executable without arguments: `cat /www/index.html` is not found…
    const whole = await execute('cat /www/index.html');
    assert.equal(whole.reason, 'exit code 127', whole.output);
    assert.match(whole.output, /not found|no such file/i);
    // …and a shell with the command typed into it works.
    const typed = await execute('/bin/sh', 'exec cat /www/index.html\n');
    assert.match(typed.output, /served by aci-emulator/);
    assert.equal(typed.reason, 'exit code 0');

    // Only this runtime's pods: other tests may share the podman store.
    const label = `aci-emulator.instance=${fx.runtime.instanceId}`;
    const podsBefore = await fx.podsOf(label);
    assert.equal(podsBefore.length, 1, 'the group is a podman pod');
    const del = await arm.call('DELETE', path);
    assert.ok(del.status === 200 || del.status === 202, String(del.status));
    await waitFor('group gone', async () => (await arm.call('GET', path)).status === 404, 120_000, 250);
    const podsAfter = await fx.podsOf(label);
    assert.deepEqual(podsAfter, [], 'delete removed the pod');
  },
);
