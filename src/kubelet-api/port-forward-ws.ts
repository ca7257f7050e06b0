/**
 * Port-forward over a WebSocket, as the kubelet serves it (portforward/websocket.go):
 * the ports come from the `port` query parameter; for the port at index n,
 * channel 2n carries data both ways and channel 2n+1 the server's error text.
 * Right after the upgrade the server sends each channel its port as two
 * little-endian bytes. Every binary message starts with its channel byte; in
 * `v4.base64.channel.k8s.io` messages are text, the channel an ASCII digit and
 * the payload base64. One connection forwards one connection per port; when
 * every port is done the server closes the WebSocket.
 */
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from '../common/logger.js';
import { ForwardError, forwardErrorMessage, type Forward } from './port-forward.js';
import { errorMessage } from '../common/errors.js';

/** Offered protocols the server accepts; a client that offers none gets binary framing, as from the kubelet. */
export const PORT_FORWARD_WS_PROTOCOLS = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io'] as const;

const wss = new WebSocketServer({
  noServer: true,
  handleProtocols: (offered: Set<string>) =>
    [...offered].find((p) => (PORT_FORWARD_WS_PROTOCOLS as readonly string[]).includes(p)) ?? false,
  maxPayload: 16 * 1024 * 1024,
});

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export interface WsPortForwardOptions {
  ports: number[];
  podName: string;
  uid: string;
  forward: Forward;
  log: Logger;
}

/** Completes the upgrade and forwards each port once; resolves when the WebSocket is closed. */
export function servePortForwardWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  o: WsPortForwardOptions,
): Promise<void> {
  return new Promise((resolve) => {
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const base64 = ws.protocol === 'v4.base64.channel.k8s.io';
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      void closed.then(resolve);
      ws.on('error', (err) => o.log.debug({ err: err.message }, 'websocket error'));

      const send = (channel: number, payload: Buffer): Promise<void> =>
        new Promise((r, reject) => {
          if (ws.readyState !== ws.OPEN) return reject(new Error('the WebSocket is closed'));
          const frame = base64
            ? String.fromCharCode(48 + channel) + payload.toString('base64')
            : Buffer.concat([Buffer.from([channel]), payload]);
          ws.send(frame, (err) => (err ? reject(err) : r()));
        });

      // One data stream per port: its readable side is what the client sends on channel 2n.
      const streams = o.ports.map(
        (_port, i) =>
          new Duplex({
            read() {
              // pushed from 'message'
            },
            write(chunk: Buffer, _enc, cb) {
              send(2 * i, chunk).then(() => cb(), cb);
            },
          }),
      );
      ws.on('message', (data, isBinary) => {
        let buf = toBuffer(data);
        if (!isBinary) {
          const text = buf.toString('utf8');
          if (text.length === 0) return;
          buf = Buffer.concat([Buffer.from([text.charCodeAt(0) - 48]), Buffer.from(text.slice(1), 'base64')]);
        }
        if (buf.length === 0) return;
        const channel = buf[0] ?? 0;
        const stream = channel % 2 === 0 ? streams[channel / 2] : undefined;
        if (stream && !stream.readableEnded) stream.push(buf.subarray(1));
      });
      void closed.then(() => {
        for (const s of streams) {
          if (!s.readableEnded) s.push(null);
          s.destroy();
        }
      });

      const forwardOne = async (i: number, port: number) => {
        const data = streams[i]!;
        try {
          await o.forward(port, data);
        } catch (err) {
          if (err instanceof ForwardError) o.log.info({ port, err: errorMessage(err) }, 'port-forward failed');
          else o.log.warn({ port, err: errorMessage(err) }, 'port-forward failed');
          await send(2 * i + 1, Buffer.from(forwardErrorMessage(port, o.podName, o.uid, err))).catch(() => undefined);
        }
      };

      void (async () => {
        const portBytes = (port: number) => {
          const b = Buffer.alloc(2);
          b.writeUInt16LE(port);
          return b;
        };
        try {
          for (const [i, port] of o.ports.entries()) {
            await send(2 * i, portBytes(port));
            await send(2 * i + 1, portBytes(port));
          }
        } catch {
          return; // the client went away already
        }
        await Promise.all(o.ports.map((port, i) => forwardOne(i, port)));
        if (ws.readyState === ws.OPEN) ws.close(1000);
        const cutoff = setTimeout(() => ws.terminate(), 10_000);
        await closed;
        clearTimeout(cutoff);
      })();
    });
  });
}
