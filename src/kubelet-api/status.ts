/**
 * The metav1.Status documents the remote-command error stream carries (protocol
 * v4 and later): Success, a non-zero exit code that kubectl turns into its own
 * exit code, or a failure message.
 */
export interface StatusCause {
  reason: string;
  message: string;
}

export interface MetaStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: StatusCause[] };
  code?: number;
}

const base = { kind: 'Status', apiVersion: 'v1', metadata: {} } as const;

export function successStatus(): MetaStatus {
  return { ...base, status: 'Success' };
}

/** kubectl parses causes[reason=ExitCode].message as an unsigned 8-bit exit code. */
export function exitCodeStatus(exitCode: number): MetaStatus {
  const code = ((Math.trunc(exitCode) % 256) + 256) % 256;
  return {
    ...base,
    status: 'Failure',
    message: `command terminated with non-zero exit code: exit status ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

export function failureStatus(message: string, reason = 'InternalError', code = 500): MetaStatus {
  return { ...base, status: 'Failure', message, reason, code };
}

/** The status for an exec that ended with this exit code. */
export function statusForExit(exitCode: number): MetaStatus {
  return exitCode === 0 ? successStatus() : exitCodeStatus(exitCode);
}

/** Protocols before v4 carry a bare error message instead of a Status document. */
export function encodeStatus(status: MetaStatus, protocol: string): string {
  if (protocol.startsWith('v4.') || protocol.startsWith('v5.')) return JSON.stringify(status);
  if (status.status === 'Success') return '';
  return status.message ?? status.reason ?? 'error';
}
