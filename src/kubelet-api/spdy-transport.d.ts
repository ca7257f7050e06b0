/**
 * The slice of spdy-transport 3.0 this project uses. The package ships no types;
 * the internals named with `_spdyState` / parser methods are the ones
 * spdy-server.ts adjusts for Kubernetes' Go SPDY peers (see there why).
 */
declare module 'spdy-transport' {
  import type { EventEmitter } from 'node:events';
  import type { Duplex } from 'node:stream';

  export interface WindowSide {
    update(size: number, callback?: () => void): void;
    getCurrent(): number;
    getMax(): number;
  }

  export interface SpdyStream extends Duplex {
    readonly id: number;
    readonly method?: string;
    readonly path?: string;
    /** Header names are lower case, as SPDY/3 sends them. */
    readonly headers: Record<string, string | string[] | undefined>;
    respond(status: number, headers: Record<string, string>, callback?: (err?: Error) => void): void;
    abort(code?: string, callback?: () => void): void;
    _spdyState: { window: { send: WindowSide } };
  }

  export interface SpdyParser {
    onSynHeadFrame(
      type: number,
      flags: number,
      body: unknown,
      callback: (err: Error | null, frame?: unknown) => void,
    ): void;
    parseKVs(body: unknown, callback: (err: Error | null, headers?: Record<string, unknown>) => void): void;
  }

  export interface SpdyConnection extends EventEmitter {
    start(version: number): void;
    request(
      uri: { method: string; path: string; host?: string; headers: Record<string, string> },
      callback: (err: Error | null, stream: SpdyStream) => void,
    ): SpdyStream;
    end(callback?: () => void): void;
    _spdyState: { parser: SpdyParser; window: { send: WindowSide } };
    on(event: 'stream', listener: (stream: SpdyStream) => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: 'close', listener: () => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export interface ConnectionOptions {
    protocol: 'spdy' | 'http2';
    isServer: boolean;
    windowSize?: number;
    maxChunk?: number | false;
    autoSpdy31?: boolean;
  }

  const transport: {
    connection: { create(socket: Duplex, options: ConnectionOptions): SpdyConnection };
  };
  export default transport;
}
