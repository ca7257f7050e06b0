/**
 * Registry authentication as the distribution token spec has it: a 401 carries a
 * `WWW-Authenticate` challenge; for `Bearer` the client asks the challenge's realm for a token
 * (anonymously, or with the pull secret's username and password as Basic auth) and repeats the
 * request with it; for `Basic` it repeats the request with the credentials themselves.
 */

export interface Challenge {
  /** Lowercased auth scheme: 'bearer', 'basic', … */
  scheme: string;
  /** Parameters with lowercased names (realm, service, scope, error). */
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header value (RFC 9110 §11.6.1): one or more challenges, each a
 * scheme and comma-separated `name=value` parameters, values tokens or quoted strings.
 * Hand-written because the npm parsers for this header are unmaintained, and the grammar is
 * a screenful; quoted strings may hold commas and `\"`.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const n = header.length;
  let i = 0;
  const tchar = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
  const skip = (chars: string) => {
    while (i < n && chars.includes(header[i] ?? '')) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && tchar.test(header[i] ?? '')) i++;
    return header.slice(start, i);
  };
  // Strictly a token; leniently anything up to a comma or space (some servers leave URLs unquoted).
  const bare = (): string => {
    const start = i;
    while (i < n && !' \t,'.includes(header[i] ?? '')) i++;
    return header.slice(start, i);
  };
  const quoted = (): string => {
    let v = '';
    i++; // the opening quote
    while (i < n && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < n) i++;
      v += header[i];
      i++;
    }
    i++; // the closing quote
    return v;
  };
  let current: Challenge | undefined;
  while (i < n) {
    skip(' \t,');
    if (i >= n) break;
    const word = token();
    if (word === '') {
      i++; // a character outside the grammar: step over it
      continue;
    }
    skip(' \t');
    if (header[i] === '=') {
      i++;
      skip(' \t');
      const value = header[i] === '"' ? quoted() : bare();
      // A parameter before any scheme belongs to nothing.
      if (current) current.params[word.toLowerCase()] = value;
      continue;
    }
    current = { scheme: word.toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}

export interface BasicCredential {
  username: string;
  password: string;
}

export function basicAuthorization(c: BasicCredential): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}

/** What a token endpoint answers (`token`, or OAuth2's `access_token`), per the token spec. */
interface TokenResponse {
  token?: unknown;
  access_token?: unknown;
  expires_in?: unknown;
}

export interface BearerToken {
  token: string;
  /** When to stop using it (ms since the epoch). */
  expiresAt: number;
}

/** The spec's default token life when the endpoint names none. */
const DEFAULT_TOKEN_SECONDS = 60;

export class RegistryAuthError extends Error {
  override readonly name = 'RegistryAuthError';
}

/**
 * Asks a Bearer challenge's realm for a pull token for `scope` (e.g. `repository:library/nginx:pull`).
 * The realm must be HTTPS unless it is on loopback, like the registry itself, so credentials
 * never travel in plain text to another machine.
 */
export async function fetchBearerToken(
  challenge: Challenge,
  scope: string,
  credential: BasicCredential | undefined,
  opts: { fetch: typeof fetch; timeoutMs: number; allowHttp: (url: URL) => boolean },
): Promise<BearerToken> {
  const realm = challenge.params.realm;
  if (!realm) throw new RegistryAuthError('the registry asked for a Bearer token but named no realm');
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new RegistryAuthError(`the registry's token realm "${realm}" is not a URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && opts.allowHttp(url))) {
    throw new RegistryAuthError(`the registry's token realm ${url.origin} is not HTTPS`);
  }
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  url.searchParams.set('scope', challenge.params.scope ?? scope);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (credential) headers.authorization = basicAuthorization(credential);
  let res: Response;
  try {
    res = await opts.fetch(url, { headers, signal: AbortSignal.timeout(opts.timeoutMs) });
  } catch (e) {
    throw new RegistryAuthError(`cannot reach the token service ${url.origin}: ${causeText(e)}`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    const who = credential ? `with the pull secret's credentials for user ${credential.username}` : 'anonymously';
    throw new RegistryAuthError(`the token service ${url.origin} refused a pull token ${who} (HTTP ${res.status})`);
  }
  let body: TokenResponse;
  try {
    body = (await res.json()) as TokenResponse;
  } catch {
    throw new RegistryAuthError(`the token service ${url.origin} answered without JSON`);
  }
  const token =
    typeof body.token === 'string' && body.token
      ? body.token
      : typeof body.access_token === 'string'
        ? body.access_token
        : '';
  if (!token) throw new RegistryAuthError(`the token service ${url.origin} answered without a token`);
  const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
  // A margin, so a token never expires between the check and the registry reading it.
  return { token, expiresAt: Date.now() + Math.max(1, seconds - 10) * 1000 };
}

/** The reason of a failed fetch: undici hides the socket error (ECONNREFUSED, …) in `cause`. */
export function causeText(e: unknown): string {
  if (e instanceof Error) {
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
    const cause = (e as { cause?: unknown }).cause;
    if (cause instanceof Error) return cause.message;
    return e.message;
  }
  return String(e);
}
