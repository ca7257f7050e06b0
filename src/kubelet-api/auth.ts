/**
 * Authentication and authorization of kubelet API requests, as a kubelet does
 * it (pkg/kubelet/server: InstallAuthFilter; cmd/kubelet/app/auth.go):
 *
 * - who: a client certificate chaining to the client CA (user = CN, groups = O),
 *   else a bearer token (Authorization header, or the WebSocket sub-protocol
 *   `base64url.bearer.authorization.k8s.io.<token>`) checked by a TokenReview;
 *   else anonymous (`system:anonymous`) only when enabled; else 401.
 * - may they: a SubjectAccessReview per attribute set from attributes.ts, the
 *   first allowance wins; none allowed is 403 with the kubelet's message.
 * - answers are cached as the kubelet's defaults say: tokens 2 min (either way),
 *   allowances 5 min, denials 30 s; failed reviews are not cached.
 *
 * The reviews themselves are injected (core/access-reviews.ts against the API
 * server), so this stays testable without one.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../common/logger.js';
import type {
  AccessDecision,
  AccessReviewer,
  ResourceAttributes,
  TokenReviewer,
  TokenReviewResult,
  UserInfo,
} from '../core/access-reviews.js';
import { requestAttributes, verbOf } from './attributes.js';
import { ReviewCache } from './review-cache.js';
import { pathHead } from './routes.js';
import { errorMessage } from '../common/errors.js';

export type AuthorizationMode = 'Webhook' | 'AlwaysAllow';
export const AUTHORIZATION_MODES: readonly AuthorizationMode[] = ['Webhook', 'AlwaysAllow'];

/** The kubelet's defaults (KubeletConfiguration authentication.webhook.cacheTTL, authorization.webhook.*). */
export const DEFAULT_TTLS = { tokenMs: 2 * 60_000, allowMs: 5 * 60_000, denyMs: 30_000 } as const;
/** Entries per cache; the kubelet's authorizer keeps 8192, ours serves one node. */
export const DEFAULT_CACHE_SIZE = 4096;

export interface KubeletAuthOptions {
  /** The node the attributes name. */
  nodeName: string;
  /** PEM of the client CA; undefined: no client certificate authenticates. */
  clientCA?: string;
  /** undefined: bearer tokens are not accepted. */
  tokens?: TokenReviewer;
  /** Required for Webhook mode. */
  access?: AccessReviewer;
  mode: AuthorizationMode;
  /** Let requests without credentials through as system:anonymous (then authorized like anyone). */
  anonymous?: boolean;
  ttls?: Partial<typeof DEFAULT_TTLS>;
  cacheSize?: number;
  now?: () => number;
  log: Logger;
}

/** A refusal with the status code the caller gets. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly code: 401 | 403 | 405 | 500,
    message: string,
  ) {
    super(message);
  }
}

export const ANONYMOUS: UserInfo = { username: 'system:anonymous', groups: ['system:unauthenticated'] };
const AUTHENTICATED_GROUP = 'system:authenticated';
const WS_TOKEN_PREFIX = 'base64url.bearer.authorization.k8s.io.';

function withAuthenticatedGroup(u: UserInfo): UserInfo {
  return u.groups.includes(AUTHENTICATED_GROUP) ? u : { ...u, groups: [...u.groups, AUTHENTICATED_GROUP] };
}

function asList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** The user a verified client certificate names, as Kubernetes reads it. */
export function userOfCertificate(socket: TLSSocket): UserInfo | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  const cn = asList(cert.subject?.CN)[0];
  if (!cn) return undefined;
  return { username: cn, groups: asList(cert.subject?.O) };
}

/** The bearer token of a request: the Authorization header, else the WebSocket sub-protocol form. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^bearer\s+(\S+)\s*$/i.exec(header);
    return m?.[1];
  }
  const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  const encoded = protocols.find((p) => p.startsWith(WS_TOKEN_PREFIX))?.slice(WS_TOKEN_PREFIX.length);
  if (!encoded) return undefined;
  const token = Buffer.from(encoded, 'base64url').toString('utf8');
  return token.length > 0 ? token : undefined;
}

/** The kubelet's 403 text. */
export function forbiddenMessage(user: UserInfo, attrs: ResourceAttributes[]): string {
  const first = attrs[0];
  return `Forbidden (user=${user.username}, verb=${first?.verb ?? ''}, resource=${first?.resource ?? ''}, subresource(s)=[${attrs.map((a) => a.subresource).join(' ')}])`;
}

