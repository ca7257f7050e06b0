#!/usr/bin/env node
/** `aci-emulator`: runs the ACI emulator standalone until SIGINT/SIGTERM. */
import { existsSync, readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { startEmulator, type EmulatorOptions } from './server.js';
import { parseScopes, type ScopeSettings } from './scopes.js';

const rate = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a share between 0 and 1');
  return n;
};
const count = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
};
const bucket = (v: string): { capacity: number; refillPerSecond: number } => {
  const m = /^(\d+):(\d+(?:\.\d+)?)$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected CAPACITY:REFILL_PER_SECOND, e.g. 250:25');
  return { capacity: Number(m[1]), refillPerSecond: Number(m[2]) };
};
const window = (v: string): { count: number; windowSeconds: number } => {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected COUNT/SECONDS, e.g. 100/300');
  return { count: Number(m[1]), windowSeconds: Number(m[2]) };
};
const latency = (v: string): number | { min: number; max: number } => {
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected MS or MIN-MAX');
  return m[2] === undefined ? Number(m[1]) : { min: Number(m[1]), max: Number(m[2]) };
};
const json = (v: string): Record<string, unknown> => {
  try {
    const text = existsSync(v) ? readFileSync(v, 'utf8') : v;
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new InvalidArgumentError('expected JSON text or a path to a JSON file');
  }
};

interface CliOptions {
  port: number;
  host: string;
  runtime: 'simulated' | 'podman';
  stateDir?: string;
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  subscriptionId?: string;
  throttling: boolean;
  readLimit?: { capacity: number; refillPerSecond: number };
  writeLimit?: { capacity: number; refillPerSecond: number };
  deleteLimit?: { capacity: number; refillPerSecond: number };
  creationLimit?: { count: number; windowSeconds: number };
  quotaGroups?: number;
  quotaCores?: number;
  scopes?: ScopeSettings[];
  fault500?: number;
  fault503?: number;
  latency?: number | { min: number; max: number };
  lostPutRate?: number;
  pageSize?: number;
  execSplitCommand: boolean;
  simulated?: Record<string, unknown>;
  podman?: Record<string, unknown>;
  keep: boolean;
  quiet: boolean;
  preflight: boolean;
}

const program = new Command()
  .name('aci-emulator')
  .description(
    'A local Azure Container Instances emulator: the Microsoft.ContainerInstance ARM API (2023-05-01) with an Entra token endpoint, over HTTPS.',
  )
  .option('-p, --port <port>', 'port to listen on (0 picks a free one)', count, 8443)
  .option('--host <address>', 'address to listen on', '127.0.0.1')
  .option('-r, --runtime <name>', "what runs container groups: 'simulated' or 'podman'", 'simulated')
  .option(
    '--state-dir <dir>',
    'folder for the CA, the token-signing key and runtime state (default: a temporary folder)',
  )
  .option('--tenant-id <id>', 'the emulated Entra tenant id')
  .option('--client-id <id>', 'the accepted client id')
  .option('--client-secret <secret>', 'the accepted client secret')
  .option('--subscription-id <id>', 'the subscription id to report (any is accepted)')
  .option('--no-throttling', 'switch off ARM throttling and the creation rate limit')
  .option('--read-limit <cap:refill>', 'read token bucket per subscription and principal (default 250:25)', bucket)
  .option('--write-limit <cap:refill>', 'write token bucket (default 200:10)', bucket)
  .option('--delete-limit <cap:refill>', 'delete token bucket (default 200:10)', bucket)
  .option(
    '--creation-limit <count/seconds>',
    "container group creations per window, subscription and region: one window replaces ACI's two (default 100/300 and 300/3600)",
    window,
  )
  .option('--quota-groups <n>', "regional quota: container groups per subscription (default 100, ACI's)", count)
  .option('--quota-cores <n>', "regional quota: cores per subscription (default 100, ACI's)", count)
  .option(
    '--scopes <json>',
    'limits and quotas of their own per subscription or region (JSON text or file): [{"subscriptionId", "region"?, "limits"?: {"creations": {"count", "windowSeconds"}, "write": …}, "quota"?: {"containerGroups", "cores"}}]',
    (v: string) => {
      try {
        return parseScopes(json(v));
      } catch (e) {
        throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
      }
    },
  )
  .option('--fault-500 <share>', 'share of ARM requests answered 500', rate)
  .option('--fault-503 <share>', 'share of ARM requests answered 503', rate)
  .option('--latency <ms>', 'added latency per ARM request: MS or MIN-MAX', latency)
  .option('--lost-put-rate <share>', 'share of container group PUTs whose response is dropped after success', rate)
  .option('--page-size <n>', 'list page size (default 100)', count)
  .option(
    '--exec-split-command',
    'extension: split exec command strings on whitespace (ACI runs the string as one executable)',
    false,
  )
  .option(
    '--simulated <json>',
    'simulated runtime options (JSON text or file): pullMs, startMs, exitAfterMs, restartDelayMs, rules, defaultFate',
    json,
  )
  .option('--podman <json>', 'podman runtime options (JSON text or file)', json)
  .option('--keep', 'leave containers running when the emulator stops', false)
  .option(
    '--no-preflight',
    "skip the runtime's start-up check that it can run a group (podman: create a pod, run the local image)",
  )
  .option('-q, --quiet', 'do not log internal errors', false);

