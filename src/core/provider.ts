/**
 * The provider interface: the one seam between the core (Kubernetes-facing) and a
 * backend that runs pods (ACI, the in-process mock, …).
 *
 * Rules both sides keep:
 * - The core never knows which backend it drives; a provider never calls the
 *   Kubernetes API. Everything a provider needs from the cluster (resolved env and
 *   volume files, pull secrets, the event recorder) comes in a {@link PodContext}.
 * - Calls are serialized per pod by the core (one in flight per pod key), but
 *   different pods are handled concurrently.
 * - Every mutating call must be idempotent: the core retries after errors and after
 *   restarts, and a retried create must never produce a second workload.
 */
import type { Readable, Writable } from 'node:stream';
import type { V1Pod, V1PodStatus, V1Secret, V1Volume } from '@kubernetes/client-node';

/** Which probes the core runs itself (a provider leaves them out of its backend's spec), and native sidecars. */
export { connectorRunsProbe, isSidecar } from './probes/policy.js';

/** `namespace/name` identifies a pod in the queue; `uid` tells two incarnations apart. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

/** An env var after the core resolved every `valueFrom` and `envFrom`. */
export interface ResolvedEnvVar {
  name: string;
  value: string;
  /** True when the value came from a Secret: a provider must store it as a secret (ACI `secureValue`) and never log it. */
  sensitive: boolean;
}

/** One file of a secret, configMap, downwardAPI or projected volume, as the core resolved it. */
export interface VolumeFile {
  /** The file's bytes, base64-encoded (what Secret data already is). */
  content: string;
  /** The kubelet's mode: the item's `mode`, else the volume's `defaultMode`, else 0644. */
  mode: number;
  /** True for Secret data and ServiceAccount tokens: a provider stores it as a secret and never logs it. */
  sensitive: boolean;
}

/** A volume's files by relative path ('conf/app.yaml' for nested ones). */
export type VolumeFiles = ReadonlyMap<string, VolumeFile>;

/** The volume kinds made of files, which the core resolves into {@link PodContext.volumeFiles}. */
export function isFileVolume(v: V1Volume): boolean {
  return Boolean(v.secret ?? v.configMap ?? v.downwardAPI ?? v.projected);
}

/** What the core hands the provider along with a pod. */
export interface PodContext {
  /** Resolved env per container name (init containers included), in the order a kubelet applies it. */
  env: ReadonlyMap<string, readonly ResolvedEnvVar[]>;
  /**
   * The files of each secret, configMap, downwardAPI and projected volume, by volume name, as the
   * core resolves them (keys, item paths, modes, optional sources, downward API values,
   * ServiceAccount tokens). Resolved on the first call and kept for this context; it throws what
   * createPod would (TransientProviderError for a missing key or token, PodRejectedError naming the
   * field). A provider that writes no files need not call it, and then no token is minted. Files
   * marked sensitive are Secret data or tokens: store them as secrets and never log them. A
   * provider maps these files; it does not build them.
   */
  volumeFiles(): Promise<ReadonlyMap<string, VolumeFiles>>;
  /**
   * A Secret this pod references, for what is not files: imagePullSecrets and azureFile's account
   * key. As the core's reference resolver fetched and watches it; undefined when absent or not
   * referenced by this pod. Mandatory references were checked before createPod: the pod waits for them.
   */
  getSecret(name: string): Promise<V1Secret | undefined>;
  /**
   * Records a Kubernetes Event on the pod (shown by `kubectl describe pod`), during this
   * call only: events noticed later go through {@link Provider.onEvent}.
   */
  recordEvent: (type: 'Normal' | 'Warning', reason: string, message: string) => void;
}

/**
 * The status a provider reports for a pod. It is the kubelet-owned part of
 * V1PodStatus; the core adds the pod conditions, hostIP and keeps the phase valid.
 */
export type ProviderPodStatus = Pick<
  V1PodStatus,
  'phase' | 'reason' | 'message' | 'podIP' | 'podIPs' | 'startTime' | 'containerStatuses' | 'initContainerStatuses'
>;

/** A pod as the provider knows it (for restart reconciliation). */
export interface ProviderPod {
  ref: PodRef;
  status: ProviderPodStatus;
}

