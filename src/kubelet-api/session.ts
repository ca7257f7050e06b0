/**
 * What both streaming transports (SPDY and WebSocket channels) hand the
 * request handler: the standard streams for the provider, and a way to end the
 * session with a Status on the error stream.
 */
import type { Readable } from 'node:stream';
import type { ExecStreams } from '../core/provider.js';
import type { MetaStatus } from './status.js';

export interface RemoteSession {
  /** The negotiated sub-protocol, e.g. v4.channel.k8s.io. */
  protocol: string;
  streams: ExecStreams;
  /** Writes the status on the error stream, ends every stream and closes the connection. */
  finish(status: MetaStatus): Promise<void>;
  /** Resolves when the connection is gone (finished or dropped by the peer). */
  closed: Promise<void>;
}

export interface TerminalSize {
  width: number;
  height: number;
}

/**
 * Terminal sizes from a resize stream: JSON objects `{"Width":W,"Height":H}`,
 * one after the other (Go's json.Encoder puts a newline after each).
 * Malformed objects are skipped: a bad resize must not end the session.
 * Read with listeners rather than the stream's async iterator: a consumer that
 * stops early must not destroy the transport's stream under the session, and
 * spdy-transport's streams (readable-stream 3) lack `iterator({ destroyOnReturn })`.
 */
export async function* resizeEvents(stream: Readable): AsyncIterable<TerminalSize> {
  const queue: TerminalSize[] = [];
  let done = false;
  let wake: (() => void) | undefined;
  let buf = '';
  const onData = (chunk: Buffer | string) => {
    buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    for (let end = buf.indexOf('}'); end >= 0; end = buf.indexOf('}')) {
      const text = buf.slice(0, end + 1).trim();
      buf = buf.slice(end + 1);
      try {
        const o = JSON.parse(text) as { Width?: unknown; Height?: unknown };
        if (typeof o.Width === 'number' && typeof o.Height === 'number')
          queue.push({ width: o.Width, height: o.Height });
      } catch {
        // skip the malformed object
      }
    }
    wake?.();
  };
  const onEnd = () => {
    done = true;
    wake?.();
  };
  stream.on('data', onData);
  stream.once('end', onEnd);
  stream.once('close', onEnd);
  stream.once('error', onEnd);
  try {
    for (;;) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (done) return;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('close', onEnd);
    stream.off('error', onEnd);
  }
}
