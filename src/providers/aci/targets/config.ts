/**
 * Several ACI targets for one connector: each a subscription, resource group, region and
 * credential with its own quotas, ARM budgets and creation windows. `ACI_TARGETS` holds the
 * list (JSON text, or the path of a JSON file, e.g. mounted from a ConfigMap). Each target is
 * read as an overlay of the connector's own ACI environment, so every single-target setting
 * (ACI_ARM_ENDPOINT, ACI_CA_FILE, ACI_CAPACITY_*, …) is inherited unless the target says
 * otherwise, and the single-target configuration stays what it was when ACI_TARGETS is unset.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ENV, loadAciConfig, type AciConfig, type Env } from '../config.js';
import { AciConfigError } from '../errors.js';

export const TARGETS_ENV = 'ACI_TARGETS';
/** The creation windows the provider paces under (`COUNT/SECONDS[,…]`); placement assumes the same. */
export const CREATION_WINDOWS_ENV = 'ACI_CREATION_WINDOWS';

/** A creation limit: at most `count` container groups created per `windowSeconds`. */
export interface CreationWindowLimit {
  count: number;
  windowSeconds: number;
}

/** ACI's documented creation limits per subscription and region: 100 per 5 minutes and 300 per hour. */
export const ACI_CREATION_WINDOWS: readonly CreationWindowLimit[] = [
  { count: 100, windowSeconds: 300 },
  { count: 300, windowSeconds: 3600 },
];

export interface AciTarget {
  /** Names the target in pod annotations, logs and messages. */
  name: string;
  config: AciConfig;
  /**
   * The windows placement assumes for this target (it counts its own creations against them):
   * the target's `creationWindows`, else its ACI_CREATION_WINDOWS, else ACI's.
   */
  creationWindows: CreationWindowLimit[];
}

/** One entry of the list, as written. */
interface TargetEntry {
  name: string;
  subscriptionId?: string;
  resourceGroup?: string;
  region?: string;
  clientId?: string;
  tenantId?: string;
  /** The environment variable that holds the client secret (secrets never sit in the list itself). */
  clientSecretEnv?: string;
  armEndpoint?: string;
  /** Any other ACI setting of this target, by its environment variable name. */
  env?: Record<string, string>;
  creationWindows?: CreationWindowLimit[];
}

const TEXT_FIELDS = ['subscriptionId', 'resourceGroup', 'region', 'clientId', 'tenantId', 'armEndpoint'] as const;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TARGET_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Checks one entry by hand: zod is a devDependency (the product ships without it, decisions.md
 * "The product apart from its tools"), and the shape is a few flat fields.
 */
