/**
 * `kubectl exec` / `attach` through ACI's websockets.
 *
 * exec: containers.executeCommand returns a URI and a password; the first message
 * sent is the password, later messages are stdin, and the output (a terminal:
 * stdout and stderr merged) comes back as messages. ACI itself reports no exit
 * code; when the close reason says `exit code N` (the emulator does) we use it,
 * otherwise a normal close counts as 0. ACI's socket has no end-of-input: when
 * the caller's stdin ends in a session without a terminal, a ^D is typed, which the
 * container's terminal (in line mode) turns into end-of-file.
 * A command with arguments runs through a shell (see exec-command.ts): output before
 * the plan's sentinel is dropped and stdin is held back until the sentinel arrived.
 * attach: the password goes in the Authorization header; output streams until the
 * container stops.
 */
import WebSocket from 'ws';
import type { ExecResult, ExecStreams } from '../../../core/provider.js';

/** How long the shell of a multi-argument exec may take to reach the command. */
const SHELL_START_TIMEOUT_MS = 30_000;
const EOF = Buffer.from([0x04]);

/** The container could not run the shell that a command with arguments needs. */
export class ExecShellUnavailableError extends Error {
  override readonly name = 'ExecShellUnavailableError';
}

export interface ShellPrelude {
  /** Typed into the shell right after the password. */
  line: string;
  /** Output up to and including this is the shell's, not the command's. */
  sentinel: Buffer;
}

function toBuffer(data: WebSocket.RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
}

function exitCodeOf(code: number, reason: Buffer): number {
  const m = /exit code (\d+)/.exec(reason.toString('utf8'));
  return m?.[1] !== undefined ? Number(m[1]) : code === 1000 || code === 1005 ? 0 : 1;
}

function run(
  ws: WebSocket,
  streams: ExecStreams,
  onOpen: () => void,
  opts: { prelude?: ShellPrelude; eofOnEnd: boolean },
): Promise<ExecResult> {
  const { prelude } = opts;
  const eofOnEnd = opts.eofOnEnd && !streams.tty;
  return new Promise((resolve, reject) => {
    let opened = false;
    // Before the sentinel: output is the shell's (kept only to explain a failure), stdin waits.
    let pending: Buffer | undefined = prelude ? Buffer.alloc(0) : undefined;
    let held: Buffer[] = [];
    let stdinEnded = false;
    let lastSent = 0x0a;
    const timer = prelude
      ? setTimeout(() => {
          fail(
            new ExecShellUnavailableError(
              `/bin/sh in the container did not start the command within ${SHELL_START_TIMEOUT_MS / 1000} s`,
            ),
          );
          ws.terminate();
        }, SHELL_START_TIMEOUT_MS)
      : undefined;
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      reject(e);
    };
    const send = (chunk: Buffer): void => {
      if (ws.readyState !== ws.OPEN || chunk.length === 0) return;
      ws.send(chunk);
      lastSent = chunk[chunk.length - 1] ?? lastSent;
    };
    const sendEof = (): void => {
      // ^D ends a non-empty line without ending input: a partial line needs a second one.
      if (lastSent !== 0x0a) send(EOF);
      send(EOF);
    };
    const input = (chunk: Buffer): void => {
      if (pending !== undefined) held.push(chunk);
      else send(chunk);
    };
    ws.on('open', () => {
      opened = true;
      onOpen();
      if (prelude) ws.send(prelude.line);
      streams.stdin?.on('data', input);
      streams.stdin?.once('end', () => {
        stdinEnded = true;
        if (pending === undefined && eofOnEnd) sendEof();
      });
    });
    ws.on('message', (data: WebSocket.RawData) => {
      const chunk = toBuffer(data);
      if (pending === undefined) {
        streams.stdout?.write(chunk);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      const at = pending.indexOf(prelude!.sentinel);
      if (at < 0) {
        // Keep enough to find a sentinel split across messages and to quote an error.
        if (pending.length > 8192) pending = pending.subarray(pending.length - 4096);
        return;
      }
      const rest = pending.subarray(at + prelude!.sentinel.length);
      pending = undefined;
      if (timer) clearTimeout(timer);
      if (rest.length) streams.stdout?.write(rest);
      for (const c of held) send(c);
      held = [];
      if (stdinEnded && eofOnEnd) sendEof();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (pending !== undefined) {
        // Terminal escapes (a line editor redrawing) say nothing to the user.
        const said = pending
          .toString('utf8')
          // eslint-disable-next-line no-control-regex
          .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
          .replace(/\s+/g, ' ')
          .trim()
          .slice(-300);
        fail(
          new ExecShellUnavailableError(
            'ACI runs one executable without arguments, so a command with arguments needs /bin/sh in the container, ' +
              `and it could not run there${said ? `: ${said}` : ''}. Run a single executable, or use an image with a shell.`,
          ),
        );
        return;
      }
      if (settled) return;
      settled = true;
      resolve({ exitCode: exitCodeOf(code, reason) });
    });
    ws.on('error', (e) => {
      if (!opened) fail(e);
      else if (!settled) {
        settled = true;
        if (timer) clearTimeout(timer);
        if (pending !== undefined)
          reject(new ExecShellUnavailableError(`the exec connection failed before the command started: ${e.message}`));
        else resolve({ exitCode: 1 });
      }
    });
  });
}

export function execViaWebSocket(
  uri: string,
  password: string,
  streams: ExecStreams,
  ca?: string[],
  prelude?: ShellPrelude,
): Promise<ExecResult> {
  const ws = new WebSocket(uri, ca ? { ca } : {});
  return run(ws, streams, () => ws.send(password), { ...(prelude ? { prelude } : {}), eofOnEnd: true });
}

export function attachViaWebSocket(
  uri: string,
  password: string,
  streams: ExecStreams,
  ca?: string[],
): Promise<ExecResult> {
  const ws = new WebSocket(uri, { headers: { Authorization: password }, ...(ca ? { ca } : {}) });
  return run(ws, streams, () => undefined, { eofOnEnd: false });
}
