/**
 * Leader election on one coordination.k8s.io Lease, with a fence.
 *
 * Hand-written because @kubernetes/client-node (1.4) has no leader election, and what we need
 * beyond client-go's algorithm is the fence: the writer asks `allowed()` / `check()` before every
 * write, against a monotonic "leader until" that always ends before anyone else may take the lease.
 *
 * The algorithm is client-go's (leaderelection.LeaderElector):
 * - A candidate takes the lease when it is free, or when it has seen the same record, unchanged,
 *   for the record's leaseDurationSeconds on its own monotonic clock (never comparing wall clocks).
 * - The leader renews every retryPeriod. A renew that succeeds makes it leader until
 *   (monotonic time taken before the renew was sent) + renewDeadline. Since renewDeadline is
 *   shorter than leaseDuration, and the others count leaseDuration from when they saw that renew
 *   (after it was sent), the leader stops writing at least leaseDuration - renewDeadline before
 *   anyone can take over. That margin absorbs clock-rate differences and the last write's flight.
 * - A leader past its deadline (renews failed, or the process was paused: SIGSTOP, a long GC, a
 *   frozen VM) is lost for good: it never resumes leading; the owner is told (the connector exits
 *   so its Deployment restarts it as a follower).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/errors.js';

/** The Lease's spec as the elector reads and writes it. */
export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: Date;
  renewTime?: Date;
  leaseTransitions?: number;
  /** Optimistic concurrency: an update carries the resourceVersion it read. */
  resourceVersion?: string;
}

/** Someone else changed the Lease since we read it (HTTP 409), or created it first. */
export class LeaseConflictError extends Error {
  override readonly name = 'LeaseConflictError';
}

/** A write asked for by a process that does not hold the lease (any more). */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError';
}

/** Where the record lives (lease-lock.ts: a Lease object). */
export interface LeaseLock {
  /** The current record, or undefined when there is no Lease. */
  get(): Promise<LeaseRecord | undefined>;
  /** Throws LeaseConflictError when it exists already. */
  create(r: LeaseRecord): Promise<LeaseRecord>;
  /** Throws LeaseConflictError when r.resourceVersion is stale. */
  update(r: LeaseRecord): Promise<LeaseRecord>;
  /** Where the lock is, for logs ("namespace/name"). */
  describe(): string;
}

export interface ElectorTiming {
  /** How long others wait, from the last renew they saw, before taking the lease. */
  leaseDurationMs: number;
  /** How long after a renew was sent the leader still writes; shorter than leaseDurationMs. */
  renewDeadlineMs: number;
  /** Time between attempts (to renew, or to take the lease). */
  retryPeriodMs: number;
}

/** client-go's defaults for kube-controller-manager and kube-scheduler. */
export const DEFAULT_TIMING: ElectorTiming = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

export class ElectorTimingError extends Error {
  override readonly name = 'ElectorTimingError';
}

/** The rules client-go enforces, with the reason each one matters for the fence. */
export function checkTiming(t: ElectorTiming): void {
  if (!(t.retryPeriodMs > 0)) throw new ElectorTimingError('the retry period must be positive');
  if (!(t.renewDeadlineMs > t.retryPeriodMs))
    throw new ElectorTimingError(
      'the renew deadline must be longer than the retry period (the leader must get at least one retry)',
    );
  if (!(t.leaseDurationMs > t.renewDeadlineMs))
    throw new ElectorTimingError(
      'the lease duration must be longer than the renew deadline (a leader stops writing before another may take over)',
    );
  if (t.leaseDurationMs % 1000 !== 0)
    throw new ElectorTimingError('the lease duration must be whole seconds (Lease leaseDurationSeconds)');
}

/** hostname_uuid, as client-go's callers build it: unique per process, so a restart is a new candidate. */
export function defaultIdentity(): string {
  return `${hostname()}_${randomUUID()}`;
}

export interface ElectorOptions extends ElectorTiming {
  lock: LeaseLock;
  identity: string;
  log: Logger;
  /** Called once when this process becomes leader. */
  onStartedLeading?: () => void;
  /** Called once when this process, having led, is leader no more (the fence closed). */
  onStoppedLeading?: (reason: string) => void;
  /** Monotonic milliseconds (performance.now); injected by tests. */
  now?: () => number;
  /** Wall clock for the Lease's acquireTime and renewTime (informational for others). */
  wallNow?: () => Date;
  /** Random in [0, 1) for the candidates' jitter. */
  random?: () => number;
}

