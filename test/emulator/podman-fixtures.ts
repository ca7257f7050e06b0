/** Shared helpers of the podman runtime tests. */
import type { TestContext } from 'node:test';
import { createPodmanRuntime } from '../../src/emulator/runtimes/podman/index.js';
import type { PodmanRuntime } from '../../src/emulator/runtimes/podman/podman-runtime.js';
import type { ExecSession, RuntimeContainerSpec, RuntimeGroupSpec } from '../../src/emulator/runtime.js';
import { busyboxImage, podmanTestStateDir } from '../support/images.js';

export interface PodmanFixture {
  runtime: PodmanRuntime;
  image: string;
  container(name: string, command: string[], extra?: Partial<RuntimeContainerSpec>): RuntimeContainerSpec;
  group(name: string, containers: RuntimeContainerSpec[], extra?: Partial<RuntimeGroupSpec>): RuntimeGroupSpec;
  /** Creates the group and removes it when the test ends, pass or fail. */
  createGroup(t: TestContext, spec: RuntimeGroupSpec): Promise<void>;
  /** Pod ids carrying a label (key=value), in this runtime's podman store. */
  podsOf(label: string): Promise<string[]>;
}

let seq = 0;

/** A runtime on the machine-wide test store, with short back-offs; the caller closes it. */
export async function podmanFixture(stateDir = podmanTestStateDir()): Promise<PodmanFixture> {
  const runtime = createPodmanRuntime({
    stateDir,
    restartBackoff: { initialMs: 200, maxMs: 1000 },
    refreshIntervalMs: 1000,
    // Busybox httpd as PID 1 ignores SIGTERM: don't wait podman's default 10 s on each stop.
    stopTimeoutSeconds: 2,
    // A test process that was killed must not leave its pods to later runs.
    reapOrphans: true,
  }) as PodmanRuntime;
  const image = await busyboxImage(runtime.cli);
  const f: PodmanFixture = {
    runtime,
    image,
    container: (name, command, extra = {}) => ({
      name,
      image,
      command,
      env: [],
      ports: [],
      cpu: 0.5,
      memoryInGB: 0.25,
      volumeMounts: [],
      ...extra,
    }),
    group: (name, containers, extra = {}) => {
      seq += 1;
      const id = `/subscriptions/test/resourcegroups/podman/providers/microsoft.containerinstance/containergroups/${name}-${process.pid}-${seq}`;
      return {
        id,
        name,
        osType: 'Linux',
        restartPolicy: 'Never',
        initContainers: [],
        containers,
        volumes: [],
        ...extra,
      };
    },
    createGroup: async (t, spec) => {
      t.after(() => runtime.remove(spec.id));
      await runtime.create(spec, () => undefined);
    },
    podsOf: async (label) =>
      (await runtime.cli.run(['pod', 'ps', '-q', '--filter', `label=${label}`])).split('\n').filter(Boolean),
  };
  return f;
}

export async function collect(
  session: ExecSession,
  input?: string,
): Promise<{ stdout: string; stderr: string; code: number }> {
  let stdout = '';
  let stderr = '';
  session.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
  session.stderr?.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
  if (input !== undefined) session.stdin.end(input);
  const code = await session.exited;
  return { stdout, stderr, code };
}
