/**
 * One request to the API server on node:http(s), with the access's credentials and pooled connections:
 * the whole answer read (API answers are small JSON), or a stream (watches). No client library: the
 * connector's hot path is a PATCH and a DELETE per pod, and client-node's generated client costs a walk
 * over every answer's object graph and 0.6 s of start-up to load.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeAccess, PoolKind } from './access.js';

/** An HTTP error answer of the API server; `code` is the status, as client-node's ApiException has it. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly code: number,
    message: string,
    /** The parsed Status (or the raw text when it was not JSON). */
    readonly body: unknown,
    readonly headers: Record<string, string>,
  ) {
    super(`HTTP ${code}: ${message}`);
  }
}

export interface RawRequest {
  method: string;
  /** Path and query, e.g. /api/v1/pods?watch=true */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  pool?: PoolKind;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

function flatHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = String(v);
  return out;
}

interface Origin {
  lib: typeof http | typeof https;
  protocol: string;
  hostname: string;
  port: string;
  /** The server URL's own path (a proxy prefix), without a trailing slash. */
  prefix: string;
}

/** The server URL, parsed once: a URL string per request cost two parses of it (the profile showed them). */
const origins = new Map<string, Origin>();
function originOf(server: string): Origin {
  let o = origins.get(server);
  if (!o) {
    const u = new URL(server);
    const secure = u.protocol === 'https:';
    o = {
      lib: secure ? https : http,
      protocol: u.protocol,
      hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: u.port,
      prefix: u.pathname.replace(/\/+$/, ''),
    };
    origins.set(server, o);
  }
  return o;
}

async function start(access: KubeAccess, req: RawRequest): Promise<http.ClientRequest> {
  const { agent, headers } = await access.auth(req.pool ?? 'request');
  const o = originOf(access.server);
  const all: Record<string, string> = { ...headers, ...req.headers };
  if (req.body !== undefined) all['Content-Length'] = String(Buffer.byteLength(req.body));
  return o.lib.request({
    protocol: o.protocol,
    hostname: o.hostname,
    ...(o.port ? { port: o.port } : {}),
    path: o.prefix + req.path,
    method: req.method,
    headers: all,
    agent,
    ...(req.signal ? { signal: req.signal } : {}),
  });
}

/** The whole answer, any status. Rejects only when no answer came (connection, TLS, abort). */
export async function send(access: KubeAccess, req: RawRequest): Promise<RawResponse> {
  const r = await start(access, req);
  return new Promise<RawResponse>((resolve, reject) => {
    r.on('error', reject);
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: flatHeaders(res.headers),
          body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks),
        }),
      );
    });
    r.end(req.body);
  });
}

/** The answer's head, its body left to read (a watch). A status ≥ 400 is read whole and thrown as KubeApiError. */
export async function openStream(access: KubeAccess, req: RawRequest): Promise<http.IncomingMessage> {
  const r = await start(access, { ...req, pool: req.pool ?? 'watch' });
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    r.on('error', reject);
    r.on('response', resolve);
    r.end(req.body);
  });
  if ((res.statusCode ?? 0) >= 400) {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    throw apiError(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), flatHeaders(res.headers));
  }
  return res;
}

/** The parsed body (or its text when it is not JSON). */
export function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON (an error page): kept as text
  }
}

export function apiError(status: number, text: string, headers: Record<string, string>): KubeApiError {
  const parsed = parseBody(text);
  const message = (parsed as { message?: unknown } | undefined)?.message;
  return new KubeApiError(status, typeof message === 'string' ? message : text.slice(0, 300), parsed, headers);
}
