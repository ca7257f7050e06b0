/**
 * The kubelet API's URL shapes, as the API server builds them for
 * `kubectl logs`, `exec` and `attach`, parsed into typed requests.
 * Bad input becomes a {@link BadRequestError} naming the parameter.
 */
import type { LogOptions } from '../core/provider.js';

export class BadRequestError extends Error {
  override readonly name = 'BadRequestError';
}

export interface ContainerTarget {
  namespace: string;
  pod: string;
  /** Present in the `/exec/{ns}/{pod}/{uid}/{container}` form. */
  uid?: string;
  container: string;
}

export type Route =
  | { kind: 'healthz' }
  | { kind: 'pods' }
  | { kind: 'runningPods' }
  | { kind: 'spec' }
  | { kind: 'statsSummary' }
  | { kind: 'metricsResource' }
  | { kind: 'portForward'; target: PodTarget; ports: number[] }
  | { kind: 'containerLogs'; target: ContainerTarget; opts: LogOptions }
  | { kind: 'exec'; target: ContainerTarget; command: string[]; stream: StreamFlags }
  | { kind: 'attach'; target: ContainerTarget; stream: StreamFlags };

/** A pod, as `/portForward/{ns}/{pod}[/{uid}]` names it. */
export interface PodTarget {
  namespace: string;
  pod: string;
  uid?: string;
}

/** Which standard streams the caller asked for (query input/output/error/tty). */
export interface StreamFlags {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null) return false;
  if (v === '' || v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw new BadRequestError(`query parameter ${name} must be true/false or 1/0, got ${JSON.stringify(v)}`);
}

