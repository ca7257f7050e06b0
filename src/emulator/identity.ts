/**
 * A minimal Microsoft Entra ID: the OpenID discovery documents MSAL fetches for a known
 * authority (`/{tenant}/v2.0/.well-known/openid-configuration`), a JWKS, and the v2 token
 * endpoint for the client-credentials grant. ARM handlers verify the bearer tokens it issues.
 *
 * MSAL's instance discovery goes to login.microsoftonline.com, so clients must set
 * `disableInstanceDiscovery: true` (which makes the authority "known"); see README.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK, type CryptoKey } from 'jose';
import { ArmError } from './errors.js';

export interface ClientCredential {
  clientId: string;
  clientSecret: string;
}

export interface IdentityOptions {
  tenantId: string;
  clients: ClientCredential[];
  /** Token lifetime in seconds. */
  tokenLifetimeSeconds: number;
}

export interface Principal {
  tenantId: string;
  clientId: string;
  objectId: string;
}

interface KeyMaterial {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

const ALG = 'RS256';

/** Keys live in the state folder so tokens survive an emulator restart (clients cache them for an hour). */
async function loadOrCreateKey(stateDir: string): Promise<KeyMaterial> {
  const file = path.join(stateDir, 'token-signing-key.json');
  if (existsSync(file)) {
    const saved = JSON.parse(await readFile(file, 'utf8')) as { kid: string; privateJwk: JWK; publicJwk: JWK };
    const privateKey = (await importJWK(saved.privateJwk, ALG)) as CryptoKey;
    return { kid: saved.kid, privateKey, publicJwk: saved.publicJwk };
  }
  const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
  const kid = randomUUID();
  const privateJwk = await exportJWK(privateKey);
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' };
  await writeFile(file, JSON.stringify({ kid, privateJwk, publicJwk }), { mode: 0o600 });
  return { kid, privateKey, publicJwk };
}

const safeEqual = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export interface TokenResponse {
  status: number;
  body: Record<string, unknown>;
}

export class EntraIdentity {
  private constructor(
    private readonly options: IdentityOptions,
    private readonly key: KeyMaterial,
    private readonly publicKey: CryptoKey,
  ) {}

  static async create(options: IdentityOptions, stateDir: string): Promise<EntraIdentity> {
    const key = await loadOrCreateKey(stateDir);
    const publicKey = (await importJWK(key.publicJwk, ALG)) as CryptoKey;
    return new EntraIdentity(options, key, publicKey);
  }

  get tenantId(): string {
    return this.options.tenantId;
  }

  /** True when `tenant` names this emulator's tenant (by id; Entra also accepts domain names, we do not). */
  knowsTenant(tenant: string): boolean {
    return tenant.toLowerCase() === this.options.tenantId.toLowerCase();
  }

  issuer(origin: string): string {
    return `${origin}/${this.options.tenantId}/v2.0`;
  }

  openIdConfiguration(origin: string, tenant: string): Record<string, unknown> {
    const base = `${origin}/${tenant}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: [ALG],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: this.issuer(origin),
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${origin}/oidc/userinfo`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid', 'oid', 'appid'],
      tenant_region_scope: 'NA',
      cloud_instance_name: 'emulator.local',
      cloud_graph_host_name: 'graph.emulator.local',
      msgraph_host: 'graph.emulator.local',
    };
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.key.publicJwk] };
  }

  private oauthError(status: number, error: string, aadsts: number, description: string): TokenResponse {
    return {
      status,
      body: {
        error,
        error_description: `AADSTS${aadsts}: ${description} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
        error_codes: [aadsts],
        timestamp: new Date().toISOString(),
        trace_id: randomUUID(),
        correlation_id: randomUUID(),
      },
    };
  }

  /** The v2 token endpoint, client-credentials grant only (what ClientSecretCredential uses). */
  async token(
    origin: string,
    tenant: string,
    form: URLSearchParams,
    basicAuth?: ClientCredential,
  ): Promise<TokenResponse> {
    if (!this.knowsTenant(tenant)) {
      return this.oauthError(400, 'invalid_request', 90002, `Tenant '${tenant}' not found.`);
    }
    const grant = form.get('grant_type');
    if (grant !== 'client_credentials') {
      return this.oauthError(
        400,
        'unsupported_grant_type',
        70003,
        `The app requested an unsupported grant type '${grant ?? ''}'.`,
      );
    }
    const clientId = form.get('client_id') ?? basicAuth?.clientId;
    const secret = form.get('client_secret') ?? basicAuth?.clientSecret;
    if (!clientId)
      return this.oauthError(
        400,
        'invalid_request',
        900144,
        "The request body must contain the parameter: 'client_id'.",
      );
    const client = this.options.clients.find((c) => c.clientId === clientId);
    if (!client) {
      return this.oauthError(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory.`,
      );
    }
    if (secret === null || secret === undefined) {
      return this.oauthError(
        401,
        'invalid_client',
        7000218,
        "The request body must contain the parameter: 'client_assertion' or 'client_secret'.",
      );
    }
    if (!safeEqual(secret, client.clientSecret)) {
      return this.oauthError(401, 'invalid_client', 7000215, 'Invalid client secret provided.');
    }
    const scope = form.get('scope') ?? '';
    const resource = scope
      .split(' ')
      .find((s) => s.endsWith('/.default'))
      ?.slice(0, -'/.default'.length);
    if (!resource) {
      return this.oauthError(
        400,
        'invalid_scope',
        1002012,
        'The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.',
      );
    }
    const lifetime = this.options.tokenLifetimeSeconds;
    const accessToken = await new SignJWT({
      tid: this.options.tenantId,
      appid: clientId,
      oid: clientId,
      idtyp: 'app',
      ver: '2.0',
    })
      .setProtectedHeader({ alg: ALG, typ: 'JWT', kid: this.key.kid })
      .setIssuer(this.issuer(origin))
      .setSubject(clientId)
      .setAudience(resource)
      .setIssuedAt()
      .setNotBefore(Math.floor(Date.now() / 1000) - 300)
      .setExpirationTime(Math.floor(Date.now() / 1000) + lifetime)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
    return {
      status: 200,
      body: { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken },
    };
  }

  /** Checks an ARM request's Authorization header; throws ARM's 401 errors. */
  async verifyBearer(authorization: string | undefined): Promise<Principal> {
    if (!authorization) {
      throw new ArmError(401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.");
    }
    const match = /^Bearer\s+(\S+)$/i.exec(authorization);
    if (!match?.[1]) {
      throw new ArmError(
        401,
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
      );
    }
    try {
      // The issuer's origin is whatever address the client used; the signature and tenant pin it to us.
      const { payload } = await jwtVerify(match[1], this.publicKey, { algorithms: [ALG] });
      if (payload.tid !== this.options.tenantId) throw new Error('wrong tenant');
      const clientId = typeof payload.appid === 'string' ? payload.appid : String(payload.sub);
      return {
        tenantId: this.options.tenantId,
        clientId,
        objectId: typeof payload.oid === 'string' ? payload.oid : clientId,
      };
    } catch (err) {
      if (err instanceof Error && 'code' in err && err.code === 'ERR_JWT_EXPIRED') {
        throw new ArmError(
          401,
          'ExpiredAuthenticationToken',
          'The access token expiry UTC time is earlier than current UTC time.',
        );
      }
      throw new ArmError(401, 'InvalidAuthenticationToken', 'The access token is invalid.');
    }
  }
}
