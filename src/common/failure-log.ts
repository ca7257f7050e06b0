/**
 * Logs a background job's failures once per streak: the first failure at `level` with its
 * context, repeats only at debug (a job retried every 2 s would otherwise flood the log), and
 * one info line when it works again. Only the error's message is logged, never the error object
 * (an SDK error can carry the request, and with it a header or body that must not be logged).
 */
import type { Logger } from 'pino';
import { errorMessage } from './errors.js';

export class FailureStreak {
  private failures = 0;

  constructor(
    private readonly log: Logger,
    /** What failed, as a log message's subject ("the status list of the resource group"). */
    private readonly what: string,
    private readonly level: 'warn' | 'error' | 'info' | 'debug' = 'warn',
  ) {}

  /** How many failures in a row so far. */
  get count(): number {
    return this.failures;
  }

  failed(err: unknown, context: Record<string, unknown> = {}): void {
    this.failures += 1;
    const fields = { ...context, err: errorMessage(err), failures: this.failures };
    if (this.failures === 1) this.log[this.level](fields, `${this.what} failed; retrying`);
    else this.log.debug(fields, `${this.what} failed again`);
  }

  succeeded(): void {
    if (this.failures === 0) return;
    this.log.info({ failures: this.failures }, `${this.what} works again`);
    this.failures = 0;
  }
}
