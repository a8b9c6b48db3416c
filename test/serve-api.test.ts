/**
 * `serve` over real sockets on 127.0.0.1: predictions against xfer's own `predictFile`, the
 * limits (413, 415, 400, 408, 503), auth (401), health/ready, batching, and a load test.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { type Classifier, loadClassifier } from '../src/recipes/classifier.js';
import { type ServeHandle, serve } from '../src/serve/index.js';
import { Random } from '../src/util/random.js';
import { makeTempDir, patternImage } from './helpers/image-folders.js';
import { buildRunFolder } from './helpers/serve-run.js';

let tmp: string;
let runDir: string;
let classifier: Classifier;
let server: ServeHandle;
/** Two PNGs from the training patterns: class 0 ('cats') and class 1 ('dogs'). */
const images: { file: string; bytes: Buffer }[] = [];

async function png(classIndex: number, size: number, seed: number): Promise<Buffer> {
  const raw = await patternImage(classIndex, 2, size, new Random(seed));
  return sharp(raw, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}

before(async () => {
  tmp = await makeTempDir('serve-api');
  // A conv net whose answer depends on the image, so comparisons below can fail; the load test
  // serves MobileNetV2 (random MobileNetV2 features at 32x32 are ~0 for every image).
  runDir = await buildRunFolder(path.join(tmp, 'run'), { classNames: ['cats', 'dogs'] });
  classifier = await loadClassifier(runDir);
  for (const [i, size] of [48, 40].entries()) {
    const bytes = await png(i, size, 100 + i);
    const file = path.join(tmp, `image${i}.png`);
    await fsp.writeFile(file, bytes);
    images.push({ file, bytes });
  }
  server = await serve(classifier, { port: 0 });
});

after(async () => {
  await server?.close();
  await fsp.rm(tmp, { recursive: true, force: true });
});

function postImage(
  url: string,
  body: Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
) {
  return fetch(`${url}/predict`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'image/png', ...headers },
  });
}

/** A request body that sends `first`, then waits for `release()` before sending `rest`. */
function heldBody(first: Uint8Array, rest: Uint8Array) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(first);
      await released;
      if (rest.byteLength > 0) controller.enqueue(rest);
      controller.close();
    },
  });
  return { stream, release };
}

test('GET /health and GET /ready answer once the model is loaded', async () => {
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok' });
  const ready = await fetch(`${server.url}/ready`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true });
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
});

test('POST /predict with an image body answers what predictFile answers, both binary classes', async () => {
  const seen = new Set<number>();
  for (const { file, bytes } of images) {
    const response = await postImage(server.url, bytes);
    assert.equal(response.status, 200);
    const { classes } = (await response.json()) as {
      classes: { className: string; probability: number }[];
    };
    const expected = await classifier.predictFile(file);
    // One sigmoid unit: class 1 ('dogs') has p, class 0 ('cats') 1 - p; listed most probable first.
    assert.equal(classes.length, 2);
    const dogs = classes.find((c) => c.className === 'dogs')!.probability;
    const cats = classes.find((c) => c.className === 'cats')!.probability;
    const p1 = expected.probability; // predictFile reports the sigmoid output, p(class 1)
    assert.ok(Math.abs(dogs - p1) < 1e-5, `served ${dogs}, predictFile ${p1}`);
    assert.ok(Math.abs(cats - (1 - p1)) < 1e-6);
    assert.ok(classes[0]!.probability >= classes[1]!.probability);
    assert.equal(classes[0]!.className, expected.className);
    seen.add(dogs);
  }
  assert.equal(seen.size, 2, 'the two images get different answers');
});

