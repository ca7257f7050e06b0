/**
 * What the podman runtime keeps per group and per container, the labels it puts on podman
 * objects, and the shapes of podman's JSON it reads. Shared by provisioning, supervision,
 * the state cache and the views.
 */
import type { RuntimeContainerSpec, RuntimeContainerState, RuntimeGroupSpec } from '../../runtime.js';
import type { EventLog } from './event-log.js';
import type { ProbeRunner } from './probes.js';
import type { VnetLink } from './vnet.js';

export const LABEL_INSTANCE = 'aci-emulator.instance';
export const LABEL_GROUP = 'aci-emulator.group';
export const LABEL_CONTAINER = 'aci-emulator.container';
export const LABEL_KIND = 'aci-emulator.kind';
export const LABEL_OWNER = 'aci-emulator.owner';
/** How long a died event may trail `podman ps` before ps alone decides a restart. */
export const MISSED_EVENT_MS = 5000;

export type Phase = 'provisioning' | 'init' | 'running' | 'stopped' | 'failed';

export interface ContainerRecord {
  spec: RuntimeContainerSpec;
  kind: 'init' | 'app';
  ctrName: string;
  /** podman's id, once created: events of an earlier container by the same name are not ours. */
  ctrId?: string;
  current: RuntimeContainerState;
  previous?: RuntimeContainerState;
  /** podman `start` events seen for this container: restartCount is one less. */
  starts: number;
  ready?: boolean;
  events: EventLog;
  /** Between a back-off's `podman start` and the refresh after it: ps may still show the old run. */
  restarting?: boolean;
  /** Time of the last `start` event, to the nanosecond podman reports. */
  lastStartAt?: Date;
  /** lastStartAt of the run whose end was handled: each run's end is handled once. */
  handledRunOf?: Date;
  /** Set when `podman start` itself failed: podman leaves the container "created". */
  startFailure?: { at: Date; exitCode: number };
  restartTimer?: NodeJS.Timeout;
  /** Restarts since the back-off was last reset: the next delay doubles with each. */
  crashLoops: number;
  probes: ProbeRunner[];
  probesForRun?: number;
}

export interface GroupRecord {
  spec: RuntimeGroupSpec;
  onChange: () => void;
  key: string;
  podName: string;
  dir: string;
  ip?: string;
  /** A VNet group's link (vnet.ts); its addresses stay the group's across re-provisioning. */
  vnet?: VnetLink;
  /** A VNet group's leased /30, once allocated. */
  vnetSubnet?: { hostAddress: string; groupAddress: string };
  phase: Phase;
  /** Bumped by stop, restart and remove so that running async chains give up. */
  generation: number;
  init: ContainerRecord[];
  app: ContainerRecord[];
  events: EventLog;
  probePorts: Map<number, { host: string; port: number }>;
  signature: string;
  /** Mutating operations on the group run one after another, in call order. */
  lock: Promise<void>;
}

/** Thrown inside provisioning when the group was stopped, removed or re-provisioned meanwhile. */
export class ProvisionCanceled extends Error {
  override readonly name = 'ProvisionCanceled';
}

/** ps -a --format json, the fields used. */
export interface PsEntry {
  Id: string;
  Names?: string[];
  State: string;
  ExitCode?: number;
  StartedAt?: number;
  ExitedAt?: number;
  Labels?: Record<string, string> | null;
  IsInfra?: boolean;
}

export interface PodmanEventLine {
  Name?: string;
  Status?: string;
  Type?: string;
  Time?: string;
  ID?: string;
  ContainerExitCode?: number;
}

export function unixToDate(seconds: number | undefined): Date | undefined {
  // podman reports the zero time.Time as -62135596800.
  return seconds !== undefined && seconds > 0 ? new Date(seconds * 1000) : undefined;
}

export function sanitize(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'group'
  );
}

export function startFailureExitCode(message: string): number {
  if (/not found|no such file/i.test(message)) return 127;
  if (/permission denied/i.test(message)) return 126;
  return 128;
}

export function shouldRestart(policy: RuntimeGroupSpec['restartPolicy'], exitCode: number): boolean {
  return policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0);
}
