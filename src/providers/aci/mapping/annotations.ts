/**
 * ACI-only knobs a pod sets through annotations. Every key is documented in
 * ANNOTATIONS.md next to this file; keep the two in step.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { PodRejectedError } from '../../../core/provider.js';

export const ANNOTATION_PREFIX = 'aci-connector.io/';

export const ANNOTATION = {
  ipAddressType: `${ANNOTATION_PREFIX}ip-address-type`,
  dnsNameLabel: `${ANNOTATION_PREFIX}dns-name-label`,
  subnetIds: `${ANNOTATION_PREFIX}subnet-ids`,
  priority: `${ANNOTATION_PREFIX}priority`,
  imageEntrypoints: `${ANNOTATION_PREFIX}image-entrypoints`,
  sku: `${ANNOTATION_PREFIX}sku`,
} as const;

export type IpAddressChoice = 'Public' | 'Private' | 'None';

export interface PodAnnotations {
  ipAddressType?: IpAddressChoice;
  dnsNameLabel?: string;
  subnetIds: string[];
  priority?: 'Regular' | 'Spot';
  /** Container name → the image's ENTRYPOINT, for containers that set args without command. */
  imageEntrypoints: Record<string, string[]>;
  sku?: 'Standard' | 'Dedicated';
}

function field(key: string): string {
  return `metadata.annotations['${key}']`;
}

function oneOf<T extends string>(key: string, raw: string | undefined, allowed: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  const hit = allowed.find((a) => a.toLowerCase() === raw.trim().toLowerCase());
  if (!hit) {
    throw new PodRejectedError(
      'InvalidAnnotation',
      `annotation ${key} is '${raw}'; allowed values: ${allowed.join(', ')}`,
      field(key),
    );
  }
  return hit;
}

const dnsLabelPattern = /^[a-z][a-z0-9-]{1,61}[a-z0-9]$/;

export function readPodAnnotations(pod: V1Pod): PodAnnotations {
  const a = pod.metadata?.annotations ?? {};
  const out: PodAnnotations = { subnetIds: [], imageEntrypoints: {} };
  out.ipAddressType = oneOf(ANNOTATION.ipAddressType, a[ANNOTATION.ipAddressType], [
    'Public',
    'Private',
    'None',
  ] as const);
  out.priority = oneOf(ANNOTATION.priority, a[ANNOTATION.priority], ['Regular', 'Spot'] as const);
  out.sku = oneOf(ANNOTATION.sku, a[ANNOTATION.sku], ['Standard', 'Dedicated'] as const);

  const label = a[ANNOTATION.dnsNameLabel];
  if (label !== undefined) {
    if (!dnsLabelPattern.test(label)) {
      throw new PodRejectedError(
        'InvalidAnnotation',
        `annotation ${ANNOTATION.dnsNameLabel} '${label}' is not a valid DNS name label (3–63 lowercase letters, digits or hyphens, starting with a letter)`,
        field(ANNOTATION.dnsNameLabel),
      );
    }
    out.dnsNameLabel = label;
  }

  const subnets = a[ANNOTATION.subnetIds];
  if (subnets !== undefined) {
    out.subnetIds = subnets
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    const bad = out.subnetIds.find(
      (s) =>
        !/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i.test(
          s,
        ),
    );
    if (bad !== undefined) {
      throw new PodRejectedError(
        'InvalidAnnotation',
        `annotation ${ANNOTATION.subnetIds}: '${bad}' is not a subnet resource id (/subscriptions/…/virtualNetworks/…/subnets/…)`,
        field(ANNOTATION.subnetIds),
      );
    }
  }

  const eps = a[ANNOTATION.imageEntrypoints];
  if (eps !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(eps);
    } catch {
      parsed = undefined;
    }
    const valid =
      typeof parsed === 'object' &&
      parsed !== null &&
      !Array.isArray(parsed) &&
      Object.values(parsed).every((v) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string'));
    if (!valid) {
      throw new PodRejectedError(
        'InvalidAnnotation',
        `annotation ${ANNOTATION.imageEntrypoints} must be a JSON object mapping container names to non-empty string arrays, e.g. {"app":["/docker-entrypoint.sh"]}`,
        field(ANNOTATION.imageEntrypoints),
      );
    }
    out.imageEntrypoints = parsed as Record<string, string[]>;
  }
  return out;
}