function nonNegativeInt(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^\d+$/.test(v))
    throw new BadRequestError(`query parameter ${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function positiveInt(q: URLSearchParams, name: string): number | undefined {
  const n = nonNegativeInt(q, name);
  if (n === 0) throw new BadRequestError(`query parameter ${name} must be greater than zero`);
  return n;
}

function segments(path: string): string[] {
  const parts = path.split('/').filter((s) => s !== '');
  try {
    return parts.map((s) => decodeURIComponent(s));
  } catch {
    throw new BadRequestError(`malformed path ${JSON.stringify(path)}`);
  }
}

function target(parts: string[], allowUid: boolean): ContainerTarget | undefined {
  if (parts.length === 3) {
    const [namespace, pod, container] = parts as [string, string, string];
    return { namespace, pod, container };
  }
  if (allowUid && parts.length === 4) {
    const [namespace, pod, uid, container] = parts as [string, string, string, string];
    return { namespace, pod, uid, container };
  }
  return undefined;
}

export function logOptions(q: URLSearchParams): LogOptions {
  const opts: LogOptions = {};
  const tailLines = nonNegativeInt(q, 'tailLines');
  if (tailLines !== undefined) opts.tailLines = tailLines;
  const sinceSeconds = positiveInt(q, 'sinceSeconds');
  if (sinceSeconds !== undefined) opts.sinceSeconds = sinceSeconds;
  const sinceTime = q.get('sinceTime');
  if (sinceTime) {
    const t = Date.parse(sinceTime);
    if (Number.isNaN(t))
      throw new BadRequestError(`query parameter sinceTime must be an RFC 3339 time, got ${JSON.stringify(sinceTime)}`);
    if (opts.sinceSeconds !== undefined)
      throw new BadRequestError('at most one of sinceSeconds or sinceTime may be given');
    // LogOptions carries a relative window; the provider applies it from now.
    opts.sinceSeconds = Math.max(1, Math.ceil((Date.now() - t) / 1000));
  }
  const limitBytes = positiveInt(q, 'limitBytes');
  if (limitBytes !== undefined) opts.limitBytes = limitBytes;
  if (flag(q, 'timestamps')) opts.timestamps = true;
  if (flag(q, 'follow')) opts.follow = true;
  if (flag(q, 'previous')) opts.previous = true;
  return opts;
}

export function streamFlags(q: URLSearchParams): StreamFlags {
  const f = { stdin: flag(q, 'input'), stdout: flag(q, 'output'), stderr: flag(q, 'error'), tty: flag(q, 'tty') };
  // As the kubelet: a terminal merges stderr into stdout.
  if (f.tty) f.stderr = false;
  if (!f.stdin && !f.stdout && !f.stderr)
    throw new BadRequestError('at least one of input, output or error must be requested');
  return f;
}

/**
 * The `port` query parameter, repeated and/or comma-separated, as the kubelet
 * reads it (portforward.NewV4Options). Only the WebSocket form needs it: over
 * SPDY each stream pair names its port in a header.
 */
export function forwardPorts(q: URLSearchParams): number[] {
  const ports: number[] = [];
  for (const value of q.getAll('port')) {
    if (value === '') throw new BadRequestError('query parameter "port" cannot be empty');
    for (const p of value.split(',')) {
      if (!/^\d{1,5}$/.test(p) || Number(p) > 65535)
        throw new BadRequestError(`unable to parse ${JSON.stringify(p)} as a port`);
      if (Number(p) < 1) throw new BadRequestError(`port ${JSON.stringify(p)} must be > 0`);
      ports.push(Number(p));
    }
  }
  return ports;
}

/** Parses method + URL into a route; undefined for a path the kubelet API does not serve. */
export function parseRoute(method: string, rawUrl: string): Route | undefined {
  const url = new URL(rawUrl, 'https://kubelet.invalid');
  const parts = segments(url.pathname);
  const q = url.searchParams;
  const [head, ...rest] = parts;
  const read = method === 'GET' || method === 'HEAD';
  if (head === 'healthz' && rest.length === 0 && read) return { kind: 'healthz' };
  if (head === 'pods' && rest.length === 0 && read) return { kind: 'pods' };
  // The kubelet registers `/runningpods/` and `/spec/`; both spellings are served.
  if (head === 'runningpods' && rest.length === 0 && read) return { kind: 'runningPods' };
  if (head === 'spec' && rest.length === 0 && read) return { kind: 'spec' };
  if (head === 'stats' && rest.length === 1 && rest[0] === 'summary' && read) return { kind: 'statsSummary' };
  if (head === 'metrics' && rest.length === 1 && rest[0] === 'resource' && read) return { kind: 'metricsResource' };
  if (head === 'containerLogs' && read) {
    const t = target(rest, false);
    return t ? { kind: 'containerLogs', target: t, opts: logOptions(q) } : undefined;
  }
  // The API server POSTs (SPDY) or GETs (WebSocket upgrade) these.
  if ((head === 'exec' || head === 'attach') && (method === 'POST' || method === 'GET')) {
    const t = target(rest, true);
    if (!t) return undefined;
    if (head === 'attach') return { kind: 'attach', target: t, stream: streamFlags(q) };
    const command = q.getAll('command');
    if (command.length === 0 || command[0] === '') throw new BadRequestError('query parameter command is required');
    return { kind: 'exec', target: t, command, stream: streamFlags(q) };
  }
  if (head === 'portForward' && (method === 'POST' || method === 'GET') && (rest.length === 2 || rest.length === 3)) {
    const [namespace, pod, uid] = rest as [string, string, string | undefined];
    return {
      kind: 'portForward',
      target: uid === undefined ? { namespace, pod } : { namespace, pod, uid },
      ports: forwardPorts(q),
    };
  }
  return undefined;
}

/**
 * The first path segment exactly as {@link parseRoute} reads it (dot segments
 * resolved, percent-decoding applied), which decides the authorization
 * attributes; undefined for the root or a malformed path (those reach no handler).
 */
export function pathHead(rawUrl: string): string | undefined {
  try {
    return segments(new URL(rawUrl, 'https://kubelet.invalid').pathname)[0];
  } catch {
    return undefined;
  }
}
