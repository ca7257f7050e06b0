/**
 * The emulator's state, kept apart from the HTTP handlers: container group records and
 * long-running operation records. In memory; a group record is small (its validated
 * request plus a few fields) so thousands fit in a few megabytes.
 */
import type { ContainerGroupInput } from './schema.js';

export type ProvisioningState = 'Pending' | 'Creating' | 'Updating' | 'Succeeded' | 'Failed' | 'Deleting';

export interface GroupRecord {
  /** Lowercased resource id: ARM names are case-insensitive. */
  key: string;
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  input: ContainerGroupInput;
  provisioningState: ProvisioningState;
  /** Bumped on every PUT so that a stale provisioning completion cannot overwrite a newer one. */
  generation: number;
  /** Set while the group is stopped by the user (ACI's stop). */
  stopped: boolean;
  /** A provisioning failure, reported on the group and its operation. */
  failure?: { code: string; message: string };
  cores: number;
  createdAt: number;
}

export type OperationStatus = 'InProgress' | 'Succeeded' | 'Failed' | 'Canceled';

export interface OperationRecord {
  id: string;
  subscriptionId: string;
  location: string;
  /** The resource the operation acts on (for the Location header's final result). */
  resourceKey: string;
  kind: 'create' | 'update' | 'delete' | 'start' | 'restart';
  status: OperationStatus;
  startTime: Date;
  endTime?: Date;
  error?: { code: string; message: string };
}

export interface StoreLimits {
  /** Finished operations are kept this long for pollers. */
  operationTtlMs: number;
  /** And at most this many of them. */
  maxFinishedOperations: number;
}

export class Store {
  private readonly groups = new Map<string, GroupRecord>();
  private readonly operations = new Map<string, OperationRecord>();
  /** Quota usage per subscription and location, kept as groups come and go (creates must not scan every group). */
  private readonly usageByScope = new Map<string, { groups: number; cores: number }>();

  constructor(private readonly limits: StoreLimits) {}

  getGroup(key: string): GroupRecord | undefined {
    return this.groups.get(key);
  }

  private scopeOf(subscriptionId: string, location: string): string {
    return `${subscriptionId.toLowerCase()}\u0000${location}`;
  }

  private account(record: GroupRecord, sign: 1 | -1): void {
    const scope = this.scopeOf(record.subscriptionId, record.location);
    const u = this.usageByScope.get(scope) ?? { groups: 0, cores: 0 };
    u.groups += sign;
    u.cores = Math.round((u.cores + sign * record.cores) * 1e6) / 1e6;
    if (u.groups <= 0) this.usageByScope.delete(scope);
    else this.usageByScope.set(scope, u);
  }

  putGroup(record: GroupRecord): void {
    const previous = this.groups.get(record.key);
    if (previous) this.account(previous, -1);
    this.groups.set(record.key, record);
    this.account(record, 1);
  }

  /** Changes a stored group's cores, keeping the usage totals right. */
  setCores(record: GroupRecord, cores: number): void {
    if (this.groups.get(record.key) === record) this.account(record, -1);
    record.cores = cores;
    if (this.groups.get(record.key) === record) this.account(record, 1);
  }

  deleteGroup(key: string): void {
    const previous = this.groups.get(key);
    if (!previous) return;
    this.account(previous, -1);
    this.groups.delete(key);
  }

  /** Groups whose key starts with `prefix` (a lowercased scope), sorted by key for stable paging. */
  listGroups(prefix: string): GroupRecord[] {
    const out: GroupRecord[] = [];
    for (const [key, g] of this.groups) if (key.startsWith(prefix)) out.push(g);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  groupCount(): number {
    return this.groups.size;
  }

  /** Groups counted against a subscription's regional quota. */
  usage(subscriptionId: string, location: string): { groups: number; cores: number } {
    const u = this.usageByScope.get(this.scopeOf(subscriptionId, location));
    return { groups: u?.groups ?? 0, cores: u?.cores ?? 0 };
  }

  addOperation(op: OperationRecord): void {
    this.operations.set(op.id, op);
  }

  getOperation(id: string): OperationRecord | undefined {
    return this.operations.get(id);
  }

  finishOperation(
    id: string,
    status: Exclude<OperationStatus, 'InProgress'>,
    error?: { code: string; message: string },
  ): void {
    const op = this.operations.get(id);
    if (!op || op.status !== 'InProgress') return;
    op.status = status;
    op.endTime = new Date();
    if (error) op.error = error;
    this.pruneOperations();
  }

  operationCount(): number {
    return this.operations.size;
  }

  private pruneOperations(): void {
    const now = Date.now();
    let finished = 0;
    for (const op of this.operations.values()) if (op.status !== 'InProgress') finished += 1;
    // Map iteration is insertion order, so the oldest operations go first.
    for (const [id, op] of this.operations) {
      if (op.status === 'InProgress') continue;
      const expired = op.endTime !== undefined && now - op.endTime.getTime() > this.limits.operationTtlMs;
      if (!expired && finished <= this.limits.maxFinishedOperations) break;
      this.operations.delete(id);
      finished -= 1;
    }
  }
}
