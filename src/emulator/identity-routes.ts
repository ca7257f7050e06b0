/**
 * Entra ID's endpoints as MSAL and @azure/identity call them: OpenID discovery (v1 and v2
 * paths), the signing keys, and the client-credentials token endpoint (secret in the body
 * or as HTTP Basic).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, type RequestStats, type Send } from './http.js';
import type { ClientCredential, EntraIdentity } from './identity.js';

export interface IdentityRoutesDeps {
  identity: EntraIdentity;
  send: Send;
  stats: () => RequestStats;
  /** The https origin the client called (issuer and endpoints are named after it). */
  originOf: (req: IncomingMessage) => string;
}

/** Answers an identity request; false when the path is not one of them. */
export async function handleIdentity(
  d: IdentityRoutesDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<boolean> {
  const segments = url.pathname.split('/').filter(Boolean);
  const [tenant, ...rest] = segments;
  if (!tenant) return false;
  const tail = rest.join('/');
  const origin = d.originOf(req);
  if (
    req.method === 'GET' &&
    (tail === 'v2.0/.well-known/openid-configuration' || tail === '.well-known/openid-configuration')
  ) {
    if (!d.identity.knowsTenant(tenant)) {
      d.send(res, 400, { error: 'invalid_tenant', error_description: `AADSTS90002: Tenant '${tenant}' not found.` });
      return true;
    }
    d.send(res, 200, d.identity.openIdConfiguration(origin, tenant));
    return true;
  }
  if (req.method === 'GET' && tail === 'discovery/v2.0/keys') {
    d.send(res, 200, d.identity.jwks());
    return true;
  }
  if (req.method === 'POST' && tail === 'oauth2/v2.0/token') {
    const body = (await readBody(req)).toString('utf8');
    let basic: ClientCredential | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [id, secret] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      if (id !== undefined && secret !== undefined)
        basic = { clientId: decodeURIComponent(id), clientSecret: decodeURIComponent(secret) };
    }
    const result = await d.identity.token(origin, tenant, new URLSearchParams(body), basic);
    if (result.status === 200) d.stats().tokensIssued += 1;
    d.send(res, result.status, result.body, { 'Cache-Control': 'no-store', Pragma: 'no-cache' });
    return true;
  }
  return false;
}
