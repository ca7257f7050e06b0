/** The ACI emulator's public surface for embedding (tests, the connector's e2e tests, benchmarks). */
export {
  startEmulator,
  DEFAULT_CLIENT_ID,
  DEFAULT_CLIENT_SECRET,
  DEFAULT_SUBSCRIPTION_ID,
  DEFAULT_TENANT_ID,
} from './server.js';
export type { Emulator, EmulatorOptions, EmulatorStats, ThrottleOverrides } from './server.js';
export type { FaultOptions } from './faults.js';
export type { ThrottleLimits, BucketLimit, RateWindow, RateWindowsOverride } from './limits.js';
export { aciRateWindows } from './limits.js';
export { defaultQuota } from './context.js';
export type { Quota } from './context.js';
export type { ScopeSettings } from './scopes.js';
export { API_VERSION } from './context.js';
export { createSimulatedRuntime, SimulatedRuntime } from './runtimes/simulated/index.js';
export type { SimulatedRuntimeOptions, SimulatedFate, SimulatedRule } from './runtimes/simulated/index.js';
