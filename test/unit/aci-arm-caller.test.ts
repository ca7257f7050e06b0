import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { TransientProviderError } from '../../src/core/provider.js';
import { ArmCaller, parseRetryAfter, type ArmAttempt } from '../../src/providers/aci/arm/arm-caller.js';
import { ArmRequestError } from '../../src/providers/aci/errors.js';

const limits = { readBucket: 250, readRefillPerSecond: 25, writeBucket: 200, writeRefillPerSecond: 10 };

/** Shaped like @azure/core-rest-pipeline's RestError. */
function restError(statusCode: number | undefined, opts: { code?: string; retryAfter?: string } = {}): Error {
  const e = new Error(`HTTP ${statusCode}`) as Error & Record<string, unknown>;
  e.name = 'RestError';
  e['statusCode'] = statusCode;
  if (opts.code) e['code'] = opts.code;
  e['response'] = { headers: { get: (n: string) => (n === 'retry-after' ? opts.retryAfter : undefined) } };
  return e;
}

test('Retry-After parses seconds and HTTP dates', () => {
  assert.equal(parseRetryAfter('3', 0), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
  assert.equal(parseRetryAfter(undefined, 0), undefined);
  assert.equal(parseRetryAfter('soon', 0), undefined);
});

test('a 429 is retried no earlier than its Retry-After, and counted', async () => {
  const registry = new Registry();
  const attempts: ArmAttempt[] = [];
  const caller = new ArmCaller({ limits, registry, onAttempt: (a) => attempts.push(a) });
  let calls = 0;
  const out = await caller.call('containerGroups.get', 'read', async () => {
    calls++;
    if (calls === 1) throw restError(429, { retryAfter: '1' });
    return 'ok';
  });
  assert.equal(out, 'ok');
  assert.equal(attempts.length, 2);
  assert.equal(attempts[0]?.result, '429');
  assert.ok(attempts[1]!.startedAt >= attempts[0].retryNotBefore!, 'retried before Retry-After');
  const metric = await registry.getSingleMetricAsString('aci_connector_arm_requests_total');
  assert.match(metric, /operation="containerGroups.get",result="429"} 1/);
  assert.match(metric, /operation="containerGroups.get",result="success"} 1/);
});

test('5xx and network errors are retried with backoff, then become TransientProviderError', async () => {
  const caller = new ArmCaller({ limits, maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 });
  let calls = 0;
  assert.equal(
    await caller.call('x', 'read', async () => {
      if (++calls < 3) throw calls === 1 ? restError(503) : restError(undefined, { code: 'ECONNRESET' });
      return 7;
    }),
    7,
  );
  await assert.rejects(
    caller.call('x', 'read', async () => {
      throw restError(500);
    }),
    (e: unknown) => e instanceof TransientProviderError && e.reason === 'ArmUnavailable',
  );
});

test('a lost PUT response is settled by the check before retrying, not by a second PUT', async () => {
  const caller = new ArmCaller({ limits, baseDelayMs: 1, maxDelayMs: 2 });
  let puts = 0;
  let exists = false;
  const result = await caller.call(
    'containerGroups.createOrUpdate',
    'write',
    async () => {
      puts++;
      exists = true; // the server created it …
      throw restError(undefined, { code: 'ECONNRESET' }); // … but the response was lost
    },
    { beforeRetry: async () => (exists ? 'found' : undefined) },
  );
  assert.equal(result, 'found');
  assert.equal(puts, 1);
});

test('quota errors are transient with reason QuotaExceeded; other 4xx are permanent; programming errors pass through', async () => {
  const caller = new ArmCaller({ limits });
  await assert.rejects(
    caller.call('c', 'write', async () => {
      throw restError(409, { code: 'ContainerGroupQuotaReached' });
    }),
    (e: unknown) => e instanceof TransientProviderError && e.reason === 'QuotaExceeded',
  );
  await assert.rejects(
    caller.call('c', 'write', async () => {
      throw restError(400, { code: 'InvalidContainerGroupName' });
    }),
    (e: unknown) => e instanceof ArmRequestError && e.code === 'InvalidContainerGroupName' && e.statusCode === 400,
  );
  let calls = 0;
  await assert.rejects(
    caller.call('c', 'read', async () => {
      calls++;
      throw new TypeError('bug');
    }),
    TypeError,
  );
  assert.equal(calls, 1);
});
