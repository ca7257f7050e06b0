/**
 * The WebSocket side of exec / attach: the channel protocol (v4/v5.channel.k8s.io),
 * where every binary message starts with its channel byte: 0 stdin, 1 stdout,
 * 2 stderr, 3 error (a Status), 4 resize; v5 adds 255 = "the sender closed
 * channel N". An API server proxies kubectl's WebSocket straight to a kubelet only
 * when the node declares ExtendWebSocketsToKubelet; direct callers may use it anyway.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { PassThrough, Writable } from 'node:stream';
import { finished as streamFinished } from 'node:stream/promises';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from '../common/logger.js';
import type { StreamFlags } from './routes.js';
import { resizeEvents, type RemoteSession } from './session.js';
import { encodeStatus, type MetaStatus } from './status.js';

export const WS_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

const wss = new WebSocketServer({
  noServer: true,
  // The first offered protocol the server speaks; none → no upgrade (the caller checked already).
  handleProtocols: (offered: Set<string>) =>
    [...offered].find((p) => (WS_PROTOCOLS as readonly string[]).includes(p)) ?? false,
  maxPayload: 16 * 1024 * 1024,
});

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function channelWriter(ws: WebSocket, channel: number): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (ws.readyState !== ws.OPEN) return cb(new Error('the WebSocket is closed'));
      ws.send(Buffer.concat([Buffer.from([channel]), chunk]), (err) => cb(err ?? null));
    },
  });
}

export interface WsAcceptOptions {
  flags: StreamFlags;
  log: Logger;
}

/** Completes the WebSocket upgrade and resolves with the session once the socket is open. */
export function acceptWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  o: WsAcceptOptions,
): Promise<RemoteSession> {
  return new Promise((resolve) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      const protocol = ws.protocol;
      const v5 = protocol.startsWith('v5.');
      const stdin = o.flags.stdin ? new PassThrough() : undefined;
      const resize = o.flags.tty ? new PassThrough() : undefined;
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      const endInput = () => {
        if (stdin && !stdin.writableEnded) stdin.end();
        if (resize && !resize.writableEnded) resize.end();
      };
      void closed.then(endInput);
      ws.on('error', (err) => o.log.debug({ err: err.message }, 'websocket error'));
      ws.on('message', (data) => {
        const buf = toBuffer(data);
        if (buf.length === 0) return;
        const channel = buf[0];
        const payload = buf.subarray(1);
        if (channel === STDIN && stdin && !stdin.writableEnded) stdin.write(payload);
        else if (channel === RESIZE && resize && !resize.writableEnded) resize.write(payload);
        else if (channel === CLOSE && v5 && payload[0] === STDIN && stdin && !stdin.writableEnded) stdin.end();
      });

      const stdout = o.flags.stdout ? channelWriter(ws, STDOUT) : undefined;
      const stderr = o.flags.stderr ? channelWriter(ws, STDERR) : undefined;
      for (const w of [stdout, stderr])
        w?.on('error', (err) => o.log.debug({ err: err.message }, 'websocket write failed'));
      // An empty message tells the client the streams are ready (as the API server does).
      ws.send(Buffer.from([o.flags.stdout ? STDOUT : o.flags.stderr ? STDERR : ERROR]));

      let finished: Promise<void> | undefined;
      resolve({
        protocol,
        streams: { stdin, stdout, stderr, tty: o.flags.tty, resize: resize ? resizeEvents(resize) : undefined },
        closed,
        finish(status: MetaStatus): Promise<void> {
          finished ??= (async () => {
            // Output written before the status must go first: wait for the writers to drain.
            await Promise.all(
              [stdout, stderr].map((w) => {
                if (!w) return Promise.resolve();
                if (!w.writableEnded) w.end();
                return streamFinished(w).catch(() => undefined);
              }),
            );
            if (ws.readyState === ws.OPEN) {
              const text = encodeStatus(status, protocol);
              await new Promise<void>((r) =>
                ws.send(Buffer.concat([Buffer.from([ERROR]), Buffer.from(text)]), () => r()),
              );
              ws.close(1000);
            }
            const cutoff = setTimeout(() => ws.terminate(), 10_000);
            await closed;
            clearTimeout(cutoff);
          })();
          return finished;
        },
      });
    });
  });
}
