/**
 * Child process of the orphan test: creates one group on the podman runtime,
 * says so on stdout, and waits to be killed without cleaning up.
 */
import { createPodmanRuntime } from '../../src/emulator/runtimes/podman/index.js';
import { busyboxImage, podmanTestStateDir } from '../support/images.js';
import type { PodmanRuntime } from '../../src/emulator/runtimes/podman/podman-runtime.js';

const runtime = createPodmanRuntime({ stateDir: podmanTestStateDir() }) as PodmanRuntime;
const image = await busyboxImage(runtime.cli);
await runtime.create(
  {
    id: `/orphan/${process.pid}`,
    name: 'orphan',
    osType: 'Linux',
    restartPolicy: 'Always',
    initContainers: [],
    volumes: [],
    containers: [
      { name: 'c', image, command: ['sleep', '3600'], env: [], ports: [], cpu: 0.1, memoryInGB: 0.1, volumeMounts: [] },
    ],
  },
  () => undefined,
);
process.stdout.write(`ready ${runtime.instanceId}\n`);
setInterval(() => undefined, 60_000);
