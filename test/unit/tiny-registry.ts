/**
 * A tiny in-process registry for the unit tests of image-config resolution: just the GETs
 * of the distribution API that the resolver makes (manifests, blobs) and a token endpoint,
 * with the auth modes registries use. Logic tests only: the e2e test runs the real
 * distribution registry (devcluster/registry).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

export const digestOf = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Stored {
  body: Buffer;
  mediaType: string;
}

export interface TinyRegistryOptions {
  /** none: open; bearer: a token service (anonymous tokens, or Basic-checked for private repos); basic: Basic on every request. */
  auth?: 'none' | 'bearer' | 'basic';
  /** Repositories that need these credentials (bearer and basic modes). */
  privateRepos?: Record<string, { username: string; password: string }>;
}

export class TinyRegistry {
  readonly requests: string[] = [];
  private readonly manifests = new Map<string, Stored>();
  private readonly blobs = new Map<string, Buffer>();
  private server: Server | undefined;
  private issued = 0;
  host = '';

  constructor(private readonly opts: TinyRegistryOptions = {}) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  /** Stores a config blob and an image manifest for it; returns the manifest digest. */
  addImage(
    repo: string,
    tag: string | undefined,
    config: { Entrypoint?: string[] | null; Cmd?: string[] | null },
    mediaType = OCI_MANIFEST,
  ): string {
    const configBody = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config }));
    const configDigest = digestOf(configBody);
    this.blobs.set(`${repo}@${configDigest}`, configBody);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: {
          mediaType:
            mediaType === OCI_MANIFEST
              ? 'application/vnd.oci.image.config.v1+json'
              : 'application/vnd.docker.container.image.v1+json',
          digest: configDigest,
          size: configBody.length,
        },
        layers: [],
      }),
    );
    return this.addManifest(repo, tag, manifest, mediaType);
  }

  /** Stores an index over existing manifests; returns its digest. */
  addIndex(
    repo: string,
    tag: string,
    entries: { digest: string; os: string; architecture: string; variant?: string }[],
    mediaType = OCI_INDEX,
  ): string {
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        manifests: entries.map((e) => ({
          mediaType: mediaType === OCI_INDEX ? OCI_MANIFEST : DOCKER_MANIFEST,
          digest: e.digest,
          size: 1,
          platform: { os: e.os, architecture: e.architecture, ...(e.variant ? { variant: e.variant } : {}) },
        })),
      }),
    );
    return this.addManifest(repo, tag, body, mediaType);
  }

  addManifest(repo: string, tag: string | undefined, body: Buffer, mediaType: string): string {
    const digest = digestOf(body);
    this.manifests.set(`${repo}@${digest}`, { body, mediaType });
    if (tag) this.manifests.set(`${repo}:${tag}`, { body, mediaType });
    return digest;
  }

  /** Replaces a stored blob's bytes (to prove digests are checked). */
  corruptBlob(repo: string, digest: string): void {
    this.blobs.set(`${repo}@${digest}`, Buffer.from('{"config":{"Entrypoint":["/evil"]}}'));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    this.requests.push(`${req.method} ${url.pathname}`);
    if (url.pathname === '/token') return this.token(req, url, res);
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const [, repo = '', kind, ref = ''] = m;
    if (!this.authorized(req, repo)) {
      const challenge =
        this.opts.auth === 'basic'
          ? 'Basic realm="tiny"'
          : `Bearer realm="http://${this.host}/token",service="tiny-registry",scope="repository:${repo}:pull"`;
      res
        .writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (kind === 'manifests') {
      const found = this.manifests.get(ref.startsWith('sha256:') ? `${repo}@${ref}` : `${repo}:${ref}`);
      if (!found) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return;
      }
      const accept = req.headers.accept ?? '';
      if (!accept.includes(found.mediaType)) {
        res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not in Accept"}]}');
        return;
      }
      res
        .writeHead(200, { 'content-type': found.mediaType, 'docker-content-digest': digestOf(found.body) })
        .end(found.body);
      return;
    }
    const blob = this.blobs.get(`${repo}@${ref}`);
    if (!blob) {
      res.writeHead(404).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(blob);
  }

  private basicOk(req: IncomingMessage, want: { username: string; password: string }): boolean {
    const h = req.headers.authorization ?? '';
    return h === `Basic ${Buffer.from(`${want.username}:${want.password}`).toString('base64')}`;
  }

  private authorized(req: IncomingMessage, repo: string): boolean {
    const auth = this.opts.auth ?? 'none';
    if (auth === 'none') return true;
    const priv = this.opts.privateRepos?.[repo];
    if (auth === 'basic') return priv ? this.basicOk(req, priv) : true;
    return (req.headers.authorization ?? '') === `Bearer token-for:${repo}`;
  }

  /** Tokens name the repository they grant; a private repository's need its Basic credentials. */
  private token(req: IncomingMessage, url: URL, res: ServerResponse): void {
    const scope = url.searchParams.get('scope') ?? '';
    const repo = /^repository:(.+):pull$/.exec(scope)?.[1] ?? '';
    const priv = this.opts.privateRepos?.[repo];
    if (url.searchParams.get('service') !== 'tiny-registry' || (priv && !this.basicOk(req, priv))) {
      res.writeHead(401).end();
      return;
    }
    this.issued++;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: `token-for:${repo}`, expires_in: 300 }));
  }

  get tokensIssued(): number {
    return this.issued;
  }
}
