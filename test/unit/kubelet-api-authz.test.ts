/**
 * The logic of kubelet API authorization: the kubelet's path and verb mapping,
 * the review cache (TTL by answer, bound, shared in-flight reviews, errors not
 * kept) and the authenticate/authorize steps with fake reviewers. The real
 * reviews against the API server are in test/e2e/kubelet-api-authz.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { createLogger } from '../../src/common/logger.js';
import type { AuthenticationV1Api, AuthorizationV1Api } from '@kubernetes/client-node';
import {
  KubeAccessReviews,
  ReviewError,
  type AccessDecision,
  type AccessReviewer,
  type ResourceAttributes,
  type TokenReviewer,
  type TokenReviewResult,
  type UserInfo,
} from '../../src/core/access-reviews.js';
import { requestAttributes, verbOf } from '../../src/kubelet-api/attributes.js';
import { AuthError, bearerToken, DEFAULT_TTLS, forbiddenMessage, KubeletAuth } from '../../src/kubelet-api/auth.js';
import { ReviewCache } from '../../src/kubelet-api/review-cache.js';
import { pathHead } from '../../src/kubelet-api/routes.js';

const log = createLogger('silent');

/** verb and subresources a request maps to, for a compact table. */
function mapped(method: string, url: string): string {
  const verb = verbOf(method);
  assert.ok(verb, method);
  const attrs = requestAttributes(pathHead(url), verb, 'vk-1');
  for (const a of attrs) {
    assert.equal(a.resource, 'nodes');
    assert.equal(a.name, 'vk-1');
    assert.equal(a.group, '');
    assert.equal(a.version, 'v1');
    assert.equal(a.namespace, undefined);
  }
  return `${attrs[0]?.verb ?? ''} ${attrs.map((a) => a.subresource).join(',')}`;
}

test('path → subresource(s) as the kubelet (v1.36) maps them', () => {
  const table: Array<[string, string, string]> = [
    ['GET', '/stats/summary', 'get stats'],
    ['GET', '/stats', 'get stats'],
    ['GET', '/metrics', 'get metrics'],
    ['GET', '/metrics/cadvisor', 'get metrics'],
    ['GET', '/logs/kubelet.log', 'get log'],
    ['GET', '/spec/', 'get spec'],
    ['POST', '/checkpoint/ns/p/c', 'create checkpoint'],
    ['GET', '/statusz', 'get statusz'],
    ['GET', '/flagz', 'get configz'],
    // fine-grained first, proxy as the fallback
    ['GET', '/pods', 'get pods,proxy'],
    ['GET', '/pods/', 'get pods,proxy'],
    ['GET', '/runningpods/', 'get pods,proxy'],
    ['GET', '/healthz', 'get healthz,proxy'],
    ['GET', '/healthz/ping', 'get healthz,proxy'],
    ['GET', '/configz', 'get configz,proxy'],
    // everything else is proxy
    ['GET', '/containerLogs/ns/p/c?follow=true', 'get proxy'],
    ['POST', '/exec/ns/p/c?command=sh', 'create proxy'],
    ['POST', '/attach/ns/p/c', 'create proxy'],
    ['GET', '/', 'get proxy'],
    ['GET', '/nosuchpath', 'get proxy'],
    ['PUT', '/x', 'update proxy'],
    ['PATCH', '/x', 'patch proxy'],
    ['DELETE', '/x', 'delete proxy'],
    ['HEAD', '/pods', 'get pods,proxy'],
    // only whole segments count: /statsx is not /stats
    ['GET', '/statsx/summary', 'get proxy'],
    ['GET', '/podsx', 'get proxy'],
  ];
  for (const [method, url, want] of table) assert.equal(mapped(method, url), want, `${method} ${url}`);
});

test('exec, attach, portForward and run are create even as a WebSocket GET (stricter than the v1.36 kubelet)', () => {
  assert.equal(mapped('GET', '/exec/ns/p/c?command=env&output=1'), 'create proxy');
  assert.equal(mapped('GET', '/exec/ns/p/uid/c?command=env'), 'create proxy');
  assert.equal(mapped('GET', '/attach/ns/p/c?output=1'), 'create proxy');
  assert.equal(mapped('GET', '/portForward/ns/p'), 'create proxy');
  assert.equal(mapped('GET', '/run/ns/p/c'), 'create proxy');
});

