/** The elector's record as a coordination.k8s.io/v1 Lease in the connector's own namespace. */
import type { V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { MicroTime, type CoordinationApi } from '../kube/apis.js';
import { readFileSync } from 'node:fs';
import { LeaseConflictError, type LeaseLock, type LeaseRecord } from './elector.js';

function errCode(err: unknown): number | undefined {
  return (err as { code?: number } | undefined)?.code;
}

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The connector's namespace: $POD_NAMESPACE (downward API), else its ServiceAccount's, else `default`. */
export function ownNamespace(env: NodeJS.ProcessEnv = process.env, saFile = SA_NAMESPACE_FILE): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    const ns = readFileSync(saFile, 'utf8').trim();
    if (ns) return ns;
  } catch {
    // not in a pod
  }
  return 'default';
}

function toRecord(l: V1Lease): LeaseRecord {
  const s = l.spec ?? {};
  return {
    holderIdentity: s.holderIdentity,
    leaseDurationSeconds: s.leaseDurationSeconds,
    acquireTime: s.acquireTime ? new Date(s.acquireTime) : undefined,
    renewTime: s.renewTime ? new Date(s.renewTime) : undefined,
    leaseTransitions: s.leaseTransitions,
    resourceVersion: l.metadata?.resourceVersion,
  };
}

function micro(d: Date | undefined): V1MicroTime | undefined {
  return d ? new MicroTime(d.getTime()) : undefined;
}

function toLease(namespace: string, name: string, r: LeaseRecord): V1Lease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, ...(r.resourceVersion ? { resourceVersion: r.resourceVersion } : {}) },
    spec: {
      holderIdentity: r.holderIdentity,
      leaseDurationSeconds: r.leaseDurationSeconds,
      acquireTime: micro(r.acquireTime),
      renewTime: micro(r.renewTime),
      leaseTransitions: r.leaseTransitions,
    },
  };
}

/** `coordination` should be a client of its own, outside the write fence (the lease is how the fence opens). */
export function kubeLeaseLock(coordination: CoordinationApi, namespace: string, name: string): LeaseLock {
  return {
    describe: () => `${namespace}/${name}`,
    async get() {
      try {
        return toRecord(await coordination.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if (errCode(err) === 404) return undefined;
        throw err;
      }
    },
    async create(r) {
      try {
        return toRecord(await coordination.createNamespacedLease({ namespace, body: toLease(namespace, name, r) }));
      } catch (err) {
        if (errCode(err) === 409) throw new LeaseConflictError(`lease ${namespace}/${name} exists already`);
        throw err;
      }
    },
    async update(r) {
      try {
        return toRecord(
          await coordination.replaceNamespacedLease({ name, namespace, body: toLease(namespace, name, r) }),
        );
      } catch (err) {
        if (errCode(err) === 409) throw new LeaseConflictError(`lease ${namespace}/${name} changed meanwhile`);
        throw err;
      }
    },
  };
}
