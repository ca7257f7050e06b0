/**
 * A container's Kubernetes securityContext (with the pod's defaults) → ACI's container
 * `securityContext` (api-version 2023-05-01: privileged, allowPrivilegeEscalation,
 * capabilities add/drop, runAsUser, runAsGroup, seccompProfile as base64 JSON).
 *
 * What ACI has a field for is mapped. What ACI truly cannot do is rejected by validate.ts.
 * Hardening fields that ACI has no field for (readOnlyRootFilesystem, fsGroup, SELinux,
 * AppArmor, …) are dropped: running without them is what the image does anyway, so the
 * pod still runs, and the caller notes every dropped field in ONE Event on the pod.
 */
import type { V1Container, V1PodSecurityContext, V1SecurityContext } from '@kubernetes/client-node';
import type { SecurityContextDefinition } from '@azure/arm-containerinstance';
import { PodRejectedError } from '../../../core/provider.js';

/** A seccomp profile that allows every syscall: what `Unconfined` means, in the form ACI takes. */
export const UNCONFINED_SECCOMP = JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW' });

export interface MappedSecurity {
  securityContext?: SecurityContextDefinition;
  /** Fields set on the pod that ACI cannot apply, as paths (for the one Event). */
  dropped: string[];
}

function seccomp(profile: { type: string; localhostProfile?: string } | undefined, field: string): string | undefined {
  if (!profile) return undefined;
  switch (profile.type) {
    case 'RuntimeDefault':
      return undefined; // ACI's default
    case 'Unconfined':
      return Buffer.from(UNCONFINED_SECCOMP).toString('base64');
    case 'Localhost':
      // The profile is a file in the kubelet's seccomp folder on the node; a virtual node
      // has no such folder, and ACI takes the profile's text, not a path.
      throw new PodRejectedError(
        'UnsupportedField',
        `${field}.type: a Localhost seccomp profile names a file on the node, and this virtual node has none; Azure Container Instances takes only RuntimeDefault or a profile given inline`,
        `${field}.type`,
      );
    default:
      throw new PodRejectedError(
        'UnsupportedField',
        `${field}.type: unknown seccomp profile type '${profile.type}'`,
        `${field}.type`,
      );
  }
}

/** Pod-level fields with no ACI counterpart that are harmless to drop (hardening or volume ownership). */
function droppedPodFields(psc: V1PodSecurityContext | undefined): string[] {
  if (!psc) return [];
  const out: string[] = [];
  const f = 'spec.securityContext';
  if (psc.fsGroup !== undefined) out.push(`${f}.fsGroup`);
  if (psc.fsGroupChangePolicy !== undefined) out.push(`${f}.fsGroupChangePolicy`);
  if (psc.supplementalGroups?.length) out.push(`${f}.supplementalGroups`);
  if (psc.supplementalGroupsPolicy !== undefined) out.push(`${f}.supplementalGroupsPolicy`);
  if (psc.seLinuxOptions) out.push(`${f}.seLinuxOptions`);
  if (psc.seLinuxChangePolicy !== undefined) out.push(`${f}.seLinuxChangePolicy`);
  if (psc.appArmorProfile) out.push(`${f}.appArmorProfile`);
  if (psc.windowsOptions) out.push(`${f}.windowsOptions`);
  return out;
}

/**
 * Maps one container. `path` is e.g. `spec.containers[0]`. Pod-level runAsUser, runAsGroup,
 * runAsNonRoot and seccompProfile are defaults the container's own values override, as in
 * a kubelet.
 */
export function mapSecurityContext(
  c: V1Container,
  psc: V1PodSecurityContext | undefined,
  path: string,
): MappedSecurity {
  const sc: V1SecurityContext = c.securityContext ?? {};
  const f = `${path}.securityContext`;
  const dropped: string[] = [];
  const out: SecurityContextDefinition = {};

  const runAsUser = sc.runAsUser ?? psc?.runAsUser;
  const runAsGroup = sc.runAsGroup ?? psc?.runAsGroup;
  const runAsNonRoot = sc.runAsNonRoot ?? psc?.runAsNonRoot;
  if (runAsUser !== undefined) out.runAsUser = runAsUser;
  if (runAsGroup !== undefined) out.runAsGroup = runAsGroup;
  if (runAsNonRoot) {
    // The kubelet refuses to start such a container (CreateContainerConfigError); it could never run.
    if (runAsUser === 0) {
      const field = sc.runAsUser !== undefined ? `${f}.runAsUser` : 'spec.securityContext.runAsUser';
      throw new PodRejectedError(
        'InvalidSecurityContext',
        `${field}: runAsNonRoot is set and runAsUser is 0 (root); the container would break its non-root policy`,
        field,
      );
    }
    // Without runAsUser the kubelet checks the image's USER, which is not known here.
    if (runAsUser === undefined)
      dropped.push(sc.runAsNonRoot !== undefined ? `${f}.runAsNonRoot` : 'spec.securityContext.runAsNonRoot');
  }
  if (sc.allowPrivilegeEscalation !== undefined) out.allowPrivilegeEscalation = sc.allowPrivilegeEscalation;
  if (sc.capabilities?.add?.length || sc.capabilities?.drop?.length) {
    out.capabilities = {};
    if (sc.capabilities.add?.length) out.capabilities.add = [...sc.capabilities.add];
    if (sc.capabilities.drop?.length) out.capabilities.drop = [...sc.capabilities.drop];
  }
  const profile = sc.seccompProfile
    ? seccomp(sc.seccompProfile, `${f}.seccompProfile`)
    : seccomp(psc?.seccompProfile, 'spec.securityContext.seccompProfile');
  if (profile !== undefined) out.seccompProfile = profile;

  if (sc.readOnlyRootFilesystem) dropped.push(`${f}.readOnlyRootFilesystem`);
  if (sc.seLinuxOptions) dropped.push(`${f}.seLinuxOptions`);
  if (sc.appArmorProfile) dropped.push(`${f}.appArmorProfile`);
  return Object.keys(out).length > 0 ? { securityContext: out, dropped } : { dropped };
}

/** The one Event's message for every field the mapping dropped, or undefined when none was. */
export function droppedFieldsMessage(
  pod: { spec?: { securityContext?: V1PodSecurityContext } },
  perContainer: readonly string[],
): string | undefined {
  const all = [...droppedPodFields(pod.spec?.securityContext), ...perContainer];
  if (all.length === 0) return undefined;
  const nonRoot = all.some((f) => f.endsWith('.runAsNonRoot'));
  return (
    `Azure Container Instances cannot apply these hardening settings, so the pod runs without them: ${all.join(', ')}` +
    (nonRoot
      ? ' (runAsNonRoot without runAsUser cannot be checked against the image here; set runAsUser to enforce it)'
      : '')
  );
}
