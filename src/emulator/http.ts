/** The emulator's HTTP plumbing shared by its routes: bounded bodies, JSON responses, and the counters behind `stats()`. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ArmError } from './errors.js';

/** What `stats()` counts besides the store's sizes. */
export interface RequestStats {
  callsByOperation: Record<string, number>;
  responsesByStatus: Record<string, number>;
  throttled: number;
  /** 429s of ACI's creation windows (included in throttled). */
  creationsThrottled: number;
  /** 429s of ACI's deletion windows (included in throttled). */
  deletionsThrottled: number;
  faultsInjected: number;
  lostResponses: number;
  tokensIssued: number;
}

export function newRequestStats(): RequestStats {
  return {
    callsByOperation: {},
    responsesByStatus: {},
    throttled: 0,
    creationsThrottled: 0,
    deletionsThrottled: 0,
    faultsInjected: 0,
    lostResponses: 0,
    tokensIssued: 0,
  };
}

/** Sends a JSON body (none when undefined) and counts the status. */
export type Send = (res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>) => void;

export function jsonSender(stats: () => RequestStats): Send {
  return (res, status, body, headers = {}) => {
    const s = stats();
    s.responsesByStatus[status] = (s.responsesByStatus[status] ?? 0) + 1;
    const payload = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, {
      ...headers,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json; charset=utf-8' }),
      'Content-Length': Buffer.byteLength(payload),
    });
    res.end(payload);
  };
}

const MAX_BODY = 4 * 1024 * 1024;

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ArmError(413, 'RequestEntityTooLarge', `The request body exceeds ${MAX_BODY} bytes.`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