export interface NodeResources {
  /** Quantities as Kubernetes strings, e.g. { cpu: '1000', memory: '4Ti', pods: '5000' }. */
  capacity: Record<string, string>;
  /** Defaults to capacity when absent. */
  allocatable?: Record<string, string>;
}

export interface NodeInfoFromProvider extends NodeResources {
  /** Extra node labels, e.g. topology.kubernetes.io/region and zone. */
  labels: Record<string, string>;
  operatingSystem: 'linux' | 'windows';
  architecture: string;
}

export interface HealthStatus {
  ok: boolean;
  /** A CamelCase reason for the Ready condition, e.g. 'ProviderUnreachable'. */
  reason: string;
  /** A sentence a person can act on. */
  message: string;
}

export interface LogOptions {
  tailLines?: number;
  timestamps?: boolean;
  follow?: boolean;
  sinceSeconds?: number;
  limitBytes?: number;
  previous?: boolean;
}

export interface ExecStreams {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  tty: boolean;
  /** Terminal size changes, when tty is true. */
  resize?: AsyncIterable<{ width: number; height: number }>;
}

export interface ExecResult {
  exitCode: number;
}

export type StatusListener = (ref: PodRef, status: ProviderPodStatus) => void;

// ---- events channel --------------------------------------------------------

/** Something that happened to a pod in the backend, for a Kubernetes Event on it. */
export interface ProviderEvent {
  type: 'Normal' | 'Warning';
  /** CamelCase, e.g. 'Pulling', 'ProviderGroupVanished'. */
  reason: string;
  message: string;
}

/**
 * Receives the events a provider noticed on its own (its status watch), for any pod it
 * holds, including pods adopted after a restart that never passed through createPod.
 */
export type ProviderEventListener = (ref: PodRef, event: ProviderEvent) => void;

export interface Provider {
  /** Node-level facts: capacity, labels, OS. Read at start and whenever the core refreshes the node. */
  nodeInfo(): Promise<NodeInfoFromProvider>;
  /** Whether the backend can run pods now; drives the node's Ready condition. */
  health(): Promise<HealthStatus>;

  /**
   * Start the pod. Resolves once the backend accepted it (not when it runs).
   * Throws {@link PodRejectedError} for a pod that can never run as given, and
   * {@link TransientProviderError} for anything worth retrying.
   */
  createPod(pod: V1Pod, ctx: PodContext): Promise<void>;
  /**
   * What a container gets in the backend, in base units (cores, bytes), for a downward API volume's
   * resourceFieldRef (`limits.cpu`, `requests.memory`, …); undefined when unknown (the pod is then
   * rejected). Only the backend knows its defaults for unset values. Without it the core uses the
   * kubelet's rule: the declared value, else node allocatable for a limit.
   */
  containerResource?(pod: V1Pod, container: string, resource: string): number | undefined;
  /** Apply a spec change the backend can apply in place (most backends: none). */
  updatePod(pod: V1Pod, ctx: PodContext): Promise<void>;
  /**
   * Stop and remove the pod, giving its containers up to gracePeriodSeconds to exit
   * where the backend allows it. Resolves when nothing of the pod remains, including
   * when it was already gone.
   */
  deletePod(pod: V1Pod, gracePeriodSeconds: number): Promise<void>;
  /** The pod's current status, or undefined when the backend does not have it. */
  getPod(ref: PodRef): Promise<ProviderPod | undefined>;
  /** Every pod this node (in this cluster) created in the backend, and nothing else. */
  listPods(): Promise<ProviderPod[]>;

  /** Registers the listener for status changes. The core does not poll: providers push. */
  onStatus(listener: StatusListener): void;
  /**
   * Registers the listener for backend events noticed in the background (the status watch).
   * Events raised while a call runs may use that call's PodContext.recordEvent instead;
   * a provider never keeps a recordEvent past its call.
   */
  onEvent(listener: ProviderEventListener): void;

  /** Optional streaming hooks for the kubelet API (kubectl logs / exec / attach). */
  getContainerLogs?(ref: PodRef, container: string, opts: LogOptions): Promise<Readable>;
  exec?(ref: PodRef, container: string, command: string[], streams: ExecStreams): Promise<ExecResult>;
  attach?(ref: PodRef, container: string, streams: ExecStreams): Promise<ExecResult>;
  /**
   * Where the node reaches the pod over TCP (the pod IP), or undefined while it has none:
   * used by `kubectl port-forward`, the connector-run probes (core/probes) and httpGet
   * lifecycle hooks. A provider whose pod IPs are not reachable from the node leaves this
   * out; those probes then fail, as a kubelet's do against a pod without an IP.
   */
  portForwardAddress?(ref: PodRef): Promise<string | undefined>;

