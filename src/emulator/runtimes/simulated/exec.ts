/**
 * Exec without processes: a tiny command interpreter good enough for tests and demos.
 * `echo`, `true`, `false`, `exit N`, `cat` (stdin to stdout), `env`, `hostname`; `sh`/`bash`
 * with no arguments read commands from stdin line by line; `sh -c "..."` runs one line.
 * Anything else writes "command not found" to stderr and exits 127, like a shell would.
 */
import { PassThrough } from 'node:stream';
import type { ExecSession } from '../../runtime.js';

interface ExecContext {
  hostname: string;
  env: Record<string, string>;
}

type LineResult = { out: string; err: string; exit?: number; code: number };

function runLine(line: string, ctx: ExecContext): LineResult {
  const words = line.trim().split(/\s+/).filter(Boolean);
  const [cmd, ...args] = words;
  switch (cmd) {
    case undefined:
      return { out: '', err: '', code: 0 };
    case 'echo':
      return { out: args.join(' ').replace(/^["']|["']$/g, '') + '\n', err: '', code: 0 };
    case 'true':
      return { out: '', err: '', code: 0 };
    case 'false':
      return { out: '', err: '', code: 1 };
    case 'exit': {
      const n = Number(args[0] ?? 0);
      return { out: '', err: '', code: n, exit: n };
    }
    case 'hostname':
      return { out: ctx.hostname + '\n', err: '', code: 0 };
    case 'env':
      return { out: Object.entries(ctx.env).map(([k, v]) => `${k}=${v}\n`).join(''), err: '', code: 0 };
    default:
      return { out: '', err: `sh: ${cmd}: command not found\n`, code: 127 };
  }
}

export function simulatedExec(command: string[], ctx: ExecContext, tty: boolean): ExecSession {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = tty ? undefined : new PassThrough();
  const errOut = stderr ?? stdout;
  let resolveExit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  let done = false;
  const finish = (code: number): void => {
    if (done) return;
    done = true;
    stdout.end();
    stderr?.end();
    stdin.removeAllListeners('data');
    resolveExit(code);
  };
  const emit = (r: LineResult): void => {
    if (r.out) stdout.write(r.out);
    if (r.err) errOut.write(r.err);
  };

  const [program, ...args] = command;
  const base = program?.split('/').pop();
  if ((base === 'sh' || base === 'bash') && args[0] === '-c') {
    const lines = (args.slice(1).join(' ') || '').split(/;|\n/);
    let code = 0;
    for (const l of lines) {
      const r = runLine(l, ctx);
      emit(r);
      code = r.code;
      if (r.exit !== undefined) break;
    }
    setImmediate(() => finish(code));
  } else if ((base === 'sh' || base === 'bash') && args.length === 0) {
    let buffer = '';
    let last = 0;
    stdin.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl = buffer.search(/[\r\n]/);
      while (nl >= 0 && !done) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (tty) stdout.write(line + '\r\n');
        const r = runLine(line, ctx);
        emit(r);
        last = r.code;
        if (r.exit !== undefined) finish(r.exit);
        nl = buffer.search(/[\r\n]/);
      }
    });
    stdin.on('end', () => finish(last));
  } else if (base === 'cat' && args.length === 0) {
    stdin.on('data', (chunk: Buffer) => stdout.write(chunk));
    stdin.on('end', () => finish(0));
  } else {
    const r = runLine(command.join(' '), ctx);
    emit(r);
    setImmediate(() => finish(r.code));
  }

  return {
    stdin,
    stdout,
    ...(stderr ? { stderr } : {}),
    resize: () => undefined,
    exited,
    kill: () => finish(137),
  };
}