test('the mapping reads the path exactly as the router does: decoding and dot segments cannot dodge it', () => {
  // %65 is "e": the router decodes it to exec, so must the mapping
  assert.equal(pathHead('/%65xec/ns/p/c?command=env'), 'exec');
  assert.equal(mapped('GET', '/%65xec/ns/p/c?command=env'), 'create proxy');
  // /stats/../exec reaches exec (URL resolution), so it is not "stats"
  assert.equal(pathHead('/stats/../exec/ns/p/c'), 'exec');
  assert.equal(mapped('GET', '/stats/../exec/ns/p/c'), 'create proxy');
  assert.equal(mapped('GET', '/stats/%2e%2e/exec/ns/p/c'), 'create proxy');
  // a malformed path and names of Object's prototype fall to the catch-all
  assert.equal(pathHead('/%E0%A4%A/x'), undefined);
  assert.equal(mapped('GET', '/%E0%A4%A/x'), 'get proxy');
  assert.equal(mapped('GET', '/constructor'), 'get proxy');
  assert.equal(mapped('GET', '/__proto__'), 'get proxy');
});

test('verbs: methods the kubelet API never serves have none', () => {
  assert.equal(verbOf('OPTIONS'), undefined);
  assert.equal(verbOf('CONNECT'), undefined);
  assert.equal(verbOf('post'), 'create');
});

// ---- review cache -----------------------------------------------------------

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('review cache: an answer lives as long as its kind says, then is asked again', async () => {
  const c = clock();
  const answers = new Map<string, boolean>([
    ['yes', true],
    ['no', false],
  ]);
  const cache = new ReviewCache<string, AccessDecision>({
    max: 100,
    now: c.now,
    ttlMs: (d) => (d.allowed ? DEFAULT_TTLS.allowMs : DEFAULT_TTLS.denyMs),
    review: async (k) => ({ allowed: answers.get(k) ?? false }),
  });
  assert.equal((await cache.get('yes', 'yes')).allowed, true);
  assert.equal((await cache.get('no', 'no')).allowed, false);
  assert.equal(cache.reviews, 2);
  // within 30 s both come from the cache
  c.advance(29_000);
  await cache.get('yes', 'yes');
  await cache.get('no', 'no');
  assert.equal(cache.reviews, 2);
  // past 30 s the denial is asked again and the answer changes; the allowance is still cached
  answers.set('no', true);
  c.advance(2_000);
  assert.equal((await cache.get('no', 'no')).allowed, true);
  await cache.get('yes', 'yes');
  assert.equal(cache.reviews, 3);
  // past 5 min the allowance is asked again, and a revoked right is seen
  answers.set('yes', false);
  c.advance(5 * 60_000 - 31_000 + 1_000);
  assert.equal((await cache.get('yes', 'yes')).allowed, false);
  assert.equal(cache.reviews, 4);
});

test('review cache: bounded; the least recently used answer goes first', async () => {
  const asked: string[] = [];
  const cache = new ReviewCache<string, AccessDecision>({
    max: 3,
    ttlMs: () => 60_000,
    review: async (k) => {
      asked.push(k);
      return { allowed: true };
    },
  });
  for (const k of ['a', 'b', 'c']) await cache.get(k, k);
  await cache.get('a', 'a'); // a is now the most recent
  await cache.get('d', 'd'); // evicts b
  assert.equal(cache.size, 3);
  await cache.get('a', 'a');
  await cache.get('c', 'c');
  assert.deepEqual(asked, ['a', 'b', 'c', 'd']);
  await cache.get('b', 'b');
  assert.deepEqual(asked, ['a', 'b', 'c', 'd', 'b']);
  for (let i = 0; i < 50; i++) await cache.get(`k${i}`, `k${i}`);
  assert.equal(cache.size, 3);
});

