/**
 * How the connector reaches the API server: its address, and for each request the headers and the
 * connection pool that carry the credentials. Two kinds:
 * - `staticAccess`: what `config.ts` read from a kubeconfig or the in-cluster files (certificates,
 *   bearer token, token file), on node:https alone;
 * - `clientNodeAccess`: a @kubernetes/client-node KubeConfig handed in (TLS bootstrap's node identity,
 *   whose certificate rotates in place; the exotic-kubeconfig fallback: exec plugins, auth providers,
 *   proxies), authenticated by client-node itself. Only that path ever has client-node loaded.
 *
 * Connections are kept alive, in named pools: one per client (each of the connector's clients has its
 * own budget, and its own sockets, so events never take the sockets of status writes) and one for
 * watches (a watch holds its socket for minutes; hundreds of reference watches must not take the
 * requests' sockets). When the
 * client certificate changes (a rotated file, a replaced KubeConfig user), new pools are built and the
 * old ones' connections close once idle: requests in flight finish on the old certificate.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { readFileSync } from 'node:fs';

/** A pool's name: 'watch' (unlimited sockets) or any other (MAX_SOCKETS each). */
export type PoolKind = string;

export interface RequestAuth {
  agent: http.Agent;
  /** Authorization and the like; never logged. */
  headers: Record<string, string>;
}

export interface KubeAccess {
  /** The API server's base URL, without a trailing slash. */
  readonly server: string;
  /** The credentials and pool for the next request (cheap: cached; files re-read at most once a minute). */
  auth(kind: PoolKind): Promise<RequestAuth>;
  /** Closes the pools (tests, shutdown). */
  close(): void;
}

/** What a node's kubeconfig or in-cluster configuration says, files resolved (paths are kept to re-read them). */
export interface ClusterCredentials {
  server: string;
  ca?: Buffer;
  skipTLSVerify?: boolean;
  tlsServerName?: string;
  cert?: Buffer;
  key?: Buffer;
  /** Re-read (client certificate rotation on disk) at most every FILE_REREAD_MS. */
  certFile?: string;
  keyFile?: string;
  token?: string;
  /** Re-read at most every FILE_REREAD_MS, as client-go's cached file token source does (the SA token is rotated). */
  tokenFile?: string;
}

/** client-go re-reads a token file once its copy is a minute old; certificate files get the same. */
export const FILE_REREAD_MS = 60_000;

const MAX_SOCKETS = 128;

interface TlsMaterial {
  ca?: Buffer | string | Array<Buffer | string>;
  cert?: Buffer | string | Array<Buffer | string>;
  key?: unknown;
  rejectUnauthorized?: boolean;
  servername?: string;
}

/** The keep-alive pools for one set of TLS material; all replaced when the client certificate changes. */
class Pools {
  private material: TlsMaterial | undefined;
  private readonly pools = new Map<PoolKind, http.Agent>();

  constructor(private readonly secure: boolean) {}

  get(material: TlsMaterial, kind: PoolKind): http.Agent {
    if (!this.material || !sameMaterial(this.material, material)) {
      for (const a of this.pools.values()) retire(a);
      this.pools.clear();
      this.material = material;
    }
    let agent = this.pools.get(kind);
    if (!agent) {
      agent = this.make(material, kind === 'watch' ? Infinity : MAX_SOCKETS);
      this.pools.set(kind, agent);
    }
    return agent;
  }

  close(): void {
    for (const a of this.pools.values()) a.destroy();
    this.pools.clear();
  }

  private make(m: TlsMaterial, maxSockets: number): http.Agent {
    if (!this.secure) return new http.Agent({ keepAlive: true, maxSockets });
    // One SecureContext for the pool: without it, every new connection (each watch opens one)
    // parses the CA, certificate and key again.
    const secureContext = tls.createSecureContext({
      ...(m.ca !== undefined ? { ca: m.ca } : {}),
      ...(m.cert !== undefined ? { cert: m.cert } : {}),
      ...(m.key !== undefined ? { key: m.key as Buffer } : {}),
    });
    return new https.Agent({
      keepAlive: true,
      maxSockets,
      secureContext,
      ...(m.rejectUnauthorized !== undefined ? { rejectUnauthorized: m.rejectUnauthorized } : {}),
      ...(m.servername ? { servername: m.servername } : {}),
    });
  }
}

function sameBytes(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  return (
    sameBytes(a.cert, b.cert) &&
    sameBytes(a.key, b.key) &&
    sameBytes(a.ca, b.ca) &&
    a.rejectUnauthorized === b.rejectUnauthorized &&
    a.servername === b.servername
  );
}

