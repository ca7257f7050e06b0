/**
 * How the ACI end-to-end tests point the connector at the emulator: the original
 * connector's environment variables plus the endpoint overrides. Connectors that
 * a test starts inherit process.env.
 */
import type { Emulator } from '../../src/emulator/index.js';
import { createAciProvider, loadAciConfig, type AciProvider } from '../../src/providers/aci/index.js';

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
  return createAciProvider({ config: loadAciConfig(azureEnv(emu, resourceGroup)), clusterId: 'inspector', nodeName: 'inspector' });
}
