/**
 * Replays every example of the spec that ships in the examples folder: its request is sent
 * to the emulator (and must be accepted), and the emulator's response must validate against
 * the spec. Examples that need an existing group get one first, built from the example's own
 * response body with the read-only properties removed. Each example runs on a fresh emulator.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { API, groupPath, startTestEmulator, waitFor, type ArmResult, type ArmTestClient } from './arm-client.js';
import { SPEC_DIR, SpecValidator } from './spec-validator.js';
import type { EmulatorOptions } from '../../src/emulator/index.js';

type Json = Record<string, unknown>;
interface Example {
  parameters: Json & {
    subscriptionId: string;
    resourceGroupName?: string;
    containerGroupName?: string;
    containerName?: string;
    location?: string;
  };
  responses: Record<string, { body?: unknown }>;
}

const validator = new SpecValidator();
const exampleOps = new Map<string, string>();
for (const op of validator.operations) {
  const examples = (op.op as unknown as { 'x-ms-examples'?: Record<string, { $ref: string }> })['x-ms-examples'] ?? {};
  for (const e of Object.values(examples)) exampleOps.set(e.$ref.replace('./examples/', ''), op.operationId);
}
const files = readdirSync(`${SPEC_DIR}/examples`)
  .filter((f) => f.endsWith('.json'))
  .sort();

async function withEmulator(options: EmulatorOptions, fn: (arm: ArmTestClient) => Promise<void>): Promise<void> {
  const { emu, arm } = await startTestEmulator(options);
  try {
    await fn(arm);
  } finally {
    arm.close();
    await emu.stop();
  }
}

function pathOf(p: Example['parameters']): string {
  return groupPath(p.subscriptionId, p.resourceGroupName ?? 'demo', p.containerGroupName ?? 'demo1');
}

/** Creates a group from an example response body (read-only properties removed) and waits until provisioning settles. */
async function createFrom(
  arm: ArmTestClient,
  path: string,
  responseBody: unknown,
  settled = 'Succeeded',
): Promise<void> {
  const body = validator.stripReadOnly('ContainerGroup', responseBody) as Json;
  const put = await arm.call('PUT', `${path}?${API}`, { body });
  assert.ok(put.status === 201 || put.status === 200, `precondition PUT: ${JSON.stringify(put.body)}`);
  await waitFor('provisioning to settle', async () => {
    const g = await arm.call('GET', `${path}?${API}`);
    return (g.body as { properties: { provisioningState: string } }).properties.provisioningState === settled;
  });
}

const accepted = (res: ArmResult, example: Example): void => {
  assert.ok(
    Object.keys(example.responses).includes(String(res.status)),
    `status ${res.status} is one of the example's (${Object.keys(example.responses).join(', ')}): ${JSON.stringify(res.body)}`,
  );
};

