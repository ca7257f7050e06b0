/**
 * The ACI operations the provider uses, over the official SDK client, each one
 * metered and retried by ArmCaller.
 */
import {
  ContainerInstanceManagementClient,
  getContinuationToken,
  type ContainerGroup,
  type Usage,
} from '@azure/arm-containerinstance';
import { createPipelineRequest, createHttpHeaders } from '@azure/core-rest-pipeline';
import type { TokenCredential } from '@azure/identity';
import { ArmCaller, isNotFound, type CallKind } from './arm-caller.js';
import { ArmRequestError } from '../errors.js';
import { TAG } from '../naming.js';
import { groupToWire } from './wire.js';
import { pipelineTls, type TlsOptions } from './credential.js';

export const API_VERSION = '2023-05-01';

const REMAINING_HEADERS: [CallKind, string][] = [
  ['read', 'x-ms-ratelimit-remaining-subscription-reads'],
  ['write', 'x-ms-ratelimit-remaining-subscription-writes'],
  ['delete', 'x-ms-ratelimit-remaining-subscription-deletes'],
];

export interface AciArmOptions {
  subscriptionId: string;
  resourceGroup: string;
  region: string;
  armEndpoint: string;
  credential: TokenCredential;
  tls: TlsOptions;
  caller: ArmCaller;
}

/** A REST failure shaped like the SDK's, for responses we read ourselves. */
class RawRestError extends Error {
  override readonly name = 'RestError';
  constructor(
    message: string,
    readonly statusCode: number,
    readonly code: string | undefined,
    readonly response: { headers: { get(name: string): string | undefined } },
  ) {
    super(message);
  }
}

export class AciArm {
  readonly client: ContainerInstanceManagementClient;
  readonly caller: ArmCaller;

  constructor(private readonly o: AciArmOptions) {
    this.caller = o.caller;
    this.client = new ContainerInstanceManagementClient(o.credential, o.subscriptionId, {
      endpoint: o.armEndpoint,
      credentialScopes: [`${new URL(o.armEndpoint).origin}/.default`],
      apiVersion: API_VERSION,
      // Retries, Retry-After and budgets are ArmCaller's job: the pipeline must not retry behind its back.
      retryOptions: { maxRetries: 0 },
      ...pipelineTls(o.tls),
    });
    this.client.pipeline.addPolicy({
      name: 'aciRateLimitSync',
      sendRequest: async (request, next) => {
        const response = await next(request);
        for (const [kind, header] of REMAINING_HEADERS) {
          const v = response.headers.get(header);
          if (v !== undefined) this.caller.observeRemaining(kind, Number(v));
        }
        return response;
      },
    });
  }

  private groupUrl(name: string): string {
    const { armEndpoint, subscriptionId, resourceGroup } = this.o;
    return `${armEndpoint}/subscriptions/${encodeURIComponent(subscriptionId)}/resourceGroups/${encodeURIComponent(resourceGroup)}/providers/Microsoft.ContainerInstance/containerGroups/${encodeURIComponent(name)}?api-version=${API_VERSION}`;
  }

