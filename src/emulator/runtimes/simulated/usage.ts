/**
 * Plausible figures for a simulated container, which has no process to measure:
 * a fate may state them (`usage` on a `runs` fate); otherwise a command that
 * spins (`while :; do :; done`, `while true; do …`, `yes`) uses all the CPU its
 * container may (limit, else request), and anything else idles at 1 % of its
 * request. Memory is a small share of the request that grows slightly with time.
 * Deterministic per container and moment, so tests can reason about it.
 */
import type { ContainerUsageSample, RuntimeContainerSpec } from '../../runtime.js';
import type { SimulatedFate } from './fates.js';

const BUSY = /while\s+(?::|true)\s*;\s*do\b|(?:^|[\s;&|])yes(?:\s|$)/;

export function simulatedUsage(
  spec: RuntimeContainerSpec,
  fate: SimulatedFate,
  startedAt: Date,
  now = Date.now(),
): ContainerUsageSample {
  const stated = fate.kind === 'runs' ? fate.usage : undefined;
  const cores = spec.limits?.cpu ?? spec.cpu;
  const memoryGb = spec.limits?.memoryInGB ?? spec.memoryInGB;
  const busy = BUSY.test((spec.command ?? []).join(' '));
  const cpuMillicores = stated?.cpuMillicores ?? Math.max(1, Math.round(cores * 1000 * (busy ? 1 : 0.01)));
  const ageMinutes = Math.max(0, now - startedAt.getTime()) / 60_000;
  const base = memoryGb * 1024 ** 3 * 0.02;
  const memoryBytes =
    stated?.memoryBytes ?? Math.max(1024 ** 2, Math.round(base * (1 + Math.min(0.5, ageMinutes / 60))));
  return { cpuMillicores, memoryBytes };
}
