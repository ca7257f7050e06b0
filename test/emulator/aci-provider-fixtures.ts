/** Drives the ACI provider directly against an embedded emulator (no Kubernetes). */
import { randomUUID } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import {
  startEmulator,
  type Emulator,
  type EmulatorOptions,
  type RateWindowsOverride,
} from '../../src/emulator/index.js';
import type { PaceWindow } from '../../src/providers/aci/arm/pacer.js';
import { createAciProvider, loadAciConfig, type AciConfig, type AciProvider } from '../../src/providers/aci/index.js';
import type { ArmAttempt } from '../../src/providers/aci/arm/arm-caller.js';
import {
  TransientProviderError,
  type PodContext,
  type PodRef,
  type ProviderPodStatus,
  type ResolvedEnvVar,
} from '../../src/core/provider.js';
import { waitFor as wait } from '../support/wait.js';

export interface Harness {
  emu: Emulator;
  provider: AciProvider;
  attempts: ArmAttempt[];
  statuses: Map<string, ProviderPodStatus>;
  events: Map<string, { type: string; reason: string; message: string }[]>;
  close(): Promise<void>;
}

export function envFor(emu: Emulator, over: Record<string, string> = {}): Record<string, string> {
  return {
    AZURE_SUBSCRIPTION_ID: emu.subscriptionId,
    ACI_RESOURCE_GROUP: 'aci-test',
    AZURE_CLIENT_ID: emu.clientId,
    AZURE_CLIENT_SECRET: emu.clientSecret,
    AZURE_TENANT_ID: emu.tenantId,
    ACI_ARM_ENDPOINT: emu.endpoint,
    AZURE_AUTHORITY_HOST: emu.authorityHost,
    ACI_CA_FILE: emu.caCertPath,
    ...over,
  };
}

/**
 * The windows the provider paces under: the emulator's when a test changed them (a lifted
 * limit is lifted for both), ACI's otherwise.
 */
export function pacedWindows(o: RateWindowsOverride | undefined, throttling = true): PaceWindow[] | undefined {
  if (!throttling) return [{ count: 1_000_000_000, windowMs: 1_000 }];
  if (o === undefined) return undefined;
  const list = Array.isArray(o) ? o : [{ count: o.count ?? 100, windowSeconds: o.windowSeconds ?? 300 }];
  return list.map((w) => ({ count: w.count, windowMs: w.windowSeconds * 1000 }));
}

export async function harness(
  emuOptions: EmulatorOptions = {},
  tune: { config?: Partial<AciConfig>; env?: Record<string, string> } = {},
): Promise<Harness> {
  const emu = await startEmulator({
    simulated: {
      pullMs: 20,
      startMs: 20,
      rules: [{ image: /does-not-exist/, fate: { kind: 'pullFails', message: 'manifest unknown' } }],
    },
    ...emuOptions,
  });
  const attempts: ArmAttempt[] = [];
  const statuses = new Map<string, ProviderPodStatus>();
  const events = new Map<string, { type: string; reason: string; message: string }[]>();
  const creationWindows = pacedWindows(emuOptions.limits?.creations, emuOptions.throttling);
  const deletionWindows = pacedWindows(emuOptions.limits?.deletions, emuOptions.throttling);
  const config = loadAciConfig(envFor(emu, tune.env), {
    ...(creationWindows ? { creationWindows } : {}),
    ...(deletionWindows ? { deletionWindows } : {}),
    listIntervalMs: 1_000,
    statusReadsPerSecond: 20,
    ...tune.config,
  });
  const provider = createAciProvider({
    config,
    clusterId: 'cluster-under-test',
    nodeName: 'aci-connector',
    passIntervalMs: 200,
    steadyRefreshMs: 1_000,
    onArmAttempt: (a) => attempts.push(a),
    retry: { baseDelayMs: 100, maxDelayMs: 2_000, maxAttempts: 8 },
  });
  provider.onStatus((ref, s) => statuses.set(key(ref), s));
  // Backend events arrive on the events channel (Provider.onEvent), as the core receives them.
  provider.onEvent((ref, ev) => {
    const list = events.get(key(ref)) ?? [];
    list.push({ type: ev.type, reason: ev.reason, message: ev.message });
    events.set(key(ref), list);
  });
  return {
    emu,
    provider,
    attempts,
    statuses,
    events,
    close: async () => {
      await provider.close();
      await emu.stop();
    },
  };
}

export function key(ref: PodRef): string {
  return `${ref.namespace}/${ref.name}/${ref.uid}`;
}

export function podRef(p: V1Pod): PodRef {
  return { namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid! };
}

export function testPod(
  name: string,
  spec: Partial<NonNullable<V1Pod['spec']>> = {},
  annotations?: Record<string, string>,
): V1Pod {
  return {
    metadata: { name, namespace: 'default', uid: randomUUID(), ...(annotations ? { annotations } : {}) },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'nginx',
          ports: [{ containerPort: 80 }],
          resources: { requests: { cpu: '100m', memory: '128Mi' } },
        },
      ],
      ...spec,
    },
  };
}

export function contextFor(
  h: Harness,
  p: V1Pod,
  env: Record<string, ResolvedEnvVar[]> = {},
  secrets: Record<string, Record<string, string>> = {},
): PodContext {
  const k = key(podRef(p));
  return {
    env: new Map(Object.entries(env)),
    getSecret: async (name) => {
      const d = secrets[name];
      if (!d) return undefined;
      return {
        metadata: { name },
        data: Object.fromEntries(Object.entries(d).map(([a, b]) => [a, Buffer.from(b).toString('base64')])),
      };
    },
    volumeFiles: async () => new Map(),
    recordEvent: (type, reason, message) => {
      const list = h.events.get(k) ?? [];
      list.push({ type, reason, message });
      h.events.set(k, list);
    },
  };
}

/** Creates like the core does: retries transient errors after their retryAfterMs. */
export async function createLikeCore(
  h: Harness,
  p: V1Pod,
  ctx = contextFor(h, p),
  deadline = Date.now() + 240_000,
): Promise<void> {
  for (;;) {
    try {
      await h.provider.createPod(p, ctx);
      return;
    } catch (e) {
      if (!(e instanceof TransientProviderError) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, Math.min(e.retryAfterMs ?? 500, 5_000)));
    }
  }
}

/** test/support/wait.ts's waitFor, with a positional timeout (60 s by default). */
export function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  return wait(what, fn, { timeoutMs });
}
