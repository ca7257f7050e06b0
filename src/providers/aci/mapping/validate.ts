/**
 * Pod fields ACI cannot honour. Each one fails the pod with the field path in the
 * message, instead of running something other than what was asked for.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { connectorRunsProbe, PodRejectedError } from '../../../core/provider.js';

function reject(field: string, why: string): never {
  throw new PodRejectedError('UnsupportedField', `${field}: ${why}`, field);
}

function checkContainer(c: V1Container, path: string, init: boolean): void {
  const sc = c.securityContext;
  if (sc?.privileged)
    reject(
      `${path}.securityContext.privileged`,
      'privileged containers are not supported by Azure Container Instances',
    );
  if (sc?.procMount && sc.procMount !== 'Default')
    reject(`${path}.securityContext.procMount`, 'only the Default procMount is supported');
  if (sc?.windowsOptions?.hostProcess)
    reject(`${path}.securityContext.windowsOptions.hostProcess`, 'host process containers are not supported');
  if (c.workingDir)
    reject(`${path}.workingDir`, 'Azure Container Instances cannot set a working directory; set it in the image');
  // exec, httpGet and sleep hooks are run by the connector (src/core/lifecycle-hooks.ts).
  for (const [name, h] of [
    ['postStart', c.lifecycle?.postStart],
    ['preStop', c.lifecycle?.preStop],
  ] as const) {
    if (!h) continue;
    if (h.tcpSocket)
      reject(
        `${path}.lifecycle.${name}.tcpSocket`,
        'tcpSocket lifecycle hooks are deprecated and not run by Kubernetes either',
      );
    if (!h.exec && !h.httpGet && !h.sleep) reject(`${path}.lifecycle.${name}`, 'needs exec, httpGet or sleep');
  }
  if (c.volumeDevices?.length) reject(`${path}.volumeDevices`, 'raw block devices are not supported');
  c.ports?.forEach((p, i) => {
    if (p.hostPort !== undefined && p.hostPort !== 0 && p.hostPort !== p.containerPort) {
      reject(
        `${path}.ports[${i}].hostPort`,
        'a hostPort different from containerPort cannot be expressed (the group IP exposes containerPort)',
      );
    }
    if (p.protocol && p.protocol !== 'TCP' && p.protocol !== 'UDP')
      reject(`${path}.ports[${i}].protocol`, `protocol ${p.protocol} is not supported (TCP or UDP only)`);
    if (p.hostIP) reject(`${path}.ports[${i}].hostIP`, 'hostIP is not supported');
  });
  c.volumeMounts?.forEach((m, i) => {
    if (m.subPath)
      reject(`${path}.volumeMounts[${i}].subPath`, 'subPath mounts are not supported by Azure Container Instances');
    if (m.subPathExpr)
      reject(`${path}.volumeMounts[${i}].subPathExpr`, 'subPath mounts are not supported by Azure Container Instances');
    if (m.mountPropagation && m.mountPropagation !== 'None')
      reject(`${path}.volumeMounts[${i}].mountPropagation`, 'mount propagation is not supported');
  });
  // tcpSocket, gRPC and startup probes (and every probe of a container with a startupProbe)
  // are run by the connector (src/core/probes); only the probes ACI runs meet its limits.
  for (const kind of ['liveness', 'readiness'] as const) {
    const name = `${kind}Probe` as const;
    const probe = c[name];
    if (!probe || connectorRunsProbe(c, kind)) continue;
    if (probe.httpGet?.host)
      reject(
        `${path}.${name}.httpGet.host`,
        'Azure Container Instances probes always target the container; host is not supported',
      );
  }
  // Native sidecars (restartPolicy: Always) run as regular containers of the group.
  if (init && c.restartPolicy && c.restartPolicy !== 'Always') {
    reject(
      `${path}.restartPolicy`,
      `restartPolicy ${c.restartPolicy} is not valid for an init container (only Always, for a sidecar)`,
    );
  }
  const extended = Object.keys({ ...c.resources?.requests, ...c.resources?.limits }).filter(
    (k) => k !== 'cpu' && k !== 'memory' && k !== 'ephemeral-storage',
  );
  if (extended.length > 0) {
    const [first] = extended;
    reject(`${path}.resources['${first}']`, `resource ${first} is not supported (cpu and memory only)`);
  }
}

export function validatePodForAci(pod: V1Pod): void {
  const spec = pod.spec;
  if (!spec) throw new PodRejectedError('InvalidPod', 'pod has no spec', 'spec');
  if (spec.hostNetwork) reject('spec.hostNetwork', 'host networking is not available on Azure Container Instances');
  if (spec.hostPID) reject('spec.hostPID', 'the host PID namespace is not available on Azure Container Instances');
  if (spec.hostIPC) reject('spec.hostIPC', 'the host IPC namespace is not available on Azure Container Instances');
  if (spec.hostUsers === false) reject('spec.hostUsers', 'user namespaces are not supported');
  if (spec.shareProcessNamespace)
    reject('spec.shareProcessNamespace', 'a shared process namespace is not supported by Azure Container Instances');
  if (spec.hostAliases?.length) reject('spec.hostAliases', 'Azure Container Instances cannot edit /etc/hosts');
  if (spec.securityContext?.sysctls?.length)
    reject('spec.securityContext.sysctls', 'sysctls are not supported by Azure Container Instances');
  if (spec.resourceClaims?.length) reject('spec.resourceClaims', 'dynamic resource claims are not supported');
  if (spec.containers.length === 0)
    throw new PodRejectedError('InvalidPod', 'spec.containers is empty', 'spec.containers');
  spec.containers.forEach((c, i) => checkContainer(c, `spec.containers[${i}]`, false));
  spec.initContainers?.forEach((c, i) => checkContainer(c, `spec.initContainers[${i}]`, true));
}
