/**
 * A gRPC health check (grpc.health.v1.Health/Check), as the kubelet's gRPC probe makes it:
 * plaintext, one unary call with the probe's timeout as deadline, SERVING or fail.
 *
 * The transport is @grpc/grpc-js. The two messages are tiny (one string field, one enum
 * field), so they are encoded here by hand instead of loading a .proto at run time.
 */
import { Client, credentials, Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';

/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
export const SERVING_STATUS = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/** HealthCheckRequest { string service = 1; } */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (!service) return Buffer.alloc(0); // proto3 leaves a default-valued field out
  const s = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([0x0a, ...varint(s.length)]), s]);
}

function readVarint(b: Buffer, at: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (let i = at; i < b.length; i++) {
    const byte = b[i]!;
    if (shift < 32) v += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return [v, i + 1];
  }
  throw new Error('truncated varint in HealthCheckResponse');
}

/** HealthCheckResponse { ServingStatus status = 1; }; unknown fields are skipped, as protobuf requires. */
export function decodeHealthCheckResponse(b: Buffer): { status: number } {
  let status = 0;
  let at = 0;
  while (at < b.length) {
    const [tag, next] = readVarint(b, at);
    at = next;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) {
      const [v, n] = readVarint(b, at);
      at = n;
      if (field === 1) status = v;
    } else if (wire === 2) {
      const [len, n] = readVarint(b, at);
      at = n + len;
    } else if (wire === 1) {
      at += 8;
    } else if (wire === 5) {
      at += 4;
    } else {
      throw new Error(`unsupported wire type ${wire} in HealthCheckResponse`);
    }
  }
  if (at > b.length) throw new Error('truncated HealthCheckResponse');
  return { status };
}

export interface GrpcCheckResult {
  ok: boolean;
  /** Why it failed, in the kubelet's words where it has them. */
  message: string;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function grpcHealthCheck(
  host: string,
  port: number,
  service: string,
  timeoutMs: number,
): Promise<GrpcCheckResult> {
  const client = new Client(hostPort(host, port), credentials.createInsecure());
  return new Promise<GrpcCheckResult>((resolve) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      encodeHealthCheckRequest,
      decodeHealthCheckResponse,
      service,
      new Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err: ServiceError | null, res?: { status: number }) => {
        client.close();
        if (err) {
          const why =
            err.code === GrpcStatus.DEADLINE_EXCEEDED
              ? `timeout: health rpc did not complete within ${timeoutMs / 1000}s`
              : err.details || err.message;
          resolve({
            ok: false,
            message: `failed to connect service "${hostPort(host, port)}" within ${timeoutMs / 1000}s: ${why}`,
          });
          return;
        }
        const s = res?.status ?? SERVING_STATUS.UNKNOWN;
        if (s === SERVING_STATUS.SERVING) resolve({ ok: true, message: '' });
        else resolve({ ok: false, message: `service unhealthy (responded with "${statusName(s)}")` });
      },
    );
  });
}

function statusName(s: number): string {
  return Object.entries(SERVING_STATUS).find(([, v]) => v === s)?.[0] ?? String(s);
}
