/** containerGroups: create/update, get, update tags, delete, list, stop/start/restart. */
import { randomUUID } from 'node:crypto';
import { API_VERSION, PROVIDER, type ArmContext, type ArmRequest, type ArmResponse } from '../context.js';
import { ArmError, badRequest, conflict, notFound, tooManyRequests } from '../errors.js';
import { renderGroup } from '../render.js';
import { RuntimeProvisionError } from '../runtime.js';
import { containerGroupSchema, describeIssue, patchSchema } from '../schema.js';
import type { GroupRecord, OperationRecord } from '../store.js';
import {
  checkContainerGroupName,
  checkGroupProperties,
  checkResourceGroupName,
  groupCores,
  toRuntimeSpec,
} from '../validation.js';
import { errorMessage } from '../../common/errors.js';

const TRANSITIONAL = new Set(['Pending', 'Creating', 'Updating', 'Deleting']);

export const normalizeLocation = (location: string): string => location.replace(/\s+/g, '').toLowerCase();

export function groupId(sub: string, rg: string, name: string): string {
  return `/subscriptions/${sub}/resourceGroups/${rg}/providers/${PROVIDER}/containerGroups/${name}`;
}

export function requireGroup(ctx: ArmContext, req: ArmRequest): GroupRecord {
  const { subscriptionId, resourceGroupName, containerGroupName } = req.params;
  const key = groupId(subscriptionId ?? '', resourceGroupName ?? '', containerGroupName ?? '').toLowerCase();
  const record = ctx.store.getGroup(key);
  if (!record) throw notFound(`${PROVIDER}/containerGroups`, containerGroupName ?? '', resourceGroupName ?? '');
  return record;
}

function operationHeaders(origin: string, op: OperationRecord): Record<string, string> {
  const base = `${origin}/subscriptions/${op.subscriptionId}/providers/${PROVIDER}/locations/${op.location}`;
  return {
    'Azure-AsyncOperation': `${base}/operations/${op.id}?api-version=${API_VERSION}`,
    Location: `${base}/operationResults/${op.id}?api-version=${API_VERSION}`,
  };
}

function newOperation(ctx: ArmContext, record: GroupRecord, kind: OperationRecord['kind']): OperationRecord {
  const op: OperationRecord = {
    id: randomUUID(),
    subscriptionId: record.subscriptionId,
    location: record.location,
    resourceKey: record.key,
    kind,
    status: 'InProgress',
    startTime: new Date(),
  };
  ctx.store.addOperation(op);
  return op;
}

const sameInput = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function provisionFailure(err: unknown): { code: string; message: string } {
  if (err instanceof RuntimeProvisionError) return { code: err.code, message: err.message };
  return { code: 'ContainerGroupDeploymentFailed', message: errorMessage(err) };
}

/** Runs the runtime's create for the record's current generation, and settles the operation. */
function provision(ctx: ArmContext, record: GroupRecord, op: OperationRecord, replace: boolean): void {
  const generation = record.generation;
  const current = (): boolean => ctx.store.getGroup(record.key) === record && record.generation === generation;
  setImmediate(() => {
    if (!current()) return;
    record.provisioningState = replace ? 'Updating' : 'Creating';
    const spec = toRuntimeSpec(record.key, record.name, record.input.properties);
    const run = async (): Promise<void> => {
      if (replace) await ctx.runtime.remove(record.key);
      if (!current()) return;
      await ctx.runtime.create(spec, () => undefined);
    };
    run().then(
      () => {
        if (!current()) return ctx.store.finishOperation(op.id, 'Canceled');
        record.provisioningState = 'Succeeded';
        delete record.failure;
        ctx.store.finishOperation(op.id, 'Succeeded');
      },
      (err: unknown) => {
        const failure = provisionFailure(err);
        if (!(err instanceof RuntimeProvisionError)) ctx.log(`provisioning ${record.id} failed: ${failure.message}`);
        if (!current()) return ctx.store.finishOperation(op.id, 'Canceled');
        record.provisioningState = 'Failed';
        record.failure = failure;
        ctx.store.finishOperation(op.id, 'Failed', failure);
      },
    );
  });
}

