/** ARM routes: path templates from the spec, matched case-insensitively as ARM does. */
import type { ArmContext, ArmRequest, ArmResponse } from './context.js';
import * as groups from './handlers/container-groups.js';
import * as containers from './handlers/containers.js';
import * as locations from './handlers/locations.js';
import * as metrics from './handlers/metrics.js';

export type Handler = (ctx: ArmContext, req: ArmRequest) => Promise<ArmResponse>;

export interface Route {
  method: string;
  operation: string;
  pattern: RegExp;
  handler: Handler;
  /** The API version the operation takes, when not ACI's (Azure Monitor's metrics). */
  apiVersion?: string;
}

const SUB = '/subscriptions/{subscriptionId}';
const RP = '/providers/Microsoft.ContainerInstance';
const GROUPS = `${SUB}/resourceGroups/{resourceGroupName}${RP}/containerGroups`;
const GROUP = `${GROUPS}/{containerGroupName}`;
const CONTAINER = `${GROUP}/containers/{containerName}`;
const LOCATION = `${SUB}${RP}/locations/{location}`;

function compile(template: string): RegExp {
  const source = template
    .split(/(\{[A-Za-z]+\})/)
    .map((part) => {
      const param = /^\{([A-Za-z]+)\}$/.exec(part);
      if (param) return `(?<${param[1]}>[^/]+)`;
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}/?$`, 'i');
}

const route = (method: string, template: string, operation: string, handler: Handler): Route => ({
  method,
  operation,
  pattern: compile(template),
  handler,
});

export const routes: Route[] = [
  route('GET', `/providers/Microsoft.ContainerInstance/operations`, 'Operations_List', locations.listOperations),
  route('GET', `${SUB}${RP}/containerGroups`, 'ContainerGroups_List', groups.listBySubscription),
  route('GET', GROUPS, 'ContainerGroups_ListByResourceGroup', groups.listByResourceGroup),
  route('GET', GROUP, 'ContainerGroups_Get', groups.get),
  route('PUT', GROUP, 'ContainerGroups_CreateOrUpdate', groups.createOrUpdate),
  route('PATCH', GROUP, 'ContainerGroups_Update', groups.update),
  route('DELETE', GROUP, 'ContainerGroups_Delete', groups.remove),
  route('POST', `${GROUP}/restart`, 'ContainerGroups_Restart', groups.restart),
  route('POST', `${GROUP}/stop`, 'ContainerGroups_Stop', groups.stop),
  route('POST', `${GROUP}/start`, 'ContainerGroups_Start', groups.start),
  route(
    'GET',
    `${GROUP}/outboundNetworkDependenciesEndpoints`,
    'ContainerGroups_GetOutboundNetworkDependenciesEndpoints',
    groups.outboundDependencies,
  ),
  route('GET', `${CONTAINER}/logs`, 'Containers_ListLogs', containers.listLogs),
  route('POST', `${CONTAINER}/exec`, 'Containers_ExecuteCommand', containers.executeCommand),
  route('POST', `${CONTAINER}/attach`, 'Containers_Attach', containers.attach),
  {
    ...route('GET', `${GROUP}/providers/Microsoft.Insights/metrics`, 'Metrics_List', metrics.listMetrics),
    apiVersion: metrics.METRICS_API_VERSION,
  },
  route('GET', `${LOCATION}/usages`, 'Location_ListUsage', locations.listUsage),
  route('GET', `${LOCATION}/cachedImages`, 'Location_ListCachedImages', locations.listCachedImages),
  route('GET', `${LOCATION}/capabilities`, 'Location_ListCapabilities', locations.listCapabilities),
  route('GET', `${LOCATION}/operations/{operationId}`, 'AsyncOperation_Get', locations.operationStatus),
  route('GET', `${LOCATION}/operationResults/{operationId}`, 'OperationResult_Get', locations.operationResult),
];

export type RouteMatch =
  { kind: 'match'; route: Route; params: Record<string, string> } | { kind: 'method-not-allowed' } | { kind: 'none' };

export function matchRoute(method: string, path: string): RouteMatch {
  let pathMatched = false;
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (r.method !== method) continue;
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.groups ?? {})) params[k] = decodeURIComponent(v);
    return { kind: 'match', route: r, params };
  }
  return pathMatched ? { kind: 'method-not-allowed' } : { kind: 'none' };
}
