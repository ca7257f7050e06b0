/**
 * The seam between the emulator's ARM layer (handlers, store, limits) and what
 * actually runs a container group: real podman pods, or a simulation with no
 * processes. Handlers never know which runtime is behind them.
 *
 * All specs here are already validated and normalized by the ARM layer:
 * secureValue env is plain text, secret volume files are decoded bytes.
 */
import type { Readable, Writable } from 'node:stream';

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

export interface RuntimeProbe {
  exec?: { command: string[] };
  httpGet?: { path?: string; port: number; scheme?: 'http' | 'https'; httpHeaders?: { name: string; value: string }[] };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  failureThreshold?: number;
  successThreshold?: number;
  timeoutSeconds?: number;
}

export interface RuntimeContainerSpec {
  name: string;
  image: string;
  /** ACI has only `command`: the whole argv, replacing the image's entrypoint and cmd when set. */
  command?: string[];
  env: { name: string; value: string; secure: boolean }[];
  ports: { port: number; protocol: 'TCP' | 'UDP' }[];
  cpu: number;
  memoryInGB: number;
  limits?: { cpu?: number; memoryInGB?: number };
  volumeMounts: { name: string; mountPath: string; readOnly: boolean }[];
  livenessProbe?: RuntimeProbe;
  readinessProbe?: RuntimeProbe;
  /** ACI's container securityContext; seccompProfile decoded to the profile's JSON text. */
  security?: RuntimeSecurity;
}

export interface RuntimeSecurity {
  allowPrivilegeEscalation?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  runAsUser?: number;
  runAsGroup?: number;
  seccompProfile?: string;
}

export interface RuntimeVolume {
  name: string;
  emptyDir?: Record<string, never>;
  /** File name → content. */
  secret?: Record<string, Buffer>;
  gitRepo?: { repository: string; directory?: string; revision?: string };
  azureFile?: { shareName: string; storageAccountName: string; readOnly?: boolean };
}

export interface RuntimeGroupSpec {
  /** Stable unique id (the ARM resource id, lowercased). */
  id: string;
  name: string;
  osType: 'Linux' | 'Windows';
  restartPolicy: RestartPolicy;
  initContainers: RuntimeContainerSpec[];
  containers: RuntimeContainerSpec[];
  volumes: RuntimeVolume[];
  /** The group's imageRegistryCredentials with a username and password (secret: never logged). */
  registryCredentials?: { server: string; username: string; password: string }[];
  /** Present when the group asks for an IP address; the runtime allocates it. */
  ipAddress?: { type: 'Public' | 'Private'; ports: { port: number; protocol: 'TCP' | 'UDP' }[] };
}

export type RuntimeContainerStateName = 'Waiting' | 'Running' | 'Terminated';

export interface RuntimeContainerState {
  state: RuntimeContainerStateName;
  startTime?: Date;
  finishTime?: Date;
  exitCode?: number;
  /** ACI's detailStatus, e.g. 'Completed', 'Error', 'CrashLoopBackOff'. */
  detailStatus?: string;
}

export interface RuntimeEvent {
  /** ACI event names: Pulling, Pulled, Started, Killing, Failed, … */
  name: string;
  type: 'Normal' | 'Warning';
  message: string;
  count: number;
  firstTimestamp: Date;
  lastTimestamp: Date;
}

export interface RuntimeContainerView {
  currentState: RuntimeContainerState;
  previousState?: RuntimeContainerState;
  restartCount: number;
  /** Set when the container has a readiness probe. */
  ready?: boolean;
  events: RuntimeEvent[];
}

/** ACI's group-level instanceView.state values. */
export type RuntimeGroupState = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Stopped';

export interface RuntimeGroupView {
  state: RuntimeGroupState;
  ip?: string;
  initContainers: Record<string, RuntimeContainerView>;
  containers: Record<string, RuntimeContainerView>;
  events: RuntimeEvent[];
}

export interface ExecSession {
  stdin: Writable;
  stdout: Readable;
  /** Absent when a tty merges stderr into stdout. */
  stderr?: Readable;
  resize(cols: number, rows: number): void;
  /** The command's exit code once it ends. */
  exited: Promise<number>;
  kill(): void;
}

/** A provisioning failure the ARM layer reports as provisioningState Failed with this code. */
export class RuntimeProvisionError extends Error {
  override readonly name = 'RuntimeProvisionError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** One container's resource use at one moment, in Azure Monitor's units. */
export interface ContainerUsageSample {
  /** CPU in use, in millicores (CpuUsage's unit). */
  cpuMillicores: number;
  /** Memory in use, in bytes (MemoryUsage's unit). */
  memoryBytes: number;
}

export interface ContainerGroupRuntime {
  readonly kind: 'podman' | 'simulated';
  /**
   * Proves at start that the machine can run a group at all (the emulator calls it
   * before it listens); rejects with an error whose message names the fix.
   */
  preflight?(): Promise<void>;
  /**
   * Provisions and starts the group. Resolves when the group is running (or has
   * started its init containers); rejects with RuntimeProvisionError when it cannot
   * (image pull failure and the like). `onChange` is called whenever the view changes.
   */
  create(spec: RuntimeGroupSpec, onChange: () => void): Promise<void>;
  /** The group's current view, or undefined for an unknown id. Must be cheap: GET calls it. */
  view(id: string): RuntimeGroupView | undefined;
  stop(id: string): Promise<void>;
  /** Starts a stopped group again, with the spec it was created with. */
  start(id: string): Promise<void>;
  restart(id: string): Promise<void>;
  /** Removes every trace of the group. Resolves also when it is already gone. */
  remove(id: string): Promise<void>;
  logs(id: string, container: string, opts: { tail?: number; timestamps?: boolean }): Promise<string>;
  exec(
    id: string,
    container: string,
    command: string[],
    terminal: { cols: number; rows: number },
  ): Promise<ExecSession>;
  attach(id: string, container: string): Promise<ExecSession>;
  /**
   * What each running container of the group uses now (Azure Monitor's CpuUsage and
   * MemoryUsage come from this); containers not running are left out. Optional: a
   * runtime without it reports no metric data.
   */
  usage?(id: string): Promise<Record<string, ContainerUsageSample>>;
  /** Stops everything this runtime started, unless `keep` is set. */
  close(opts?: { keep?: boolean }): Promise<void>;
}
