/** The ACI emulator's podman runtime: real pods and containers. */
import type { ContainerGroupRuntime } from '../../runtime.js';
import { PodmanRuntime, type PodmanRuntimeOptions } from './podman-runtime.js';

export type { PodmanRuntimeOptions } from './podman-runtime.js';
export { PodmanRuntime } from './podman-runtime.js';
export { machineUlimits, renderContainersConf } from './setup.js';

export function createPodmanRuntime(opts: PodmanRuntimeOptions): ContainerGroupRuntime & { readonly instanceId: string } {
  return new PodmanRuntime(opts);
}