describe('spec examples replayed against the emulator', () => {
  it('has an operation for every example file', () => {
    for (const f of files) assert.ok(exampleOps.has(f), `${f} is referenced by an operation`);
    assert.ok(files.length >= 15);
  });

  for (const file of files) {
    const example = JSON.parse(readFileSync(`${SPEC_DIR}/examples/${file}`, 'utf8')) as Example;
    const operationId = exampleOps.get(file) ?? 'unknown';
    it(`${file} (${operationId})`, async () => {
      const p = example.parameters;
      assert.equal(p['api-version'], '2023-05-01');
      const first200 = example.responses['200']?.body;
      switch (operationId) {
        case 'ContainerGroups_CreateOrUpdate':
          await withEmulator({}, async (arm) => {
            const res = await arm.call('PUT', `${pathOf(p)}?${API}`, { body: p.containerGroup });
            accepted(res, example);
            const body = res.body as {
              name: string;
              properties: { containers: { name: string; properties: { image: string } }[] };
            };
            const sent = p.containerGroup as {
              properties: { containers: { name: string; properties: { image: string } }[] };
            };
            assert.equal(body.name, p.containerGroupName);
            assert.deepEqual(
              body.properties.containers.map((c) => [c.name, c.properties.image]),
              sent.properties.containers.map((c) => [c.name, c.properties.image]),
            );
            await waitFor(
              'succeeded',
              async () =>
                ((await arm.call('GET', `${pathOf(p)}?${API}`)).body as { properties: { provisioningState: string } })
                  .properties.provisioningState === 'Succeeded',
            );
          });
          break;
        case 'ContainerGroups_Get': {
          const failed =
            (first200 as { properties: { provisioningState: string } }).properties.provisioningState === 'Failed';
          // The failed example is reproduced with an image that cannot be pulled.
          const options: EmulatorOptions = failed
            ? { simulated: { pullMs: 5, rules: [{ image: 'nginx', fate: { kind: 'pullFails' } }] } }
            : {};
          await withEmulator(options, async (arm) => {
            await createFrom(arm, pathOf(p), first200, failed ? 'Failed' : 'Succeeded');
            const res = await arm.call('GET', `${pathOf(p)}?${API}`);
            accepted(res, example);
            const body = res.body as { properties: { provisioningState: string } };
            assert.equal(body.properties.provisioningState, failed ? 'Failed' : 'Succeeded');
          });
          break;
        }
        case 'ContainerGroups_List':
        case 'ContainerGroups_ListByResourceGroup':
          await withEmulator({}, async (arm) => {
            const item = (first200 as { value: (Json & { name: string; id: string })[] }).value[0];
            assert.ok(item);
            const rg = /resourceGroups\/([^/]+)/.exec(item.id)?.[1] ?? 'demo';
            await createFrom(arm, groupPath(p.subscriptionId, rg, item.name), item);
            const scope =
              operationId === 'ContainerGroups_List'
                ? `/subscriptions/${p.subscriptionId}`
                : `/subscriptions/${p.subscriptionId}/resourceGroups/${p.resourceGroupName ?? rg}`;
            const res = await arm.call('GET', `${scope}/providers/Microsoft.ContainerInstance/containerGroups?${API}`);
            accepted(res, example);
            assert.deepEqual(
              (res.body as { value: { name: string }[] }).value.map((g) => g.name),
              [item.name],
            );
          });
          break;
        case 'ContainerGroups_Delete':
          await withEmulator({}, async (arm) => {
            await createFrom(arm, pathOf(p), first200);
            const res = await arm.call('DELETE', `${pathOf(p)}?${API}`);
            accepted(res, example);
            const again = await arm.call('DELETE', `${pathOf(p)}?${API}`);
            accepted(again, example);
            assert.equal(again.status, 204);
          });
          break;
        case 'ContainerGroups_Start':
          await withEmulator({}, async (arm) => {
            await createFrom(arm, pathOf(p), exampleGroup());
            assert.equal((await arm.call('POST', `${pathOf(p)}/stop?${API}`)).status, 204);
            const res = await arm.call('POST', `${pathOf(p)}/start?${API}`);
            accepted(res, example);
            assert.match(String(res.headers['azure-asyncoperation']), /operations/);
          });
          break;
        case 'Containers_ListLogs':
        case 'Containers_ExecuteCommand':
          await withEmulator({}, async (arm) => {
            await createFrom(arm, pathOf(p), exampleGroup(p.containerName));
            const base = `${pathOf(p)}/containers/${p.containerName ?? ''}`;
            const res =
              operationId === 'Containers_ListLogs'
                ? await arm.call('GET', `${base}/logs?${API}&tail=${String(p.tail)}`)
                : await arm.call('POST', `${base}/exec?${API}`, { body: p.containerExecRequest });
            accepted(res, example);
          });
          break;
        case 'Location_ListUsage':
        case 'Location_ListCachedImages':
          await withEmulator({}, async (arm) => {
            const leaf = operationId === 'Location_ListUsage' ? 'usages' : 'cachedImages';
            const res = await arm.call(
              'GET',
              `/subscriptions/${p.subscriptionId}/providers/Microsoft.ContainerInstance/locations/${p.location ?? 'westus'}/${leaf}?${API}`,
            );
            accepted(res, example);
          });
          break;
        default:
          assert.fail(`no replay for ${operationId}`);
      }
    });
  }
});

/** A minimal running group for examples that only name the group and container. */
function exampleGroup(containerName = 'demo1'): Json {
  return {
    id: 'ignored',
    location: 'westus',
    properties: {
      osType: 'Linux',
      containers: [
        { name: containerName, properties: { image: 'nginx', resources: { requests: { cpu: 1, memoryInGB: 1.5 } } } },
      ],
    },
  };
}

describe('the spec validator itself', () => {
  it('rejects undeclared properties, wrong enums and undeclared statuses', () => {
    const g = {
      id: 'x',
      name: 'n',
      type: 't',
      location: 'l',
      properties: {
        osType: 'Linux',
        containers: [{ name: 'a', properties: { image: 'i', resources: { requests: { cpu: 1, memoryInGB: 1 } } } }],
      },
    };
    assert.deepEqual(validator.responseErrors('ContainerGroups_Get', 200, g), []);
    assert.notDeepEqual(validator.responseErrors('ContainerGroups_Get', 200, { ...g, bogus: 1 }), []);
    assert.notDeepEqual(
      validator.responseErrors('ContainerGroups_Get', 200, { ...g, properties: { ...g.properties, osType: 'Mac' } }),
      [],
    );
    assert.notDeepEqual(validator.responseErrors('ContainerGroups_Get', 201, g), []);
    assert.notDeepEqual(
      validator.responseErrors('ContainerGroups_List', 200, {
        value: [{ ...g, properties: { ...g.properties, instanceView: { state: 'Running' } } }],
      }),
      [],
    );
    assert.notDeepEqual(
      validator.requestErrors('ContainerGroups_CreateOrUpdate', { location: 'l', properties: { containers: [] } }),
      [],
    );
    const withSecret = {
      ...g,
      properties: {
        ...g.properties,
        containers: [
          {
            name: 'a',
            properties: {
              image: 'i',
              environmentVariables: [{ name: 'S', secureValue: 'x' }],
              resources: { requests: { cpu: 1, memoryInGB: 1 } },
            },
          },
        ],
      },
    };
    assert.deepEqual(validator.responseErrors('ContainerGroups_Get', 200, withSecret), [
      '/properties/containers/0/properties/environmentVariables/0/secureValue is x-ms-secret and must not be returned',
    ]);
  });
});