export async function createOrUpdate(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const { subscriptionId: sub = '', resourceGroupName: rg = '', containerGroupName: name = '' } = req.params;
  checkResourceGroupName(rg);
  checkContainerGroupName(name);
  const parsed = containerGroupSchema.safeParse(req.body);
  if (!parsed.success) {
    const issue = describeIssue(parsed.error);
    throw badRequest('InvalidRequestContent', issue.message, issue.path);
  }
  const input = parsed.data;
  if (!input.location) throw badRequest('LocationRequired', 'The location property is required for this definition.');
  const location = normalizeLocation(input.location);
  checkGroupProperties(name, input.properties);

  const id = groupId(sub, rg, name);
  const key = id.toLowerCase();
  const existing = ctx.store.getGroup(key);
  if (existing) {
    if (existing.location !== location) {
      throw conflict(
        'InvalidResourceLocation',
        `The resource '${name}' already exists in location '${existing.location}' in resource group '${rg}'. A resource with the same name cannot be created in location '${location}'. Please select a new resource name.`,
      );
    }
    const unchanged = sameInput({ ...existing.input, location: undefined }, { ...input, location: undefined });
    if (unchanged && existing.provisioningState !== 'Failed' && existing.provisioningState !== 'Deleting') {
      // A repeated PUT (e.g. a retry after a lost response) is idempotent.
      return { status: 200, body: renderGroup(existing, ctx.runtime.view(key), true) };
    }
    if (TRANSITIONAL.has(existing.provisioningState)) {
      throw conflict(
        'ContainerGroupTransitioning',
        `The container group '${name}' is still transitioning, please retry later.`,
      );
    }
    const delta = groupCores(input.properties) - existing.cores;
    if (delta > 0) checkQuota(ctx, sub, location, 0, delta);
    existing.input = input;
    ctx.store.setCores(existing, groupCores(input.properties));
    existing.generation += 1;
    existing.provisioningState = 'Pending';
    existing.stopped = false;
    delete existing.failure;
    const op = newOperation(ctx, existing, 'update');
    provision(ctx, existing, op, true);
    return {
      status: 200,
      body: renderGroup(existing, ctx.runtime.view(key), true),
      headers: operationHeaders(req.origin, op),
    };
  }

  checkQuota(ctx, sub, location, 1, groupCores(input.properties));
  takeWindow(ctx, 'creation', sub, location);
  const record: GroupRecord = {
    key,
    id,
    subscriptionId: sub,
    resourceGroup: rg,
    name,
    location,
    input,
    provisioningState: 'Pending',
    generation: 1,
    stopped: false,
    cores: groupCores(input.properties),
    createdAt: Date.now(),
  };
  ctx.store.putGroup(record);
  const op = newOperation(ctx, record, 'create');
  provision(ctx, record, op, false);
  return { status: 201, body: renderGroup(record, undefined, true), headers: operationHeaders(req.origin, op) };
}

/**
 * ACI's creation and deletion windows, per subscription and region. Microsoft documents the
 * limits (100 per 5 minutes, 300 per hour) but not the body of the 429: this one keeps ARM's
 * throttling shape (code TooManyRequests, Retry-After in seconds, the limit and the window in
 * the message) so that a client can tell which window is full and when it frees.
 */
function takeWindow(ctx: ArmContext, kind: 'creation' | 'deletion', sub: string, location: string): void {
  if (!ctx.throttling()) return;
  const taken = (kind === 'creation' ? ctx.creations : ctx.deletions).take(
    `${sub.toLowerCase()}\u0000${normalizeLocation(location)}`,
  );
  if (taken.ok) return;
  ctx.windowThrottled(kind);
  const { count, windowSeconds } = taken.window;
  const verb = kind === 'creation' ? 'created' : 'deleted';
  throw tooManyRequests(
    `The number of container groups ${verb} in subscription '${sub}' and region '${location}' exceeded the limit of ${count} per ${windowSeconds} seconds. Please retry after ${taken.retryAfterSeconds} seconds.`,
    taken.retryAfterSeconds,
  );
}

function checkQuota(ctx: ArmContext, sub: string, location: string, newGroups: number, newCores: number): void {
  const quota = ctx.quota({ subscriptionId: sub, region: location });
  const used = ctx.store.usage(sub, location);
  if (used.groups + newGroups > quota.containerGroups) {
    throw conflict(
      'ContainerGroupQuotaReached',
      `Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota '${quota.containerGroups}' exceeded in region '${location}'. Limit: '${quota.containerGroups}', Usage: '${used.groups}' Requested: '${newGroups}'.`,
    );
  }
  if (used.cores + newCores > quota.cores) {
    throw conflict(
      'StandardCoresQuotaExceeded',
      `Resource type 'Microsoft.ContainerInstance/containerGroups' standard cores quota '${quota.cores}' exceeded in region '${location}'. Limit: '${quota.cores}', Usage: '${used.cores}', Requested: '${newCores}'.`,
    );
  }
}

export async function get(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  checkContainerGroupName(req.params.containerGroupName ?? '');
  const record = requireGroup(ctx, req);
  return { status: 200, body: renderGroup(record, ctx.runtime.view(record.key), true) };
}

export async function update(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const record = requireGroup(ctx, req);
  const parsed = patchSchema.safeParse(req.body);
  if (!parsed.success) {
    const issue = describeIssue(parsed.error);
    throw badRequest('InvalidRequestContent', issue.message, issue.path);
  }
  if (parsed.data.tags) record.input = { ...record.input, tags: parsed.data.tags };
  return { status: 200, body: renderGroup(record, ctx.runtime.view(record.key), true) };
}

