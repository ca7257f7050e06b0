/**
 * ServiceAccount tokens for the node's pods, as a kubelet's token manager gets
 * them: a TokenRequest for the pod's ServiceAccount, bound to the pod
 * (`boundObjectRef` kind Pod, name, uid; the only kind NodeRestriction lets a
 * node request), with the audience and expiry the projected volume asks for.
 *
 * A token is reused until 80 % of its life has passed (the kubelet's rule), so
 * a pod created or re-created later never starts with a token about to expire.
 * Life is measured by the JWT's own `exp` when it carries one: for the
 * kube-api-access volume (3607 s, the API audience) the API server extends a
 * pod-bound token to a year (`--service-account-extend-token-expiration`) and
 * reports only the 3607 s in `status.expirationTimestamp`.
 *
 * Refreshing the token inside a running pod is the backend's business: a
 * backend that cannot replace a running pod's files keeps the token it started
 * with. `dueForRefresh` tells the core when a handed-out token passes 80 %, so
 * it can say so on the pod (see PodController).
 */
import type { CoreApi } from './kube/apis.js';
import type { V1Pod } from '@kubernetes/client-node';

/** The share of a token's life after which it is replaced (the kubelet refreshes at 80 %). */
export const REFRESH_AT = 0.8;

export interface IssuedToken {
  token: string;
  audience: string | undefined;
  issuedAt: number;
  /** When the token stops working (JWT exp, else status.expirationTimestamp), ms since epoch. */
  expiresAt: number;
  /** issuedAt + 80 % of its life. */
  refreshAt: number;
}

/** The `exp` claim of a JWT, in ms, without verifying it (the API server just issued it to us). */
export function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class ServiceAccountTokens {
  /** Per pod uid, per `audience|expirationSeconds`. */
  private readonly byPod = new Map<string, Map<string, IssuedToken>>();

  constructor(
    private readonly core: Pick<CoreApi, 'createNamespacedServiceAccountToken'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** A token for the pod's ServiceAccount, bound to the pod; a cached one while it is before 80 % of its life. */
  async get(pod: V1Pod, audience: string | undefined, expirationSeconds: number): Promise<string | undefined> {
    const uid = pod.metadata?.uid ?? '';
    const key = `${audience ?? ''}|${expirationSeconds}`;
    const cached = this.byPod.get(uid)?.get(key);
    if (cached && this.now() < cached.refreshAt) return cached.token;
    const res = await this.core.createNamespacedServiceAccountToken({
      name: pod.spec?.serviceAccountName ?? 'default',
      namespace: pod.metadata?.namespace ?? '',
      body: {
        spec: {
          audiences: audience ? [audience] : [],
          expirationSeconds,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid },
        },
      },
    });
    const token = res.status?.token;
    if (!token) return undefined;
    const issuedAt = this.now();
    const stated = res.status?.expirationTimestamp
      ? new Date(res.status.expirationTimestamp).getTime()
      : issuedAt + expirationSeconds * 1000;
    const expiresAt = jwtExpiry(token) ?? stated;
    const issued: IssuedToken = {
      token,
      audience,
      issuedAt,
      expiresAt,
      refreshAt: issuedAt + REFRESH_AT * (expiresAt - issuedAt),
    };
    let m = this.byPod.get(uid);
    if (!m) {
      m = new Map();
      this.byPod.set(uid, m);
    }
    m.set(key, issued);
    return token;
  }

  /** The tokens last issued for the pod (for the refresh deadline). */
  issued(uid: string): IssuedToken[] {
    return [...(this.byPod.get(uid)?.values() ?? [])];
  }

  /** The pod is gone: its tokens are forgotten (they die with the pod, being bound to it). */
  release(uid: string): void {
    this.byPod.delete(uid);
  }
}
