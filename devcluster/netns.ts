/**
 * Network namespaces a test creates for itself, to give a loopback service an
 * address the API server will dial. The API server refuses to proxy to loopback
 * (`address not allowed` on nodes/NAME/proxy, pods/NAME/proxy, and Endpoints of
 * aggregated APIs), so a service on 127.0.0.1 gets a front:
 *
 *   API server ──TCP──▶ ADDRESS:PORT (inside the namespace, a Node process run by `ip netns exec`)
 *                        ──unix socket──▶ this process ──TCP──▶ 127.0.0.1:TARGET
 *
 * A unix socket is a file, so it crosses the namespace boundary; nothing listens
 * on a private address of the root namespace. The namespace is joined to the root
 * one by a veth pair with a /30 of 198.18.0.0/15 (RFC 2544's range for network
 * tests), so traffic only goes to a namespace the test made.
 *
 * Everything is recorded under RUNDIR (netns/NAME, pids/…): teardown() removes it,
 * and so does `devcluster down RUNDIR` (removeRecordedNamespaces) after a crash.
 * Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2's `ip`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { logTail, startProcess, terminate, type Managed } from './processes.js';

const exec = promisify(execFile);
const FRONT_MAIN = fileURLToPath(new URL('./netns-front.js', import.meta.url));
/** The longest unix socket path Linux accepts (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

export class NetnsError extends Error {
  override readonly name = 'NetnsError';
}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await exec('ip', args, { timeout: 15_000 });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new NetnsError('`ip` not found: install iproute2 (scripts/lib.sh installs it)');
    throw new NetnsError(`ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** One front: ADDRESS:port inside the namespace, relayed to 127.0.0.1:target. */
export interface Front {
  address: string;
  port: number;
  target: number;
  close(): Promise<void>;
}

export interface NetworkNamespace {
  /** The namespace's name (`ip netns list`). */
  name: string;
  /** The namespace side of the veth pair: the address callers dial. */
  address: string;
  /** The root side of the pair (the namespace's route back). Nothing listens on it. */
  hostAddress: string;
  /** Accepts on address:port inside the namespace and relays each connection to 127.0.0.1:target. */
  front(port: number, target: number): Promise<Front>;
  /** Stops the fronts and deletes the namespace (and with it the veth pair). Idempotent. */
  teardown(): Promise<void>;
}

function recordDir(runDir: string): string {
  return join(runDir, 'netns');
}

