/**
 * Pod-bound ServiceAccount tokens: what is requested, reuse until 80 % of the life, and the
 * life read from the JWT when the API server extended it. NodeRestriction's view of these
 * requests is proven against the real control plane in test/e2e/node-identity.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AuthenticationV1TokenRequest, V1Pod } from '@kubernetes/client-node';
import { jwtExpiry, ServiceAccountTokens } from '../../src/core/sa-tokens.js';

function jwt(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'ES256' })}.${part(claims)}.sig`;
}

const pod: V1Pod = {
  metadata: { name: 'p', namespace: 'ns', uid: 'uid-1' },
  spec: { serviceAccountName: 'robot', containers: [] },
};

function fakeCore(
  now: () => number,
  lifeSeconds: (req: AuthenticationV1TokenRequest) => number,
  jwtLifeSeconds?: number,
) {
  const requests: Array<{ name: string; namespace: string; body: AuthenticationV1TokenRequest }> = [];
  return {
    requests,
    api: {
      createNamespacedServiceAccountToken: async (r: {
        name: string;
        namespace: string;
        body: AuthenticationV1TokenRequest;
      }) => {
        requests.push(r);
        const exp = jwtLifeSeconds === undefined ? {} : { exp: Math.floor(now() / 1000) + jwtLifeSeconds };
        return {
          ...r.body,
          status: {
            token: jwt({ n: requests.length, ...exp }),
            expirationTimestamp: new Date(now() + lifeSeconds(r.body) * 1000),
          },
        };
      },
    },
  };
}

test('a token is requested for the pod ServiceAccount, bound to the pod, with the volume audience and expiry', async () => {
  let now = 1_000_000;
  const core = fakeCore(
    () => now,
    (b) => b.spec.expirationSeconds ?? 0,
  );
  const tokens = new ServiceAccountTokens(core.api, () => now);
  await tokens.get(pod, 'vault', 600);
  assert.deepEqual(core.requests[0], {
    name: 'robot',
    namespace: 'ns',
    body: {
      spec: {
        audiences: ['vault'],
        expirationSeconds: 600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'p', uid: 'uid-1' },
      },
    },
  });
  await tokens.get(pod, undefined, 3607);
  assert.deepEqual(core.requests[1]?.body.spec.audiences, [], 'no audience: the API server default');
  now += 1;
});

test('a token is reused until 80 % of its life has passed, then requested again', async () => {
  let now = 5_000_000;
  const core = fakeCore(
    () => now,
    () => 1000,
  );
  const tokens = new ServiceAccountTokens(core.api, () => now);
  const first = await tokens.get(pod, 'a', 1000);
  now += 799_000;
  assert.equal(await tokens.get(pod, 'a', 1000), first, 'before 80 %: the same token');
  assert.equal(core.requests.length, 1);
  assert.equal(tokens.issued('uid-1')[0]?.refreshAt, 5_000_000 + 800_000);
  now += 1_000;
  const second = await tokens.get(pod, 'a', 1000);
  assert.notEqual(second, first, 'at 80 %: a new token');
  assert.equal(core.requests.length, 2);
  tokens.release('uid-1');
  assert.deepEqual(tokens.issued('uid-1'), []);
});

test("the JWT's exp wins over status.expirationTimestamp (the API server's extended kube-api-access tokens)", async () => {
  const now = 9_000_000_000;
  const year = 365 * 24 * 3600;
  const core = fakeCore(
    () => now,
    () => 3607,
    year,
  );
  const tokens = new ServiceAccountTokens(core.api, () => now);
  const token = await tokens.get(pod, undefined, 3607);
  assert.equal(jwtExpiry(token ?? ''), Math.floor(now / 1000) * 1000 + year * 1000);
  const issued = tokens.issued('uid-1')[0];
  assert.ok(
    issued && issued.refreshAt - now > 0.79 * year * 1000,
    'refresh is due at 80 % of the real life, not of the 3607 s warn-after',
  );
  assert.equal(jwtExpiry('not-a-jwt'), undefined);
});
