/**
 * Exec without processes: a tiny shell good enough for tests and demos.
 *
 * Programs: `echo`, `printf`, `true`, `false`, `exit N`, `cat` (stdin to stdout), `env`,
 * `hostname`, `stty` (accepted; `-echo` turns the simulated terminal's echo off), and
 * `sh`/`bash` (with `-c SCRIPT [ARG0 ARGS…]`, or reading lines from stdin). The shell
 * language: `;` and newlines, single and double quotes, backslashes, `$VAR`, `$1…`,
 * `$@`, `$#`, `$?`, `NAME=value`, `set -- …`, `unset`, `exec ARGV`, and redirections to
 * `/dev/null` or `>&2`. Anything else fails as a shell would (127 for an unknown program).
 * A program is found by its name or a path ending in it; a name with spaces is just a
 * name (ACI runs the exec string as one executable), so `echo hi` is not found.
 * With a terminal (ACI's exec always has one) typed lines are echoed and ^D ends input.
 */
import { PassThrough } from 'node:stream';
import type { ExecSession } from '../../runtime.js';
import { errorMessage } from '../../../common/errors.js';

interface ExecContext {
  hostname: string;
  env: Record<string, string>;
}

/** The session's input, as a terminal in line mode would deliver it. */
class Input {
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  echo = true;

