/**
 * An image's ENTRYPOINT and CMD, read from its registry as a container runtime reads them:
 * the OCI distribution API (the manifest, or an index and then the platform's manifest, then
 * the config blob), with anonymous token auth or the pod's pull-secret credentials.
 *
 * ACI has only `command`, which replaces both; a pod that sets `args` alone means
 * `ENTRYPOINT + args`, so the connector must know the ENTRYPOINT (image-config-pod.ts).
 *
 * Caches: a config by its digest and a manifest's config digest by the manifest's digest,
 * for as long as the process lives (content-addressed, never stale); a tag's answer for a
 * short time only, since a tag can move.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  basicAuthorization,
  causeText,
  fetchBearerToken,
  parseChallenges,
  RegistryAuthError,
  type BasicCredential,
  type BearerToken,
} from './image-config-auth.js';
import {
  isLoopbackRegistry,
  parseImageReference,
  registryNamesMatch,
  type ImageReference,
} from './image-config-reference.js';

export interface Platform {
  os: string;
  architecture: string;
}

export interface ImageConfig {
  /** The image's ENTRYPOINT; empty when it has none. */
  entrypoint: string[];
  /** The image's CMD; empty when it has none. */
  cmd: string[];
  /** Digest of the platform manifest the config came from. */
  manifestDigest: string;
  configDigest: string;
}

export interface RegistryCredential extends BasicCredential {
  server: string;
}

/** Something that can resolve an image's config (the resolver below, or a test double in unit tests). */
export interface ImageConfigSource {
  resolve(
    image: string,
    opts: { credentials: readonly RegistryCredential[]; platform: Platform },
  ): Promise<ImageConfig>;
}

/** Why an image's config could not be read; `kind` tells what a user should look at. */
export class ImageConfigError extends Error {
  override readonly name = 'ImageConfigError';
  constructor(
    readonly kind: 'unreachable' | 'unauthorized' | 'not-found' | 'no-platform' | 'invalid',
    message: string,
  ) {
    super(message);
  }
}

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;
const INDEX_TYPES: readonly string[] = [MEDIA.ociIndex, MEDIA.dockerList];
const MANIFEST_TYPES: readonly string[] = [MEDIA.ociManifest, MEDIA.dockerManifest];
const ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

/** The spec's limit for manifests (registries refuse larger ones); configs get more room. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export interface ImageConfigResolverOptions {
  /** Defaults to Node's fetch (undici). */
  fetch?: typeof fetch;
  /** How long a tag's answer is reused (ms). Default 60 s. */
  tagTtlMs?: number;
  /** Timeout of one HTTP request (ms). Default 15 s. */
  requestTimeoutMs?: number;
}

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
  platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
}

interface ManifestDoc {
  mediaType?: unknown;
  manifests?: Descriptor[];
  config?: Descriptor;
}

interface ConfigDoc {
  config?: { Entrypoint?: unknown; Cmd?: unknown } | null;
}

function stringArray(v: unknown): string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : [];
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Reads a body up to `max` bytes; larger ones are refused rather than held in memory. */
async function readCapped(res: Response, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) {
    await res.body?.cancel();
    throw new ImageConfigError('invalid', `the registry sent a ${what} of ${declared} bytes (more than ${max})`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      size += (chunk as Uint8Array).byteLength;
      if (size > max) throw new ImageConfigError('invalid', `the registry sent a ${what} of more than ${max} bytes`);
      chunks.push(Buffer.from(chunk as Uint8Array));
    }
  }
  return Buffer.concat(chunks);
}

export class ImageConfigResolver implements ImageConfigSource {
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  /** config digest → config; immutable. */
  private readonly configs = new LRUCache<string, { entrypoint: string[]; cmd: string[] }>({ max: 1000 });
  /** repository@manifest digest + platform → the platform manifest's digest and config digest; immutable. */
  private readonly manifests = new LRUCache<string, { manifestDigest: string; configDigest: string }>({ max: 2000 });
  /** A tag (with the credential that read it) + platform → the answer, for a short time. */
  private readonly tags: LRUCache<string, ImageConfig>;
  /** Registry tokens by realm, service, scope and user. */
  private readonly tokens = new LRUCache<string, BearerToken>({ max: 500 });
  /** Concurrent asks for one key share one resolution (a Deployment's pods arrive together). */
  private readonly inflight = new Map<string, Promise<ImageConfig>>();

  constructor(opts: ImageConfigResolverOptions = {}) {
    this.fetch = opts.fetch ?? fetch;
    this.timeoutMs = opts.requestTimeoutMs ?? 15_000;
    this.tags = new LRUCache<string, ImageConfig>({ max: 1000, ttl: opts.tagTtlMs ?? 60_000 });
  }

