/**
 * How the ACI end-to-end tests point the connector at the emulator: the original
 * connector's environment variables plus the endpoint overrides. They are passed to
 * the connectors a test starts (setConnectorEnv), never written into process.env.
 */
import { after, before } from 'node:test';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/index.js';
import { createAciProvider, loadAciConfig, type AciProvider } from '../../src/providers/aci/index.js';
import { setConnectorEnv } from './connector-process.js';

export function azureEnv(emu: Emulator, resourceGroup: string): Record<string, string> {
  return {
    AZURE_SUBSCRIPTION_ID: emu.subscriptionId,
    ACI_RESOURCE_GROUP: resourceGroup,
    AZURE_CLIENT_ID: emu.clientId,
    AZURE_CLIENT_KEY: emu.clientSecret,
    AZURE_TENANT_ID: emu.tenantId,
    ACI_ARM_ENDPOINT: emu.endpoint,
    AZURE_AUTHORITY_HOST: emu.authorityHost,
    ACI_CA_FILE: emu.caCertPath,
  };
}

/** A provider of its own that the test uses to look at the groups in the resource group (it creates nothing). */
export function inspectorFor(emu: Emulator, resourceGroup: string): AciProvider {
  return createAciProvider({
    config: loadAciConfig(azureEnv(emu, resourceGroup)),
    clusterId: 'inspector',
    nodeName: 'inspector',
  });
}

export interface EmulatorForFile {
  readonly emu: Emulator;
  readonly inspector: AciProvider;
  /** The connector environment pointing at this emulator (what every connector of the file gets). */
  readonly env: Record<string, string>;
}

/**
 * One emulator (simulated runtime) for a whole test file: started before its
 * tests, with the file's connectors pointed at it, and stopped after them.
 * ACI's creation and deletion windows (100 per 5 minutes, 300 per hour) are lifted unless the
 * options set their own limits: a file's tests, and its connector restarts, create and delete
 * pods for many minutes on one emulator, and waiting out the windows would only slow them; the
 * windows themselves are proven in aci-real-limits.test and the emulator's errors.test. The
 * regional quota (100 groups, 100 cores) stays ACI's: a file that needs more lifts it itself.
 */
export function useEmulatorForFile(resourceGroup: string, options: EmulatorOptions = {}): EmulatorForFile {
  let emu: Emulator | undefined;
  let inspector: AciProvider | undefined;
  // The connector paces under the windows it is told: lifted with the emulator's.
  const paced: Record<string, string> = options.limits
    ? {}
    : { ACI_CREATION_WINDOWS: '100000/60', ACI_DELETION_WINDOWS: '100000/60' };
  before(async () => {
    emu = await startEmulator({
      limits: { creations: { count: 100_000, windowSeconds: 60 }, deletions: { count: 100_000, windowSeconds: 60 } },
      ...options,
    });
    setConnectorEnv({ ...azureEnv(emu, resourceGroup), ...paced });
    inspector = inspectorFor(emu, resourceGroup);
  });
  after(async () => {
    setConnectorEnv({});
    await inspector?.close();
    await emu?.stop();
  });
  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('the emulator is used before the file’s before() hook ran');
    return v;
  };
  return {
    get emu() {
      return started(emu);
    },
    get inspector() {
      return started(inspector);
    },
    get env() {
      return { ...azureEnv(started(emu), resourceGroup), ...paced };
    },
  };
}
