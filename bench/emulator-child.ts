/**
 * The ACI emulator in a process of its own for the benchmark, so its CPU is not the
 * benchmark's (whose watch timestamps the pods) nor the connector's. Started with one
 * JSON argument (EmulatorOptions); talks over the IPC channel: it sends
 * {type:'ready', env} once listening and answers {type:'stats'} with the stats.
 */
import { startEmulator, type EmulatorOptions } from '../src/emulator/index.js';

const options = JSON.parse(process.argv[2] ?? '{}') as EmulatorOptions;
const emu = await startEmulator({ ...options, preflight: false, log: () => undefined });
const send = (m: unknown) => process.send?.(m);
send({
  type: 'ready',
  env: {
    AZURE_SUBSCRIPTION_ID: emu.subscriptionId,
    AZURE_CLIENT_ID: emu.clientId,
    AZURE_CLIENT_KEY: emu.clientSecret,
    AZURE_TENANT_ID: emu.tenantId,
    ACI_ARM_ENDPOINT: emu.endpoint,
    AZURE_AUTHORITY_HOST: emu.authorityHost,
    ACI_CA_FILE: emu.caCertPath,
  },
});
process.on('message', (m: { type?: string }) => {
  if (m.type === 'stats') send({ type: 'stats', stats: emu.stats() });
});
const stop = () => void emu.stop().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('disconnect', stop);