  async resolve(
    image: string,
    opts: { credentials: readonly RegistryCredential[]; platform: Platform },
  ): Promise<ImageConfig> {
    let ref: ImageReference;
    try {
      ref = parseImageReference(image);
    } catch (e) {
      throw new ImageConfigError('invalid', e instanceof Error ? e.message : String(e));
    }
    const credential = opts.credentials.find((c) => registryNamesMatch(c.server, ref.registry));
    const platform = `${opts.platform.os}/${opts.platform.architecture}`;
    const key = `${ref.registry}/${ref.repository}@${ref.reference} ${platform} ${credential ? `${credential.server}:${credential.username}` : '-'}`;
    if (!ref.pinned) {
      const hit = this.tags.get(key);
      if (hit) return hit;
    }
    const running = this.inflight.get(key);
    if (running) return running;
    const p = this.lookup(ref, credential, opts.platform).finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    const result = await p;
    if (!ref.pinned) this.tags.set(key, result);
    return result;
  }

  private async lookup(
    ref: ImageReference,
    credential: BasicCredential | undefined,
    platform: Platform,
  ): Promise<ImageConfig> {
    const client = new RepositoryClient(ref, credential, this.fetch, this.timeoutMs, this.tokens);
    const platformKey = `${platform.os}/${platform.architecture}`;
    const pinnedKey = `${ref.registry}/${ref.repository}@${ref.reference} ${platformKey}`;
    let found = ref.pinned ? this.manifests.get(pinnedKey) : undefined;
    if (!found) {
      found = await this.platformManifest(client, ref.reference, platform, 0);
      if (ref.pinned) this.manifests.set(pinnedKey, found);
    }
    let config = this.configs.get(found.configDigest);
    if (!config) {
      const bytes = await client.get(`blobs/${found.configDigest}`, '*/*', MAX_CONFIG_BYTES, 'config blob');
      if (sha256(bytes.body) !== found.configDigest) {
        throw new ImageConfigError(
          'invalid',
          `the config blob of ${ref.registry}/${ref.repository} does not match its digest ${found.configDigest}`,
        );
      }
      let doc: ConfigDoc;
      try {
        doc = JSON.parse(bytes.body.toString('utf8')) as ConfigDoc;
      } catch {
        throw new ImageConfigError('invalid', `the config blob ${found.configDigest} is not JSON`);
      }
      config = { entrypoint: stringArray(doc.config?.Entrypoint), cmd: stringArray(doc.config?.Cmd) };
      this.configs.set(found.configDigest, config);
    }
    return { ...config, manifestDigest: found.manifestDigest, configDigest: found.configDigest };
  }

  /** The manifest for `platform` behind `reference` (a tag or digest), through an index if there is one. */
  private async platformManifest(
    client: RepositoryClient,
    reference: string,
    platform: Platform,
    depth: number,
  ): Promise<{ manifestDigest: string; configDigest: string }> {
    const res = await client.get(`manifests/${reference}`, ACCEPT, MAX_MANIFEST_BYTES, 'manifest');
    const digest = sha256(res.body);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new ImageConfigError('invalid', `the manifest ${reference} of ${client.name} does not match its digest`);
    }
    let doc: ManifestDoc;
    try {
      doc = JSON.parse(res.body.toString('utf8')) as ManifestDoc;
    } catch {
      throw new ImageConfigError('invalid', `the manifest ${reference} of ${client.name} is not JSON`);
    }
    const mediaType = (typeof doc.mediaType === 'string' ? doc.mediaType : '') || res.contentType;
    const isIndex =
      INDEX_TYPES.includes(mediaType) || (!MANIFEST_TYPES.includes(mediaType) && Array.isArray(doc.manifests));
    if (isIndex) {
      if (depth > 0) throw new ImageConfigError('invalid', `${client.name}: an index inside an index is not supported`);
      const chosen = choosePlatform(doc.manifests ?? [], platform);
      if (!chosen) {
        const offered = (doc.manifests ?? []).map((m) => platformName(m)).filter((p) => p !== 'unknown/unknown');
        throw new ImageConfigError(
          'no-platform',
          `${client.name}:${reference} has no image for ${platform.os}/${platform.architecture} (it offers ${offered.length ? offered.join(', ') : 'none'})`,
        );
      }
      return this.platformManifest(client, chosen, platform, depth + 1);
    }
    if (!MANIFEST_TYPES.includes(mediaType) && !doc.config) {
      throw new ImageConfigError(
        'invalid',
        `${client.name}:${reference} has a manifest of type "${mediaType || 'unknown'}", which is not an OCI or Docker v2 image`,
      );
    }
    const configDigest = typeof doc.config?.digest === 'string' ? doc.config.digest : '';
    if (!/^sha256:[a-f0-9]{64}$/.test(configDigest))
      throw new ImageConfigError('invalid', `${client.name}:${reference}: the manifest names no sha256 config digest`);
    return { manifestDigest: digest, configDigest };
  }
}