/** A stable key for one user and one attribute set (what a SubjectAccessReview depends on). */
function accessKey(user: UserInfo, attrs: ResourceAttributes): string {
  const extra = Object.entries(user.extra ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([
    user.username,
    user.uid ?? '',
    [...user.groups].sort(),
    extra,
    attrs.verb,
    attrs.group,
    attrs.version,
    attrs.resource,
    attrs.subresource,
    attrs.name,
    attrs.namespace ?? '',
  ]);
}

export class KubeletAuth {
  private readonly tokenCache: ReviewCache<string, TokenReviewResult> | undefined;
  private readonly accessCache: ReviewCache<{ user: UserInfo; attrs: ResourceAttributes }, AccessDecision> | undefined;

  constructor(private readonly o: KubeletAuthOptions) {
    const ttls = { ...DEFAULT_TTLS, ...o.ttls };
    const max = o.cacheSize ?? DEFAULT_CACHE_SIZE;
    const tokens = o.tokens;
    if (tokens) {
      this.tokenCache = new ReviewCache({
        max,
        now: o.now,
        ttlMs: () => ttls.tokenMs,
        review: (token) => tokens.reviewToken(token),
      });
    }
    if (o.mode === 'Webhook') {
      const access = o.access;
      if (!access) throw new Error('Webhook authorization needs an access reviewer');
      this.accessCache = new ReviewCache({
        max,
        now: o.now,
        ttlMs: (d) => (d.allowed ? ttls.allowMs : ttls.denyMs),
        review: ({ user, attrs }) => access.reviewAccess(user, attrs),
      });
    }
  }

  /** Who sent the request; throws a 401 AuthError when nobody can be named. */
  async authenticate(req: IncomingMessage): Promise<UserInfo> {
    const socket = req.socket as TLSSocket;
    const tls = typeof socket.getPeerCertificate === 'function';
    if (this.o.clientCA !== undefined && tls) {
      const user = userOfCertificate(socket);
      if (user) return withAuthenticatedGroup(user);
    }
    // A certificate that failed verification is a failed login, never anonymous (the union authenticator fails on error).
    const badCertificate = tls && !socket.authorized && Object.keys(socket.getPeerCertificate()).length > 0;
    const token = bearerToken(req);
    if (token !== undefined && this.tokenCache) {
      // Keyed by digest: the cache never holds a token itself.
      const key = createHash('sha256').update(token).digest('hex');
      let result: TokenReviewResult;
      try {
        result = await this.tokenCache.get(key, token);
      } catch (err) {
        this.o.log.warn({ err: errorMessage(err) }, 'kubelet API: unable to authenticate the request due to an error');
        throw new AuthError(401, 'Unauthorized');
      }
      if (result.authenticated) return withAuthenticatedGroup(result.user);
      throw new AuthError(401, 'Unauthorized');
    }
    if (this.o.anonymous && !badCertificate && token === undefined && req.headers.authorization === undefined)
      return ANONYMOUS;
    throw new AuthError(401, this.howToAuthenticate());
  }

  /** Throws a 403 AuthError unless one of `attrs` is allowed for `user` (500 when the review fails). */
  async authorize(user: UserInfo, attrs: ResourceAttributes[]): Promise<void> {
    const cache = this.accessCache;
    if (!cache) return; // AlwaysAllow
    if (attrs.length === 0) throw new AuthError(403, 'Authorization error: could not determine attributes for request');
    for (const a of attrs) {
      let decision: AccessDecision;
      try {
        decision = await cache.get(accessKey(user, a), { user, attrs: a });
      } catch (err) {
        this.o.log.warn(
          { err: errorMessage(err), user: user.username, verb: a.verb, subresource: a.subresource },
          'kubelet API authorization error',
        );
        throw new AuthError(
          500,
          `Authorization error (user=${user.username}, verb=${a.verb}, resource=${a.resource}, subresource=${a.subresource})`,
        );
      }
      if (decision.allowed) return;
    }
    const message = forbiddenMessage(user, attrs);
    this.o.log.info(
      { user: user.username, verb: attrs[0]?.verb, subresources: attrs.map((a) => a.subresource) },
      'kubelet API request forbidden',
    );
    throw new AuthError(403, message);
  }

  /**
   * Both steps for a request, with the kubelet's attributes for its method and
   * path; resolves with the user when the request may go on.
   */
  async admit(req: IncomingMessage): Promise<UserInfo> {
    const user = await this.authenticate(req);
    const verb = verbOf(req.method ?? 'GET');
    if (verb === undefined) throw new AuthError(405, `${req.method ?? ''} is not allowed`);
    await this.authorize(user, requestAttributes(pathHead(req.url ?? '/'), verb, this.o.nodeName));
    return user;
  }

  /** Reviews sent so far (tokens, access), for tests and logs. */
  get reviewCounts(): { tokens: number; access: number } {
    return { tokens: this.tokenCache?.reviews ?? 0, access: this.accessCache?.reviews ?? 0 };
  }

  private howToAuthenticate(): string {
    const ways = [
      ...(this.o.clientCA !== undefined ? ['a client certificate signed by the kubelet client CA'] : []),
      ...(this.tokenCache ? ['a bearer token'] : []),
    ];
    if (ways.length === 0)
      return 'Unauthorized: no client CA is configured (--kubelet-client-ca) and bearer tokens are not accepted';
    return `Unauthorized: ${ways.join(' or ')} is required`;
  }
}

/**
 * The guard of a secured operations endpoint: the same authentication, and the
 * kubelet's attributes for the path (so /metrics is nodes/metrics).
 */
export function metricsGuard(
  auth: KubeletAuth,
): (req: IncomingMessage) => Promise<{ code: number; message: string } | undefined> {
  return async (req) => {
    try {
      await auth.admit(req);
      return undefined;
    } catch (err) {
      if (err instanceof AuthError) return { code: err.code, message: err.message };
      throw err;
    }
  };
}