  // ---- resource usage: the kubelet API's /stats/summary and /metrics/resource ----
  /**
   * What every pod this node runs uses now, per container, as the backend measures
   * it (kubectl top, HPA). Optional: without it the node reports pods and
   * containers with start times only. A provider reads its backend within its own
   * budget (cache here, not in the core); the core calls this at most every few seconds.
   */
  getPodStats?(): Promise<PodUsage[]>;
  /**
   * Restarts a container after a failed liveness or startup probe the connector ran.
   * Resolves to the names of every container the backend restarted (the one asked for,
   * or more when the backend can only restart them together).
   */
  restartContainer?(ref: PodRef, container: string): Promise<string[]>;
  /**
   * Stops every container of the pod for good and keeps it in the backend (not restarted,
   * not deleted): the kubelet's kill of a container that its pod's restartPolicy Never does
   * not restart, e.g. after a failed postStart hook. Resolves once the backend stopped it;
   * the status then reports the containers terminated and the pod Failed.
   */
  stopPod?(ref: PodRef): Promise<void>;

  /** Stops background work (watch loops, timers). Pods keep running. */
  close?(): Promise<void>;
}

/** One container's resource usage at one moment. Give at least one CPU and one memory figure. */
export interface ContainerUsage {
  name: string;
  /** When the figures were measured (ISO 8601). */
  time: string;
  /** When the container started (ISO 8601), if the backend knows. */
  startTime?: string;
  /** Cores in use, in billionths of a core, averaged over the backend's last sampling window. */
  usageNanoCores?: number;
  /** CPU time used since the container started, in core-nanoseconds (cumulative). */
  usageCoreNanoSeconds?: number;
  /** Memory that cannot be reclaimed under pressure (what eviction and `kubectl top` read). */
  workingSetBytes?: number;
  /** All memory in use, page cache included. */
  usageBytes?: number;
}

/** One pod's usage: its containers, as {@link Provider.getPodStats} returns them. */
export interface PodUsage {
  ref: PodRef;
  containers: ContainerUsage[];
}

/** A pod the backend will never run as given. The core fails the pod with this reason and message. */
export class PodRejectedError extends Error {
  override readonly name = 'PodRejectedError';
  constructor(
    /** CamelCase reason for the pod status, e.g. 'UnsupportedField'. */
    readonly reason: string,
    message: string,
    /** The offending field path, e.g. 'spec.containers[0].securityContext.privileged'. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** A failure worth retrying (throttling, 5xx, timeouts, quota). */
export class TransientProviderError extends Error {
  override readonly name = 'TransientProviderError';
  constructor(
    readonly reason: string,
    message: string,
    /** The earliest moment a retry may succeed, e.g. from Retry-After. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Not now, and not a failure: the backend paces this call (a rate window, a request budget)
 * and knows when it can go ahead. The core holds no worker meanwhile: it brings the pod back at
 * `retryAt` without counting a failure, and a create that waits shows `reason` and `message`
 * (with the expected time) on the pod and in one Event. A transient error to code that does
 * not know it (retried after `retryAfterMs`).
 */
export class ProviderDeferredError extends TransientProviderError {
  constructor(
    reason: string,
    message: string,
    /** When the call is expected to go ahead (epoch ms). */
    readonly retryAt: number,
    /** report false: a short wait the pod need not show (no status write, no Event). */
    readonly options: { report?: boolean } = {},
  ) {
    super(reason, message, Math.max(0, retryAt - Date.now()));
  }
}

/**
 * What the CLI hands a provider factory (e.g. `createAciProvider(config)`).
 * nodeName + clusterId are the identity a provider tags its backend objects with,
 * so that listPods() returns only what this node in this cluster created.
 */
export interface ProviderConfig {
  nodeName: string;
  /** A stable id of the cluster: the UID of the kube-system namespace. */
  clusterId: string;
  /** The node's InternalIP (also every pod's hostIP). */
  nodeIP: string;
  /** Environment to read provider settings from (process.env in production). */
  env: Readonly<Record<string, string | undefined>>;
  log: import('pino').Logger;
}
