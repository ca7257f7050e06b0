/**
 * The mock backend's streaming hooks (kubectl logs / exec / attach). Nothing runs,
 * so output is made up from what the mock knows, in a fixed shape tests can rely on.
 *
 * Logs of a container run (the current one, or the one before with `previous`):
 *   started <image>
 *   env NAME=value            one line per env var the core resolved, in order;
 *                             Secret-sourced values print as "(secret)"
 *   exited with code N        once the run ended
 * Every line of a run carries the run's start time (finish time for the exit line),
 * which `timestamps` prints and `sinceSeconds` filters on.
 *
 * Exec runs a tiny built-in command set (no quoting rules beyond `sh -c`):
 *   echo ARGS…      ARGS joined by spaces and a newline on stdout
 *   echoerr ARGS…   the same on stderr
 *   cat             stdin to stdout until stdin ends
 *   env             the container's env, NAME=value per line
 *   hostname        the pod name
 *   stty size       "ROWS COLS" from the first terminal size sent (tty sessions only)
 *   true / false    exit 0 / 1
 *   exit N          exit N
 *   sleep SECONDS   waits, then exit 0
 *   sh -c "LINE"    LINE split on blanks and run as one of the above
 * Anything else prints "<cmd>: command not found" on stderr and exits 127, as a shell does.
 * Attach joins the main process: it echoes stdin to stdout; without stdin it prints
 * the current run's log and stays until the run ends or the caller leaves.
 */
import { once } from 'node:events';
import { PassThrough, Readable, type Writable } from 'node:stream';
import type { ExecResult, ExecStreams, LogOptions } from '../../core/provider.js';
import type { MockPod } from './state-store.js';

/** Reads the pod as the backend holds it now (undefined once deleted). */
export type PodSnapshot = () => MockPod | undefined;

export class MockStreamError extends Error {
  override readonly name = 'MockStreamError';
}

interface LogLine {
  at: Date;
  text: string;
}

function toDate(v: Date | string | undefined): Date {
  return v === undefined ? new Date(0) : new Date(v);
}

function containerOf(pod: MockPod | undefined, container: string) {
  if (!pod) throw new MockStreamError('the pod is gone from the mock backend');
  const spec = pod.containers.find((c) => c.name === container);
  const status = pod.status.containerStatuses?.find((s) => s.name === container);
  if (!spec) throw new MockStreamError(`container ${JSON.stringify(container)} is not in the mock pod`);
  return { pod, spec, status };
}

function runLines(
  pod: MockPod,
  container: string,
  image: string,
  startedAt: Date,
  exit?: { code: number; at: Date },
): LogLine[] {
  const lines: LogLine[] = [{ at: startedAt, text: `started ${image}` }];
  for (const v of pod.env[container] ?? [])
    lines.push({ at: startedAt, text: `env ${v.name}=${v.value ?? '(secret)'}` });
  if (exit) lines.push({ at: exit.at, text: `exited with code ${exit.code}` });
  return lines;
}

/** The log lines of the current run (or the previous one); undefined while the container never started. */
function currentLines(
  snapshot: PodSnapshot,
  container: string,
  previous: boolean,
): { lines: LogLine[]; running: boolean; restarts: number } {
  const { pod, spec, status } = containerOf(snapshot(), container);
  if (previous) {
    const last = status?.lastState?.terminated;
    if (!last) throw new MockStreamError(`previous terminated container ${JSON.stringify(container)} not found`);
    const lines = runLines(pod, container, spec.image, toDate(last.startedAt), {
      code: last.exitCode,
      at: toDate(last.finishedAt),
    });
    return { lines, running: false, restarts: status.restartCount };
  }
  const state = status?.state;
  if (state?.running)
    return {
      lines: runLines(pod, container, spec.image, toDate(state.running.startedAt)),
      running: true,
      restarts: status?.restartCount ?? 0,
    };
  if (state?.terminated) {
    const t = state.terminated;
    return {
      lines: runLines(pod, container, spec.image, toDate(t.startedAt), { code: t.exitCode, at: toDate(t.finishedAt) }),
      running: false,
      restarts: status?.restartCount ?? 0,
    };
  }
  throw new MockStreamError(`container ${JSON.stringify(container)} has not started yet`);
}

function render(lines: LogLine[], opts: LogOptions): string {
  let picked = lines;
  if (opts.sinceSeconds !== undefined) {
    const from = Date.now() - opts.sinceSeconds * 1000;
    picked = picked.filter((l) => l.at.getTime() >= from);
  }
  if (opts.tailLines !== undefined) picked = opts.tailLines === 0 ? [] : picked.slice(-opts.tailLines);
  let text = picked.map((l) => (opts.timestamps ? `${l.at.toISOString()} ${l.text}\n` : `${l.text}\n`)).join('');
  if (opts.limitBytes !== undefined) text = Buffer.from(text).subarray(0, opts.limitBytes).toString();
  return text;
}

