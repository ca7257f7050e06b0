/**
 * The ACI node's health verdicts from ARM's answers, with an in-memory ARM: which failure means
 * a bad credential, which only an unknown quota, which an outage. aci-provider.test.ts (emulator)
 * proves a rejected secret end to end; aci-outage-start.test.ts an outage at start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ContainerGroup, Usage } from '@azure/arm-containerinstance';
import { silentLogger } from '../../src/common/logger.js';
import { TransientProviderError } from '../../src/core/provider.js';
import type { AciArm } from '../../src/providers/aci/arm/arm-client.js';
import { loadAciConfig } from '../../src/providers/aci/index.js';
import { AciNodeHealth, healthFromError } from '../../src/providers/aci/health.js';
import { ArmRequestError } from '../../src/providers/aci/errors.js';

const cfg = loadAciConfig({ AZURE_SUBSCRIPTION_ID: 'sub', ACI_RESOURCE_GROUP: 'rg', ACI_REGION: 'westeurope' });

function armError(status: number): ArmRequestError {
  return new ArmRequestError('op', status, status === 403 ? 'AuthorizationFailed' : undefined, `HTTP ${status}`);
}

/** Only what AciNodeHealth calls: the usages, one group GET, and the caller's last success. */
function fakeArm(o: { usage: () => Promise<Usage[]>; group: () => Promise<ContainerGroup | undefined> }) {
  const calls: string[] = [];
  const arm = {
    caller: { lastSuccessAt: 0 },
    listUsage: async () => {
      calls.push('listUsage');
      return o.usage();
    },
    getGroup: async (name: string) => {
      calls.push(`getGroup ${name}`);
      return o.group();
    },
  };
  return { arm: arm as unknown as AciArm, calls };
}

function healthOf(arm: AciArm): AciNodeHealth {
  return new AciNodeHealth(arm, cfg, () => 0, silentLogger());
}

test('a 403 on the subscription usages (a principal scoped to its resource group) is not a bad credential', async () => {
  const { arm, calls } = fakeArm({ usage: async () => Promise.reject(armError(403)), group: async () => undefined });
  const h = await healthOf(arm).health();
  assert.equal(h.ok, true, JSON.stringify(h));
  assert.equal(h.reason, 'AciReachable');
  assert.deepEqual(calls, ['listUsage', 'getGroup aci-connector-health-probe'], 'the resource group was asked instead');
  // Capacity: the quota is unknown, so the configured values stay.
  const info = await healthOf(arm).nodeInfo();
  assert.equal(info.capacity['pods'], cfg.capacity['pods']);
});

test('a 401 or 403 on the resource group itself is still AzureCredentialInvalid', async () => {
  for (const status of [401, 403]) {
    const { arm } = fakeArm({
      usage: async () => Promise.reject(armError(403)),
      group: async () => Promise.reject(armError(status)),
    });
    const h = await healthOf(arm).health();
    assert.equal(h.ok, false);
    assert.equal(h.reason, 'AzureCredentialInvalid', `HTTP ${status}`);
    assert.match(h.message, new RegExp(`HTTP ${status}`));
  }
  const { arm, calls } = fakeArm({ usage: async () => Promise.reject(armError(401)), group: async () => undefined });
  assert.equal((await healthOf(arm).health()).reason, 'AzureCredentialInvalid');
  assert.deepEqual(calls, ['listUsage'], 'a 401 on the usages needs no second probe');
});

test('ARM unreachable or answering 5xx is AciUnreachable (NotReady); throttling keeps the node Ready', async () => {
  const { arm } = fakeArm({ usage: async () => Promise.reject(armError(503)), group: async () => undefined });
  const h = await healthOf(arm).health();
  assert.equal(h.ok, false);
  assert.equal(h.reason, 'AciUnreachable');
  assert.match(h.message, /HTTP 503/);
  assert.equal(healthFromError(new Error('connect ECONNREFUSED 127.0.0.1:1')).reason, 'AciUnreachable');
  const throttled = healthFromError(new TransientProviderError('Throttled', 'ARM answered 429', 1000));
  assert.equal(throttled.ok, true);
  assert.equal(throttled.reason, 'AciThrottled');
});
