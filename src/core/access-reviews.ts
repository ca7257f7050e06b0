/**
 * Delegated authentication and authorization through the API server, as a
 * kubelet does it: a TokenReview (authentication.k8s.io/v1) says who a bearer
 * token belongs to, a SubjectAccessReview (authorization.k8s.io/v1) says whether
 * that user may do something. The kubelet API caches and interprets the answers;
 * this module only asks.
 */
import type { AuthenticationApi, AuthorizationApi } from './kube/apis.js';
import { backoffDelay, sleep, type BackoffPolicy } from '../common/backoff.js';

/** Who made a request, as Kubernetes names users. */
export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** The resource part of a SubjectAccessReview (the kubelet API only asks about resources). */
export interface ResourceAttributes {
  verb: string;
  /** '' is the core group. */
  group: string;
  version: string;
  resource: string;
  subresource: string;
  name: string;
  namespace?: string;
}

export type TokenReviewResult = { authenticated: true; user: UserInfo } | { authenticated: false; error?: string };

export interface AccessDecision {
  allowed: boolean;
  /** The authorizer's explanation, when it gave one. */
  reason?: string;
}

export interface TokenReviewer {
  reviewToken(token: string): Promise<TokenReviewResult>;
}

export interface AccessReviewer {
  reviewAccess(user: UserInfo, attrs: ResourceAttributes): Promise<AccessDecision>;
}

/** Thrown when the API server could not be asked (network, 5xx, Forbidden for the connector itself). */
export class ReviewError extends Error {
  override readonly name = 'ReviewError';
}

/** Per attempt; the webhook authenticator and authorizer of a kubelet wait 30 s, a caller here waits less. */
const ATTEMPT_TIMEOUT_MS = 10_000;
const ATTEMPTS = 3;
const RETRY: BackoffPolicy = { baseMs: 250, maxMs: 2_000, factor: 2 };

/** Worth another try: no answer, throttled, or a server-side failure (a 4xx such as Forbidden is final). */
function transient(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code !== 'number' || code === 429 || code >= 500;
}

async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${ATTEMPT_TIMEOUT_MS / 1000} s`)),
            ATTEMPT_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (err) {
      if (i >= ATTEMPTS || !transient(err)) throw new ReviewError(`${what} failed: ${message(err)}`);
      await sleep(backoffDelay(RETRY, i));
    } finally {
      clearTimeout(timer);
    }
  }
}

function message(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  if (typeof e.code === 'number') {
    const body = typeof e.body === 'string' ? e.body : JSON.stringify(e.body ?? '');
    let detail = body;
    try {
      detail = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON: keep the raw body
    }
    return `HTTP ${e.code}: ${detail}`;
  }
  return e.message ?? String(err);
}

/** Both reviews against the API server, through the core's rate-limited clients. */
export class KubeAccessReviews implements TokenReviewer, AccessReviewer {
  constructor(
    private readonly authentication: AuthenticationApi,
    private readonly authorization: AuthorizationApi,
  ) {}

  async reviewToken(token: string): Promise<TokenReviewResult> {
    // No audiences: the API server checks the token against its own, as for a kubelet.
    const review = await attempt('TokenReview', () =>
      this.authentication.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
      }),
    );
    const status = review.status;
    if (!status?.authenticated || !status.user?.username) return { authenticated: false, error: status?.error };
    const u = status.user;
    return {
      authenticated: true,
      user: { username: u.username ?? '', uid: u.uid, groups: u.groups ?? [], extra: u.extra },
    };
  }

  async reviewAccess(user: UserInfo, attrs: ResourceAttributes): Promise<AccessDecision> {
    const review = await attempt('SubjectAccessReview', () =>
      this.authorization.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: user.username,
            uid: user.uid,
            groups: user.groups,
            extra: user.extra,
            resourceAttributes: {
              verb: attrs.verb,
              group: attrs.group,
              version: attrs.version,
              resource: attrs.resource,
              subresource: attrs.subresource,
              name: attrs.name,
              namespace: attrs.namespace,
            },
          },
        },
      }),
    );
    const s = review.status;
    // As the webhook authorizer: no opinion is not an allowance. An evaluationError beside it (a binding
    // to a missing role, say) is common in healthy clusters and stays a denial, not a failure.
    return { allowed: s?.allowed === true && s.denied !== true, reason: s?.reason || undefined };
  }
}
