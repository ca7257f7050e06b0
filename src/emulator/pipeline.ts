/**
 * ARM's request pipeline, as stages in the style of Azurite's middleware: each stage does one
 * job on the request's context and calls `next()` to go on, or throws an ArmError to answer
 * with it. In order: error handling (outermost), latency fault, body, bearer check, routing,
 * api-version, throttling, error faults, JSON body, then the handler and the lost-response fault.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sleep } from '../common/backoff.js';
import { errorMessage } from '../common/errors.js';
import { API_VERSION, type ArmContext, type ArmRequest } from './context.js';
import { ArmError } from './errors.js';
import type { Faults } from './faults.js';
import { readBody, type RequestStats, type Send } from './http.js';
import type { EntraIdentity, Principal } from './identity.js';
import type { RequestCategory, TokenBuckets } from './limits.js';
import { matchRoute, type RouteMatch } from './router.js';

/** One ARM request on its way through the stages. */
export interface ArmCall {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  method: string;
  /** The request ids every answer carries, errors included. */
  baseHeaders: Record<string, string>;
  /** baseHeaders plus what stages add (the rate-limit headers once throttling passed). */
  headers: Record<string, string>;
  /** The route's operation name, once routed ('Unknown' before). */
  operation: string;
  rawBody?: Buffer;
  principal?: Principal;
  match?: Extract<RouteMatch, { kind: 'match' }>;
  body?: unknown;
}

export type Stage = (call: ArmCall, next: () => Promise<void>) => Promise<void>;

/** Runs the stages in order, each around the rest. */
export function compose(stages: readonly Stage[]): (call: ArmCall) => Promise<void> {
  return (call) => {
    const run = (i: number): Promise<void> => {
      const stage = stages[i];
      return stage ? stage(call, () => run(i + 1)) : Promise.resolve();
    };
    return run(0);
  };
}

export interface ArmPipelineDeps {
  ctx: ArmContext;
  identity: EntraIdentity;
  faults: Faults;
  buckets: TokenBuckets;
  throttling: () => boolean;
  stats: () => RequestStats;
  send: Send;
  originOf: (req: IncomingMessage) => string;
  log: (msg: string) => void;
}

const categoryOf = (method: string): RequestCategory =>
  method === 'GET' || method === 'HEAD' ? 'read' : method === 'DELETE' ? 'delete' : 'write';
const REMAINING_HEADER: Record<RequestCategory, string> = {
  read: 'x-ms-ratelimit-remaining-subscription-reads',
  write: 'x-ms-ratelimit-remaining-subscription-writes',
  delete: 'x-ms-ratelimit-remaining-subscription-deletes',
};

/** ArmErrors become ARM's error body; anything else is logged and answered with a bare 500. */
const answerErrors =
  (d: ArmPipelineDeps): Stage =>
  async (call, next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof ArmError) {
        // Bucket throttling and the creation rate limit alike.
        if (err.status === 429) d.stats().throttled += 1;
        d.send(call.res, err.status, err.body(), { ...call.headers, ...err.headers });
        return;
      }
      d.log(`internal error in ${call.operation}: ${errorMessage(err)}`);
      d.send(
        call.res,
        500,
        { error: { code: 'InternalServerError', message: 'Encountered internal server error.' } },
        call.baseHeaders,
      );
    }
  };

const latencyFault =
  (d: ArmPipelineDeps): Stage =>
  async (_call, next) => {
    const latency = d.faults.latency();
    if (latency > 0) await sleep(latency);
    await next();
  };

const body: Stage = async (call, next) => {
  call.rawBody = await readBody(call.req);
  await next();
};

const authenticate =
  (d: ArmPipelineDeps): Stage =>
  async (call, next) => {
    call.principal = await d.identity.verifyBearer(call.req.headers.authorization);
    await next();
  };

const route =
  (d: ArmPipelineDeps): Stage =>
  async (call, next) => {
    const { method, url } = call;
    const match = matchRoute(method, url.pathname);
    if (match.kind === 'none') {
      throw new ArmError(
        404,
        'InvalidResourceType',
        `The resource type could not be found in the namespace 'Microsoft.ContainerInstance' for api version '${url.searchParams.get('api-version') ?? ''}'.`,
      );
    }
    if (match.kind === 'method-not-allowed') {
      throw new ArmError(
        405,
        'MethodNotAllowed',
        `The requested method '${method}' is not allowed for '${url.pathname}'.`,
      );
    }
    call.match = match;
    call.operation = match.route.operation;
    const s = d.stats();
    s.callsByOperation[call.operation] = (s.callsByOperation[call.operation] ?? 0) + 1;
    await next();
  };