/** A free /30 of 198.18.0.0/15: [host side, namespace side]. */
async function freeSubnet(): Promise<[string, string]> {
  const used = await ip(['-4', '-o', 'addr', 'show']);
  for (let attempt = 0; attempt < 64; attempt++) {
    const n = randomBytes(2).readUInt16BE(0) % 32768; // 32768 /30s in a /15
    const base = (198 << 24) + (18 << 16) + n * 4;
    const dotted = (v: number) => [24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.');
    const host = dotted(base + 1);
    const inner = dotted(base + 2);
    if (!used.includes(` ${host}/`) && !used.includes(` ${inner}/`)) return [host, inner];
  }
  throw new NetnsError('no free /30 in 198.18.0.0/15');
}

async function waitConnectable(address: string, port: number, front: Managed, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let ended = false;
  void front.exited.then(() => (ended = true));
  for (;;) {
    if (ended) throw new NetnsError(`the front on ${address}:${port} exited:\n${logTail(front)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: address, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new NetnsError(`the front on ${address}:${port} did not accept within ${ms} ms:\n${logTail(front)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The root-namespace end of a front: a unix socket whose connections go to 127.0.0.1:target. */
function relayServer(path: string, target: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const srv = createServer((inbound) => {
    const outbound = createConnection({ host: '127.0.0.1', port: target });
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    }
    inbound.pipe(outbound).pipe(inbound);
    inbound.once('error', () => outbound.destroy());
    outbound.once('error', () => inbound.destroy());
  });
  const close = srv.close.bind(srv);
  // Closing the relay also ends its open connections (close() alone waits for them).
  srv.close = (cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  };
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(path, () => resolve(srv));
  });
}

/** Creates a namespace joined to the root one by a veth pair, recorded under runDir. */
export async function createNetworkNamespace(runDir: string): Promise<NetworkNamespace> {
  const id = randomBytes(4).toString('hex');
  const name = `aci-${id}`;
  // Interface names are at most 15 characters.
  const hostIf = `acih${id}`;
  const innerIf = `acin${id}`;
  const records = recordDir(runDir);
  mkdirSync(records, { recursive: true });
  // Recorded before it exists, so a crash between the steps still leaves it found by `down`.
  writeFileSync(join(records, name), `${hostIf}\n`);
  const [hostAddress, address] = await freeSubnet();
  const fronts = new Set<Front>();
  let gone = false;

  const teardown = async (): Promise<void> => {
    if (gone) return;
    gone = true;
    await Promise.all([...fronts].map((f) => f.close()));
    await removeNamespace(name, hostIf);
    rmSync(join(records, name), { force: true });
  };

  try {
    await ip(['netns', 'add', name]);
    await ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', innerIf]);
    await ip(['link', 'set', innerIf, 'netns', name]);
    await ip(['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    await ip(['link', 'set', hostIf, 'up']);
    await ip(['-n', name, 'addr', 'add', `${address}/30`, 'dev', innerIf]);
    await ip(['-n', name, 'link', 'set', innerIf, 'up']);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await teardown();
    throw err;
  }

  const front = async (port: number, target: number): Promise<Front> => {
    if (gone) throw new NetnsError(`namespace ${name} is torn down`);
    const sock = join(records, `${name}-${port}.sock`);
    if (sock.length > MAX_SOCKET_PATH)
      throw new NetnsError(`unix socket path too long (${sock.length} > ${MAX_SOCKET_PATH}): ${sock}`);
    rmSync(sock, { force: true });
    const relay = await relayServer(sock, target);
    // runDir is in the front's arguments, so `devcluster down RUNDIR` finds it too.
    const proc = startProcess(runDir, `netns-front-${name}-${port}`, 'ip', [
      'netns',
      'exec',
      name,
      process.execPath,
      FRONT_MAIN,
      address,
      String(port),
      sock,
    ]);
    const f: Front = {
      address,
      port,
      target,
      close: async () => {
        fronts.delete(f);
        if (proc.child.exitCode === null && proc.child.signalCode === null && proc.child.pid !== undefined)
          await terminate([proc.child.pid], 2_000);
        await new Promise<void>((r) => relay.close(() => r()));
        rmSync(sock, { force: true });
      },
    };
    fronts.add(f);
    try {
      await waitConnectable(address, port, proc, 15_000);
    } catch (err) {
      await f.close();
      throw err;
    }
    return f;
  };

  return { name, address, hostAddress, front, teardown };
}

async function removeNamespace(name: string, hostIf: string | undefined): Promise<void> {
  // Deleting the namespace destroys its end of the pair, and the kernel the peer with it.
  const list = await ip(['netns', 'list']).catch(() => '');
  if (list.split('\n').some((l) => l.split(' ')[0] === name)) await ip(['netns', 'delete', name]);
  if (hostIf && existsSync(`/sys/class/net/${hostIf}`)) await ip(['link', 'delete', hostIf]).catch(() => undefined);
}

/** Folders named `netns` (this module's records) at most `depth` levels below dir. */
function recordDirs(dir: string, depth: number): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const path = join(dir, e.name);
    if (e.name === 'netns') out.push(path);
    else if (depth > 0) out.push(...recordDirs(path, depth - 1));
  }
  return out;
}

/**
 * Deletes every namespace recorded under dir or a run folder below it (for `devcluster down`
 * and the test runner, after a run that could not tear down). Their fronts are processes of
 * the run, stopped by stopRun.
 */
export async function removeRecordedNamespaces(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const records of recordDirs(dir, 3)) {
    for (const entry of readdirSync(records)) {
      if (!/^aci-[0-9a-f]{8}$/.test(entry)) continue;
      await removeNamespace(entry, `acih${entry.slice(4)}`);
      rmSync(join(records, entry), { force: true });
      removed.push(entry);
    }
  }
  return removed;
}