test('review cache: concurrent asks share one review; a failed review is not kept', async () => {
  let calls = 0;
  let fail = true;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const cache = new ReviewCache<string, AccessDecision>({
    max: 10,
    ttlMs: () => 60_000,
    review: async () => {
      calls++;
      await gate;
      if (fail) throw new Error('API server unavailable');
      return { allowed: true };
    },
  });
  const all = Promise.allSettled([cache.get('k', 'k'), cache.get('k', 'k'), cache.get('k', 'k')]);
  release();
  const results = await all;
  assert.equal(calls, 1);
  assert.ok(results.every((r) => r.status === 'rejected'));
  fail = false;
  assert.equal((await cache.get('k', 'k')).allowed, true);
  assert.equal(calls, 2);
  await cache.get('k', 'k');
  assert.equal(calls, 2);
});

// ---- authenticate / authorize -------------------------------------------------

function request(headers: Record<string, string>, method = 'GET', url = '/pods'): IncomingMessage {
  // No TLS socket: only bearer tokens and anonymous can authenticate, as over a plain connection.
  return { headers, method, url, socket: {} } as unknown as IncomingMessage;
}

class FakeTokens implements TokenReviewer {
  reviewed: string[] = [];
  fail = false;
  constructor(private readonly users: Record<string, UserInfo>) {}
  async reviewToken(token: string): Promise<TokenReviewResult> {
    this.reviewed.push(token);
    if (this.fail) throw new Error('TokenReview failed: HTTP 503');
    const user = this.users[token];
    return user ? { authenticated: true, user } : { authenticated: false, error: 'invalid bearer token' };
  }
}

class FakeRbac implements AccessReviewer {
  asked: Array<{ user: string; groups: string[]; attrs: ResourceAttributes }> = [];
  fail = false;
  constructor(private readonly allow: (user: UserInfo, a: ResourceAttributes) => boolean) {}
  async reviewAccess(user: UserInfo, attrs: ResourceAttributes): Promise<AccessDecision> {
    this.asked.push({ user: user.username, groups: user.groups, attrs });
    if (this.fail) throw new Error('SubjectAccessReview failed: HTTP 500');
    return { allowed: this.allow(user, attrs) };
  }
}

async function refusal(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AuthError, String(err));
    return { code: err.code, message: err.message };
  }
  assert.fail('expected a refusal');
}

const alice: UserInfo = {
  username: 'system:serviceaccount:mon:alice',
  uid: 'u-1',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:mon'],
};

test('bearer tokens: TokenReview names the user, who gets system:authenticated; the answer is cached by digest', async () => {
  const tokens = new FakeTokens({ 'tok-alice': alice });
  const rbac = new FakeRbac((u, a) => u.username === alice.username && a.subresource === 'proxy');
  const auth = new KubeletAuth({ nodeName: 'vk-1', tokens, access: rbac, mode: 'Webhook', log });
  const user = await auth.admit(request({ authorization: 'Bearer tok-alice' }));
  assert.equal(user.username, alice.username);
  assert.deepEqual(user.groups, [...alice.groups, 'system:authenticated']);
  // /pods asks nodes/pods first, then falls back to nodes/proxy
  assert.deepEqual(
    rbac.asked.map((a) => `${a.attrs.verb} ${a.attrs.subresource}`),
    ['get pods', 'get proxy'],
  );
  assert.ok(rbac.asked.every((a) => a.groups.includes('system:authenticated')));
  await auth.admit(request({ authorization: 'bearer tok-alice' }));
  assert.deepEqual(tokens.reviewed, ['tok-alice']);
  assert.equal(rbac.asked.length, 2);
  assert.deepEqual(auth.reviewCounts, { tokens: 1, access: 2 });
});

test('an unknown token is 401 and its rejection is cached too; a review error is 401 and not cached', async () => {
  const tokens = new FakeTokens({});
  const auth = new KubeletAuth({ nodeName: 'vk-1', tokens, access: new FakeRbac(() => true), mode: 'Webhook', log });
  assert.deepEqual(await refusal(auth.admit(request({ authorization: 'Bearer nope' }))), {
    code: 401,
    message: 'Unauthorized',
  });
  await refusal(auth.admit(request({ authorization: 'Bearer nope' })));
  assert.equal(tokens.reviewed.length, 1);
  tokens.fail = true;
  assert.equal((await refusal(auth.admit(request({ authorization: 'Bearer other' })))).code, 401);
  assert.equal((await refusal(auth.admit(request({ authorization: 'Bearer other' })))).code, 401);
  assert.equal(tokens.reviewed.filter((t) => t === 'other').length, 2);
});

