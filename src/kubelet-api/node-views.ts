/**
 * The kubelet's read-only node views, in the shapes pkg/kubelet/server/server.go
 * returns: `/runningpods/` (the runtime's pods, each reduced by
 * kubecontainer.Pod.ToAPIPod to name, namespace, uid and the containers' name
 * and image, encoded as a v1 PodList) and `/spec/` (cAdvisor's MachineInfo).
 */
import type { NodeInfoFromProvider, ProviderPod } from '../core/provider.js';
import { parseQuantity } from '../common/quantity.js';

/** One pod as ToAPIPod builds it; Go's encoder writes the empty and null fields too. */
export interface RunningPod {
  metadata: { name: string; namespace: string; uid: string; creationTimestamp: null };
  spec: { containers: { name: string; image: string; resources: Record<string, never> }[] };
  status: Record<string, never>;
}

export interface RunningPodList {
  kind: 'PodList';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  items: RunningPod[];
}

export function runningPodList(pods: readonly ProviderPod[]): RunningPodList {
  return {
    kind: 'PodList',
    apiVersion: 'v1',
    metadata: {},
    items: pods.map((p) => ({
      metadata: { name: p.ref.name, namespace: p.ref.namespace, uid: p.ref.uid, creationTimestamp: null },
      spec: {
        containers: (p.status.containerStatuses ?? []).map((c) => ({ name: c.name, image: c.image, resources: {} })),
      },
      status: {},
    })),
  };
}

/** The MachineInfo fields a virtual node can state honestly; the hardware ones stay empty. */
export interface MachineInfo {
  timestamp: string;
  num_cores: number;
  num_physical_cores: number;
  num_sockets: number;
  cpu_frequency_khz: number;
  memory_capacity: number;
  swap_capacity: number;
  memory_by_type: Record<string, never>;
  nvm: { memory_mode_capacity: number; app_direct_mode_capacity: number; avg_power_budget: number };
  hugepages: never[];
  machine_id: string;
  system_uuid: string;
  boot_id: string;
  filesystems: never[];
  disk_map: Record<string, never>;
  network_devices: never[];
  topology: never[];
  cloud_provider: string;
  instance_type: string;
  instance_id: string;
}

function quantity(q: string | undefined): number {
  if (q === undefined) return 0;
  try {
    return parseQuantity(q);
  } catch {
    return 0;
  }
}

/** The node's capacity (what the provider reports) as a machine: cores and memory bytes. */
export function machineInfo(node: NodeInfoFromProvider, nodeName: string, now = new Date()): MachineInfo {
  const cores = Math.floor(quantity(node.capacity.cpu));
  return {
    timestamp: now.toISOString(),
    num_cores: cores,
    num_physical_cores: cores,
    num_sockets: cores > 0 ? 1 : 0,
    cpu_frequency_khz: 0,
    memory_capacity: Math.floor(quantity(node.capacity.memory)),
    swap_capacity: 0,
    memory_by_type: {},
    nvm: { memory_mode_capacity: 0, app_direct_mode_capacity: 0, avg_power_budget: 0 },
    hugepages: [],
    machine_id: nodeName,
    system_uuid: '',
    boot_id: '',
    filesystems: [],
    disk_map: {},
    network_devices: [],
    topology: [],
    // cAdvisor's own values when it cannot tell.
    cloud_provider: 'Unknown',
    instance_type: 'Unknown',
    instance_id: 'None',
  };
}
