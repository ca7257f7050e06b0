/**
 * A small HTTPS client for the emulator's ARM API used by the tests. Every request body it
 * sends and every response it receives is checked against the spec (when the path is an
 * operation of the spec); a mismatch fails the test.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/index.js';
import { SpecValidator } from './spec-validator.js';
import { waitFor as wait } from '../support/wait.js';

export const API = 'api-version=2023-05-01';

let sharedValidator: SpecValidator | undefined;
export const specValidator = (): SpecValidator => (sharedValidator ??= new SpecValidator());

export interface ArmResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  operationId?: string;
}

export interface CallOptions {
  body?: unknown;
  /** Raw body text, sent as is (for malformed-body tests). Not validated. */
  rawBody?: string;
  /** Skip the spec check of the request body (for tests that send invalid requests on purpose). */
  invalidRequest?: boolean;
  token?: string | null;
}

export class ArmTestClient {
  readonly agent: https.Agent;
  private cachedToken: string | undefined;
  readonly validator = specValidator();
  /** Operation ids whose responses were validated against the spec (evidence for the conformance test). */
  readonly validated = new Map<string, Set<number>>();

  constructor(readonly emu: Emulator) {
    this.agent = new https.Agent({ ca: emu.caPem, keepAlive: true, maxSockets: 64 });
  }

  raw(method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<ArmResult> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          agent: this.agent,
          headers: { ...headers, ...(body !== undefined ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            if (text && (res.headers['content-type'] ?? '').includes('json')) parsed = JSON.parse(text) as unknown;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text === '' ? undefined : parsed });
          });
        },
      );
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  async token(): Promise<string> {
    if (this.cachedToken) return this.cachedToken;
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: this.emu.clientId,
      client_secret: this.emu.clientSecret,
      scope: `${this.emu.endpoint}/.default`,
    }).toString();
    const res = await this.raw('POST', `${this.emu.endpoint}/${this.emu.tenantId}/oauth2/v2.0/token`, form, {
      'Content-Type': 'application/x-www-form-urlencoded',
    });
    assert.equal(res.status, 200, `token endpoint: ${JSON.stringify(res.body)}`);
    this.cachedToken = (res.body as { access_token: string }).access_token;
    return this.cachedToken;
  }

  /** Calls an ARM path (relative to the endpoint, query included) and checks both sides against the spec. */
  async call(method: string, pathAndQuery: string, opts: CallOptions = {}): Promise<ArmResult> {
    const url = pathAndQuery.startsWith('https://') ? pathAndQuery : `${this.emu.endpoint}${pathAndQuery}`;
    const path = new URL(url).pathname;
    const specOp = this.validator.findOperation(method, path);
    if (specOp && opts.body !== undefined && !opts.invalidRequest) {
      assert.deepEqual(
        this.validator.requestErrors(specOp.operationId, opts.body),
        [],
        `request of ${specOp.operationId} must conform to the spec`,
      );
    }
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? await this.token() : opts.token;
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    let text: string | undefined = opts.rawBody;
    if (opts.body !== undefined) text = JSON.stringify(opts.body);
    if (text !== undefined) headers['Content-Type'] = 'application/json';
    const res = await this.raw(method, url, text, headers);
    if (specOp) {
      res.operationId = specOp.operationId;
      assert.deepEqual(
        this.validator.responseErrors(specOp.operationId, res.status, res.body),
        [],
        `response ${res.status} of ${specOp.operationId} must conform to the spec: ${JSON.stringify(res.body)}`,
      );
      if (res.status >= 400) {
        const err = (res.body as { error?: { code?: unknown; message?: unknown } }).error;
        assert.equal(typeof err?.code, 'string', 'ARM errors carry error.code');
        assert.equal(typeof err?.message, 'string', 'ARM errors carry error.message');
      }
      let set = this.validated.get(specOp.operationId);
      if (!set) this.validated.set(specOp.operationId, (set = new Set()));
      set.add(res.status);
    }
    return res;
  }

  close(): void {
    this.agent.destroy();
  }
}

export const groupPath = (sub: string, rg: string, name: string): string =>
  `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.ContainerInstance/containerGroups/${name}`;

export function simpleGroup(
  overrides: {
    image?: string;
    command?: string[];
    restartPolicy?: string;
    cpu?: number;
    memoryInGB?: number;
    ports?: number[];
  } = {},
): Record<string, unknown> {
  const ports = overrides.ports ?? [];
  return {
    location: 'westeurope',
    properties: {
      osType: 'Linux',
      restartPolicy: overrides.restartPolicy ?? 'Always',
      containers: [
        {
          name: 'main',
          properties: {
            image: overrides.image ?? 'busybox',
            ...(overrides.command ? { command: overrides.command } : {}),
            ports: ports.map((port) => ({ port, protocol: 'TCP' })),
            environmentVariables: [
              { name: 'PLAIN', value: 'visible' },
              { name: 'SECRET', secureValue: 'do-not-echo' },
            ],
            resources: { requests: { cpu: overrides.cpu ?? 0.5, memoryInGB: overrides.memoryInGB ?? 0.5 } },
          },
        },
      ],
      ...(ports.length
        ? { ipAddress: { type: 'Public', ports: ports.map((port) => ({ port, protocol: 'TCP' })) } }
        : {}),
    },
  };
}

/** test/support/wait.ts's waitFor, paced for the emulator's simulated runtime (25 ms, 20 s by default). */
export function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  intervalMs = 25,
): Promise<T> {
  return wait(what, probe, { timeoutMs, intervalMs });
}

export async function startTestEmulator(options: EmulatorOptions = {}): Promise<{ emu: Emulator; arm: ArmTestClient }> {
  const emu = await startEmulator({
    runtime: 'simulated',
    simulated: { pullMs: 5, startMs: 5, exitAfterMs: 100, restartDelayMs: 50 },
    ...options,
  });
  try {
    return { emu, arm: new ArmTestClient(emu) };
  } catch (err) {
    // A running emulator would keep the test process alive long after the failure is reported.
    await emu.stop();
    throw err;
  }
}

export type GroupBody = {
  properties: {
    provisioningState: string;
    instanceView?: { state: string };
    containers: {
      name: string;
      properties: {
        instanceView?: {
          restartCount: number;
          currentState: { state: string; exitCode?: number; detailStatus?: string };
          previousState?: { state: string; exitCode?: number };
        };
        environmentVariables?: { name: string; value?: string; secureValue?: string }[];
      };
    }[];
    ipAddress?: { ip?: string };
  };
};