type State = 'following' | 'leading' | 'lost' | 'stopped';

export class LeaderElector {
  private state: State = 'following';
  /** Monotonic time until which this process may write; -Infinity when not leading. */
  private leaderUntil = -Infinity;
  /** The last record read or written, and when (monotonic) it was first seen as it is. */
  private observed: LeaseRecord | undefined;
  private observedAt = -Infinity;
  private readonly now: () => number;
  private readonly wallNow: () => Date;
  private readonly random: () => number;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private leadingWaiters: Array<(leading: boolean) => void> = [];
  /** Renews that succeeded, transitions seen; for logs and tests. */
  renewals = 0;

  constructor(private readonly o: ElectorOptions) {
    checkTiming(o);
    this.now = o.now ?? (() => performance.now());
    this.wallNow = o.wallNow ?? (() => new Date());
    this.random = o.random ?? Math.random;
  }

  get identity(): string {
    return this.o.identity;
  }

  /** The holder of the lease as last seen (this process or another). */
  get holder(): string | undefined {
    return this.observed?.holderIdentity || undefined;
  }

  get isLeading(): boolean {
    return this.state === 'leading';
  }

  /** May this process write now? Never true again once the deadline passed. */
  allowed(): boolean {
    if (this.state !== 'leading') return false;
    if (this.now() < this.leaderUntil) return true;
    this.lose('the lease was not renewed before the renew deadline');
    return false;
  }

  /** Throws NotLeaderError unless this process may write now (and closes the fence if it is past it). */
  check(what: string): void {
    if (!this.allowed()) throw new NotLeaderError(`not the leader (${this.o.lock.describe()}): ${what} refused`);
  }

  /** Milliseconds of leadership left (0 when not leading). */
  remainingMs(): number {
    return this.state === 'leading' ? Math.max(0, this.leaderUntil - this.now()) : 0;
  }

  /** Starts the acquire/renew loop. */
  start(): void {
    this.loop ??= this.run();
  }

  /** Resolves true once this process leads, false if it stopped (or lost) first. */
  whenLeading(): Promise<boolean> {
    if (this.state === 'leading') return Promise.resolve(true);
    if (this.state !== 'following') return Promise.resolve(false);
    return new Promise((resolve) => this.leadingWaiters.push(resolve));
  }

  /**
   * Stops the loop. With release, a leader still in time hands the lease back (empty holder,
   * 1 s duration, as client-go's ReleaseOnCancel) so a follower takes over at its next try
   * instead of after a whole lease duration. Call it after the last write.
   */
  async stop(release: boolean): Promise<void> {
    const wasLeading = this.state === 'leading' && this.now() < this.leaderUntil;
    this.state = 'stopped';
    this.leaderUntil = -Infinity;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    this.wake?.();
    this.settleWaiters(false);
    await this.loop;
    if (!release || !wasLeading || !this.observed || this.observed.holderIdentity !== this.o.identity) return;
    try {
      await this.o.lock.update({
        ...this.observed,
        holderIdentity: undefined,
        leaseDurationSeconds: 1,
        renewTime: this.wallNow(),
      });
      this.o.log.info({ lease: this.o.lock.describe() }, 'released the leader lease');
    } catch (err) {
      this.o.log.warn({ lease: this.o.lock.describe(), err: errorMessage(err) }, 'could not release the leader lease');
    }
  }

