/**
 * The HTTP routes of `xfer serve`, as a hono app: POST /predict, GET /health, GET /ready and the
 * web page at GET /. Kept apart from the socket so it can be driven with `app.request()`.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { HttpError, readUploadedImage } from './body.js';
import type { ResolvedServeOptions } from './options.js';
import { renderPage } from './page.js';
import { type ImagePredictor, rankClasses } from './predictor.js';

/** What the app needs to know about the server around it. */
export interface ServeState {
  /** Set once the model is loaded. */
  predictor: ImagePredictor | null;
  /** Set when shutting down: no new predictions, /ready answers 503. */
  draining: boolean;
  /** Prediction requests admitted and not yet answered. */
  inFlight: number;
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Compares in constant time (on digests, so the lengths match too). */
function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match !== null && timingSafeEqual(digest(match[1]!), digest(token));
}

export function createServeApp(options: ResolvedServeOptions, state: ServeState): Hono {
  const app = new Hono();

  app.onError((error, c) => {
    if (error instanceof HttpError) {
      for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
      return c.json(errorBody(error.code, error.message), error.status as 400);
    }
    // Internal failures are logged here and answered without details a client could misuse.
    process.stderr.write(`xfer serve: error: ${(error as Error)?.stack ?? String(error)}\n`);
    return c.json(
      errorBody('INTERNAL', 'the server failed to answer this request; see its log.'),
      500,
    );
  });

  app.get('/health', (c) => c.json({ status: 'ok' }));

  app.get('/ready', (c) => {
    if (state.draining) return c.json({ ready: false, reason: 'shutting down' }, 503);
    if (state.predictor === null) return c.json({ ready: false, reason: 'loading the model' }, 503);
    return c.json({ ready: true });
  });

  app.get('/', (c) => {
    const nonce = randomBytes(16).toString('base64');
    c.header(
      'Content-Security-Policy',
      `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; img-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    );
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Cache-Control', 'no-store');
    return c.html(renderPage(nonce));
  });

  app.post('/predict', async (c) => {
    if (options.token !== null && !tokenMatches(c.req.header('authorization'), options.token)) {
      c.header('WWW-Authenticate', 'Bearer realm="xfer"');
      return c.json(
        errorBody(
          'UNAUTHORIZED',
          'this server needs a token: send the header `Authorization: Bearer <token>` with the token it was started with.',
        ),
        401,
      );
    }
    const predictor = state.predictor;
    if (state.draining || predictor === null) {
      c.header('Retry-After', '1');
      const why = state.draining ? 'the server is shutting down' : 'the model is still loading';
      return c.json(errorBody('UNAVAILABLE', `${why}; try again shortly.`), 503);
    }
    if (state.inFlight >= options.maxQueue) {
      c.header('Retry-After', '1');
      return c.json(
        errorBody(
          'QUEUE_FULL',
          `the server is busy: ${state.inFlight} requests are in progress (the limit is ${options.maxQueue}); retry after a moment.`,
        ),
        503,
      );
    }
    state.inFlight++;
    const { batcher } = predictor;
    batcher.expect();
    // The request leaves the batcher's expectations exactly once: by submitting or abandoning.
    let handedOver = false;
    const abandon = () => {
      if (!handedOver) batcher.abandon();
      handedOver = true;
    };
    let cancel = () => {};
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    let stage: 'reading' | 'predicting' = 'reading';
    try {
      const work = (async () => {
        try {
          const upload = await readUploadedImage(c.req.raw, options.maxBodyBytes);
          stage = 'predicting';
          const img = await predictor.decode(upload.bytes, upload.label);
          if (timedOut) throw new Error('timed out');
          handedOver = true;
          const pending = batcher.submit(img);
          cancel = pending.cancel;
          return await pending.promise;
        } finally {
          abandon();
        }
      })();
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          cancel();
          reject(
            stage === 'reading'
              ? new HttpError(
                  408,
                  'REQUEST_TIMEOUT',
                  `the request body did not arrive within ${options.requestTimeoutMs} ms.`,
                  { connection: 'close' },
                )
              : new HttpError(
                  503,
                  'TIMEOUT',
                  `the prediction did not finish within ${options.requestTimeoutMs} ms; the server is overloaded, retry later.`,
                  { 'retry-after': '1' },
                ),
          );
        }, options.requestTimeoutMs);
      });
      work.catch(() => {}); // a late failure after the timeout answered is not unhandled
      const values = await Promise.race([work, timeout]);
      return c.json({
        classes: rankClasses(values, predictor.classifier.classNames, options.top),
      });
    } finally {
      clearTimeout(timer);
      state.inFlight--;
    }
  });

  app.notFound((c) =>
    c.json(
      errorBody(
        'NOT_FOUND',
        `no route ${c.req.method} ${new URL(c.req.url).pathname}; the routes are GET /, POST /predict, GET /health, GET /ready.`,
      ),
      404,
    ),
  );
  return app;
}
