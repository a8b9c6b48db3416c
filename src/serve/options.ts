/** The options of `serve` and `xfer serve`, their defaults, and the checks at the boundary. */
import { XferError } from '../errors.js';
import { checkPositiveInteger } from '../util/validate.js';

export interface ServeOptions {
  /** TCP port; 0 picks a free one (read it from the returned `url`). Default 8080. */
  port?: number;
  /**
   * Address to bind. Default '127.0.0.1' (this machine only). Any address that is not loopback
   * needs `token`: a model server open to the network without auth is refused.
   */
  host?: string;
  /** Classes returned per image, most probable first. Default 5 (capped at the class count). */
  top?: number;
  /** When set, POST /predict needs `Authorization: Bearer <token>`. Default: no auth. */
  token?: string;
  /** Largest request body read, in bytes; more is answered 413. Default 10 MB (10 * 1024 * 1024). */
  maxBodyBytes?: number;
  /** Largest decoded image, in pixels (width * height); more is answered 413. Default 40 000 000. */
  maxPixels?: number;
  /** Milliseconds a request may take, body read included, before it is answered 408 / 503. Default 30000. */
  requestTimeoutMs?: number;
  /** Most images run in one `model.predict`. Default 16. */
  maxBatchSize?: number;
  /** Longest a batch waits for requests still being read or decoded to join it, in milliseconds. Default 10. */
  batchWaitMs?: number;
  /**
   * Most prediction requests admitted at once (reading, decoding, waiting or running); more are
   * answered 503 with Retry-After. Bounds memory to about `maxQueue * maxBodyBytes`. Default 64.
   */
  maxQueue?: number;
  /** Milliseconds `close()` waits for in-flight requests before cutting connections. Default 30000. */
  drainTimeoutMs?: number;
}

export type ResolvedServeOptions = Required<Omit<ServeOptions, 'token'>> & { token: string | null };

export const SERVE_DEFAULTS = {
  port: 8080,
  host: '127.0.0.1',
  top: 5,
  maxBodyBytes: 10 * 1024 * 1024,
  maxPixels: 40_000_000,
  requestTimeoutMs: 30_000,
  maxBatchSize: 16,
  batchWaitMs: 10,
  maxQueue: 64,
  drainTimeoutMs: 30_000,
} as const;

function checkNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `Expected non-negative integer for ${name} but received ${String(value)} of type ${typeof value}`,
      { parameter: name, actual: value },
    );
  }
  return value;
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return (
    h === 'localhost' ||
    h === '::1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) ||
    /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
  );
}

export function resolveServeOptions(options: ServeOptions = {}): ResolvedServeOptions {
  const port = checkNonNegativeInteger('port', options.port ?? SERVE_DEFAULTS.port);
  if (port > 65535) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `port ${port} is out of range; use 0..65535 (0 picks a free port).`,
      {
        port,
      },
    );
  }
  const host = options.host ?? SERVE_DEFAULTS.host;
  if (typeof host !== 'string' || host === '') {
    throw new XferError(
      'INVALID_ARGUMENT',
      `Expected a host address for host but received ${String(host)}.`,
      {
        host,
      },
    );
  }
  const token = options.token === undefined || options.token === '' ? null : options.token;
  if (token !== null && (typeof token !== 'string' || /\s/.test(token))) {
    throw new XferError(
      'INVALID_ARGUMENT',
      'the token must be a string without spaces (it is sent as `Authorization: Bearer <token>`).',
    );
  }
  if (token === null && !isLoopbackHost(host)) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `refusing to serve on ${host} without a token: any machine that reaches it could use the model. Pass --token <secret> (or set XFER_SERVE_TOKEN), or bind 127.0.0.1.`,
      { host },
    );
  }
  return {
    port,
    host,
    token,
    top: checkPositiveInteger('top', options.top ?? SERVE_DEFAULTS.top),
    maxBodyBytes: checkPositiveInteger(
      'maxBodyBytes',
      options.maxBodyBytes ?? SERVE_DEFAULTS.maxBodyBytes,
    ),
    maxPixels: checkPositiveInteger('maxPixels', options.maxPixels ?? SERVE_DEFAULTS.maxPixels),
    requestTimeoutMs: checkPositiveInteger(
      'requestTimeoutMs',
      options.requestTimeoutMs ?? SERVE_DEFAULTS.requestTimeoutMs,
    ),
    maxBatchSize: checkPositiveInteger(
      'maxBatchSize',
      options.maxBatchSize ?? SERVE_DEFAULTS.maxBatchSize,
    ),
    batchWaitMs: checkNonNegativeInteger(
      'batchWaitMs',
      options.batchWaitMs ?? SERVE_DEFAULTS.batchWaitMs,
    ),
    maxQueue: checkPositiveInteger('maxQueue', options.maxQueue ?? SERVE_DEFAULTS.maxQueue),
    drainTimeoutMs: checkNonNegativeInteger(
      'drainTimeoutMs',
      options.drainTimeoutMs ?? SERVE_DEFAULTS.drainTimeoutMs,
    ),
  };
}
