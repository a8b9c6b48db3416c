/**
 * `serve`: a run folder (or a loaded classifier) behind an HTTP server. It listens first, so
 * /health answers and /ready says 'loading' while the model loads, and resolves once /ready is
 * true. `close()` drains: no new predictions, in-flight ones finish, then the sockets close.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve as honoServe } from '@hono/node-server';
import { initBackend } from '../engine/backend.js';
import { XferError } from '../errors.js';
import { type Classifier, loadClassifier } from '../recipes/classifier.js';
import { createServeApp, type ServeState } from './app.js';
import { type ResolvedServeOptions, resolveServeOptions, type ServeOptions } from './options.js';
import { ImagePredictor } from './predictor.js';

export interface ServeHandle {
  /** Where the server listens, e.g. 'http://127.0.0.1:8080'. */
  url: string;
  /** The options in force, defaults filled in. */
  options: ResolvedServeOptions;
  /** Prediction batches run so far: { batches, images, largestBatch }. */
  stats(): { batches: number; images: number; largestBatch: number };
  /** Stops accepting, lets in-flight requests finish (up to `drainTimeoutMs`), closes. */
  close(): Promise<void>;
}

function listen(server: Server, options: ResolvedServeOptions): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const hint =
        error.code === 'EADDRINUSE'
          ? `port ${options.port} on ${options.host} is in use; pick another with --port (0 picks a free one).`
          : error.code === 'EACCES'
            ? `no permission to bind port ${options.port}; use a port above 1023.`
            : `cannot listen on ${options.host}:${options.port}: ${error.message}`;
      reject(
        new XferError(
          'INVALID_ARGUMENT',
          hint,
          { host: options.host, port: options.port },
          { cause: error },
        ),
      );
    };
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function formatUrl({ address, family }: AddressInfo, port: number): string {
  const host = family === 'IPv6' || address.includes(':') ? `[${address}]` : address;
  return `http://${host}:${port}`;
}

/**
 * Serves a classifier over HTTP: POST /predict (an image body or a multipart upload) answers
 * `{ classes: [{ className, probability }, ...] }`; GET / is a page to try it in a browser.
 * @example
 * const server = await serve('xfer-run', { port: 8080 });
 * console.log(`open ${server.url}`);
 * process.once('SIGTERM', () => server.close());
 */
export async function serve(
  model: string | Classifier,
  options: ServeOptions = {},
): Promise<ServeHandle> {
  const resolved = resolveServeOptions(options);
  await initBackend();
  const state: ServeState = { predictor: null, draining: false, inFlight: 0 };
  const app = createServeApp(resolved, state);
  const server = honoServe({
    fetch: app.fetch,
    port: resolved.port,
    hostname: resolved.host,
    // A library must not swap the process's global Request/Response for hono's own.
    overrideGlobalObjects: false,
  }) as Server;
  // Slow or stalled clients cannot hold sockets longer than a request may take.
  server.requestTimeout = resolved.requestTimeoutMs + 1000;
  server.headersTimeout = Math.min(resolved.requestTimeoutMs, 60_000);
  const address = await listen(server, resolved);

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      state.draining = true;
      // Keep-alive sockets that were busy become idle once their response is out: close them as
      // they do, and cut whatever is left when the drain time is up.
      const started = Date.now();
      const poll = setInterval(() => {
        server.closeIdleConnections();
        if (Date.now() - started > resolved.drainTimeoutMs) server.closeAllConnections();
      }, 20);
      server.close(() => {
        clearInterval(poll);
        resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };

  try {
    const classifier = typeof model === 'string' ? await loadClassifier(model) : model;
    state.predictor = new ImagePredictor(classifier, resolved);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    url: formatUrl(address, address.port),
    options: resolved,
    stats: () => ({ ...state.predictor!.batcher.stats }),
    close,
  };
}
