/**
 * Adapts the connector's Deployment (examples/aci-connector.yaml, or the chart's rendering) to the
 * dev cluster's worker node, and changes nothing else. The dev cluster has no pod network and no
 * kube-proxy (the API server and the emulator listen on the host's loopback), so the pod runs with
 * hostNetwork, reaches the API server at its loopback address instead of the kubernetes Service,
 * binds its listeners (and is probed) on loopback ports, mounts the emulator's CA, uses the image
 * imported into containerd (pullPolicy Never: no registry is reachable) and tolerates the worker's
 * taint. It runs one replica: the one worker cannot hold two hostNetwork pods on the same ports
 * (the HA tests run two replicas as processes: test/e2e/aci-ha*.test.ts).
 *
 * Also a Helm post-renderer: `node worker-adapt.js JSON_OPTIONS` reads manifests on stdin and
 * writes them adapted to stdout, so `helm install --post-renderer` runs the chart the same way.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { V1Deployment } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';

export interface WorkerAdaptation {
  image: string;
  apiPort: string;
  kubeletPort: number;
  metricsPort: number;
  /** The Secret holding `ca.crt`, the emulator's CA, mounted at /etc/aci-emulator. */
  caSecret: string;
  toleration: { key: string; effect: string };
}

export const EMULATOR_CA_DIR = '/etc/aci-emulator';

export function adaptForWorker(manifests: string, o: WorkerAdaptation): string {
  const docs = parseAllDocuments(manifests)
    .map((d) => d.toJS() as { kind?: string } | null)
    .filter((d): d is { kind?: string } => d !== null);
  let adapted = 0;
  for (const doc of docs) {
    if (doc.kind !== 'Deployment') continue;
    const spec = (doc as V1Deployment).spec;
    const pod = spec?.template.spec;
    const container = pod?.containers.find((x) => x.name === 'aci-connector');
    if (!spec || !pod || !container) continue;
    adapted++;
    spec.replicas = 1;
    container.image = o.image;
    container.imagePullPolicy = 'Never';
    pod.hostNetwork = true;
    pod.dnsPolicy = 'ClusterFirstWithHostNet';
    pod.tolerations = [
      ...(pod.tolerations ?? []),
      { key: o.toleration.key, operator: 'Exists', effect: o.toleration.effect },
    ];
    container.env = [
      ...(container.env ?? []),
      { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' },
      { name: 'KUBERNETES_SERVICE_PORT', value: o.apiPort },
    ];
    container.args = [
      ...(container.args ?? []).filter((a) => !/^--(kubelet|metrics)-(port|address)=/.test(a)),
      '--kubelet-address=127.0.0.1',
      `--kubelet-port=${o.kubeletPort}`,
      '--metrics-address=127.0.0.1',
      `--metrics-port=${o.metricsPort}`,
    ];
    for (const p of container.ports ?? []) p.containerPort = p.name === 'metrics' ? o.metricsPort : o.kubeletPort;
    // The kubelet probes the pod's IP, the host's address under hostNetwork; the listeners are on loopback.
    for (const probe of [container.readinessProbe, container.livenessProbe])
      if (probe?.httpGet) probe.httpGet.host = '127.0.0.1';
    container.volumeMounts = [
      ...(container.volumeMounts ?? []),
      { name: 'emulator-ca', mountPath: EMULATOR_CA_DIR, readOnly: true },
    ];
    pod.volumes = [...(pod.volumes ?? []), { name: 'emulator-ca', secret: { secretName: o.caSecret } }];
  }
  if (adapted !== 1) throw new Error(`expected one Deployment with an aci-connector container, found ${adapted}`);
  return docs.map((d) => stringify(d)).join('---\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const options = JSON.parse(process.argv[2] ?? '{}') as WorkerAdaptation;
  process.stdout.write(adaptForWorker(readFileSync(0, 'utf8'), options));
}
