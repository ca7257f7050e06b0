/**
 * Hands out group IPs from a loopback range (the whole of 127.0.0.0/8 is local on
 * Linux, so any address there can be published without configuring an interface).
 *
 * Two emulators on one machine must not hand out the same address, so each
 * allocation is also leased machine-wide by an exclusively created file holding
 * the owner's pid; a lease whose pid is gone is taken over.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class IpPoolError extends Error {
  override readonly name = 'IpPoolError';
}

export function parseIpv4(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new IpPoolError(`not an IPv4 address: ${ip}`);
  let n = 0;
  for (const p of parts) {
    const v = Number(p);
    if (!/^\d{1,3}$/.test(p) || v > 255) throw new IpPoolError(`not an IPv4 address: ${ip}`);
    n = n * 256 + v;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class LoopbackIpPool {
  private readonly first: number;
  private readonly size: number;
  private next: number;
  private readonly mine = new Set<string>();
  readonly leaseDir: string;

  constructor(cidr: string, leaseDir = join(tmpdir(), 'aci-emulator-ip-leases')) {
    const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
    if (!m || !m[1] || !m[2]) throw new IpPoolError(`invalid CIDR: ${cidr}`);
    const bits = Number(m[2]);
    if (bits < 8 || bits > 30) throw new IpPoolError(`CIDR prefix must be between /8 and /30: ${cidr}`);
    const base = parseIpv4(m[1]);
    const block = 2 ** (32 - bits);
    const network = base - (base % block);
    if (Math.floor(network / 2 ** 24) !== 127) throw new IpPoolError(`IP pool must lie in 127.0.0.0/8: ${cidr}`);
    // Skip the network and broadcast addresses: they work on lo but confuse people.
    this.first = network + 1;
    this.size = block - 2;
    this.next = Math.floor(Math.random() * this.size);
    this.leaseDir = leaseDir;
    mkdirSync(leaseDir, { recursive: true });
  }

  /** Allocates a free address; `exclude` skips addresses found unusable just now. */
  allocate(exclude: ReadonlySet<string> = new Set()): string {
    for (let i = 0; i < this.size; i++) {
      const ip = formatIpv4(this.first + ((this.next + i) % this.size));
      if (this.mine.has(ip) || exclude.has(ip)) continue;
      if (this.lease(ip)) {
        this.next = (this.next + i + 1) % this.size;
        this.mine.add(ip);
        return ip;
      }
    }
    throw new IpPoolError('the loopback IP pool is exhausted');
  }

  release(ip: string): void {
    if (!this.mine.delete(ip)) return;
    try {
      unlinkSync(join(this.leaseDir, ip));
    } catch {
      // already gone
    }
  }

  releaseAll(): void {
    for (const ip of [...this.mine]) this.release(ip);
  }

  private lease(ip: string): boolean {
    return takeLease(this.leaseDir, ip);
  }
}

/**
 * Leases `name` machine-wide: an exclusively created file in `dir` holding this pid. A lease
 * whose pid is gone is taken over. Shared by the loopback IP pool and the VNet subnet pool.
 */
export function takeLease(dir: string, name: string): boolean {
  const file = join(dir, name);
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  let owner = NaN;
  try {
    owner = Number(readFileSync(file, 'utf8'));
  } catch {
    return false;
  }
  if (owner === process.pid || (Number.isInteger(owner) && owner > 0 && pidAlive(owner))) return false;
  // Stale lease of a process that died: take it over.
  try {
    unlinkSync(file);
    writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch {
    return false;
  }
}

export function dropLease(dir: string, name: string): void {
  try {
    unlinkSync(join(dir, name));
  } catch {
    // already gone
  }
}
