/**
 * ACI-style events: a repeat of the same event (name and message) bumps its count
 * and lastTimestamp instead of adding a row, as ACI reports them.
 */
import type { RuntimeEvent } from '../../runtime.js';

const MAX_EVENTS = 100;

export class EventLog {
  private readonly rows: RuntimeEvent[] = [];

  add(name: string, type: 'Normal' | 'Warning', message: string, at: Date = new Date()): void {
    const row = this.rows.find((r) => r.name === name && r.message === message);
    if (row) {
      row.count += 1;
      row.lastTimestamp = at;
      return;
    }
    this.rows.push({ name, type, message, count: 1, firstTimestamp: at, lastTimestamp: at });
    if (this.rows.length > MAX_EVENTS) this.rows.shift();
  }

  list(): RuntimeEvent[] {
    return this.rows.map((r) => ({ ...r }));
  }
}
