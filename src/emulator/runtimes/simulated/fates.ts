/** What a simulated container does: decided per image or command, by configured rules first. */
import type { RuntimeContainerSpec } from '../../runtime.js';

export type SimulatedFate =
  /** Runs until stopped (or for `runMs`, then exits 0). */
  | { kind: 'runs'; runMs?: number; logs?: string[]; usage?: { cpuMillicores?: number; memoryBytes?: number } }
  /** Runs for `runMs` (default: the runtime's `exitAfterMs`), then exits with `exitCode`. */
  | { kind: 'exits'; exitCode: number; runMs?: number; logs?: string[] }
  /** The image cannot be pulled: provisioning fails. */
  | { kind: 'pullFails'; message?: string };

export interface SimulatedRule {
  /** Matches when the image equals this string, or matches this regular expression. */
  image?: string | RegExp;
  /** Matches when the joined command contains this string, or matches this regular expression. */
  command?: string | RegExp;
  fate: SimulatedFate;
}

const matches = (pattern: string | RegExp | undefined, value: string, exact: boolean): boolean => {
  if (pattern === undefined) return true;
  if (typeof pattern === 'string') return exact ? pattern === value : value.includes(pattern);
  return pattern.test(value);
};

/**
 * Without a matching rule, a few shell idioms in the command decide, so that pods written
 * for real containers behave plausibly: `... exit N` exits with N, `sleep N` runs N seconds
 * and exits 0, `echo TEXT` logs TEXT and exits 0. Anything else runs until stopped.
 */
export function fateFor(
  container: Pick<RuntimeContainerSpec, 'image' | 'command'>,
  rules: SimulatedRule[],
  fallback: SimulatedFate,
): SimulatedFate {
  const command = (container.command ?? []).join(' ');
  for (const rule of rules) {
    if (rule.image === undefined && rule.command === undefined) continue;
    if (matches(rule.image, container.image, true) && matches(rule.command, command, false)) return rule.fate;
  }
  const exit = /(?:^|[\s;&|])exit\s+(\d{1,3})\s*$/.exec(command);
  if (exit?.[1] !== undefined) return { kind: 'exits', exitCode: Number(exit[1]) };
  const sleep = /^(?:.*[\s;&|])?sleep\s+(\d+(?:\.\d+)?)\s*$/.exec(command);
  if (sleep?.[1] !== undefined && !/infinity/.test(command))
    return { kind: 'exits', exitCode: 0, runMs: Number(sleep[1]) * 1000 };
  const echo = /^(?:(?:\/bin\/)?(?:sh|bash)\s+-c\s+)?echo\s+(.*)$/.exec(command);
  if (echo?.[1] !== undefined) return { kind: 'exits', exitCode: 0, logs: [echo[1].replace(/^["']|["']$/g, '')] };
  return fallback;
}
