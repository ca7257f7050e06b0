/** Location-scoped reads: usages (quota), cached images, capabilities; and operation status. */
import { API_VERSION, PROVIDER, type ArmContext, type ArmRequest, type ArmResponse } from '../context.js';
import { ArmError } from '../errors.js';
import { renderGroup } from '../render.js';
import { normalizeLocation } from './container-groups.js';

export async function listUsage(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const sub = req.params.subscriptionId ?? '';
  const location = normalizeLocation(req.params.location ?? '');
  const quota = ctx.quota({ subscriptionId: sub, region: location });
  const used = ctx.store.usage(sub, location);
  const base = `/subscriptions/${sub}/providers/${PROVIDER}/locations/${location}/usages`;
  return {
    status: 200,
    body: {
      value: [
        {
          id: `${base}/ContainerGroups`,
          unit: 'Count',
          currentValue: used.groups,
          limit: quota.containerGroups,
          name: { value: 'ContainerGroups', localizedValue: 'Container Groups' },
        },
        {
          id: `${base}/StandardCores`,
          unit: 'Count',
          currentValue: Math.ceil(used.cores),
          limit: quota.cores,
          name: { value: 'StandardCores', localizedValue: 'Standard Cores' },
        },
      ],
    },
  };
}

export async function listCachedImages(_ctx: ArmContext, _req: ArmRequest): Promise<ArmResponse> {
  // No image is cached ahead of time on one machine; the list says so honestly.
  return { status: 200, body: { value: [] } };
}

export async function listCapabilities(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const location = normalizeLocation(req.params.location ?? '');
  const quota = ctx.quota({ subscriptionId: req.params.subscriptionId ?? '', region: location });
  const entry = (osType: string) => ({
    resourceType: 'containerGroups',
    osType,
    location,
    ipAddressType: 'Public',
    gpu: 'None',
    capabilities: { maxMemoryInGB: 16, maxCpu: Math.min(4, quota.cores), maxGpuCount: 0 },
  });
  return { status: 200, body: { value: [entry('Linux')] } };
}

export async function operationStatus(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const op = ctx.store.getOperation(req.params.operationId ?? '');
  if (!op || op.subscriptionId.toLowerCase() !== (req.params.subscriptionId ?? '').toLowerCase()) {
    throw new ArmError(404, 'OperationNotFound', `The operation '${req.params.operationId ?? ''}' was not found.`);
  }
  const body: Record<string, unknown> = {
    id: `/subscriptions/${op.subscriptionId}/providers/${PROVIDER}/locations/${op.location}/operations/${op.id}`,
    name: op.id,
    status: op.status,
    startTime: op.startTime.toISOString(),
  };
  if (op.endTime) body.endTime = op.endTime.toISOString();
  if (op.error) body.error = op.error;
  return { status: 200, body };
}

/** The Location header's target: 202 while running, then the result. */
export async function operationResult(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const op = ctx.store.getOperation(req.params.operationId ?? '');
  if (!op || op.subscriptionId.toLowerCase() !== (req.params.subscriptionId ?? '').toLowerCase()) {
    throw new ArmError(404, 'OperationNotFound', `The operation '${req.params.operationId ?? ''}' was not found.`);
  }
  if (op.status === 'InProgress') {
    return {
      status: 202,
      headers: { Location: `${req.origin}${req.path}?api-version=${API_VERSION}`, 'Retry-After': '1' },
    };
  }
  if (op.status === 'Failed' && op.error) throw new ArmError(400, op.error.code, op.error.message);
  const record = ctx.store.getGroup(op.resourceKey);
  if (op.kind === 'delete' || !record) return { status: 204 };
  return { status: 200, body: renderGroup(record, ctx.runtime.view(record.key), true) };
}

export async function listOperations(_ctx: ArmContext, _req: ArmRequest): Promise<ArmResponse> {
  const op = (name: string, operation: string, resource = 'Container Group') => ({
    name: `${PROVIDER}/${name}`,
    display: { provider: 'Microsoft Container Instance', resource, operation, description: operation },
    origin: 'User',
  });
  return {
    status: 200,
    body: {
      value: [
        op('containerGroups/read', 'Get Container Group'),
        op('containerGroups/write', 'Create or Update Container Group'),
        op('containerGroups/delete', 'Delete Container Group'),
        op('containerGroups/restart/action', 'Restart Container Group'),
        op('containerGroups/stop/action', 'Stop Container Group'),
        op('containerGroups/start/action', 'Start Container Group'),
        op('containerGroups/containers/logs/read', 'Get Container Logs', 'Container'),
        op('containerGroups/containers/exec/action', 'Exec into Container', 'Container'),
        op('containerGroups/containers/attach/action', 'Attach to Container', 'Container'),
        op('locations/usages/read', 'Get Usage', 'Usage'),
      ],
    },
  };
}
