/**
 * The SPDY/3.1 side of `kubectl exec` / `attach`: what the API server speaks to
 * a kubelet (it translates kubectl's WebSocket v5 into this, see
 * docs/decisions.md). The client opens one SPDY stream per standard stream,
 * named by its `streamType` header (error, stdin, stdout, stderr, resize); the
 * server replies to each, pipes the process through them, writes a Status on
 * the error stream and closes the connection.
 *
 * Framing, header compression and pings come from spdy-transport. Two things it
 * lacks for Kubernetes' Go peers (moby/spdystream) are added here, on the
 * connection's own objects:
 * - it rejects a SYN_STREAM without `:method`/`:path` (HTTP-over-SPDY headers);
 *   Kubernetes streams carry only `streamType`, so those are filled in;
 * - it honours SPDY flow control, but spdystream never sends WINDOW_UPDATE, so a
 *   sender keeping to the 64 KiB window stalls for good; the send windows are
 *   made non-blocking, as in the real kubelet (which does no flow control).
 */
import { PassThrough, type Duplex } from 'node:stream';
import transport, { type SpdyConnection, type SpdyStream, type WindowSide } from 'spdy-transport';
import type { Logger } from '../common/logger.js';
import type { StreamFlags } from './routes.js';
import { resizeEvents, type RemoteSession } from './session.js';
import { encodeStatus, type MetaStatus } from './status.js';

/** Protocols the server accepts, best first. v1 (no error-stream protocol) is not offered. */
export const SPDY_PROTOCOLS = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io'] as const;

export class StreamSetupError extends Error {
  override readonly name = 'StreamSetupError';
}

/** SYN_STREAM frame type in SPDY/3. */
const SYN_STREAM = 0x01;

export function acceptBareStreams(conn: SpdyConnection): void {
  const parser = conn._spdyState.parser;
  const onSyn = parser.onSynHeadFrame.bind(parser);
  const parseKVs = parser.parseKVs.bind(parser);
  parser.onSynHeadFrame = (type, flags, body, callback) => {
    if (type !== SYN_STREAM) return onSyn(type, flags, body, callback);
    // parseKVs is looked up on the parser during this call; the swap only covers it.
    parser.parseKVs = (b, cb) =>
      parseKVs(b, (err, headers) => {
        if (!err && headers) {
          headers[':method'] ??= 'POST';
          headers[':path'] ??= '/';
        }
        cb(err, headers);
      });
    try {
      onSyn(type, flags, body, callback);
    } finally {
      parser.parseKVs = parseKVs;
    }
  };
}

export function neverBlockSends(side: WindowSide): void {
  side.update = (_size: number, callback?: () => void) => {
    if (callback) process.nextTick(callback);
  };
}

