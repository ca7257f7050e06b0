import type { ProviderConfig } from '../../core/provider.js';
import { MockProvider } from './mock-provider.js';

export { MockProvider, MOCK_ANNOTATION, type MockProviderOptions } from './mock-provider.js';
export { readMockState, writeMockState, type MockState, type MockPod, type CallCounts } from './state-store.js';

export interface MockFlags {
  startDelayMs?: number;
  stateFile?: string;
  healthFile?: string;
}

export function createMockProvider(config: ProviderConfig, flags: MockFlags = {}): MockProvider {
  return new MockProvider({ nodeName: config.nodeName, clusterId: config.clusterId, ...flags });
}