  /** One GET; undefined when the group does not exist. */
  async getGroup(name: string): Promise<ContainerGroup | undefined> {
    try {
      return await this.caller.call('containerGroups.get', 'read', (abortSignal) =>
        this.client.containerGroups.get(this.o.resourceGroup, name, { abortSignal }),
      );
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Every group in the resource group: one read per page. */
  async listGroups(): Promise<ContainerGroup[]> {
    const out: ContainerGroup[] = [];
    let token: string | undefined;
    do {
      const page = await this.caller.call('containerGroups.listByResourceGroup', 'read', async (abortSignal) => {
        const it = this.client.containerGroups
          .listByResourceGroup(this.o.resourceGroup, { abortSignal })
          .byPage(token ? { continuationToken: token } : {});
        const r = await it.next();
        return r.done ? [] : r.value;
      });
      out.push(...page);
      token = getContinuationToken(page);
    } while (token);
    return out;
  }

  /**
   * Creates the group with one PUT. When a PUT's outcome is unknown (5xx, lost
   * response), a GET decides before any retry: a group carrying this pod's UID is
   * the one we created, so no second PUT is sent.
   */
  /** `maxThrottledAttempts: 1` hands a 429 back at once (the provider paces creates itself). */
  async createGroup(
    name: string,
    group: ContainerGroup,
    opts: { maxThrottledAttempts?: number } = {},
  ): Promise<ContainerGroup> {
    const uid = group.tags?.[TAG.podUid];
    const existing = async (): Promise<ContainerGroup | undefined> => {
      const g = await this.getGroup(name);
      return g && g.tags?.[TAG.podUid] === uid ? g : undefined;
    };
    return this.caller.call(
      'containerGroups.createOrUpdate',
      'write',
      async (abortSignal) => {
        const res = await this.client.sendRequest(
          createPipelineRequest({
            url: this.groupUrl(name),
            method: 'PUT',
            headers: createHttpHeaders({ 'content-type': 'application/json' }),
            body: JSON.stringify(groupToWire(group)),
            abortSignal,
          }),
        );
        if (res.status === 200 || res.status === 201) {
          return { ...group, name, provisioningState: provisioningStateOf(res.bodyAsText ?? undefined) };
        }
        throw restErrorOf(res.status, res.bodyAsText ?? undefined, res.headers);
      },
      { beforeRetry: existing, ...opts },
    );
  }

  /**
   * One DELETE; resolves also when the group is already gone. Returns 'accepted'
   * when ARM answered 202 (the group is still being torn down).
   */
  async deleteGroup(name: string, opts: { maxThrottledAttempts?: number } = {}): Promise<'deleted' | 'accepted'> {
    return this.caller.call(
      'containerGroups.delete',
      'delete',
      async (abortSignal) => {
        const res = await this.client.sendRequest(
          createPipelineRequest({ url: this.groupUrl(name), method: 'DELETE', abortSignal }),
        );
        if (res.status === 202) return 'accepted';
        if (res.status === 200 || res.status === 204 || res.status === 404) return 'deleted';
        throw restErrorOf(res.status, res.bodyAsText ?? undefined, res.headers);
      },
      opts,
    );
  }

  /**
   * Restarts every container of the group in place (ContainerGroups_Restart). ACI answers
   * 204 when done, or 202 with a long-running operation; the caller watches the group's
   * status either way, so an accepted restart is not polled here.
   */
  async restartGroup(name: string): Promise<void> {
    const url = this.groupUrl(name).replace('?api-version=', '/restart?api-version=');
    await this.caller.call('containerGroups.restart', 'write', async (abortSignal) => {
      const res = await this.client.sendRequest(createPipelineRequest({ url, method: 'POST', abortSignal }));
      if (res.status === 200 || res.status === 202 || res.status === 204) return;
      throw restErrorOf(res.status, res.bodyAsText ?? undefined, res.headers);
    });
  }

  /** Stops every container of the group, keeping the group (ContainerGroups_Stop: 204 when done). */
  async stopGroup(name: string): Promise<void> {
    await this.caller.call('containerGroups.stop', 'write', (abortSignal) =>
      this.client.containerGroups.stop(this.o.resourceGroup, name, { abortSignal }),
    );
  }

  async listUsage(): Promise<Usage[]> {
    return this.caller.call('location.listUsage', 'read', async (abortSignal) => {
      const r = await this.client.location.listUsage(this.o.region, { abortSignal }).byPage().next();
      return r.done ? [] : r.value;
    });
  }

  async listLogs(group: string, container: string, opts: { tail?: number; timestamps?: boolean }): Promise<string> {
    const r = await this.caller.call('containers.listLogs', 'read', (abortSignal) =>
      this.client.containers.listLogs(this.o.resourceGroup, group, container, {
        abortSignal,
        ...(opts.tail !== undefined ? { tail: opts.tail } : {}),
        ...(opts.timestamps ? { timestamps: true } : {}),
      }),
    );
    return r.content ?? '';
  }

  async attach(group: string, container: string): Promise<{ webSocketUri: string; password: string }> {
    const r = await this.caller.call('containers.attach', 'write', (abortSignal) =>
      this.client.containers.attach(this.o.resourceGroup, group, container, { abortSignal }),
    );
    if (!r.webSocketUri || !r.password)
      throw new ArmRequestError('containers.attach', 200, undefined, 'attach response had no websocket URI');
    return { webSocketUri: r.webSocketUri, password: r.password };
  }

  async executeCommand(
    group: string,
    container: string,
    command: string,
    size: { rows: number; cols: number },
  ): Promise<{ webSocketUri: string; password: string }> {
    const r = await this.caller.call('containers.executeCommand', 'write', (abortSignal) =>
      this.client.containers.executeCommand(
        this.o.resourceGroup,
        group,
        container,
        { command, terminalSize: size },
        { abortSignal },
      ),
    );
    if (!r.webSocketUri || !r.password)
      throw new ArmRequestError('containers.executeCommand', 200, undefined, 'exec response had no websocket URI');
    return { webSocketUri: r.webSocketUri, password: r.password };
  }
}

function provisioningStateOf(body: string | undefined): string | undefined {
  try {
    const parsed = JSON.parse(body ?? '{}') as { properties?: { provisioningState?: string } };
    return parsed.properties?.provisioningState;
  } catch {
    return undefined;
  }
}

function restErrorOf(
  status: number,
  body: string | undefined,
  headers: { get(name: string): string | undefined },
): RawRestError {
  let code: string | undefined;
  let message = `HTTP ${status}`;
  try {
    const parsed = JSON.parse(body ?? '') as { error?: { code?: string; message?: string } };
    code = parsed.error?.code;
    if (parsed.error?.message) message = parsed.error.message;
  } catch {
    // Not JSON: keep the status line only (the body may echo the request).
  }
  return new RawRestError(message, status, code, { headers });
}
