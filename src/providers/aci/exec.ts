/**
 * `kubectl exec` / `attach` through ACI's websockets.
 *
 * exec: containers.executeCommand returns a URI and a password; the first message
 * sent is the password, later messages are stdin, and the output (a terminal:
 * stdout and stderr merged) comes back as messages. ACI itself reports no exit
 * code; when the close reason says `exit code N` (the emulator does) we use it,
 * otherwise a normal close counts as 0.
 * attach: the password goes in the Authorization header; output streams until the
 * container stops.
 */
import WebSocket from 'ws';
import type { ExecResult, ExecStreams } from '../../core/provider.js';

function toBuffer(data: WebSocket.RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
}

function run(ws: WebSocket, streams: ExecStreams, onOpen: () => void): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    let opened = false;
    ws.on('open', () => {
      opened = true;
      onOpen();
      streams.stdin?.on('data', (chunk: Buffer) => {
        if (ws.readyState === ws.OPEN) ws.send(chunk);
      });
    });
    ws.on('message', (data: WebSocket.RawData) => {
      streams.stdout?.write(toBuffer(data));
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const m = /exit code (\d+)/.exec(reason.toString('utf8'));
      resolve({ exitCode: m?.[1] !== undefined ? Number(m[1]) : code === 1000 || code === 1005 ? 0 : 1 });
    });
    ws.on('error', (e) => {
      if (!opened) reject(e);
      else resolve({ exitCode: 1 });
    });
  });
}

export function execViaWebSocket(uri: string, password: string, streams: ExecStreams, ca?: string[]): Promise<ExecResult> {
  const ws = new WebSocket(uri, ca ? { ca } : {});
  return run(ws, streams, () => ws.send(password));
}

export function attachViaWebSocket(uri: string, password: string, streams: ExecStreams, ca?: string[]): Promise<ExecResult> {
  const ws = new WebSocket(uri, { headers: { Authorization: password }, ...(ca ? { ca } : {}) });
  return run(ws, streams, () => undefined);
}