program.parse();
const o = program.opts<CliOptions>();
if (o.runtime !== 'simulated' && o.runtime !== 'podman') {
  program.error(`unknown runtime '${String(o.runtime)}': use 'simulated' or 'podman'`);
}

const clientId = o.clientId;
const clientSecret = o.clientSecret;
const options: EmulatorOptions = {
  port: o.port,
  host: o.host,
  runtime: o.runtime,
  throttling: o.throttling,
  limits: {
    ...(o.readLimit ? { read: o.readLimit } : {}),
    ...(o.writeLimit ? { write: o.writeLimit } : {}),
    ...(o.deleteLimit ? { delete: o.deleteLimit } : {}),
    ...(o.creationLimit ? { creations: o.creationLimit } : {}),
  },
  quota: {
    ...(o.quotaGroups !== undefined ? { containerGroups: o.quotaGroups } : {}),
    ...(o.quotaCores !== undefined ? { cores: o.quotaCores } : {}),
  },
  ...(o.scopes ? { scopes: o.scopes } : {}),
  faults: {
    ...(o.fault500 !== undefined ? { serverErrorRate: o.fault500 } : {}),
    ...(o.fault503 !== undefined ? { unavailableRate: o.fault503 } : {}),
    ...(o.latency !== undefined ? { latencyMs: o.latency } : {}),
    ...(o.lostPutRate !== undefined ? { lostPutResponseRate: o.lostPutRate } : {}),
  },
  log: o.quiet ? () => undefined : (msg) => console.error(`[aci-emulator] ${msg}`),
  preflight: o.preflight,
};
if (o.stateDir) options.stateDir = o.stateDir;
if (o.tenantId) options.tenantId = o.tenantId;
if (o.subscriptionId) options.subscriptionId = o.subscriptionId;
if (o.pageSize !== undefined) options.pageSize = o.pageSize;
if (o.execSplitCommand) options.execSplitsCommand = true;
if (o.simulated) options.simulated = o.simulated;
if (o.podman) options.podman = o.podman;
if (clientId && clientSecret) options.clients = [{ clientId, clientSecret }];
else if (clientId || clientSecret) program.error('--client-id and --client-secret go together');

let emulator: Awaited<ReturnType<typeof startEmulator>>;
try {
  emulator = await startEmulator(options);
} catch (e) {
  // A machine that cannot run groups gets one line that names the fix, not a stack trace.
  if (e instanceof Error && e.name === 'PodmanPreflightError') {
    console.error(`aci-emulator: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
// The credentials are the emulator's own, printed so that clients can be configured; they guard nothing real.
console.log(
  [
    `ACI emulator listening (runtime: ${emulator.runtime.kind})`,
    `  endpoint (ARM):     ${emulator.endpoint}`,
    `  authority host:     ${emulator.authorityHost}`,
    `  tenant id:          ${emulator.tenantId}`,
    `  client id:          ${emulator.clientId}`,
    `  client secret:      ${emulator.clientSecret}`,
    `  subscription id:    ${emulator.subscriptionId}`,
    `  CA certificate:     ${emulator.caCertPath}`,
    `  state folder:       ${emulator.stateDir}`,
    '',
    `  export NODE_EXTRA_CA_CERTS=${emulator.caCertPath}`,
    `  export AZURE_TENANT_ID=${emulator.tenantId} AZURE_CLIENT_ID=${emulator.clientId} AZURE_CLIENT_SECRET=${emulator.clientSecret} AZURE_AUTHORITY_HOST=${emulator.authorityHost}`,
  ].join('\n'),
);

let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping${o.keep ? ' (keeping containers)' : ''}…`);
  emulator.stop({ keep: o.keep }).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