test('no credentials: 401 unless anonymous is enabled; then system:anonymous is authorized like anyone', async () => {
  const rbac = new FakeRbac((u) => u.username === 'system:anonymous');
  const closed = new KubeletAuth({ nodeName: 'vk-1', tokens: new FakeTokens({}), access: rbac, mode: 'Webhook', log });
  const r = await refusal(closed.admit(request({})));
  assert.equal(r.code, 401);
  assert.match(r.message, /bearer token/);
  assert.equal(rbac.asked.length, 0);

  const open = new KubeletAuth({
    nodeName: 'vk-1',
    tokens: new FakeTokens({}),
    access: rbac,
    mode: 'Webhook',
    anonymous: true,
    log,
  });
  const anon = await open.admit(request({}));
  assert.equal(anon.username, 'system:anonymous');
  assert.deepEqual(anon.groups, ['system:unauthenticated']);
  // an invalid token is never downgraded to anonymous
  assert.equal((await refusal(open.admit(request({ authorization: 'Bearer bad' })))).code, 401);
});

test('authorized for nothing: 403 with the kubelet’s message; AlwaysAllow asks nobody', async () => {
  const tokens = new FakeTokens({ 'tok-alice': alice });
  const rbac = new FakeRbac(() => false);
  const auth = new KubeletAuth({ nodeName: 'vk-1', tokens, access: rbac, mode: 'Webhook', log });
  const r = await refusal(
    auth.admit(request({ authorization: 'Bearer tok-alice' }, 'POST', '/exec/ns/p/c?command=env')),
  );
  assert.equal(r.code, 403);
  assert.equal(
    r.message,
    'Forbidden (user=system:serviceaccount:mon:alice, verb=create, resource=nodes, subresource(s)=[proxy])',
  );
  const pods = await refusal(auth.admit(request({ authorization: 'Bearer tok-alice' })));
  assert.equal(
    pods.message,
    'Forbidden (user=system:serviceaccount:mon:alice, verb=get, resource=nodes, subresource(s)=[pods proxy])',
  );
  // the denial is cached (30 s): asking again sends no review
  const asked = rbac.asked.length;
  await refusal(auth.admit(request({ authorization: 'Bearer tok-alice' })));
  assert.equal(rbac.asked.length, asked);

  const free = new KubeletAuth({ nodeName: 'vk-1', tokens, mode: 'AlwaysAllow', log });
  assert.equal((await free.admit(request({ authorization: 'Bearer tok-alice' }))).username, alice.username);
  // but AlwaysAllow still authenticates
  assert.equal((await refusal(free.admit(request({})))).code, 401);
});

test('a failing SubjectAccessReview is a 500, not a denial, and is asked again next time', async () => {
  const rbac = new FakeRbac(() => true);
  rbac.fail = true;
  const auth = new KubeletAuth({
    nodeName: 'vk-1',
    tokens: new FakeTokens({ t: alice }),
    access: rbac,
    mode: 'Webhook',
    log,
  });
  const r = await refusal(auth.admit(request({ authorization: 'Bearer t' }, 'GET', '/stats/summary')));
  assert.equal(r.code, 500);
  assert.match(
    r.message,
    /Authorization error \(user=system:serviceaccount:mon:alice, verb=get, resource=nodes, subresource=stats\)/,
  );
  rbac.fail = false;
  await auth.admit(request({ authorization: 'Bearer t' }, 'GET', '/stats/summary'));
  assert.equal(rbac.asked.length, 2);
});

