/**
 * Kubernetes requests/limits → ACI cpu/memoryInGB.
 *
 * ACI rules followed here:
 * - every container has a request; the group's size is the sum of requests;
 * - a container's limit may not exceed the group's total request;
 * - cpu is expressed in cores with two decimals, memory in GB (10^9 bytes) with one.
 * We always round up, so a container never gets less than it asked for.
 */
import type { V1Container } from '@kubernetes/client-node';
import { PodRejectedError } from '../../../core/provider.js';
import { parseQuantity } from '../../../common/quantity.js';

export interface ResourceDefaults {
  /** Cores for a container that requests nothing. */
  cpu: number;
  /** GB for a container that requests nothing. */
  memoryInGB: number;
}

export interface ResourceMaximums {
  /** Largest group the region allows (cores). */
  cpu: number;
  memoryInGB: number;
}

export interface AciContainerResources {
  requests: { cpu: number; memoryInGB: number };
  limits?: { cpu?: number; memoryInGB?: number };
}

const MIN_CPU = 0.01;
const MIN_MEMORY_GB = 0.1;

/** Rounds up to `decimals`, ignoring float noise (0.1+0.2 must not become 0.31). */
export function roundUp(x: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.ceil(x * f - 1e-6) / f;
}

export function cpuCores(q: string, field: string): number {
  return roundUp(parse(q, field), 2);
}

export function memoryGB(q: string, field: string): number {
  return roundUp(parse(q, field) / 1e9, 1);
}

function parse(q: string, field: string): number {
  try {
    const v = parseQuantity(q);
    if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError('negative');
    return v;
  } catch {
    throw new PodRejectedError('InvalidResources', `${field}: '${q}' is not a valid quantity`, field);
  }
}

/** A limit the mapping lowered to the group's total request (ACI's rule), for an Event on the pod. */
export interface LimitClamp {
  container: string;
  resource: 'cpu' | 'memory';
  /** What the pod asked for, as written (e.g. '2', '4Gi'). */
  asked: string;
  /** What the container gets, in ACI's units (cores, GB). */
  given: number;
}

/** The Event's message for the clamps, or undefined when nothing was lowered. */
export function clampMessage(clamps: readonly LimitClamp[]): string | undefined {
  if (clamps.length === 0) return undefined;
  const parts = clamps.map(
    (c) =>
      `container ${c.container} ${c.resource} limit ${c.asked} lowered to ${c.resource === 'cpu' ? `${c.given} CPU` : `${c.given} GB`}`,
  );
  return `Azure Container Instances allows a container's limit up to the pod's total request only: ${parts.join('; ')}`;
}

/**
 * Resources for every app container, in order. A missing request falls back to the
 * limit (as Kubernetes defaults it) and then to the configured default.
 */
export function mapContainerResources(
  containers: readonly V1Container[],
  defaults: ResourceDefaults,
  max: ResourceMaximums,
  onClamp?: (clamp: LimitClamp) => void,
): AciContainerResources[] {
  const staged = containers.map((c, i) => {
    const path = `spec.containers[${i}].resources`;
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    const reqCpu = req['cpu'] ?? lim['cpu'];
    const reqMem = req['memory'] ?? lim['memory'];
    const cpu = Math.max(MIN_CPU, reqCpu !== undefined ? cpuCores(reqCpu, `${path}.requests.cpu`) : defaults.cpu);
    const mem = Math.max(
      MIN_MEMORY_GB,
      reqMem !== undefined ? memoryGB(reqMem, `${path}.requests.memory`) : defaults.memoryInGB,
    );
    const limCpu = lim['cpu'] !== undefined ? cpuCores(lim['cpu'], `${path}.limits.cpu`) : undefined;
    const limMem = lim['memory'] !== undefined ? memoryGB(lim['memory'], `${path}.limits.memory`) : undefined;
    return { cpu, mem, limCpu, limMem };
  });
  const totalCpu = roundUp(
    staged.reduce((s, r) => s + r.cpu, 0),
    2,
  );
  const totalMem = roundUp(
    staged.reduce((s, r) => s + r.mem, 0),
    1,
  );
  if (totalCpu > max.cpu) {
    throw new PodRejectedError(
      'ResourcesExceedAciLimits',
      `spec.containers[*].resources: the pod requests ${totalCpu} CPU in total; an Azure Container Instances group allows at most ${max.cpu}`,
      'spec.containers[*].resources.requests.cpu',
    );
  }
  if (totalMem > max.memoryInGB) {
    throw new PodRejectedError(
      'ResourcesExceedAciLimits',
      `spec.containers[*].resources: the pod requests ${totalMem} GB of memory in total; an Azure Container Instances group allows at most ${max.memoryInGB} GB`,
      'spec.containers[*].resources.requests.memory',
    );
  }
  return staged.map((r, i) => {
    const c = containers[i];
    const lim = c?.resources?.limits ?? {};
    if (r.limCpu !== undefined && r.limCpu > totalCpu)
      onClamp?.({ container: c?.name ?? '', resource: 'cpu', asked: String(lim['cpu']), given: totalCpu });
    if (r.limMem !== undefined && r.limMem > totalMem)
      onClamp?.({ container: c?.name ?? '', resource: 'memory', asked: String(lim['memory']), given: totalMem });
    const out: AciContainerResources = { requests: { cpu: r.cpu, memoryInGB: r.mem } };
    // A limit above the request is allowed up to the group's total request; one
    // equal to the request adds nothing, so it is left out.
    const limits: { cpu?: number; memoryInGB?: number } = {};
    const limCpu = r.limCpu !== undefined ? Math.min(r.limCpu, totalCpu) : undefined;
    const limMem = r.limMem !== undefined ? Math.min(r.limMem, totalMem) : undefined;
    if (limCpu !== undefined && limCpu > r.cpu) limits.cpu = limCpu;
    if (limMem !== undefined && limMem > r.mem) limits.memoryInGB = limMem;
    if (limits.cpu !== undefined || limits.memoryInGB !== undefined) out.limits = limits;
    return out;
  });
}
