/**
 * `kubectl exec` through ACI: containers.executeCommand returns a websocket URI
 * and a password; the first message sent is the password, then stdin flows up and
 * the command's output flows down. ACI reports no exit code: a session that ends
 * normally counts as 0.
 */
import WebSocket from 'ws';
import type { ExecResult, ExecStreams } from '../../core/provider.js';

export function execViaWebSocket(uri: string, password: string, streams: ExecStreams, ca?: string[]): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(uri, ca ? { ca } : {});
    let opened = false;
    ws.on('open', () => {
      opened = true;
      ws.send(password);
      streams.stdin?.on('data', (chunk: Buffer) => ws.send(chunk));
      streams.stdin?.on('end', () => ws.close(1000));
    });
    ws.on('message', (data: WebSocket.RawData) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      streams.stdout?.write(buf);
    });
    ws.on('close', () => resolve({ exitCode: 0 }));
    ws.on('error', (e) => {
      if (!opened) reject(e);
      else resolve({ exitCode: 1 });
    });
  });
}