  /**
   * One attempt to take or renew the lease; true when this process leads after it.
   * Public for the unit tests (which drive it with an injected clock); the loop calls it.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    if (this.state === 'lost' || this.state === 'stopped') return false;
    // Taken before anything is sent: the deadline counts from before the renew left this process.
    const sentAt = this.now();
    const me = this.o.identity;
    const durationS = this.o.leaseDurationMs / 1000;
    let current: LeaseRecord | undefined;
    // The leader renews straight from its own last write; a conflict sends it back to reading.
    if (this.state === 'leading' && this.observed?.holderIdentity === me) {
      current = this.observed;
    } else {
      try {
        current = await this.o.lock.get();
      } catch (err) {
        this.o.log.warn({ lease: this.o.lock.describe(), err: errorMessage(err) }, 'cannot read the leader lease');
        return this.stillLeading();
      }
      if (current && !sameRecord(current, this.observed)) {
        this.observed = current;
        // Seen as it is now from now on: read after the request returned, the conservative end.
        this.observedAt = this.now();
      }
    }
    if (this.state !== 'following' && this.state !== 'leading') return false;

    if (!current) {
      return this.write(sentAt, 'create', {
        holderIdentity: me,
        leaseDurationSeconds: durationS,
        acquireTime: this.wallNow(),
        renewTime: this.wallNow(),
        leaseTransitions: 0,
      });
    }
    const holder = current.holderIdentity || undefined;
    if (holder !== undefined && holder !== me) {
      if (this.state === 'leading') {
        this.lose(`the lease is held by ${holder}`);
        return false;
      }
      const heldMs = (current.leaseDurationSeconds ?? durationS) * 1000;
      if (this.now() < this.observedAt + heldMs) return false; // still held
    }
    const mine = holder === me;
    return this.write(sentAt, 'update', {
      ...current,
      holderIdentity: me,
      leaseDurationSeconds: durationS,
      acquireTime: mine ? current.acquireTime : this.wallNow(),
      renewTime: this.wallNow(),
      leaseTransitions: (current.leaseTransitions ?? 0) + (mine ? 0 : 1),
    });
  }

  private async write(sentAt: number, how: 'create' | 'update', r: LeaseRecord): Promise<boolean> {
    let written: LeaseRecord;
    try {
      written = how === 'create' ? await this.o.lock.create(r) : await this.o.lock.update(r);
    } catch (err) {
      // Someone else wrote first (or the renew raced a takeover): read again next time.
      if (this.state === 'leading') this.observed = undefined;
      if (!(err instanceof LeaseConflictError))
        this.o.log.warn({ lease: this.o.lock.describe(), err: errorMessage(err) }, 'cannot write the leader lease');
      return this.stillLeading();
    }
    if (this.state !== 'following' && this.state !== 'leading') return false;
    this.observed = written;
    this.observedAt = this.now();
    // A renew that came back after the deadline is too late: the fence closed meanwhile.
    const until = sentAt + this.o.renewDeadlineMs;
    if (this.state === 'leading') {
      if (this.now() >= this.leaderUntil) {
        this.lose('the lease was not renewed before the renew deadline');
        return false;
      }
      this.leaderUntil = until;
      this.renewals++;
      this.armWatchdog();
      return true;
    }
    if (this.now() >= until) return false; // took too long to count; the next attempt renews
    this.state = 'leading';
    this.leaderUntil = until;
    this.armWatchdog();
    this.o.log.info(
      { lease: this.o.lock.describe(), identity: this.o.identity, transitions: written.leaseTransitions },
      'became the leader',
    );
    this.settleWaiters(true);
    this.o.onStartedLeading?.();
    return true;
  }

  /** After a failed attempt: still leading only while the deadline has not passed. */
  private stillLeading(): boolean {
    if (this.state !== 'leading') return false;
    return this.allowed();
  }

  /** Closes the fence, once. */
  private lose(reason: string): void {
    if (this.state !== 'leading') return;
    this.state = 'lost';
    this.leaderUntil = -Infinity;
    clearTimeout(this.watchdog);
    this.o.log.error({ lease: this.o.lock.describe(), identity: this.o.identity, reason }, 'lost the leader lease');
    this.wake?.();
    this.o.onStoppedLeading?.(reason);
  }

  /** Fires at the deadline: without a renew by then, the fence closes even if no write asks. */
  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => void this.allowed(), Math.max(0, this.leaderUntil - this.now()) + 1);
    this.watchdog.unref?.();
  }

  private settleWaiters(leading: boolean): void {
    const w = this.leadingWaiters;
    this.leadingWaiters = [];
    for (const resolve of w) resolve(leading);
  }

  private async run(): Promise<void> {
    while (this.state === 'following' || this.state === 'leading') {
      await this.tryAcquireOrRenew();
      if (this.state !== 'following' && this.state !== 'leading') break;
      // Candidates spread their tries (client-go's jitter factor 1.2); the leader renews on time.
      const wait = this.state === 'leading' ? this.o.retryPeriodMs : this.o.retryPeriodMs * (1 + 0.2 * this.random());
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, wait);
      });
      this.wake = undefined;
    }
    if (this.state === 'lost') this.settleWaiters(false);
  }
}

function sameRecord(a: LeaseRecord, b: LeaseRecord | undefined): boolean {
  if (!b) return false;
  if (a.resourceVersion !== undefined && b.resourceVersion !== undefined)
    return a.resourceVersion === b.resourceVersion;
  return (
    a.holderIdentity === b.holderIdentity &&
    a.renewTime?.getTime() === b.renewTime?.getTime() &&
    a.leaseTransitions === b.leaseTransitions
  );
}
