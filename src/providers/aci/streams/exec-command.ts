/**
 * How a Kubernetes exec argv becomes what ACI's exec can run.
 *
 * ACI's `executeCommand` takes one command string and Microsoft documents that it
 * cannot pass arguments: it starts a single executable. So:
 * - one word without whitespace is sent as it is;
 * - anything else starts `/bin/sh` and types one line into it that `exec`s the exact
 *   argv, each argument POSIX single-quoted. The shell is then replaced by the
 *   command, so its streams, stdin and exit code are the command's.
 *
 * The line is built from printable ASCII only (bytes outside it are written as printf
 * octal escapes), because it passes through a terminal and often a line editor, where
 * a tab completes, a newline ends the line and ^C/^D/^U act. It prints a sentinel
 * (`\x1e<nonce>\x1e`, produced by printf from escapes, so the terminal's echo of the
 * line itself never contains it) right before the `exec`: everything before the
 * sentinel (prompt, echo) is dropped, and the user's stdin is held back until then.
 */
import { randomBytes } from 'node:crypto';

/** busybox ash's line editor keeps at most 1024 bytes of a line (CONFIG_FEATURE_EDITING_MAX_LEN). */
export const MAX_SHELL_LINE = 1000;
export const SHELL = '/bin/sh';

/** POSIX single quotes: everything literal; a `'` closes, is escaped, and reopens. */
export function quotePosix(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

const PRINTABLE = /^[\x20-\x7e]*$/;

/** A printf format that prints `arg` exactly: `%` and `\` doubled, other bytes as `\NNN`. */
function printfFormat(arg: string): string {
  let out = '';
  for (const byte of Buffer.from(arg, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (ch === '%') out += '%%';
    else if (ch === '\\') out += '\\\\';
    else if (byte >= 0x20 && byte <= 0x7e) out += ch;
    else out += '\\' + byte.toString(8).padStart(3, '0');
  }
  return out;
}

export type ExecPlan =
  | { kind: 'direct'; command: string }
  | { kind: 'shell'; command: string; line: string; sentinel: Buffer }
  | { kind: 'refused'; message: string };

/**
 * `tty` false (kubectl exec without -t): the line also turns the terminal's echo, output
 * processing (\n → \r\n), signals and flow control off, so bytes pass as through a pipe;
 * it stays in line mode, so a ^D the provider sends at the end of stdin is end-of-file.
 */
export function planExec(command: readonly string[], tty: boolean, nonce = randomBytes(6).toString('hex')): ExecPlan {
  if (command.length === 0) return { kind: 'refused', message: 'exec needs a command' };
  if (command.length === 1 && /^[^\s]+$/.test(command[0] ?? '') && PRINTABLE.test(command[0] ?? '')) {
    return { kind: 'direct', command: command[0] ?? '' };
  }
  const parts: string[] = [];
  if (!tty) parts.push('stty -echo -opost -isig -icrnl -ixon -iexten 2>/dev/null');
  let exec: string;
  if (command.every((a) => PRINTABLE.test(a))) {
    exec = `exec ${command.map(quotePosix).join(' ')}`;
  } else {
    // `$(…)` strips trailing newlines, hence the `_` that is cut off again.
    parts.push('set --');
    for (const a of command) {
      if (PRINTABLE.test(a)) parts.push(`set -- "$@" ${quotePosix(a)}`);
      else parts.push(`__aci_arg=$(printf ${quotePosix(printfFormat(a) + '_')})`, 'set -- "$@" "${__aci_arg%_}"');
    }
    parts.push('unset __aci_arg');
    exec = 'exec "$@"';
  }
  parts.push(`printf '\\036%s\\036' ${nonce}`, exec, 'exit');
  const line = parts.join('; ') + '\n';
  if (line.length > MAX_SHELL_LINE) {
    return {
      kind: 'refused',
      message:
        `the command is too long to pass through ACI's exec exactly (${line.length} bytes quoted, at most ${MAX_SHELL_LINE}): ` +
        'ACI runs one executable without arguments, so arguments are typed into /bin/sh in the container',
    };
  }
  return { kind: 'shell', command: SHELL, line, sentinel: Buffer.from(`\x1e${nonce}\x1e`, 'latin1') };
}