test('POST /predict with a multipart upload (field image, or the first file) gives the same answer', async () => {
  const raw = await (await postImage(server.url, images[0]!.bytes)).json();
  const form = new FormData();
  form.append('note', 'not a file');
  form.append('image', new Blob([images[0]!.bytes], { type: 'image/png' }), 'cat.png');
  const named = await fetch(`${server.url}/predict`, { method: 'POST', body: form });
  assert.equal(named.status, 200);
  assert.deepEqual(await named.json(), raw);
  const other = new FormData();
  other.append('upload', new Blob([images[0]!.bytes], { type: 'image/png' }), 'cat.png');
  const first = await fetch(`${server.url}/predict`, { method: 'POST', body: other });
  assert.equal(first.status, 200);
  assert.deepEqual(await first.json(), raw);
  const none = new FormData();
  none.append('image', 'just text');
  const noFile = await fetch(`${server.url}/predict`, { method: 'POST', body: none });
  assert.equal(noFile.status, 400);
  assert.match(((await noFile.json()) as any).error.message, /no file .*'image' is text/);
});

test('415 for a body that is not an image or a multipart form', async () => {
  for (const type of ['text/plain', 'application/json', 'application/octet-stream']) {
    const response = await postImage(server.url, images[0]!.bytes, { 'content-type': type });
    assert.equal(response.status, 415, type);
    const body = (await response.json()) as any;
    assert.equal(body.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    assert.match(
      body.error.message,
      new RegExp(`'${type.replace('/', '\\/')}' is not accepted; send .*image\\/\\*`),
    );
  }
  const none = await fetch(`${server.url}/predict`, {
    method: 'POST',
    body: new Uint8Array([1, 2, 3]),
  });
  assert.equal(none.status, 415);
});

test('400 with a message for a corrupt, truncated or empty image; the server keeps serving', async () => {
  const garbage = new Random(3);
  const noise = Uint8Array.from({ length: 2000 }, () => garbage.randint(0, 256));
  const truncated = images[0]!.bytes.subarray(0, Math.floor(images[0]!.bytes.length / 2));
  for (const [what, body] of [
    ['noise', noise],
    ['truncated PNG', truncated],
  ] as const) {
    const response = await postImage(server.url, body);
    assert.equal(response.status, 400, what);
    const error = ((await response.json()) as any).error;
    assert.equal(error.code, 'CORRUPT_IMAGE', what);
    assert.match(error.message, /^cannot decode the image \(request body\): .+\. Send a JPEG, PNG/);
  }
  const empty = await postImage(server.url, new Uint8Array(0));
  assert.equal(empty.status, 400);
  assert.match(((await empty.json()) as any).error.message, /empty: 0 bytes/);
  assert.equal((await postImage(server.url, images[1]!.bytes)).status, 200);
});

test('413 beyond the size limit, by Content-Length and by the bytes actually streamed', async () => {
  const small = await serve(classifier, { port: 0, maxBodyBytes: 16384 });
  try {
    const big = new Uint8Array(16385);
    big.set(images[0]!.bytes.subarray(0, 8));
    const declared = await postImage(small.url, big);
    assert.equal(declared.status, 413);
    assert.match(
      ((await declared.json()) as any).error.message,
      /larger than the limit of 16384 bytes/,
    );
    // No Content-Length (chunked): the limit applies to what is read.
    const { stream, release } = heldBody(big.subarray(0, 9000), big.subarray(9000));
    release();
    const chunked = await fetch(`${small.url}/predict`, {
      method: 'POST',
      body: stream,
      headers: { 'content-type': 'image/png' },
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
    // The default limit is 10 MB.
    assert.equal(server.options.maxBodyBytes, 10 * 1024 * 1024);
    const tooBig = await postImage(server.url, new Uint8Array(10 * 1024 * 1024 + 1));
    assert.equal(tooBig.status, 413);
    // Within the limit, the same server answers.
    assert.equal((await postImage(small.url, images[0]!.bytes)).status, 200);
  } finally {
    await small.close();
  }
});

test('413 for an image whose header declares more pixels than maxPixels', async () => {
  const limited = await serve(classifier, { port: 0, maxPixels: 1000 });
  try {
    const response = await postImage(limited.url, images[0]!.bytes); // 48x48 = 2304 pixels
    assert.equal(response.status, 413);
    assert.match(
      ((await response.json()) as any).error.message,
      /48x48 = 2304 pixels, more than the limit of 1000/,
    );
  } finally {
    await limited.close();
  }
});

test('401 without the bearer token; the token is required to bind a non-loopback address', async () => {
  const secured = await serve(classifier, { port: 0, token: 's3cret' });
  try {
    const missing = await postImage(secured.url, images[0]!.bytes);
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.match(((await missing.json()) as any).error.message, /Authorization: Bearer <token>/);
    const wrong = await postImage(secured.url, images[0]!.bytes, {
      authorization: 'Bearer s3creT',
    });
    assert.equal(wrong.status, 401);
    const right = await postImage(secured.url, images[0]!.bytes, {
      authorization: 'Bearer s3cret',
    });
    assert.equal(right.status, 200);
    assert.equal((await fetch(`${secured.url}/health`)).status, 200, 'probes need no token');
  } finally {
    await secured.close();
  }
  await assert.rejects(serve(classifier, { port: 0, host: '0.0.0.0' }), {
    name: 'XferError',
    code: 'INVALID_ARGUMENT',
    message: /refusing to serve on 0\.0\.0\.0 without a token.*--token/,
  });
  const open = await serve(classifier, { port: 0, host: '0.0.0.0', token: 't' });
  assert.match(open.url, /^http:\/\/0\.0\.0\.0:\d+$/);
  await open.close();
});

test('503 when the queue is full; the admitted request still completes', async () => {
  const tiny = await serve(classifier, { port: 0, maxQueue: 1 });
  try {
    const bytes = images[0]!.bytes;
    const { stream, release } = heldBody(bytes.subarray(0, 10), bytes.subarray(10));
    const held = fetch(`${tiny.url}/predict`, {
      method: 'POST',
      body: stream,
      headers: { 'content-type': 'image/png' },
      duplex: 'half',
    } as RequestInit);
    // Wait until the held request is admitted (its slot taken), then ask again.
    let rejected: Response | undefined;
    for (let i = 0; i < 100 && rejected === undefined; i++) {
      const response = await postImage(tiny.url, bytes);
      if (response.status === 503) rejected = response;
      else await response.arrayBuffer();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(rejected, 'a second request was refused while the first held the only slot');
    assert.equal(rejected.headers.get('retry-after'), '1');
    assert.equal(((await rejected.json()) as any).error.code, 'QUEUE_FULL');
    release();
    assert.equal((await held).status, 200);
    assert.equal((await postImage(tiny.url, bytes)).status, 200, 'the slot is free again');
  } finally {
    await tiny.close();
  }
});

test('408 for a body that stalls past the request timeout', async () => {
  const quick = await serve(classifier, { port: 0, requestTimeoutMs: 300 });
  try {
    const { stream, release } = heldBody(
      images[0]!.bytes.subarray(0, 10),
      images[0]!.bytes.subarray(10),
    );
    const response = await fetch(`${quick.url}/predict`, {
      method: 'POST',
      body: stream,
      headers: { 'content-type': 'image/png' },
      duplex: 'half',
    } as RequestInit);
    assert.equal(response.status, 408);
    assert.match(((await response.json()) as any).error.message, /did not arrive within 300 ms/);
    release();
  } finally {
    await quick.close();
  }
});

test('a client that goes away mid-upload costs nothing: no error logged, the slot is freed', async () => {
  const tiny = await serve(classifier, { port: 0, maxQueue: 1 });
  const logged: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    logged.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    const abort = new AbortController();
    const { stream } = heldBody(images[0]!.bytes.subarray(0, 10), new Uint8Array(0));
    const gone = fetch(`${tiny.url}/predict`, {
      method: 'POST',
      body: stream,
      headers: { 'content-type': 'image/png' },
      duplex: 'half',
      signal: abort.signal,
    } as RequestInit).catch((error: Error) => error);
    await new Promise((r) => setTimeout(r, 200));
    abort.abort();
    assert.ok((await gone) instanceof Error);
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = (await postImage(tiny.url, images[0]!.bytes)).status;
    }
    assert.equal(status, 200, 'the single slot was released');
  } finally {
    process.stderr.write = write;
    await tiny.close();
  }
  assert.deepEqual(
    logged.filter((line) => line.includes('xfer serve: error')),
    [],
  );
});

test('concurrent requests share one model.predict and get the answers they get alone', async () => {
  const batched = await serve(classifier, { port: 0, batchWaitMs: 100, maxBatchSize: 8 });
  try {
    const alone = (await (await postImage(server.url, images[1]!.bytes)).json()) as any;
    const before = batched.stats();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        postImage(batched.url, images[i % 2]!.bytes).then((r) => r.json()),
      ),
    );
    const stats = batched.stats();
    assert.ok(stats.largestBatch >= 2, `largest batch ${stats.largestBatch}`);
    assert.ok(
      stats.batches - before.batches < 8,
      `${stats.batches - before.batches} batches for 8 requests`,
    );
    for (const [i, answer] of answers.entries()) {
      if (i % 2 === 0) continue;
      for (const [j, c] of (answer as any).classes.entries()) {
        assert.equal(c.className, alone.classes[j].className);
        assert.ok(Math.abs(c.probability - alone.classes[j].probability) < 1e-5);
      }
    }
  } finally {
    await batched.close();
  }
});