test('the cache tells users, groups and attributes apart', async () => {
  const bob: UserInfo = { username: 'bob', groups: ['readers'] };
  const tokens = new FakeTokens({ a: alice, b: bob, b2: { username: 'bob', groups: ['admins'] } });
  const rbac = new FakeRbac(
    (u, a) => u.groups.includes('admins') || (u.username === alice.username && a.subresource === 'stats'),
  );
  const auth = new KubeletAuth({ nodeName: 'vk-1', tokens, access: rbac, mode: 'Webhook', log });
  await auth.admit(request({ authorization: 'Bearer a' }, 'GET', '/stats/summary'));
  assert.equal((await refusal(auth.admit(request({ authorization: 'Bearer a' }, 'GET', '/metrics')))).code, 403);
  assert.equal((await refusal(auth.admit(request({ authorization: 'Bearer b' }, 'GET', '/stats/summary')))).code, 403);
  // same name, other groups: a different subject
  await auth.admit(request({ authorization: 'Bearer b2' }, 'GET', '/stats/summary'));
});

test('bearer tokens come from the Authorization header or the WebSocket sub-protocol', () => {
  assert.equal(bearerToken(request({ authorization: 'Bearer abc.def' })), 'abc.def');
  assert.equal(bearerToken(request({ authorization: 'Basic abc' })), undefined);
  assert.equal(bearerToken(request({ authorization: 'Bearer' })), undefined);
  const encoded = Buffer.from('tok-ws').toString('base64url');
  assert.equal(
    bearerToken(
      request({ 'sec-websocket-protocol': `v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.${encoded}` }),
    ),
    'tok-ws',
  );
  assert.equal(bearerToken(request({ 'sec-websocket-protocol': 'v5.channel.k8s.io' })), undefined);
});

test('the 403 text lists every subresource tried', () => {
  const attrs = requestAttributes('pods', 'get', 'n');
  assert.equal(
    forbiddenMessage({ username: 'x', groups: [] }, attrs),
    'Forbidden (user=x, verb=get, resource=nodes, subresource(s)=[pods proxy])',
  );
});

// ---- the API server side: retries ------------------------------------------------

test('KubeAccessReviews: transient failures are retried, a refusal of the connector itself is final', async () => {
  let calls = 0;
  const flaky = {
    createSubjectAccessReview: async () => {
      calls++;
      if (calls < 3)
        throw Object.assign(new Error('HTTP-Code: 503'), { code: 503, body: '{"message":"etcd leader changed"}' });
      return { spec: {}, status: { allowed: true } };
    },
  } as unknown as AuthorizationV1Api;
  const reviews = new KubeAccessReviews({} as AuthenticationV1Api, flaky);
  const d = await reviews.reviewAccess(alice, requestAttributes('pods', 'get', 'vk-1')[0] as ResourceAttributes);
  assert.equal(d.allowed, true);
  assert.equal(calls, 3);

  let tokenCalls = 0;
  const refusing = {
    createTokenReview: async () => {
      tokenCalls++;
      throw Object.assign(new Error('HTTP-Code: 403'), {
        code: 403,
        body: '{"message":"tokenreviews.authentication.k8s.io is forbidden"}',
      });
    },
  } as unknown as AuthenticationV1Api;
  const r2 = new KubeAccessReviews(refusing, {} as AuthorizationV1Api);
  await assert.rejects(
    r2.reviewToken('t'),
    (err: Error) =>
      err instanceof ReviewError && /HTTP 403: tokenreviews.authentication.k8s.io is forbidden/.test(err.message),
  );
  assert.equal(tokenCalls, 1);

  // an explicit denial, and no opinion, are both "not allowed"
  const answers = [
    { allowed: false, denied: true, reason: 'no' },
    { allowed: false, evaluationError: 'role x not found' },
  ];
  const denying = {
    createSubjectAccessReview: async () => ({ spec: {}, status: answers.shift() }),
  } as unknown as AuthorizationV1Api;
  const r3 = new KubeAccessReviews({} as AuthenticationV1Api, denying);
  const attrs = requestAttributes('exec', 'create', 'vk-1')[0] as ResourceAttributes;
  assert.deepEqual(await r3.reviewAccess(alice, attrs), { allowed: false, reason: 'no' });
  assert.deepEqual(await r3.reviewAccess(alice, attrs), { allowed: false, reason: undefined });
});