export async function remove(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const { subscriptionId: sub = '', resourceGroupName: rg = '', containerGroupName: name = '' } = req.params;
  const key = groupId(sub, rg, name).toLowerCase();
  const record = ctx.store.getGroup(key);
  if (!record) return { status: 204 };
  takeWindow(ctx, 'deletion', sub, record.location);
  const body = renderGroup(record, ctx.runtime.view(key), true);
  record.provisioningState = 'Deleting';
  record.generation += 1;
  const op = newOperation(ctx, record, 'delete');
  const done = ctx.runtime.remove(key).then(
    () => {
      if (ctx.store.getGroup(key) === record) ctx.store.deleteGroup(key);
      ctx.store.finishOperation(op.id, 'Succeeded');
      return true;
    },
    (err: unknown) => {
      const message = errorMessage(err);
      ctx.log(`deleting ${record.id} failed: ${message}`);
      record.provisioningState = 'Failed';
      record.failure = { code: 'ContainerGroupDeletionFailed', message };
      ctx.store.finishOperation(op.id, 'Failed', record.failure);
      return true;
    },
  );
  let timer: NodeJS.Timeout | undefined;
  const waited = await Promise.race([
    done,
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ctx.deleteSyncWaitMs);
    }),
  ]);
  clearTimeout(timer);
  if (waited && !ctx.store.getGroup(key)) return { status: 200, body };
  if (waited) {
    const failure = record.failure ?? { code: 'ContainerGroupDeletionFailed', message: 'Deletion failed.' };
    throw new ArmError(500, failure.code, failure.message);
  }
  return { status: 202, headers: operationHeaders(req.origin, op) };
}

function listResponse(ctx: ArmContext, req: ArmRequest, prefix: string): ArmResponse {
  const all = ctx.store.listGroups(prefix);
  const skip = req.query.get('$skipToken');
  let start = 0;
  if (skip) {
    const after = Buffer.from(skip, 'base64url').toString('utf8');
    start = all.findIndex((g) => g.key > after);
    if (start < 0) start = all.length;
  }
  const page = all.slice(start, start + ctx.pageSize);
  const body: Record<string, unknown> = { value: page.map((g) => renderGroup(g, undefined, false)) };
  const last = page[page.length - 1];
  if (last && start + ctx.pageSize < all.length) {
    const url = new URL(req.origin + req.path);
    url.searchParams.set('api-version', API_VERSION);
    url.searchParams.set('$skipToken', Buffer.from(last.key, 'utf8').toString('base64url'));
    body.nextLink = url.toString();
  }
  return { status: 200, body };
}

export async function listBySubscription(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const sub = (req.params.subscriptionId ?? '').toLowerCase();
  return listResponse(ctx, req, `/subscriptions/${sub}/`);
}

export async function listByResourceGroup(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const { subscriptionId: sub = '', resourceGroupName: rg = '' } = req.params;
  checkResourceGroupName(rg);
  return listResponse(ctx, req, `/subscriptions/${sub}/resourcegroups/${rg}/`.toLowerCase());
}

function requireSettled(record: GroupRecord): void {
  if (TRANSITIONAL.has(record.provisioningState)) {
    throw conflict(
      'ContainerGroupTransitioning',
      `The container group '${record.name}' is still transitioning, please retry later.`,
    );
  }
}

export async function stop(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const record = requireGroup(ctx, req);
  requireSettled(record);
  if (record.provisioningState === 'Succeeded') await ctx.runtime.stop(record.key);
  record.stopped = true;
  return { status: 204 };
}

export async function start(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const record = requireGroup(ctx, req);
  requireSettled(record);
  const state = ctx.runtime.view(record.key)?.state;
  if (record.provisioningState === 'Succeeded' && !record.stopped && state === 'Running') return { status: 204 };
  const op = newOperation(ctx, record, 'start');
  if (record.provisioningState === 'Failed') {
    // Nothing to start: provision the group afresh from its spec.
    record.generation += 1;
    record.provisioningState = 'Pending';
    record.stopped = false;
    provision(ctx, record, op, true);
  } else {
    const generation = record.generation;
    record.stopped = false;
    ctx.runtime.start(record.key).then(
      () => ctx.store.finishOperation(op.id, 'Succeeded'),
      (err: unknown) => {
        const failure = provisionFailure(err);
        if (record.generation === generation) {
          record.provisioningState = 'Failed';
          record.failure = failure;
        }
        ctx.store.finishOperation(op.id, 'Failed', failure);
      },
    );
  }
  return { status: 202, headers: operationHeaders(req.origin, op) };
}

export async function restart(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const record = requireGroup(ctx, req);
  requireSettled(record);
  if (record.stopped || record.provisioningState !== 'Succeeded') {
    throw conflict(
      'ContainerGroupNotRunning',
      `The container group '${record.name}' is not running; start it instead.`,
    );
  }
  await ctx.runtime.restart(record.key);
  return { status: 204 };
}

export async function outboundDependencies(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  requireGroup(ctx, req);
  return { status: 200, body: [] };
}