function parseEntry(raw: unknown, i: number): TargetEntry {
  const at = (field: string) => `${TARGETS_ENV}[${i}${field ? `.${field}` : ''}]`;
  const fail = (field: string, msg: string): never => {
    throw new AciConfigError(TARGETS_ENV, `${at(field)}: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('', 'must be an object');
  const o = raw as Record<string, unknown>;
  const known = new Set<string>([...TEXT_FIELDS, 'name', 'clientSecretEnv', 'env', 'creationWindows']);
  for (const k of Object.keys(o)) if (!known.has(k)) fail(k, `unknown field '${k}'`);
  const text = (k: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !v.trim()) return fail(k, 'must be a non-empty string');
    return v.trim();
  };
  const name = text('name');
  if (name === undefined || !TARGET_NAME.test(name))
    return fail('name', 'must be a DNS label (lower case letters, digits and "-")');
  const entry: TargetEntry = { name };
  for (const k of TEXT_FIELDS) {
    const v = text(k);
    if (v !== undefined) entry[k] = v;
  }
  const secretEnv = text('clientSecretEnv');
  if (secretEnv !== undefined) {
    if (!ENV_NAME.test(secretEnv)) fail('clientSecretEnv', 'must be an environment variable name');
    entry.clientSecretEnv = secretEnv;
  }
  if (o['env'] !== undefined) {
    const env = o['env'];
    if (typeof env !== 'object' || env === null || Array.isArray(env))
      return fail('env', 'must be an object of variable names and string values');
    entry.env = {};
    for (const [k, v] of Object.entries(env as Record<string, unknown>)) {
      if (!ENV_NAME.test(k)) fail(`env.${k}`, 'must be an environment variable name');
      if (typeof v !== 'string') fail(`env.${k}`, 'must be a string');
      entry.env[k] = v as string;
    }
  }
  if (o['creationWindows'] !== undefined) {
    const list = o['creationWindows'];
    if (!Array.isArray(list)) return fail('creationWindows', 'must be a list of {count, windowSeconds}');
    entry.creationWindows = list.map((w: unknown, j) => {
      const { count, windowSeconds } = (w ?? {}) as Record<string, unknown>;
      if (
        !Number.isInteger(count) ||
        (count as number) <= 0 ||
        !Number.isInteger(windowSeconds) ||
        (windowSeconds as number) <= 0
      )
        fail(`creationWindows.${j}`, 'must be {count, windowSeconds}, positive integers');
      return { count: count as number, windowSeconds: windowSeconds as number };
    });
  }
  return entry;
}

function readList(raw: string): unknown {
  const text = raw.trim();
  const inline = text.startsWith('[') || text.startsWith('{');
  if (!inline && !existsSync(text))
    throw new AciConfigError(TARGETS_ENV, `${TARGETS_ENV} is neither JSON nor an existing file: '${text}'`);
  try {
    return JSON.parse(inline ? text : readFileSync(text, 'utf8'));
  } catch (e) {
    throw new AciConfigError(
      TARGETS_ENV,
      `${TARGETS_ENV}${inline ? '' : ` (${text})`} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

/** `COUNT/SECONDS[,COUNT/SECONDS…]`, e.g. ACI's `100/300,300/3600`; ACI's windows when unset. */
function windowsFromEnv(target: string, v: string | undefined): CreationWindowLimit[] {
  if (!v?.trim()) return ACI_CREATION_WINDOWS.map((w) => ({ ...w }));
  return v.split(',').map((part) => {
    const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(part);
    if (!m || Number(m[1]) <= 0 || Number(m[2]) <= 0)
      throw new AciConfigError(
        CREATION_WINDOWS_ENV,
        `${TARGETS_ENV}: target '${target}': ${CREATION_WINDOWS_ENV} must be COUNT/SECONDS[,COUNT/SECONDS…], got '${v}'`,
      );
    return { count: Number(m[1]), windowSeconds: Number(m[2]) };
  });
}

/** Secrets of the connector's own credential, which a target with a client id of its own must not inherit. */
const SECRET_VARS = [ENV.clientKey, ENV.clientSecret];

function overlay(base: Env, t: TargetEntry): Env {
  const env: Env = { ...base };
  if (t.clientId !== undefined) for (const k of SECRET_VARS) delete env[k];
  const set = (k: string, v: string | undefined) => {
    if (v !== undefined) env[k] = v;
  };
  set(ENV.subscriptionId, t.subscriptionId);
  set(ENV.resourceGroup, t.resourceGroup);
  set(ENV.region, t.region);
  set(ENV.clientId, t.clientId);
  set(ENV.tenantId, t.tenantId);
  set(ENV.armEndpoint, t.armEndpoint);
  if (t.clientSecretEnv !== undefined) {
    const secret = base[t.clientSecretEnv];
    if (!secret?.trim())
      throw new AciConfigError(
        TARGETS_ENV,
        `${TARGETS_ENV}: target '${t.name}' takes its client secret from ${t.clientSecretEnv}, which is not set`,
      );
    delete env[ENV.clientSecret];
    env[ENV.clientKey] = secret;
  }
  return { ...env, ...t.env };
}

/**
 * The targets of `ACI_TARGETS`, or undefined when it is not set (one target: loadAciConfig).
 * Throws AciConfigError naming the target and the setting at fault.
 */
export function loadAciTargets(env: Env = process.env): AciTarget[] | undefined {
  const raw = env[TARGETS_ENV]?.trim();
  if (!raw) return undefined;
  const list = readList(raw);
  if (!Array.isArray(list)) throw new AciConfigError(TARGETS_ENV, `${TARGETS_ENV}: must be a JSON list of targets`);
  if (list.length === 0) throw new AciConfigError(TARGETS_ENV, `${TARGETS_ENV}: lists no target`);
  const entries = list.map((e: unknown, i) => parseEntry(e, i));
  const targets: AciTarget[] = [];
  const seen = new Map<string, string>();
  for (const t of entries) {
    if (targets.some((x) => x.name === t.name))
      throw new AciConfigError(TARGETS_ENV, `${TARGETS_ENV}: two targets are named '${t.name}'`);
    let config: AciConfig;
    const targetEnv = overlay(env, t);
    try {
      config = loadAciConfig(targetEnv);
    } catch (e) {
      if (e instanceof AciConfigError)
        throw new AciConfigError(e.setting, `${TARGETS_ENV}: target '${t.name}': ${e.message}`);
      throw e;
    }
    // Two targets over one resource group would each list the other's groups as their own.
    const place = `${config.subscriptionId}/${config.resourceGroup}`.toLowerCase();
    const other = seen.get(place);
    if (other !== undefined)
      throw new AciConfigError(
        TARGETS_ENV,
        `${TARGETS_ENV}: targets '${other}' and '${t.name}' use the same resource group ${config.resourceGroup} in subscription ${config.subscriptionId}`,
      );
    seen.set(place, t.name);
    targets.push({
      name: t.name,
      config,
      creationWindows: t.creationWindows ?? windowsFromEnv(t.name, targetEnv[CREATION_WINDOWS_ENV]),
    });
  }
  return targets;
}
