/**
 * One run of one probe against a container, as the kubelet's prober does it:
 * tcpSocket connects, httpGet expects 200-399 (HTTPS without certificate checks),
 * gRPC asks the health service, exec runs the command in the container.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { V1Container, V1Probe } from '@kubernetes/client-node';
import { grpcHealthCheck } from './grpc-health.js';

export interface CheckTarget {
  /** The pod's address as the connector reaches it; undefined while it has none. */
  address: string | undefined;
  /** Runs a command in the container, resolving to its exit code (exec probes). */
  exec?: (command: string[], timeoutMs: number) => Promise<number>;
}

export interface CheckResult {
  ok: boolean;
  /** For the Unhealthy Event when it failed. */
  message: string;
}

/** A port given by name resolves against the container's ports, as the kubelet does. */
export function resolveProbePort(c: V1Container, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  if (port === undefined) return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

function tcpCheck(host: string, port: number, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (r: CheckResult) => {
      sock.destroy();
      resolve(r);
    };
    sock.setTimeout(timeoutMs, () => done({ ok: false, message: `dial tcp ${host}:${port}: i/o timeout` }));
    sock.once('connect', () => done({ ok: true, message: '' }));
    sock.once('error', (e) => done({ ok: false, message: `dial tcp ${host}:${port}: ${e.message}` }));
  });
}

function httpCheck(
  host: string,
  p: NonNullable<V1Probe['httpGet']>,
  port: number,
  timeoutMs: number,
): Promise<CheckResult> {
  const https = (p.scheme ?? 'HTTP').toUpperCase() === 'HTTPS';
  const headers: Record<string, string> = { 'User-Agent': 'kube-probe/aci-connector', Accept: '*/*' };
  for (const h of p.httpHeaders ?? []) headers[h.name] = h.value;
  const path = p.path ? (p.path.startsWith('/') ? p.path : `/${p.path}`) : '/';
  const url = `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
  return new Promise((resolve) => {
    const opts = {
      host: p.host || host,
      port,
      path,
      method: 'GET',
      headers,
      timeout: timeoutMs,
      rejectUnauthorized: false,
    };
    const req = (https ? httpsRequest : httpRequest)(opts, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(
        code >= 200 && code < 400
          ? { ok: true, message: '' }
          : { ok: false, message: `HTTP probe failed with statuscode: ${code}` },
      );
    });
    req.on('timeout', () => req.destroy(new Error(`Client.Timeout exceeded while awaiting headers`)));
    req.on('error', (e) => resolve({ ok: false, message: `Get "${url}": ${e.message}` }));
    req.end();
  });
}

export async function runCheck(
  c: V1Container,
  p: V1Probe,
  timeoutMs: number,
  target: CheckTarget,
): Promise<CheckResult> {
  if (p.exec) {
    if (!target.exec) return { ok: false, message: 'the provider cannot run commands in the container' };
    try {
      const code = await target.exec(p.exec.command ?? [], timeoutMs);
      return code === 0
        ? { ok: true, message: '' }
        : { ok: false, message: `command ${JSON.stringify(p.exec.command ?? [])} exited with ${code}` };
    } catch (e) {
      return { ok: false, message: `exec failed: ${e instanceof Error ? e.message : String(e)}` };
    }
  }
  const host = target.address;
  if (!host) return { ok: false, message: 'the pod has no IP address yet' };
  if (p.tcpSocket) {
    const port = resolveProbePort(c, p.tcpSocket.port);
    if (port === undefined)
      return { ok: false, message: `port ${String(p.tcpSocket.port)} is not a port of the container` };
    return tcpCheck(p.tcpSocket.host || host, port, timeoutMs);
  }
  if (p.grpc) return grpcHealthCheck(host, p.grpc.port, p.grpc.service ?? '', timeoutMs);
  if (p.httpGet) {
    const port = resolveProbePort(c, p.httpGet.port);
    if (port === undefined)
      return { ok: false, message: `port ${String(p.httpGet.port)} is not a port of the container` };
    return httpCheck(host, p.httpGet, port, timeoutMs);
  }
  return { ok: false, message: 'the probe names no handler (exec, httpGet, tcpSocket or grpc)' };
}