function platformName(d: Descriptor): string {
  const p = d.platform ?? {};
  const os = typeof p.os === 'string' ? p.os : 'unknown';
  const arch = typeof p.architecture === 'string' ? p.architecture : 'unknown';
  return typeof p.variant === 'string' && p.variant ? `${os}/${arch}/${p.variant}` : `${os}/${arch}`;
}

/**
 * The digest of the index entry for `platform`: os and architecture must match; among several
 * (amd64 variants), one without a variant wins, as containerd's default matcher prefers.
 */
export function choosePlatform(manifests: readonly Descriptor[], platform: Platform): string | undefined {
  const candidates = manifests.filter(
    (m) =>
      typeof m.digest === 'string' &&
      m.platform?.os === platform.os &&
      m.platform.architecture === platform.architecture,
  );
  const plain = candidates.find((m) => !m.platform?.variant);
  const pick = plain ?? candidates[0];
  return typeof pick?.digest === 'string' ? pick.digest : undefined;
}

/** GETs under one repository's /v2/<name>/ with the auth the registry asks for. */
class RepositoryClient {
  readonly name: string;
  private readonly base: string;
  private authorization: string | undefined;

  constructor(
    private readonly ref: ImageReference,
    private readonly credential: BasicCredential | undefined,
    private readonly fetchFn: typeof fetch,
    private readonly timeoutMs: number,
    private readonly tokens: LRUCache<string, BearerToken>,
  ) {
    this.name = `${ref.registry}/${ref.repository}`;
    const scheme = isLoopbackRegistry(ref.apiHost) ? 'http' : 'https';
    this.base = `${scheme}://${ref.apiHost}/v2/${ref.repository}/`;
  }

  async get(path: string, accept: string, max: number, what: string): Promise<{ body: Buffer; contentType: string }> {
    let res = await this.send(path, accept);
    if (res.status === 401) {
      const header = res.headers.get('www-authenticate') ?? '';
      await res.body?.cancel();
      this.authorization = await this.answer(header);
      res = await this.send(path, accept);
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        throw new ImageConfigError('unauthorized', this.refused(res.status));
      }
    }
    if (res.status === 403) {
      await res.body?.cancel();
      throw new ImageConfigError('unauthorized', this.refused(res.status));
    }
    if (res.status === 404) {
      await res.body?.cancel();
      throw new ImageConfigError(
        'not-found',
        `${this.name}: ${what} ${path.replace(/^\w+\//, '')} not found (HTTP 404)`,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new ImageConfigError(
        'unreachable',
        `${this.name}: the registry answered HTTP ${res.status} for the ${what}`,
      );
    }
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    return { body: await readCapped(res, max, what), contentType };
  }

  private refused(status: number): string {
    return this.credential
      ? `${this.ref.registry} refused the pull secret's credentials (user ${this.credential.username}) for ${this.ref.repository} (HTTP ${status})`
      : `${this.ref.registry} requires credentials for ${this.ref.repository} (HTTP ${status}); add an imagePullSecret for ${this.ref.registry}`;
  }

  private async send(path: string, accept: string): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (this.authorization) headers.authorization = this.authorization;
    try {
      // undici drops the authorization header when a blob redirect leaves the registry's origin.
      return await this.fetchFn(new URL(path, this.base), {
        headers,
        redirect: 'follow',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw new ImageConfigError('unreachable', `cannot reach registry ${this.ref.registry}: ${causeText(e)}`);
    }
  }

  /** The Authorization value that answers a challenge. */
  private async answer(header: string): Promise<string> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      const scope = `repository:${this.ref.repository}:pull`;
      const key = `${bearer.params.realm ?? ''} ${bearer.params.service ?? ''} ${bearer.params.scope ?? scope} ${this.credential?.username ?? '-'}`;
      let token = this.tokens.get(key);
      if (!token || token.expiresAt <= Date.now()) {
        try {
          token = await fetchBearerToken(bearer, scope, this.credential, {
            fetch: this.fetchFn,
            timeoutMs: this.timeoutMs,
            allowHttp: (u) => isLoopbackRegistry(u.host),
          });
        } catch (e) {
          throw new ImageConfigError(
            e instanceof RegistryAuthError && /cannot reach/.test(e.message) ? 'unreachable' : 'unauthorized',
            `${this.name}: ${(e as Error).message}`,
          );
        }
        this.tokens.set(key, token, { ttl: Math.max(1, token.expiresAt - Date.now()) });
      }
      return `Bearer ${token.token}`;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      if (!this.credential) throw new ImageConfigError('unauthorized', this.refused(401));
      return basicAuthorization(this.credential);
    }
    throw new ImageConfigError(
      'unauthorized',
      `${this.name}: the registry answered 401 with no challenge this client knows (${header || 'none'})`,
    );
  }
}
