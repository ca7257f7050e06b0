/**
 * Container group names and the tags that tie a group to its pod.
 *
 * ACI group names: 1–63 characters, lowercase letters, digits and single hyphens,
 * starting and ending with a letter or digit. Our names are
 * `<namespace>-<pod name>-<hash>` where the hash covers cluster id, namespace, pod
 * name and pod UID: two pods (or two incarnations of one pod, or two clusters
 * sharing a resource group) never share a name, and the readable part is only
 * a courtesy, shortened when needed.
 */
import { createHash } from 'node:crypto';

export const MAX_GROUP_NAME = 63;
const HASH_LEN = 10;

/** Tag keys. Restart reconciliation and orphan cleanup act only on groups carrying all of them. */
export const TAG = {
  clusterId: 'aci-connector.cluster-id',
  nodeName: 'aci-connector.node-name',
  namespace: 'aci-connector.pod-namespace',
  podName: 'aci-connector.pod-name',
  podUid: 'aci-connector.pod-uid',
} as const;

export interface GroupIdentity {
  clusterId: string;
  nodeName: string;
  namespace: string;
  podName: string;
  podUid: string;
}

/** Lowercase, only [a-z0-9-], no leading/trailing/double hyphens. */
export function sanitizeNamePart(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+|-+$/g, '');
}

export function containerGroupName(id: Pick<GroupIdentity, 'clusterId' | 'namespace' | 'podName' | 'podUid'>): string {
  const hash = createHash('sha256')
    .update(`${id.clusterId}\u0000${id.namespace}\u0000${id.podName}\u0000${id.podUid}`)
    .digest('hex')
    .slice(0, HASH_LEN);
  const budget = MAX_GROUP_NAME - HASH_LEN - 1;
  let readable = sanitizeNamePart(`${id.namespace}-${id.podName}`).slice(0, budget);
  readable = readable.replace(/-+$/, '');
  return readable ? `${readable}-${hash}` : hash;
}

export function groupTags(id: GroupIdentity): Record<string, string> {
  return {
    [TAG.clusterId]: id.clusterId,
    [TAG.nodeName]: id.nodeName,
    [TAG.namespace]: id.namespace,
    [TAG.podName]: id.podName,
    [TAG.podUid]: id.podUid,
  };
}

/** The identity recorded in a group's tags, or undefined when any tag is missing (not ours: never touch it). */
export function identityFromTags(tags: Record<string, string> | undefined): GroupIdentity | undefined {
  if (!tags) return undefined;
  const clusterId = tags[TAG.clusterId];
  const nodeName = tags[TAG.nodeName];
  const namespace = tags[TAG.namespace];
  const podName = tags[TAG.podName];
  const podUid = tags[TAG.podUid];
  if (!clusterId || !nodeName || !namespace || !podName || !podUid) return undefined;
  return { clusterId, nodeName, namespace, podName, podUid };
}
