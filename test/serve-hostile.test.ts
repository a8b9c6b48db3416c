/**
 * Hostile requests against the serve app, over a real socket, with a stand-in predictor (the model
 * is not what is under test): /ready before and after loading, bodies over the limit without a
 * Content-Length (chunked), a full queue, oversized headers, non-images named as images, and
 * hostile class and file names that travel as JSON data, never as HTML.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { serve as honoServe } from '@hono/node-server';
import sharp from 'sharp';
import { decodeImageBytes } from '../src/data/decode.js';
import { createServeApp, type ServeState } from '../src/serve/app.js';
import { HttpError } from '../src/serve/body.js';
import { resolveServeOptions } from '../src/serve/options.js';
import type { ImagePredictor } from '../src/serve/predictor.js';

const XSS_CLASS = '<img src=x onerror=alert(1)>';
const LIMIT = 4096;

/** Resolves the next prediction when the test says so, to hold requests in flight. */
let release: (() => void) | null = null;
let holdPredictions = false;

function fakePredictor(): ImagePredictor {
  return {
    classifier: { classNames: [XSS_CLASS, 'dogs & "birds"'] },
    batcher: {
      expect() {},
      abandon() {},
      submit() {
        const promise = new Promise<Float32Array>((resolve) => {
          const answer = () => resolve(Float32Array.of(0.75, 0.25));
          if (holdPredictions) release = answer;
          else answer();
        });
        return { promise, cancel() {} };
      },
    },
    // The real decoder: the bytes decide what an upload is.
    async decode(bytes: Uint8Array, label: string) {
      try {
        return await decodeImageBytes(bytes, label);
      } catch (error) {
        throw new HttpError(400, 'CORRUPT_IMAGE', (error as Error).message);
      }
    },
  } as unknown as ImagePredictor;
}

const state: ServeState = { predictor: null, draining: false, inFlight: 0 };
let server: http.Server;
let base: string;
let port: number;
let png: Buffer;

before(async () => {
  const options = resolveServeOptions({
    port: 0,
    maxBodyBytes: LIMIT,
    maxQueue: 1,
    requestTimeoutMs: 5000,
  });
  server = honoServe({
    fetch: createServeApp(options, state).fetch,
    port: 0,
    hostname: '127.0.0.1',
    overrideGlobalObjects: false,
  }) as http.Server;
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  png = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } })
    .png()
    .toBuffer();
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

test('/ready is 503 until the model is loaded, 200 after, 503 again when draining; /health stays 200', async () => {
  assert.equal((await fetch(`${base}/health`)).status, 200);
  const loading = await fetch(`${base}/ready`);
  assert.equal(loading.status, 503);
  assert.deepEqual(await loading.json(), { ready: false, reason: 'loading the model' });
  const early = await fetch(`${base}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: png,
  });
  assert.equal(early.status, 503);
  state.predictor = fakePredictor();
  assert.equal((await fetch(`${base}/ready`)).status, 200);
  state.draining = true;
  assert.equal((await fetch(`${base}/ready`)).status, 503);
  assert.equal((await fetch(`${base}/health`)).status, 200);
  state.draining = false;
});

/** Sends a chunked body (no Content-Length) of `total` bytes, `chunk` at a time. */
function chunkedUpload(total: number, chunk = 1024): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/predict',
        method: 'POST',
        headers: { 'content-type': 'image/png' },
      },
      (response) => {
        let body = '';
        response.on('data', (d) => {
          body += d;
        });
        response.on('end', () => resolve({ status: response.statusCode!, body }));
      },
    );
    request.on('error', reject);
    assert.equal(request.getHeader('content-length'), undefined);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const n = Math.min(chunk, total - sent);
        sent += n;
        if (!request.write(Buffer.alloc(n, 7))) {
          request.once('drain', pump);
          return;
        }
      }
      request.end();
    };
    pump();
  });
}

test('a chunked upload without Content-Length is cut at the limit: 413, counted on bytes read', async () => {
  state.predictor = fakePredictor();
  const over = await chunkedUpload(LIMIT * 64);
  assert.equal(over.status, 413);
  assert.equal(JSON.parse(over.body).error.code, 'PAYLOAD_TOO_LARGE');
  // Exactly at the limit is read whole, then judged as an image (these bytes are not one).
  const at = await chunkedUpload(LIMIT);
  assert.equal(at.status, 400);
  assert.equal(JSON.parse(at.body).error.code, 'CORRUPT_IMAGE');
});

test('an SVG or text body labelled image/png is refused by its bytes (400), never decoded', async () => {
  for (const body of ['<svg xmlns="http://www.w3.org/2000/svg" width="2" height="2"/>', 'hello']) {
    const response = await fetch(`${base}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body,
    });
    assert.equal(response.status, 400);
    assert.match(
      ((await response.json()) as { error: { message: string } }).error.message,
      /not JPEG, PNG/,
    );
  }
});

test('a full queue answers 503 with Retry-After; the admitted request completes', async () => {
  holdPredictions = true;
  const first = fetch(`${base}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: png,
  });
  while (release === null) await new Promise((r) => setTimeout(r, 5));
  const second = await fetch(`${base}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: png,
  });
  assert.equal(second.status, 503);
  assert.equal(second.headers.get('retry-after'), '1');
  assert.equal(((await second.json()) as { error: { code: string } }).error.code, 'QUEUE_FULL');
  holdPredictions = false;
  (release as () => void)();
  release = null;
  assert.equal((await first).status, 200);
});

test('hostile class and file names travel as JSON data; the page interpolates none of them', async () => {
  const form = new FormData();
  form.append('image', new Blob([png], { type: 'image/png' }), '<script>alert(2)</script>.png');
  const response = await fetch(`${base}/predict`, { method: 'POST', body: form });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const answer = (await response.json()) as { classes: { className: string }[] };
  assert.equal(answer.classes[0]!.className, XSS_CLASS);
  const broken = new FormData();
  broken.append('image', new Blob(['nope']), '<b>evil</b>.jpg');
  const refused = await fetch(`${base}/predict`, { method: 'POST', body: broken });
  assert.equal(refused.status, 400);
  assert.match(refused.headers.get('content-type') ?? '', /^application\/json/);
  const page = await (await fetch(`${base}/`)).text();
  assert.ok(!page.includes(XSS_CLASS) && !page.includes('<b>evil'));
  assert.doesNotMatch(page, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
});

test('oversized headers are refused by the HTTP parser (431), and the server keeps serving', async () => {
  const status = await new Promise<number>((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, path: '/health', headers: { 'x-junk': 'a'.repeat(64 * 1024) } },
      (response) => {
        response.resume();
        resolve(response.statusCode!);
      },
    );
    request.on('error', reject);
    request.end();
  });
  assert.equal(status, 431);
  assert.equal((await fetch(`${base}/health`)).status, 200);
});