export function mockLogs(snapshot: PodSnapshot, container: string, opts: LogOptions): Readable {
  const first = currentLines(snapshot, container, opts.previous ?? false);
  const text = render(first.lines, opts);
  if (!opts.follow || opts.previous || !first.running) return Readable.from([text]);
  // Follow: the run's lines are all written at start; wait for its exit line, then end.
  const out = new PassThrough();
  out.write(text);
  const timer = setInterval(() => {
    let now: ReturnType<typeof currentLines>;
    try {
      now = currentLines(snapshot, container, false);
    } catch {
      clearInterval(timer);
      out.end();
      return;
    }
    if (now.running && now.restarts === first.restarts) return;
    clearInterval(timer);
    // The run ended (or restarted): its exit line is the previous run's last line.
    const ended = now.restarts === first.restarts ? now : currentLines(snapshot, container, true);
    const exitLine = ended.lines[ended.lines.length - 1];
    if (exitLine && exitLine.text.startsWith('exited'))
      out.write(opts.timestamps ? `${exitLine.at.toISOString()} ${exitLine.text}\n` : `${exitLine.text}\n`);
    out.end();
  }, 250);
  out.on('close', () => clearInterval(timer));
  return out;
}

function writeText(w: Writable | undefined, text: string): Promise<void> {
  if (!w || text === '') return Promise.resolve();
  return new Promise((resolve) => {
    w.write(text, () => resolve());
  });
}

async function pump(from: Readable | undefined, to: Writable | undefined): Promise<void> {
  if (!from) return;
  for await (const chunk of from) {
    if (to && !to.destroyed && !to.write(chunk as Buffer)) await Promise.race([once(to, 'drain'), once(to, 'close')]);
  }
}

function envText(pod: MockPod, container: string): string {
  return (pod.env[container] ?? []).map((v) => `${v.name}=${v.value ?? '(secret)'}\n`).join('');
}

async function run(pod: MockPod, container: string, argv: string[], s: ExecStreams): Promise<number> {
  const [cmd = '', ...args] = argv;
  switch (cmd) {
    case 'echo':
      await writeText(s.stdout, `${args.join(' ')}\n`);
      return 0;
    case 'echoerr':
      await writeText(s.stderr ?? s.stdout, `${args.join(' ')}\n`);
      return 0;
    case 'cat':
      await pump(s.stdin, s.stdout);
      return 0;
    case 'env':
      await writeText(s.stdout, envText(pod, container));
      return 0;
    case 'stty':
      return stty(args, s);
    case 'hostname':
      await writeText(s.stdout, `${pod.ref.name}\n`);
      return 0;
    case 'true':
      return 0;
    case 'false':
      return 1;
    case 'exit': {
      const n = Number(args[0] ?? '0');
      if (!Number.isInteger(n)) {
        await writeText(s.stderr ?? s.stdout, `exit: ${args[0] ?? ''}: numeric argument required\n`);
        return 2;
      }
      return ((n % 256) + 256) % 256;
    }
    case 'sleep': {
      const secs = Number(args[0] ?? '0');
      if (!Number.isFinite(secs) || secs < 0) {
        await writeText(s.stderr ?? s.stdout, `sleep: invalid time interval ${JSON.stringify(args[0] ?? '')}\n`);
        return 1;
      }
      await new Promise((r) => setTimeout(r, secs * 1000));
      return 0;
    }
    case 'sh':
    case '/bin/sh':
      if (args[0] === '-c' && args[1] !== undefined) {
        return run(
          pod,
          container,
          args[1].split(/\s+/).filter((a) => a !== ''),
          s,
        );
      }
      await writeText(s.stderr ?? s.stdout, 'sh: the mock shell only runs "sh -c LINE"\n');
      return 2;
    default:
      await writeText(s.stderr ?? s.stdout, `${cmd}: command not found\n`);
      return 127;
  }
}

/** `stty size`: rows and columns from the first terminal size the client sends. */
async function stty(args: string[], s: ExecStreams): Promise<number> {
  if (args[0] !== 'size') {
    await writeText(s.stderr ?? s.stdout, 'stty: the mock only knows "stty size"\n');
    return 1;
  }
  if (!s.tty || !s.resize) {
    await writeText(s.stderr ?? s.stdout, 'stty: standard input: Inappropriate ioctl for device\n');
    return 1;
  }
  for await (const size of s.resize) {
    await writeText(s.stdout, `${size.height} ${size.width}\n`);
    return 0;
  }
  await writeText(s.stderr ?? s.stdout, 'stty: no terminal size was sent\n');
  return 1;
}

function runningPod(snapshot: PodSnapshot, container: string): MockPod {
  const { pod, status } = containerOf(snapshot(), container);
  if (!status?.state?.running) throw new MockStreamError(`container ${JSON.stringify(container)} is not running`);
  return pod;
}

export async function mockExec(
  snapshot: PodSnapshot,
  container: string,
  command: string[],
  streams: ExecStreams,
): Promise<ExecResult> {
  const pod = runningPod(snapshot, container);
  const exitCode = await run(pod, container, command, streams);
  return { exitCode };
}

export async function mockAttach(snapshot: PodSnapshot, container: string, streams: ExecStreams): Promise<ExecResult> {
  runningPod(snapshot, container);
  if (streams.stdin) {
    await pump(streams.stdin, streams.stdout);
    return { exitCode: 0 };
  }
  const out = streams.stdout ?? streams.stderr;
  const log = mockLogs(snapshot, container, { follow: true });
  // The caller leaving ends the attach; the container keeps running.
  out?.once('close', () => log.destroy());
  try {
    await pump(log, out);
  } catch {
    // destroyed because the caller left
  }
  return { exitCode: 0 };
}