/** Closes an agent's idle connections now and each busy one when its request ends. */
function retire(agent: http.Agent): void {
  agent.on('free', (socket: Socket) => socket.destroy());
  for (const list of Object.values(agent.freeSockets)) for (const socket of list ?? []) socket.destroy();
}

/** A file's content, read again once the copy is older than FILE_REREAD_MS; the last good copy if a read fails. */
class RereadFile {
  private value: Buffer | undefined;
  private at = 0;
  constructor(
    private readonly path: string,
    private readonly now: () => number,
  ) {}
  get(): Buffer {
    if (!this.value || this.now() - this.at >= FILE_REREAD_MS) {
      try {
        this.value = readFileSync(this.path);
        this.at = this.now();
      } catch (err) {
        if (!this.value) throw err;
      }
    }
    return this.value;
  }
}

export function staticAccess(c: ClusterCredentials, now: () => number = Date.now): KubeAccess {
  const server = c.server.replace(/\/+$/, '');
  const pools = new Pools(server.startsWith('https:'));
  const certFile = c.certFile ? new RereadFile(c.certFile, now) : undefined;
  const keyFile = c.keyFile ? new RereadFile(c.keyFile, now) : undefined;
  const tokenFile = c.tokenFile ? new RereadFile(c.tokenFile, now) : undefined;
  return {
    server,
    async auth(kind) {
      const material: TlsMaterial = {
        ...(c.ca ? { ca: c.ca } : {}),
        ...((certFile?.get() ?? c.cert) ? { cert: certFile?.get() ?? c.cert } : {}),
        ...((keyFile?.get() ?? c.key) ? { key: keyFile?.get() ?? c.key } : {}),
        ...(c.skipTLSVerify ? { rejectUnauthorized: false } : {}),
        ...(c.tlsServerName ? { servername: c.tlsServerName } : {}),
      };
      const headers: Record<string, string> = {};
      const token = tokenFile ? tokenFile.get().toString('utf8').trim() : c.token;
      if (token) headers.Authorization = `Bearer ${token}`;
      return { agent: pools.get(material, kind), headers };
    },
    close: () => pools.close(),
  };
}

/**
 * A client-node KubeConfig's credentials, asked of client-node (`applyToHTTPSOptions`: certificates,
 * tokens, exec plugins, auth providers, proxy agents). Its answer is reused for AUTH_REUSE_MS (an exec
 * plugin or token file refreshes far less often, and client-node re-reads files on every call), and at
 * once not when the KubeConfig's user object is replaced (node certificate rotation: loadFromOptions).
 */
export function clientNodeAccess(kc: KubeConfig, now: () => number = Date.now): KubeAccess {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in kubeconfig');
  const server = cluster.server.replace(/\/+$/, '');
  const pools = new Pools(server.startsWith('https:'));
  let cached: { at: number; user: unknown; headers: Record<string, string>; material: TlsMaterial } | undefined;
  // A proxy: client-node's proxy agent per answer (kept while the answer is reused).
  let proxyAgent: http.Agent | undefined;
  return {
    server,
    async auth(kind) {
      const user = kc.getCurrentUser();
      if (!cached || cached.user !== user || now() - cached.at >= AUTH_REUSE_MS) {
        const opts: https.RequestOptions = {};
        await kc.applyToHTTPSOptions(opts);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = String(v);
        const material: TlsMaterial = {
          ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
          ...(opts.cert !== undefined ? { cert: opts.cert } : {}),
          ...(opts.key !== undefined ? { key: opts.key } : {}),
          ...(opts.rejectUnauthorized !== undefined ? { rejectUnauthorized: opts.rejectUnauthorized } : {}),
          ...(opts.servername ? { servername: opts.servername } : {}),
        };
        const given = opts.agent;
        if (cluster.proxyUrl && given instanceof http.Agent) {
          if (proxyAgent && proxyAgent !== given) retire(proxyAgent);
          proxyAgent = given;
        } else if (given instanceof http.Agent) {
          given.destroy();
        }
        cached = { at: now(), user, headers, material };
      }
      const agent = cluster.proxyUrl && proxyAgent ? proxyAgent : pools.get(cached.material, kind);
      return { agent, headers: { ...cached.headers } };
    },
    close() {
      pools.close();
      proxyAgent?.destroy();
    },
  };
}

export const AUTH_REUSE_MS = 1000;

/** A client-node KubeConfig, told apart without loading client-node. */
export function isClientNodeKubeConfig(x: unknown): x is KubeConfig {
  return typeof (x as { getCurrentCluster?: unknown } | undefined)?.getCurrentCluster === 'function';
}
