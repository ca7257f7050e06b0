/**
 * Port-forward's data path, shared by the SPDY and WebSocket transports: one
 * forwarded connection is one TCP connection from the connector to
 * `podIP:port`, with the client's bytes relayed both ways. A kubelet enters the
 * pod's network namespace and dials localhost; the connector has no such
 * namespace to enter, but reaches the pod's address (in Azure through the VNet,
 * in the tests on loopback), which is what the pod's listeners bind to.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../common/errors.js';

/** Relays one stream pair's data stream to `port` in the pod; rejects with the error the client is shown. */
export type Forward = (port: number, data: Duplex) => Promise<void>;

/** A forward that cannot start: the message goes on the error stream, as a kubelet's does. */
export class ForwardError extends Error {
  override readonly name = 'ForwardError';
}

const CONNECT_TIMEOUT_MS = 20_000;

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (nothing listens on that port)',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset by peer',
};

/** Opens the TCP connection to the pod, or fails with a sentence naming the address and why. */
export function dial(host: string, port: number, timeoutMs = CONNECT_TIMEOUT_MS): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ForwardError(`cannot connect to ${host}:${port}: timed out after ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new ForwardError(`cannot connect to ${host}:${port}: ${REASONS[err.code ?? ''] ?? err.message}`));
    });
  });
}

/**
 * Pipes `data` and `socket` into each other with half-close kept (the client's
 * end of input ends the TCP write side, the pod's FIN ends the data stream)
 * and resolves once both directions are done or either side is gone.
 */
export function relay(socket: Socket, data: Duplex): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      data.unpipe(socket);
      socket.unpipe(data);
      socket.destroy();
      if (!data.writableEnded && !data.destroyed) data.end();
      resolve();
    };
    // Errors after the connection was made end the forward quietly, as a broken pipe does.
    socket.on('error', finish);
    data.on('error', finish);
    socket.once('close', finish);
    // A stream torn down without an end (the client's connection dropped) closes without 'end'.
    data.once('close', () => {
      if (!data.readableEnded) finish();
    });
    let inputEnded = false;
    let outputEnded = false;
    data.once('end', () => {
      inputEnded = true;
      if (outputEnded) finish();
    });
    socket.once('end', () => {
      outputEnded = true;
      if (inputEnded) finish();
    });
    data.pipe(socket);
    socket.pipe(data);
  });
}

/** The kubelet's wording for a failed forward (portforward/httpstream.go, websocket.go). */
export function forwardErrorMessage(port: number, pod: string, uid: string, err: unknown): string {
  return `error forwarding port ${port} to pod ${pod}, uid ${uid}: ${errorMessage(err)}`;
}
