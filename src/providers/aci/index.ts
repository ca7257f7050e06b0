/** The ACI provider's public surface. */
import { AciProvider, type AciProviderOptions } from './provider.js';

export { AciProvider, type AciProviderOptions } from './provider.js';
export { loadAciConfig, ENV as ACI_ENV, type AciConfig } from './config.js';
export { AciConfigError, ArmRequestError } from './errors.js';
export { podToContainerGroup } from './mapping/pod-to-group.js';
export { groupToPodStatus } from './mapping/status.js';
export { containerGroupName, TAG as ACI_TAGS } from './naming.js';
export {
  loadAciTargets,
  createMultiTargetProvider,
  MultiTargetProvider,
  TARGETS_ENV as ACI_TARGETS_ENV,
  TARGET_ANNOTATION,
  REGION_ANNOTATION,
  type AciTarget,
} from './targets/index.js';

export function createAciProvider(options: AciProviderOptions): AciProvider {
  return new AciProvider(options);
}
