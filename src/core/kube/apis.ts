/**
 * The few typed calls the connector makes besides the pod hot path, over `json()`: the same method
 * names and request shapes as client-node's generated APIs (so callers and their test fakes read the
 * same), client-node's model types (type-only imports: free at run time), answers as parsed JSON.
 * Unlike client-node's models, date fields of answers stay RFC 3339 strings: every reader here passes
 * them through `new Date(...)`.
 */
import type {
  AuthenticationV1TokenRequest,
  CoreV1Event,
  V1ConfigMapList,
  V1Lease,
  V1Namespace,
  V1Node,
  V1NodeList,
  V1SecretList,
  V1SubjectAccessReview,
  V1TokenReview,
  VersionInfo,
} from '@kubernetes/client-node';

export type JsonMethod = 'GET' | 'PATCH' | 'DELETE' | 'POST' | 'PUT';

export interface JsonRequest {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string>;
}

export type JsonCall = (method: JsonMethod, path: string, opts?: JsonRequest) => Promise<unknown>;

export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export type PatchType = typeof MERGE_PATCH | typeof STRATEGIC_MERGE_PATCH;

/** A coordination.k8s.io MicroTime: RFC 3339 with microseconds (the API server refuses milliseconds), as client-node's V1MicroTime. */
export class MicroTime extends Date {
  override toISOString(): string {
    return super.toISOString().slice(0, -1) + '000Z';
  }
}

const e = encodeURIComponent;

function selectors(p: { fieldSelector?: string; labelSelector?: string }): Record<string, string> {
  return {
    ...(p.fieldSelector ? { fieldSelector: p.fieldSelector } : {}),
    ...(p.labelSelector ? { labelSelector: p.labelSelector } : {}),
  };
}

export interface CoreApi {
  readNamespace(p: { name: string }): Promise<V1Namespace>;
  readNode(p: { name: string }): Promise<V1Node>;
  createNode(p: { body: V1Node }): Promise<V1Node>;
  patchNode(p: { name: string; body: object }, patch: PatchType): Promise<V1Node>;
  patchNodeStatus(p: { name: string; body: object }, patch: PatchType): Promise<V1Node>;
  listNode(p?: { fieldSelector?: string; labelSelector?: string }): Promise<V1NodeList>;
  listNamespacedSecret(p: { namespace: string; fieldSelector?: string }): Promise<V1SecretList>;
  listNamespacedConfigMap(p: { namespace: string; fieldSelector?: string }): Promise<V1ConfigMapList>;
  createNamespacedEvent(p: { namespace: string; body: CoreV1Event }): Promise<CoreV1Event>;
  patchNamespacedEvent(p: { name: string; namespace: string; body: object }, patch: PatchType): Promise<CoreV1Event>;
  createNamespacedServiceAccountToken(p: {
    name: string;
    namespace: string;
    body: AuthenticationV1TokenRequest;
  }): Promise<AuthenticationV1TokenRequest>;
}

export function coreApi(json: JsonCall): CoreApi {
  return {
    readNamespace: async (p) => (await json('GET', `/api/v1/namespaces/${e(p.name)}`)) as V1Namespace,
    readNode: async (p) => (await json('GET', `/api/v1/nodes/${e(p.name)}`)) as V1Node,
    createNode: async (p) => (await json('POST', '/api/v1/nodes', { body: p.body })) as V1Node,
    patchNode: async (p, contentType) =>
      (await json('PATCH', `/api/v1/nodes/${e(p.name)}`, { body: p.body, contentType })) as V1Node,
    patchNodeStatus: async (p, contentType) =>
      (await json('PATCH', `/api/v1/nodes/${e(p.name)}/status`, { body: p.body, contentType })) as V1Node,
    listNode: async (p = {}) => (await json('GET', '/api/v1/nodes', { query: selectors(p) })) as V1NodeList,
    listNamespacedSecret: async (p) =>
      (await json('GET', `/api/v1/namespaces/${e(p.namespace)}/secrets`, { query: selectors(p) })) as V1SecretList,
    listNamespacedConfigMap: async (p) =>
      (await json('GET', `/api/v1/namespaces/${e(p.namespace)}/configmaps`, {
        query: selectors(p),
      })) as V1ConfigMapList,
    createNamespacedEvent: async (p) =>
      (await json('POST', `/api/v1/namespaces/${e(p.namespace)}/events`, { body: p.body })) as CoreV1Event,
    patchNamespacedEvent: async (p, contentType) =>
      (await json('PATCH', `/api/v1/namespaces/${e(p.namespace)}/events/${e(p.name)}`, {
        body: p.body,
        contentType,
      })) as CoreV1Event,
    createNamespacedServiceAccountToken: async (p) =>
      (await json('POST', `/api/v1/namespaces/${e(p.namespace)}/serviceaccounts/${e(p.name)}/token`, {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', ...p.body },
      })) as AuthenticationV1TokenRequest,
  };
}

export interface CoordinationApi {
  readNamespacedLease(p: { name: string; namespace: string }): Promise<V1Lease>;
  replaceNamespacedLease(p: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease>;
  createNamespacedLease(p: { namespace: string; body: V1Lease }): Promise<V1Lease>;
}

export function coordinationApi(json: JsonCall): CoordinationApi {
  const leases = (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${e(ns)}/leases`;
  const lease = (body: V1Lease): V1Lease => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...body });
  return {
    readNamespacedLease: async (p) => (await json('GET', `${leases(p.namespace)}/${e(p.name)}`)) as V1Lease,
    replaceNamespacedLease: async (p) =>
      (await json('PUT', `${leases(p.namespace)}/${e(p.name)}`, { body: lease(p.body) })) as V1Lease,
    createNamespacedLease: async (p) => (await json('POST', leases(p.namespace), { body: lease(p.body) })) as V1Lease,
  };
}

export interface AuthenticationApi {
  createTokenReview(p: { body: V1TokenReview }): Promise<V1TokenReview>;
}

export function authenticationApi(json: JsonCall): AuthenticationApi {
  return {
    createTokenReview: async (p) =>
      (await json('POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body: p.body })) as V1TokenReview,
  };
}

export interface AuthorizationApi {
  createSubjectAccessReview(p: { body: V1SubjectAccessReview }): Promise<V1SubjectAccessReview>;
}

export function authorizationApi(json: JsonCall): AuthorizationApi {
  return {
    createSubjectAccessReview: async (p) =>
      (await json('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        body: p.body,
      })) as V1SubjectAccessReview,
  };
}

export interface VersionApi {
  getCode(): Promise<VersionInfo>;
}

export function versionApi(json: JsonCall): VersionApi {
  return { getCode: async () => (await json('GET', '/version')) as VersionInfo };
}
