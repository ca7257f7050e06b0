/**
 * Which probes the connector runs itself and which it leaves to the provider's backend.
 *
 * A backend such as ACI runs httpGet and exec liveness/readiness probes next to the
 * container, but has no tcpSocket, gRPC or startup probe. The connector runs those. A
 * startupProbe must gate the container's other probes (the kubelet runs neither
 * liveness nor readiness before it passed), and a backend cannot be told to hold its
 * probes back, so the connector runs every probe of a container that has a
 * startupProbe, and the provider maps none of that container's probes.
 */
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';

export type ProbeKind = 'startup' | 'readiness' | 'liveness';

export const PROBE_FIELDS: Record<ProbeKind, 'startupProbe' | 'readinessProbe' | 'livenessProbe'> = {
  startup: 'startupProbe',
  readiness: 'readinessProbe',
  liveness: 'livenessProbe',
};

/** True when the connector, not the backend, runs this container's probe of this kind. */
export function connectorRunsProbe(c: V1Container, kind: ProbeKind): boolean {
  const p = c[PROBE_FIELDS[kind]];
  if (!p) return false;
  if (kind === 'startup' || c.startupProbe) return true;
  return Boolean(p.tcpSocket || p.grpc);
}

/** The probes of a container the connector runs, in the order the kubelet gates them. */
export function connectorProbes(c: V1Container): { kind: ProbeKind; probe: V1Probe }[] {
  const out: { kind: ProbeKind; probe: V1Probe }[] = [];
  for (const kind of ['startup', 'readiness', 'liveness'] as const) {
    const p = c[PROBE_FIELDS[kind]];
    if (p && connectorRunsProbe(c, kind)) out.push({ kind, probe: p });
  }
  return out;
}

/** A native sidecar: an init container that runs for the pod's whole life (Kubernetes 1.29+). */
export function isSidecar(c: V1Container): boolean {
  return c.restartPolicy === 'Always';
}

/** The containers whose probes matter: app containers and native sidecars (init containers have none). */
export function probedContainers(pod: V1Pod): V1Container[] {
  return [...(pod.spec?.initContainers ?? []).filter(isSidecar), ...(pod.spec?.containers ?? [])];
}

/** The kubelet's defaults for a probe's timing. */
export interface ProbeTiming {
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
}

export function probeTiming(p: V1Probe, kind: ProbeKind): ProbeTiming {
  const pos = (v: number | undefined, d: number) => (v !== undefined && v > 0 ? v : d);
  return {
    initialDelayMs: Math.max(0, p.initialDelaySeconds ?? 0) * 1000,
    periodMs: pos(p.periodSeconds, 10) * 1000,
    timeoutMs: pos(p.timeoutSeconds, 1) * 1000,
    // The API server requires 1 for liveness and startup probes; hold to it whatever came.
    successThreshold: kind === 'readiness' ? pos(p.successThreshold, 1) : 1,
    failureThreshold: pos(p.failureThreshold, 3),
  };
}