  constructor(
    stdin: PassThrough,
    private readonly tty: boolean,
    private readonly out: PassThrough,
  ) {
    stdin.on('data', (chunk: Buffer) => {
      let data = chunk;
      const eof = tty ? data.indexOf(0x04) : -1;
      if (eof >= 0) {
        data = data.subarray(0, eof);
        this.ended = true;
      }
      this.buf = Buffer.concat([this.buf, data]);
      this.wake?.();
    });
    stdin.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  private async wait(): Promise<void> {
    await new Promise<void>((r) => (this.wake = r));
    this.wake = undefined;
  }

  /** The next line without its end, or null at end of input. */
  async line(): Promise<string | null> {
    for (;;) {
      const nl = this.buf.findIndex((b) => b === 0x0a || b === 0x0d);
      if (nl >= 0) {
        const line = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        if (this.tty && this.echo) this.out.write(line + '\r\n');
        return line;
      }
      if (this.ended) {
        if (this.buf.length === 0) return null;
        const line = this.buf.toString('utf8');
        this.buf = Buffer.alloc(0);
        return line;
      }
      await this.wait();
    }
  }

  /** Whatever arrived, or null at end of input. */
  async chunk(): Promise<Buffer | null> {
    for (;;) {
      if (this.buf.length > 0) {
        const c = this.buf;
        this.buf = Buffer.alloc(0);
        if (this.tty && this.echo) this.out.write(c);
        return c;
      }
      if (this.ended) return null;
      await this.wait();
    }
  }
}

interface Io {
  input: Input;
  out: (s: string | Buffer) => void;
  err: (s: string | Buffer) => void;
  ctx: ExecContext;
}

/** A shell's state: variables, positional parameters, last status. */
interface Shell {
  vars: Record<string, string>;
  args: string[];
  arg0: string;
  status: number;
}

class ShellSyntaxError extends Error {}

/**
 * The first command of a script (up to an unquoted `;` or newline) as words after expansion,
 * and the rest. One at a time, so that `X=1; echo $X` sees the assignment.
 */
function parseCommand(line: string, sh: Shell): { words: string[]; rest: string } {
  const words: string[] = [];
  let cur: string | undefined;
  let i = 0;
  const variable = (): string[] | string => {
    // at '$'
    const rest = line.slice(i + 1);
    const braced = /^\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@#?])\}/.exec(rest);
    const plain = /^([A-Za-z_][A-Za-z0-9_]*|[0-9]|[@#?])/.exec(rest);
    const m = braced ?? plain;
    if (!m?.[1]) {
      if (rest.startsWith('('))
        throw new ShellSyntaxError('command substitution is not supported by the simulated runtime');
      i += 1;
      return '$';
    }
    i += 1 + m[0].length;
    const name = m[1];
    if (name === '@') return sh.args;
    if (name === '#') return String(sh.args.length);
    if (name === '?') return String(sh.status);
    if (/^[0-9]+$/.test(name)) return name === '0' ? sh.arg0 : (sh.args[Number(name) - 1] ?? '');
    return sh.vars[name] ?? '';
  };
  const endWord = (): void => {
    if (cur !== undefined) words.push(cur);
    cur = undefined;
  };
  while (i < line.length) {
    const ch = line[i] ?? '';
    if (ch === ';' || ch === '\n') {
      endWord();
      return { words, rest: line.slice(i + 1) };
    } else if (ch === ' ' || ch === '\t') {
      endWord();
      i += 1;
    } else if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ShellSyntaxError('unterminated quoted string');
      cur = (cur ?? '') + line.slice(i + 1, end);
      i = end + 1;
    } else if (ch === '"') {
      i += 1;
      // "$@" makes one word per parameter, the first and last glued to the text around them.
      const parts = [cur ?? ''];
      let onlyEmptyAt = cur === undefined;
      while (i < line.length && line[i] !== '"') {
        const c = line[i] ?? '';
        if (c === '\\' && /["\\$`]/.test(line[i + 1] ?? '')) {
          parts[parts.length - 1] += line[i + 1] ?? '';
          onlyEmptyAt = false;
          i += 2;
        } else if (c === '$') {
          const v = variable();
          if (Array.isArray(v)) {
            if (v.length === 0) continue;
            parts[parts.length - 1] += v[0] ?? '';
            parts.push(...v.slice(1));
          } else parts[parts.length - 1] += v;
          onlyEmptyAt = false;
        } else {
          parts[parts.length - 1] += c;
          onlyEmptyAt = false;
          i += 1;
        }
      }
      if (i >= line.length) throw new ShellSyntaxError('unterminated quoted string');
      i += 1;
      words.push(...parts.slice(0, -1));
      cur =
        onlyEmptyAt && parts.length === 1 && parts[0] === '' && line[i - 2] !== '"'
          ? undefined
          : parts[parts.length - 1];
    } else if (ch === '\\') {
      cur = (cur ?? '') + (line[i + 1] ?? '');
      i += 2;
    } else if (ch === '$') {
      const v = variable();
      if (Array.isArray(v)) {
        endWord();
        words.push(...v);
      } else cur = (cur ?? '') + v;
    } else {
      cur = (cur ?? '') + ch;
      i += 1;
    }
  }
  endWord();
  return { words, rest: '' };
}

/** POSIX printf's escapes in a format. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{1,3}|.)/g, (_m, e: string) => {
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return (
      ({ n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', '\\': '\\' } as Record<string, string>)[e] ??
      `\\${e}`
    );
  });
}

function printf(args: string[]): string {
  const [format = '', ...rest] = args;
  let out = '';
  let i = 0;
  do {
    let used = false;
    out += unescape(format).replace(/%([sdb%])/g, (_m, k: string) => {
      if (k === '%') return '%';
      used = true;
      const a = rest[i++] ?? '';
      if (k === 'd') return String(Number.parseInt(a || '0', 10) || 0);
      return k === 'b' ? unescape(a) : a;
    });
    if (!used) break;
  } while (i < rest.length);
  return out;
}

const base = (program: string): string => (program.includes('/') ? (program.split('/').pop() ?? '') : program);

/** Runs a program; resolves with its exit code. */
async function runProgram(argv: string[], io: Io): Promise<number> {
  const [program = '', ...args] = argv;
  switch (base(program)) {
    case 'echo':
      io.out(args[0] === '-n' ? args.slice(1).join(' ') : args.join(' ') + '\n');
      return 0;
    case 'printf':
      io.out(printf(args));
      return 0;
    case 'true':
    case 'stty':
      if (args.includes('-echo')) io.input.echo = false;
      return 0;
    case 'false':
      return 1;
    case 'exit':
      return Number(args[0] ?? 0);
    case 'hostname':
      io.out(io.ctx.hostname + '\n');
      return 0;
    case 'env':
      io.out(
        Object.entries(io.ctx.env)
          .map(([k, v]) => `${k}=${v}\n`)
          .join(''),
      );
      return 0;
    case 'cat': {
      if (args.length > 0) break;
      for (let c = await io.input.chunk(); c !== null; c = await io.input.chunk()) io.out(c);
      return 0;
    }
    case 'sh':
    case 'bash': {
      const sh: Shell = { vars: { ...io.ctx.env }, args: [], arg0: program, status: 0 };
      if (args[0] === '-c') {
        sh.arg0 = args[2] ?? program;
        sh.args = args.slice(3);
        const r = await runScript(args[1] ?? '', sh, io);
        return r.exit ?? sh.status;
      }
      if (args.length > 0) break;
      for (let line = await io.input.line(); line !== null; line = await io.input.line()) {
        const r = await runScript(line, sh, io);
        if (r.exit !== undefined) return r.exit;
      }
      return sh.status;
    }
    default:
      break;
  }
  io.err(`sh: ${program}: not found\n`);
  return 127;
}

/** Runs one script (line); `exit` set when the shell ends (exit, exec). */
async function runScript(script: string, sh: Shell, io: Io): Promise<{ exit?: number }> {
  for (let remaining = script; remaining.trim() !== '';) {
    let words: string[];
    try {
      ({ words, rest: remaining } = parseCommand(remaining, sh));
    } catch (e) {
      io.err(`sh: ${errorMessage(e)}\n`);
      sh.status = 2;
      return {};
    }
    if (words.length === 0) continue;
    // redirections: only to /dev/null and >&2
    let out = io.out;
    let err = io.err;
    words = words.filter((w) => {
      const m = /^([12]?)>(&2|\/dev\/null)$/.exec(w);
      if (!m) return true;
      const target = m[2] === '&2' ? io.err : () => undefined;
      if (m[1] === '2') err = target;
      else out = target;
      return false;
    });
    const cio: Io = { ...io, out, err };
    const assign = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(words[0] ?? '');
    if (assign && words.length === 1) {
      sh.vars[assign[1] ?? ''] = assign[2] ?? '';
      sh.status = 0;
      continue;
    }
    const [cmd, ...rest] = words;
    if (cmd === 'exit') return { exit: rest[0] !== undefined ? Number(rest[0]) : sh.status };
    if (cmd === 'exec') return { exit: rest.length ? await runProgram(rest, cio) : sh.status };
    if (cmd === 'set' && rest[0] === '--') {
      sh.args = rest.slice(1);
      sh.status = 0;
      continue;
    }
    if (cmd === 'unset') {
      for (const n of rest) delete sh.vars[n];
      sh.status = 0;
      continue;
    }
    sh.status = await runProgram(words, cio);
  }
  return {};
}

export function simulatedExec(command: string[], ctx: ExecContext, tty: boolean): ExecSession {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = tty ? undefined : new PassThrough();
  const errOut = stderr ?? stdout;
  let done = false;
  let resolveExit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  const finish = (code: number): void => {
    if (done) return;
    done = true;
    stdout.end();
    stderr?.end();
    stdin.removeAllListeners('data');
    resolveExit(code);
  };
  const write = (s: PassThrough) => (data: string | Buffer) => {
    if (!done) s.write(data);
  };
  const io: Io = { input: new Input(stdin, tty, stdout), out: write(stdout), err: write(errOut), ctx };
  void runProgram(command, io).then((code) => setImmediate(() => finish(code)));
  return {
    stdin,
    stdout,
    ...(stderr ? { stderr } : {}),
    resize: () => undefined,
    exited,
    kill: () => finish(137),
  };
}
