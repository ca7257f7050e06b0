/** The ACI emulator's podman runtime: real pods and containers. */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import type { ContainerGroupRuntime } from '../../runtime.js';
import { PodmanRuntime, type PodmanRuntimeOptions } from './podman-runtime.js';

export type { PodmanRuntimeOptions } from './podman-runtime.js';
export { PodmanRuntime } from './podman-runtime.js';
export { machineUlimits, renderContainersConf } from './setup.js';
export { PodmanPreflightError } from './preflight.js';

/** Options may come from the CLI as JSON, so they are checked here. */
const optionsSchema = z.strictObject({
  stateDir: z.string().min(1).optional(),
  ipPool: z.string().optional(),
  ipLeaseDir: z.string().optional(),
  vnetPool: z.string().optional(),
  podmanBinary: z.string().optional(),
  storageDriver: z.enum(['overlay', 'vfs']).optional(),
  instanceId: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .optional(),
  restartBackoff: z.strictObject({ initialMs: z.number().positive(), maxMs: z.number().positive() }).optional(),
  refreshIntervalMs: z.number().min(100).optional(),
  pullTimeoutMs: z.number().positive().optional(),
  stopTimeoutSeconds: z.number().int().min(0).optional(),
  reapOrphans: z.boolean().optional(),
  helperBinariesDir: z.array(z.string().min(1)).optional(),
  log: z.custom<NonNullable<PodmanRuntimeOptions['log']>>((v) => typeof v === 'function').optional(),
});

export class PodmanOptionsError extends Error {
  override readonly name = 'PodmanOptionsError';
}

/**
 * Without a stateDir, podman state goes to one machine-wide folder: safe to share,
 * since each runtime labels what it starts and removes only that.
 */
export function createPodmanRuntime(
  opts: Partial<PodmanRuntimeOptions> = {},
): ContainerGroupRuntime & { readonly instanceId: string } {
  const parsed = optionsSchema.safeParse(opts);
  if (!parsed.success) {
    throw new PodmanOptionsError(
      `invalid podman runtime options: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return new PodmanRuntime({ ...parsed.data, stateDir: parsed.data.stateDir ?? join(tmpdir(), 'aci-emulator-podman') });
}