export function header(stream: SpdyStream, name: string): string | undefined {
  const v = stream.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Which streams a client of this protocol opens for these flags (as the kubelet counts them). */
export function expectedStreamTypes(flags: StreamFlags, protocol: string): string[] {
  const types = ['error'];
  if (flags.stdin) types.push('stdin');
  if (flags.stdout) types.push('stdout');
  if (flags.stderr && !flags.tty) types.push('stderr');
  if (flags.tty && protocol !== 'v2.channel.k8s.io') types.push('resize');
  return types;
}

/** Picks the first protocol the client offers that the server speaks (the kubelet's rule). */
export function negotiateProtocol(
  offered: string | string[] | undefined,
  supported: readonly string[],
): string | undefined {
  const list = (Array.isArray(offered) ? offered : [offered ?? ''])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  return list.find((p) => supported.includes(p));
}

export interface SpdyAcceptOptions {
  flags: StreamFlags;
  protocol: string;
  log: Logger;
  /** How long the client may take to open every stream. */
  streamCreationTimeoutMs?: number;
}

/**
 * Takes over an upgraded socket (the 101 response already written) and resolves
 * once the client opened every expected stream.
 */
export function acceptSpdy(socket: Duplex, o: SpdyAcceptOptions): Promise<RemoteSession> {
  // autoSpdy31: grant session-level window to peers that keep SPDY/3.1 flow control
  // (spdystream ignores those WINDOW_UPDATE frames, which is harmless).
  const conn = transport.connection.create(socket, {
    protocol: 'spdy',
    isServer: true,
    windowSize: 1 << 20,
    autoSpdy31: true,
  });
  acceptBareStreams(conn);
  neverBlockSends(conn._spdyState.window.send);

  const closed = new Promise<void>((resolve) => {
    conn.on('close', () => resolve());
    socket.once('close', () => resolve());
  });
  conn.on('error', (err: Error) => o.log.debug({ err: err.message }, 'spdy connection error'));

  const expected = new Set(expectedStreamTypes(o.flags, o.protocol));
  const got = new Map<string, SpdyStream>();
  const all: SpdyStream[] = [];

  return new Promise<RemoteSession>((resolve, reject) => {
    let settled = false;
    const fail = (msg: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(new StreamSetupError(msg));
    };
    const timer = setTimeout(
      () =>
        fail(
          `timed out waiting for streams (got ${[...got.keys()].join(', ') || 'none'}, want ${[...expected].join(', ')})`,
        ),
      o.streamCreationTimeoutMs ?? 30_000,
    );
    void closed.then(() => fail('the connection closed before every stream was opened'));

    conn.on('stream', (stream: SpdyStream) => {
      all.push(stream);
      stream.on('error', (err: Error) =>
        o.log.debug({ err: err.message, stream: header(stream, 'streamtype') }, 'spdy stream error'),
      );
      neverBlockSends(stream._spdyState.window.send);
      stream.respond(200, {});
      const type = header(stream, 'streamtype') ?? '';
      if (!expected.has(type) || got.has(type)) {
        o.log.debug({ type }, 'unexpected spdy stream; ignoring it');
        stream.resume();
        return;
      }
      got.set(type, stream);
      if (got.size < expected.size || settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(session(socket, got, all, o, closed));
    });
  });
}

function session(
  socket: Duplex,
  got: Map<string, SpdyStream>,
  all: SpdyStream[],
  o: SpdyAcceptOptions,
  closed: Promise<void>,
): RemoteSession {
  const stdin = got.get('stdin');
  const stdout = got.get('stdout');
  const stderr = got.get('stderr');
  const resize = got.get('resize');
  const error = got.get('error');
  // The client never writes on these; reading keeps their windows moving.
  for (const s of [stdout, stderr, error]) s?.resume();
  // The process sees a plain stream that ends on the client's FIN and also when
  // the connection drops (spdy-transport then destroys the stream without an 'end').
  let input: PassThrough | undefined;
  if (stdin) {
    const pass = new PassThrough();
    input = pass;
    stdin.pipe(pass);
    stdin.once('close', () => {
      if (!pass.writableEnded) pass.end();
    });
  }

  let finished: Promise<void> | undefined;
  return {
    protocol: o.protocol,
    streams: {
      stdin: input,
      stdout,
      stderr,
      tty: o.flags.tty,
      resize: resize ? resizeEvents(resize) : undefined,
    },
    closed,
    finish(status: MetaStatus): Promise<void> {
      finished ??= (async () => {
        const text = encodeStatus(status, o.protocol);
        if (error && !error.writableEnded && !error.destroyed) {
          // A stream wedged by a failed connection must not hold the session open.
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            new Promise<void>((r) => (text ? error.end(text, () => r()) : error.end(() => r()))),
            closed,
            new Promise<void>((r) => (timer = setTimeout(r, 5_000))),
          ]);
          clearTimeout(timer);
        }
        for (const s of all) if (!s.writableEnded) s.end();
        // No GOAWAY here: spdystream stops reading at a GOAWAY, and spdy-transport may
        // schedule it ahead of queued DATA frames. The client closes the connection once
        // it has read the error stream; a client that does not is cut off.
        const cutoff = setTimeout(() => socket.destroy(), 10_000);
        await closed;
        clearTimeout(cutoff);
      })();
      return finished;
    },
  };
}
