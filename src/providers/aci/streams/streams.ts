/**
 * The kubelet API's streams for ACI pods: `kubectl logs` (one shared poll per followed
 * container), `exec` and `attach` (ACI's WebSocket, see exec.ts).
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import {
  PodRejectedError,
  type ExecResult,
  type ExecStreams,
  type LogOptions,
  type PodRef,
} from '../../../core/provider.js';
import type { AciArm } from '../arm/arm-client.js';
import type { AciConfig } from '../config.js';
import { tlsOptionsFor, type TlsOptions } from '../arm/credential.js';
import { attachViaWebSocket, execViaWebSocket, ExecShellUnavailableError } from './exec.js';
import { planExec } from './exec-command.js';
import { LogFollowerHub } from './log-followers.js';
import type { Tracked } from '../status-watcher.js';

export interface AciStreamsOptions {
  arm: AciArm;
  cfg: AciConfig;
  /** The container group's name for a pod. */
  nameOf: (ref: PodRef) => string;
  /** What the status watcher knows of a group (undefined: not ours, or gone). */
  lookup: (name: string) => Tracked | undefined;
  logPollMs: number;
  maxLogFollowers: number;
  log: Logger;
}

export class AciStreams {
  private readonly followers: LogFollowerHub;

  constructor(private readonly o: AciStreamsOptions) {
    this.followers = new LogFollowerHub({ pollMs: o.logPollMs, maxFollowers: o.maxLogFollowers, log: o.log });
  }

  async getContainerLogs(ref: PodRef, container: string, opts: LogOptions): Promise<Readable> {
    if (opts.previous) {
      throw new PodRejectedError(
        'Unsupported',
        'Azure Container Instances keeps no logs of a previous container instance',
      );
    }
    const name = this.o.nameOf(ref);
    // A follower stops when the container can no longer write (terminated for good, or the group is gone).
    const isDone = (): boolean => {
      const t = this.o.lookup(name);
      if (!t) return true;
      if (t.vanished) return true;
      const cs = [...(t.status?.containerStatuses ?? []), ...(t.status?.initContainerStatuses ?? [])].find(
        (c) => c.name === container,
      );
      return (
        t.terminal ||
        (cs?.state?.terminated !== undefined && t.status?.phase !== 'Running' && t.status?.phase !== 'Pending')
      );
    };
    return this.followers.open(`${name}/${container}`, (o) => this.o.arm.listLogs(name, container, o), opts, isDone);
  }

  /** ACI's exec runs one executable without arguments: see exec-command.ts for how an argv still runs exactly. */
  async exec(ref: PodRef, container: string, command: string[], streams: ExecStreams): Promise<ExecResult> {
    const plan = planExec(command, streams.tty);
    if (plan.kind === 'refused') throw new ExecShellUnavailableError(plan.message);
    const { webSocketUri, password } = await this.o.arm.executeCommand(this.o.nameOf(ref), container, plan.command, {
      rows: 24,
      cols: 80,
    });
    return execViaWebSocket(
      webSocketUri,
      password,
      streams,
      this.ca(),
      plan.kind === 'shell' ? { line: plan.line, sentinel: plan.sentinel } : undefined,
    );
  }

  async attach(ref: PodRef, container: string, streams: ExecStreams): Promise<ExecResult> {
    const { webSocketUri, password } = await this.o.arm.attach(this.o.nameOf(ref), container);
    return attachViaWebSocket(webSocketUri, password, streams, this.ca());
  }

  private ca(): TlsOptions['ca'] {
    return this.o.cfg.caFile ? tlsOptionsFor(this.o.cfg).ca : undefined;
  }
}
