/** Fault injection for tests of clients' resilience: errors, latency, lost PUT responses. */
export interface FaultOptions {
  /** Share (0..1) of ARM requests answered 500 InternalServerError instead of being handled. */
  serverErrorRate?: number;
  /** Share (0..1) of ARM requests answered 503 ServiceUnavailable (with Retry-After) instead of being handled. */
  unavailableRate?: number;
  /** Added latency per ARM request, in ms: a fixed value or a uniform range. */
  latencyMs?: number | { min: number; max: number };
  /** Share (0..1) of container group PUTs that succeed while the connection is dropped before the response. */
  lostPutResponseRate?: number;
  /** Limits the error faults to these operation ids (e.g. 'ContainerGroups_CreateOrUpdate'). Default: all. */
  operations?: string[];
}

export type FaultDecision = { kind: 'none' } | { kind: 'error'; status: 500 | 503 };

export class Faults {
  constructor(
    private options: FaultOptions,
    private readonly random: () => number = Math.random,
  ) {}

  set(options: FaultOptions): void {
    this.options = options;
  }

  get(): FaultOptions {
    return this.options;
  }

  latency(): number {
    const l = this.options.latencyMs;
    if (l === undefined) return 0;
    if (typeof l === 'number') return l;
    return l.min + this.random() * Math.max(0, l.max - l.min);
  }

  private applies(operation: string): boolean {
    return !this.options.operations || this.options.operations.includes(operation);
  }

  decide(operation: string): FaultDecision {
    if (!this.applies(operation)) return { kind: 'none' };
    const r = this.random();
    const e500 = this.options.serverErrorRate ?? 0;
    const e503 = this.options.unavailableRate ?? 0;
    if (r < e500) return { kind: 'error', status: 500 };
    if (r < e500 + e503) return { kind: 'error', status: 503 };
    return { kind: 'none' };
  }

  loseResponse(operation: string): boolean {
    if (operation !== 'ContainerGroups_CreateOrUpdate') return false;
    return this.random() < (this.options.lostPutResponseRate ?? 0);
  }
}
