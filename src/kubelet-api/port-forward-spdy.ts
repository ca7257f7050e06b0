/**
 * Port-forward over SPDY/3.1 (sub-protocol `portforward.k8s.io`), what the API
 * server speaks to a kubelet for `kubectl port-forward` (kubectl's WebSocket
 * tunnel to the API server carries these same SPDY frames). For every local
 * connection the client opens two streams, both with headers `port` and
 * `requestID`: `streamType: error` first, then `streamType: data`. The server
 * replies to each, pairs them by requestID, relays the data stream to the
 * pod's port and, when that fails, writes one line on the error stream, which
 * kubectl prints as `an error occurred forwarding L -> R: <line>`. Then both
 * streams are closed; the connection lives on for the next local connection
 * until the client hangs up. The same spdystream adaptations as exec apply
 * (spdy-server.ts).
 */
import type { Duplex } from 'node:stream';
import transport, { type SpdyStream } from 'spdy-transport';
import type { Logger } from '../common/logger.js';
import { ForwardError, forwardErrorMessage, type Forward } from './port-forward.js';
import { acceptBareStreams, header, neverBlockSends } from './spdy-server.js';
import { errorMessage } from '../common/errors.js';

export const PORT_FORWARD_PROTOCOL = 'portforward.k8s.io';
export const PORT_FORWARD_SPDY_PROTOCOLS = [PORT_FORWARD_PROTOCOL] as const;

export interface SpdyPortForwardOptions {
  /** How the pod is named in error messages. */
  podName: string;
  uid: string;
  forward: Forward;
  log: Logger;
  /** How long the second stream of a pair may take (the kubelet's streamCreationTimeout). */
  streamCreationTimeoutMs?: number;
}

interface Pair {
  port: number;
  data?: SpdyStream;
  error?: SpdyStream;
  timer: NodeJS.Timeout;
}

/** Parses the `port` header as the kubelet does (a uint16 greater than zero). */
export function streamPort(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,5}$/.test(value)) return undefined;
  const n = Number(value);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * Serves port-forward stream pairs on an upgraded socket (the 101 response
 * already written) until the connection closes; resolves then.
 */
export function servePortForwardSpdy(socket: Duplex, o: SpdyPortForwardOptions): Promise<void> {
  const conn = transport.connection.create(socket, {
    protocol: 'spdy',
    isServer: true,
    windowSize: 1 << 20,
    autoSpdy31: true,
  });
  acceptBareStreams(conn);
  neverBlockSends(conn._spdyState.window.send);
  conn.on('error', (err: Error) => o.log.debug({ err: err.message }, 'spdy connection error'));
  const pairs = new Map<string, Pair>();
  const closed = new Promise<void>((resolve) => {
    conn.on('close', () => resolve());
    socket.once('close', () => resolve());
  });
  void closed.then(() => {
    for (const p of pairs.values()) clearTimeout(p.timer);
    pairs.clear();
  });

  const endAll = (...streams: (SpdyStream | undefined)[]) => {
    for (const s of streams) if (s && !s.writableEnded && !s.destroyed) s.end();
  };

  const run = async (requestID: string, p: Pair & { data: SpdyStream; error: SpdyStream }) => {
    const log = o.log.child({ port: p.port, requestID });
    log.debug('port-forward stream pair complete');
    try {
      await o.forward(p.port, p.data);
    } catch (err) {
      const message = forwardErrorMessage(p.port, o.podName, o.uid, err);
      if (err instanceof ForwardError) log.info({ err: errorMessage(err) }, 'port-forward failed');
      else log.warn({ err: errorMessage(err) }, 'port-forward failed');
      if (!p.error.writableEnded && !p.error.destroyed) p.error.write(message);
    }
    endAll(p.data, p.error);
  };

  conn.on('stream', (stream: SpdyStream) => {
    neverBlockSends(stream._spdyState.window.send);
    stream.on('error', (err: Error) => o.log.debug({ err: err.message }, 'spdy stream error'));
    const type = header(stream, 'streamtype');
    const port = streamPort(header(stream, 'port'));
    if ((type !== 'data' && type !== 'error') || port === undefined) {
      // As the kubelet's stream handler: a stream it cannot use is refused (reset).
      o.log.debug(
        { type, port: header(stream, 'port') },
        'refusing a port-forward stream without a valid streamType and port',
      );
      stream.abort();
      return;
    }
    stream.respond(200, {});
    // Clients before requestID existed: the error stream's id, and the data stream's two below it.
    const requestID = header(stream, 'requestid') ?? String(type === 'error' ? stream.id : stream.id - 2);
    let pair = pairs.get(requestID);
    if (!pair) {
      const timeoutMs = o.streamCreationTimeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        const p = pairs.get(requestID);
        if (!p) return;
        pairs.delete(requestID);
        if (p.error && !p.error.writableEnded) p.error.write(`timed out waiting for streams of request ${requestID}`);
        endAll(p.data, p.error);
      }, timeoutMs);
      pair = { port, timer };
      pairs.set(requestID, pair);
    }
    if (pair[type]) {
      o.log.debug({ requestID, type }, 'duplicate port-forward stream; refusing it');
      stream.abort();
      return;
    }
    pair[type] = stream;
    // The client writes nothing on its error stream; reading it lets its end arrive.
    if (type === 'error') stream.resume();
    if (pair.data && pair.error) {
      clearTimeout(pair.timer);
      pairs.delete(requestID);
      void run(requestID, pair as Pair & { data: SpdyStream; error: SpdyStream });
    }
  });
  return closed;
}
