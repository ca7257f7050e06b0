/** Parsing of --taint values: key[=value]:Effect, as kubectl taint writes them. */
import type { V1Taint } from '@kubernetes/client-node';

export const DEFAULT_TAINT = 'azure.com/aci:NoSchedule';
const EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'];
// A qualified name: optional DNS prefix, then a name of at most 63 characters.
const KEY =
  /^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^(?:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export class TaintError extends Error {
  override readonly name = 'TaintError';
}

export function parseTaint(spec: string): V1Taint {
  const colon = spec.lastIndexOf(':');
  if (colon < 0) throw new TaintError(`malformed taint ${JSON.stringify(spec)}: expected key[=value]:Effect`);
  const kv = spec.slice(0, colon);
  const effect = spec.slice(colon + 1);
  if (!EFFECTS.includes(effect)) {
    throw new TaintError(`malformed taint ${JSON.stringify(spec)}: effect must be one of ${EFFECTS.join(', ')}`);
  }
  const eq = kv.indexOf('=');
  const key = eq < 0 ? kv : kv.slice(0, eq);
  const value = eq < 0 ? undefined : kv.slice(eq + 1);
  if (!KEY.test(key))
    throw new TaintError(`malformed taint ${JSON.stringify(spec)}: invalid key ${JSON.stringify(key)}`);
  if (value !== undefined && !VALUE.test(value)) {
    throw new TaintError(`malformed taint ${JSON.stringify(spec)}: invalid value ${JSON.stringify(value)}`);
  }
  return value === undefined ? { key, effect } : { key, value, effect };
}

/** `--taint none` means no taint; otherwise each value is parsed; no flag means the default. */
export function parseTaints(values: readonly string[] | undefined): V1Taint[] {
  if (!values || values.length === 0) return [parseTaint(DEFAULT_TAINT)];
  if (values.length === 1 && values[0] === 'none') return [];
  if (values.includes('none')) throw new TaintError('--taint none cannot be combined with other taints');
  return values.map(parseTaint);
}
