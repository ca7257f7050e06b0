/**
 * Test images built locally, since no container registry is reachable. The
 * recipe is the podman runtime's own (src/emulator/runtimes/podman/local-images.ts);
 * the podman tests share one machine-wide store, so it is built once per machine.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export { busyboxImage } from '../../src/emulator/runtimes/podman/local-images.js';

/** The podman state folder every podman test shares, so images are built once per machine. */
export function podmanTestStateDir(): string {
  return process.env.ACI_TEST_PODMAN_DIR ?? join(tmpdir(), 'aci-connector-podman-test');
}
