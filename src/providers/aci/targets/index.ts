/** Several ACI targets behind one node: the list's loader and the composite provider. */
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { AciProvider } from '../provider.js';
import type { AciTarget } from './config.js';
import { MultiTargetProvider } from './multi-target.js';

export { loadAciTargets, TARGETS_ENV, ACI_CREATION_WINDOWS, type AciTarget } from './config.js';
export { MultiTargetProvider, REFUSED_REASONS, HELD_REASONS, sumResources } from './multi-target.js';
export { TARGET_ANNOTATION, REGION_ANNOTATION } from './placement.js';

export interface MultiTargetFactoryOptions {
  clusterId: string;
  nodeName: string;
  metricsRegistry?: Registry;
  log?: Logger;
}

/** One AciProvider per target, each with its own ARM client, budgets, status watch and quota. */
export function createMultiTargetProvider(
  targets: readonly AciTarget[],
  o: MultiTargetFactoryOptions,
): MultiTargetProvider {
  return new MultiTargetProvider({
    targets: targets.map((t, i) => ({
      name: t.name,
      region: t.config.region,
      creationWindows: t.creationWindows,
      provider: new AciProvider({
        config: t.config,
        clusterId: o.clusterId,
        nodeName: o.nodeName,
        // prom-client refuses a second metric of one name in a registry: the ARM request
        // counter is the first target's (each target meters its own budget anyway).
        ...(i === 0 && o.metricsRegistry ? { metricsRegistry: o.metricsRegistry } : {}),
        ...(o.log ? { log: o.log.child({ target: t.name }) } : {}),
      }),
    })),
    ...(o.log ? { log: o.log.child({ part: 'targets' }) } : {}),
  });
}
