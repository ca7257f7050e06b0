/**
 * Structured logging: JSON lines for machines, readable lines when a person
 * watches the terminal. pino-pretty is loaded only for a TTY so production
 * logs stay plain JSON and cheap.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function isLogLevel(v: string): v is LevelWithSilent {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

export function createLogger(level: LevelWithSilent = 'info', opts: { pretty?: boolean; name?: string } = {}): Logger {
  const pretty = opts.pretty ?? Boolean(process.stdout.isTTY);
  const base = {
    level,
    name: opts.name,
    // Never let a secret reach the log, even if a caller logs a whole object.
    redact: { paths: ['*.secureValue', '*.token', '*.password', '*.data', 'env[*].value'], censor: '[redacted]' },
  };
  if (pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } },
    });
  }
  return pino(base);
}

/** A logger that drops everything; for unit tests and libraries used without one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