const apiVersion: Stage = async (call, next) => {
  const v = call.url.searchParams.get('api-version');
  if (!v) {
    throw new ArmError(
      400,
      'MissingApiVersionParameter',
      'The api-version query parameter (?api-version=) is required for all requests.',
    );
  }
  const wanted = call.match?.route.apiVersion ?? API_VERSION;
  if (v !== wanted) {
    throw new ArmError(
      400,
      'NoRegisteredProviderFound',
      `No registered resource provider found for API version '${v}' and type 'containerGroups'. The supported api-versions are '${wanted}'.`,
    );
  }
  await next();
};

/** ARM's buckets per subscription (or tenant) and principal, with the remaining count on every answer. */
const throttle =
  (d: ArmPipelineDeps): Stage =>
  async (call, next) => {
    if (d.throttling()) {
      const category = categoryOf(call.method);
      const principal = call.principal!;
      const scope = call.match?.params.subscriptionId ?? principal.tenantId;
      const taken = d.buckets.take(`${scope.toLowerCase()}\u0000${principal.objectId}`, category);
      if (!taken.ok) {
        throw new ArmError(
          429,
          'TooManyRequests',
          `Number of ${category} requests for subscription '${scope}' and principal '${principal.objectId}' exceeded the limit. Please try again after ${taken.retryAfterSeconds} seconds.`,
          { 'Retry-After': String(taken.retryAfterSeconds) },
        );
      }
      call.headers[REMAINING_HEADER[category]] = String(taken.remaining);
    }
    await next();
  };

const errorFaults =
  (d: ArmPipelineDeps): Stage =>
  async (call, next) => {
    const fault = d.faults.decide(call.operation);
    if (fault.kind === 'error') {
      d.stats().faultsInjected += 1;
      if (fault.status === 500)
        throw new ArmError(500, 'InternalServerError', 'Encountered internal server error. (injected fault)');
      throw new ArmError(503, 'ServiceUnavailable', 'The service is temporarily unavailable. (injected fault)', {
        'Retry-After': '1',
      });
    }
    await next();
  };

const jsonBody: Stage = async (call, next) => {
  if (call.rawBody && call.rawBody.length > 0) {
    try {
      call.body = JSON.parse(call.rawBody.toString('utf8'));
    } catch {
      throw new ArmError(
        400,
        'InvalidRequestContent',
        'The request content was invalid and could not be deserialized.',
      );
    }
  }
  await next();
};

/** The route's handler; a lost-response fault drops the connection after a success. */
const dispatch =
  (d: ArmPipelineDeps): Stage =>
  async (call) => {
    const match = call.match!;
    const armReq: ArmRequest = {
      method: call.method,
      operation: call.operation,
      path: call.url.pathname,
      params: match.params,
      query: call.url.searchParams,
      body: call.body,
      origin: d.originOf(call.req),
      principal: call.principal!,
    };
    const result = await match.route.handler(d.ctx, armReq);
    if (d.faults.loseResponse(call.operation) && result.status < 300) {
      d.stats().lostResponses += 1;
      call.req.socket.destroy();
      return;
    }
    d.send(call.res, result.status, result.body, { ...call.headers, ...result.headers });
  };

/** The ARM request handler: ids first, then every stage. */
export function armPipeline(
  d: ArmPipelineDeps,
): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> {
  const run = compose([
    answerErrors(d),
    latencyFault(d),
    body,
    authenticate(d),
    route(d),
    apiVersion,
    throttle(d),
    errorFaults(d),
    jsonBody,
    dispatch(d),
  ]);
  return (req, res, url) => {
    const requestId = randomUUID();
    const baseHeaders: Record<string, string> = {
      'x-ms-request-id': requestId,
      'x-ms-correlation-request-id': (req.headers['x-ms-correlation-request-id'] as string | undefined) ?? requestId,
    };
    const clientRequestId = req.headers['x-ms-client-request-id'];
    if (typeof clientRequestId === 'string') baseHeaders['x-ms-client-request-id'] = clientRequestId;
    const method = (req.method ?? 'GET').toUpperCase();
    return run({ req, res, url, method, baseHeaders, headers: { ...baseHeaders }, operation: 'Unknown' });
  };
}