test('top-k: the k most probable of a softmax model, sorted, matching predictFile', async () => {
  const names = ['a', 'b', 'c', 'd', 'e'];
  const dir = await buildRunFolder(path.join(tmp, 'five'), { classNames: names });
  const five = await loadClassifier(dir);
  const all = await serve(five, { port: 0 });
  const top3 = await serve(five, { port: 0, top: 3 });
  try {
    const full = ((await (await postImage(all.url, images[0]!.bytes)).json()) as any).classes;
    assert.deepEqual(full.map((c: any) => c.className).sort(), names);
    const sum = full.reduce((s: number, c: any) => s + c.probability, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `softmax sums to ${sum}`);
    const three = ((await (await postImage(top3.url, images[0]!.bytes)).json()) as any).classes;
    assert.deepEqual(three, full.slice(0, 3));
    for (let i = 1; i < full.length; i++) assert.ok(full[i - 1].probability >= full[i].probability);
    const expected = await five.predictFile(images[0]!.file);
    assert.equal(three[0].className, expected.className);
    assert.ok(Math.abs(three[0].probability - expected.probability) < 1e-5);
  } finally {
    await all.close();
    await top3.close();
  }
});

test('GET / is one self-contained page under a nonce CSP; unknown routes are 404 JSON', async () => {
  const response = await fetch(`${server.url}/`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
  const csp = response.headers.get('content-security-policy') ?? '';
  const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
  assert.ok(nonce, csp);
  assert.match(csp, /default-src 'none'/);
  const html = await response.text();
  assert.ok(html.includes(`<script nonce="${nonce}">`));
  assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//i, 'no external resources');
  assert.doesNotMatch(html, /<link|@import|innerHTML|insertAdjacentHTML|document\.write/);
  const missing = await fetch(`${server.url}/nope`);
  assert.equal(missing.status, 404);
  assert.match(((await missing.json()) as any).error.message, /routes are GET \/, POST \/predict/);
});

test('load on MobileNetV2: 500 requests, 16 at a time, zero errors; prints p50/p99 latency', async () => {
  const mnv2Dir = await buildRunFolder(path.join(tmp, 'mnv2'), {
    classNames: ['cats', 'dogs'],
    backbone: 'mobilenet_v2',
  });
  const mnv2 = await serve(mnv2Dir, { port: 0 });
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < 500) {
        const i = next++;
        const start = performance.now();
        const response = await postImage(mnv2.url, images[i % 2]!.bytes);
        await response.arrayBuffer();
        latencies.push(performance.now() - start);
        if (response.status !== 200) errors++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
  const stats = mnv2.stats();
  console.log(
    `serve load (MobileNetV2, 32x32, ${process.env.XFER_BACKEND ?? 'default'} backend): 500 requests, 16 concurrent: p50 ${pct(50).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms, ${(500 / seconds).toFixed(0)} req/s; largest batch ${stats.largestBatch}, ${stats.batches} batches so far`,
  );
  await mnv2.close();
  assert.equal(errors, 0);
  assert.equal(latencies.length, 500);
});
