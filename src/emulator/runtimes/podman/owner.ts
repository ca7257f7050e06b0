/**
 * Who started a pod: a process, named so that a reused pid is not mistaken for
 * it (pid plus the process's start time in clock ticks since boot, from /proc).
 */
import { readFileSync } from 'node:fs';

function startTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) counts from the field after the command name, which may hold spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

export function ownerToken(pid = process.pid): string {
  return `${pid}.${startTicks(pid) ?? '0'}`;
}

/** True when the process that the token names is still running. */
export function ownerAlive(token: string): boolean {
  const [pidText, ticks] = token.split('.');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = startTicks(pid);
  return now !== undefined && now === ticks;
}
