/**
 * Groups in a VNet (`ipAddress.type: Private`): the group's pod gets its own network
 * namespace joined to the host by a veth pair, with a /30 of a test range (default
 * 198.19.0.0/16, inside RFC 2544's 198.18.0.0/15): the host side on one end, the group's
 * private IP on the other. Connections to the group IP reach the containers' own network
 * namespace, so every port is reachable and a port nothing listens on is refused (RST), as in
 * an ACI VNet, where no forwarder stands in front of the group. slirp4netns (the public
 * groups' network) accepts every connection on the host first, whatever the container does.
 *
 * Why not a podman (netavark) bridge network: it adds firewall rules (iptables or nftables,
 * by netavark version) and turns on IP forwarding machine-wide, and one bridge is state two
 * emulators would share. A veth pair per pod needs only iproute2's `ip` and util-linux's
 * `nsenter`, and it disappears with the pod's namespace when podman removes the pod.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dropLease, formatIpv4, IpPoolError, parseIpv4, takeLease } from './ip-pool.js';

const run = promisify(execFile);

export class VnetError extends Error {
  override readonly name = 'VnetError';
}

/** One group's link: the host end (interface and address) and the group's own address. */
export interface VnetLink {
  hostIf: string;
  hostAddress: string;
  groupAddress: string;
}

const TEST_RANGE = { base: parseIpv4('198.18.0.0'), size: 2 ** 17 };

/** Hands out /30s of a range inside 198.18.0.0/15, leased machine-wide (ip-pool.ts's leases). */
export class VnetSubnetPool {
  private readonly first: number;
  private readonly count: number;
  private readonly mine = new Set<string>();
  readonly leaseDir: string;

  constructor(cidr: string, leaseDir = join(tmpdir(), 'aci-emulator-ip-leases')) {
    const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
    if (!m || !m[1] || !m[2]) throw new IpPoolError(`invalid CIDR: ${cidr}`);
    const bits = Number(m[2]);
    if (bits < 15 || bits > 30) throw new IpPoolError(`VNet pool prefix must be between /15 and /30: ${cidr}`);
    const block = 2 ** (32 - bits);
    const network = parseIpv4(m[1]) - (parseIpv4(m[1]) % block);
    if (network < TEST_RANGE.base || network + block > TEST_RANGE.base + TEST_RANGE.size)
      throw new IpPoolError(`VNet pool must lie in 198.18.0.0/15 (never routed): ${cidr}`);
    this.first = network;
    this.count = block / 4;
    this.leaseDir = leaseDir;
    mkdirSync(leaseDir, { recursive: true });
  }

  /** A free /30: leased here, and neither address on any interface of the machine. */
  async allocate(): Promise<{ hostAddress: string; groupAddress: string }> {
    const used = await ip(['-4', '-o', 'addr', 'show']);
    const start = Math.floor(Math.random() * this.count);
    for (let i = 0; i < this.count; i++) {
      const base = this.first + ((start + i) % this.count) * 4;
      const hostAddress = formatIpv4(base + 1);
      const groupAddress = formatIpv4(base + 2);
      // Other users of the range (devcluster/netns.ts) take aligned /30s too: checking both
      // addresses is checking the whole /30.
      if (used.includes(` ${hostAddress}/`) || used.includes(` ${groupAddress}/`)) continue;
      if (this.mine.has(hostAddress) || !takeLease(this.leaseDir, `vnet-${hostAddress}`)) continue;
      this.mine.add(hostAddress);
      return { hostAddress, groupAddress };
    }
    throw new IpPoolError('the VNet subnet pool is exhausted');
  }

  release(hostAddress: string): void {
    if (this.mine.delete(hostAddress)) dropLease(this.leaseDir, `vnet-${hostAddress}`);
  }

  releaseAll(): void {
    for (const a of [...this.mine]) this.release(a);
  }
}

async function ip(args: string[], nsPid?: number): Promise<string> {
  const [file, argv] = nsPid === undefined ? ['ip', args] : ['nsenter', ['-t', String(nsPid), '-n', 'ip', ...args]];
  try {
    return (await run(file, argv, { timeout: 15_000 })).stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT')
      throw new VnetError(
        `${file} not found: install ${file === 'ip' ? 'iproute2' : 'util-linux'} (VNet groups need it)`,
      );
    throw new VnetError(`${file} ${argv.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/**
 * Joins the network namespace of process `pid` (the pod's infra container, created with
 * `--network none`) to the host: the veth's far end becomes the namespace's eth0.
 */
export async function attachVnet(
  pid: number,
  subnet: { hostAddress: string; groupAddress: string },
  previousHostIf?: string,
): Promise<VnetLink> {
  // The pair of an earlier pod of the group goes with that pod's namespace, which the kernel
  // frees asynchronously: a leftover would hold the same host address.
  if (previousHostIf) await ip(['link', 'del', previousHostIf]).catch(() => undefined);
  const hostIf = `aciv${randomBytes(4).toString('hex')}`; // at most 15 characters
  await ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', String(pid)]);
  try {
    await ip(['addr', 'add', `${subnet.hostAddress}/30`, 'dev', hostIf]);
    await ip(['link', 'set', hostIf, 'up']);
    await ip(['addr', 'add', `${subnet.groupAddress}/30`, 'dev', 'eth0'], pid);
    await ip(['link', 'set', 'eth0', 'up'], pid);
    await ip(['link', 'set', 'lo', 'up'], pid);
  } catch (e) {
    await ip(['link', 'del', hostIf]).catch(() => undefined);
    throw e;
  }
  return { hostIf, ...subnet };
}
