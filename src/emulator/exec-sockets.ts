/**
 * The WebSockets behind exec and attach, shaped like ACI's:
 * - exec: the client connects to webSocketUri and sends the password as its first message;
 *   every later message is stdin; the command's output (a terminal: stdout and stderr merged)
 *   comes back as binary messages; the socket closes when the command ends. As an extension,
 *   the close reason carries `exit code N`.
 * - attach: the password goes in the Authorization header of the upgrade request; the
 *   container's output streams until it stops.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { timingSafeEqual } from 'node:crypto';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { ArmContext, ExecSessionTicket } from './context.js';
import type { ExecSession } from './runtime.js';
import { errorMessage } from '../common/errors.js';

const samePassword = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

function takeTicket(ctx: ArmContext, id: string, kind: ExecSessionTicket['kind']): ExecSessionTicket | undefined {
  const ticket = ctx.tickets.get(id);
  if (!ticket || ticket.kind !== kind || ticket.expiresAt < Date.now()) return undefined;
  return ticket;
}

function pipeSession(ws: WebSocket, session: ExecSession): void {
  const send = (chunk: Buffer): void => {
    if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
  };
  session.stdout.on('data', send);
  session.stderr?.on('data', send);
  ws.on('message', (data: RawData) => {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    session.stdin.write(buf);
  });
  ws.on('close', () => {
    session.stdin.end();
    session.kill();
  });
  const outputDone = Promise.all(
    [session.stdout, session.stderr]
      .filter((s) => s !== undefined)
      .map((s) => new Promise<void>((r) => s.once('end', () => r()).once('close', () => r()))),
  );
  void session.exited.then(async (code) => {
    await Promise.race([outputDone, new Promise((r) => setTimeout(r, 1000))]);
    if (ws.readyState === ws.OPEN) ws.close(1000, `exit code ${code}`);
  });
}

export class ExecSockets {
  private readonly wss = new WebSocketServer({ noServer: true });

  constructor(private readonly ctx: ArmContext) {}

  /** Handles an upgrade; returns false when the path is not ours. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    const exec = /^\/containerExec\/([^/]+)$/.exec(path);
    const attach = /^\/containerAttach\/([^/]+)$/.exec(path);
    if (exec?.[1]) {
      const ticket = takeTicket(this.ctx, exec[1], 'exec');
      if (!ticket) return (this.reject(socket, 404), true);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.exec(ws, ticket));
      return true;
    }
    if (attach?.[1]) {
      const ticket = takeTicket(this.ctx, attach[1], 'attach');
      if (!ticket) return (this.reject(socket, 404), true);
      const auth = req.headers.authorization ?? '';
      if (!samePassword(auth, ticket.password)) return (this.reject(socket, 401), true);
      this.ctx.tickets.delete(ticket.id);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, ticket));
      return true;
    }
    return false;
  }

  private reject(socket: Duplex, status: 401 | 404): void {
    const text = status === 401 ? 'Unauthorized' : 'Not Found';
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  private exec(ws: WebSocket, ticket: ExecSessionTicket): void {
    const timer = setTimeout(() => ws.close(1008, 'password expected'), 30_000);
    ws.once('message', (first: RawData) => {
      clearTimeout(timer);
      const password = (Array.isArray(first) ? Buffer.concat(first) : Buffer.from(first as ArrayBuffer)).toString(
        'utf8',
      );
      if (!this.ctx.tickets.has(ticket.id) || !samePassword(password, ticket.password)) {
        ws.close(1008, 'invalid password');
        return;
      }
      this.ctx.tickets.delete(ticket.id);
      this.ctx.runtime.exec(ticket.groupKey, ticket.container, ticket.command, ticket.terminal).then(
        (session) => {
          if (ws.readyState !== ws.OPEN) return session.kill();
          pipeSession(ws, session);
        },
        (err: unknown) => {
          const message = errorMessage(err);
          if (ws.readyState === ws.OPEN) {
            ws.send(Buffer.from(`exec failed: ${message}\r\n`));
            ws.close(1011, 'exec failed');
          }
        },
      );
    });
  }

  private attach(ws: WebSocket, ticket: ExecSessionTicket): void {
    this.ctx.runtime.attach(ticket.groupKey, ticket.container).then(
      (session) => {
        if (ws.readyState !== ws.OPEN) return session.kill();
        pipeSession(ws, session);
      },
      () => ws.close(1011, 'attach failed'),
    );
  }

  close(): void {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
  }
}
