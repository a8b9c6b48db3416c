/**
 * getFile's durability and limits against a local server on 127.0.0.1: resume with Range after a
 * cut, servers that ignore Range or whose file changed, the size cap, the redirect rule, two
 * processes fetching one file, stale locks and a full disk (a write seam, no root needed).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import sharp from 'sharp';
import { fetchCatsVsDogs } from '../src/data/datasets/cats-vs-dogs.js';
import type { XferError } from '../src/errors.js';
import { withFileLock } from '../src/util/fs.js';
import { downloadSeams, getFile, redirectProblem } from '../src/weights/download.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SIZE = 200_000;
const CUT = 60_000;

/** Deterministic bytes that are not all alike, so a misplaced range changes the hash. */
function pattern(size: number, salt: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 2463534242 ^ salt;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const body = pattern(SIZE, 1);
const changed = pattern(SIZE, 2);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Hit {
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
  status: number;
  sent: number;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, hit: Hit) => void;

let server: http.Server;
let base: string;
const hits: Hit[] = [];
const routes = new Map<string, Handler>();
let dir: string;
let cache: string;

/** Writes `data` and counts it on the hit, then ends (or, with `cutAfter`, destroys the socket). */
function send(res: http.ServerResponse, hit: Hit, data: Buffer, cutAfter?: number): void {
  const chunk = cutAfter === undefined ? data : data.subarray(0, cutAfter);
  hit.sent += chunk.length;
  if (cutAfter === undefined) res.end(chunk);
  else {
    res.write(chunk);
    // Give the bytes time to leave, then drop the connection mid-body.
    setTimeout(() => res.destroy(), 80);
  }
}

/** A file served with an ETag and byte ranges (RFC 9110 If-Range), optionally cut once. */
function rangeServer(opts: {
  file: () => Buffer;
  etag: () => string;
  cutFirstAt?: number;
  ignoreRange?: boolean;
  corruptRange?: boolean;
}): Handler {
  let served = 0;
  return (req, res, hit) => {
    const data = opts.file();
    const etag = opts.etag();
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRangeOk = req.headers['if-range'] === undefined || req.headers['if-range'] === etag;
    if (match && ifRangeOk && !opts.ignoreRange) {
      const start = Number(match[1]);
      hit.status = 206;
      res.writeHead(206, {
        etag,
        'accept-ranges': 'bytes',
        'content-length': data.length - start,
        'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
      });
      const rest = Buffer.from(data.subarray(start));
      if (opts.corruptRange) rest[0] = rest[0]! ^ 0xff;
      send(res, hit, rest);
      return;
    }
    hit.status = 200;
    res.writeHead(200, { etag, 'accept-ranges': 'bytes', 'content-length': data.length });
    const cut = served++ === 0 ? opts.cutFirstAt : undefined;
    send(res, hit, data, cut);
  };
}

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-download-resume-'));
  server = http.createServer((req, res) => {
    const hit: Hit = {
      path: req.url ?? '/',
      range: req.headers.range,
      ifRange: req.headers['if-range'] as string | undefined,
      status: 0,
      sent: 0,
    };
    hits.push(hit);
    const route = routes.get(hit.path);
    if (route) route(req, res, hit);
    else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await fsp.rm(dir, { recursive: true, force: true });
});

let n = 0;
beforeEach(() => {
  n++;
  cache = path.join(dir, `cache-${n}`);
});

const quiet = { progress: false };
const hitsOf = (p: string) => hits.filter((h) => h.path === p);
const listing = async (folder: string) => (await fsp.readdir(folder).catch(() => [])).sort();

describe('resume', () => {
  test('a connection cut mid-body keeps the part; the next call asks only for the rest', async () => {
    routes.set('/cut.bin', rangeServer({ file: () => body, etag: () => '"v1"', cutFirstAt: CUT }));
    const url = `${base}/cut.bin`;
    const models = path.join(cache, 'models');
    await assert.rejects(
      getFile('cut.bin', url, { cacheDir: cache, fileHash: sha256(body), ...quiet }),
      (error: XferError) => {
        assert.equal(error.code, 'DOWNLOAD_FAILED');
        assert.match(error.message, new RegExp(`broke off after ${CUT} of ${SIZE} bytes`));
        assert.match(error.message, /kept in .*cut\.bin\.part; run again to resume/);
        return true;
      },
    );
    assert.deepEqual(await listing(models), ['cut.bin.part', 'cut.bin.part.json']);
    assert.equal((await fsp.stat(path.join(models, 'cut.bin.part'))).size, CUT);

    const file = await getFile('cut.bin', url, {
      cacheDir: cache,
      fileHash: sha256(body),
      ...quiet,
    });
    assert.ok((await fsp.readFile(file)).equals(body));
    const [first, second] = hitsOf('/cut.bin');
    assert.deepEqual({ range: first!.range, sent: first!.sent }, { range: undefined, sent: CUT });
    // The second transfer is exactly the missing bytes, asked with the stored validator.
    assert.deepEqual(
      {
        range: second!.range,
        ifRange: second!.ifRange,
        status: second!.status,
        sent: second!.sent,
      },
      { range: `bytes=${CUT}-`, ifRange: '"v1"', status: 206, sent: SIZE - CUT },
    );
    assert.deepEqual(await listing(models), ['cut.bin']);
  });

  test('a server that ignores Range sends 200: the file starts over and is right', async () => {
    routes.set(
      '/norange.bin',
      rangeServer({ file: () => body, etag: () => '"v1"', cutFirstAt: CUT, ignoreRange: true }),
    );
    const url = `${base}/norange.bin`;
    await assert.rejects(getFile('norange.bin', url, { cacheDir: cache, ...quiet }), {
      code: 'DOWNLOAD_FAILED',
    });
    const file = await getFile('norange.bin', url, { cacheDir: cache, ...quiet });
    assert.ok((await fsp.readFile(file)).equals(body));
    const second = hitsOf('/norange.bin')[1]!;
    assert.deepEqual(
      { range: second.range, status: second.status, sent: second.sent },
      { range: `bytes=${CUT}-`, status: 200, sent: SIZE },
    );
  });

  test('a file changed on the server fails If-Range: the new file is fetched whole', async () => {
    let version = 1;
    routes.set(
      '/changed.bin',
      rangeServer({
        file: () => (version === 1 ? body : changed),
        etag: () => `"v${version}"`,
        cutFirstAt: CUT,
      }),
    );
    const url = `${base}/changed.bin`;
    await assert.rejects(getFile('changed.bin', url, { cacheDir: cache, ...quiet }));
    version = 2;
    const file = await getFile('changed.bin', url, {
      cacheDir: cache,
      fileHash: sha256(changed),
      ...quiet,
    });
    assert.ok((await fsp.readFile(file)).equals(changed));
    const second = hitsOf('/changed.bin')[1]!;
    assert.deepEqual(
      { ifRange: second.ifRange, status: second.status, sent: second.sent },
      { ifRange: '"v1"', status: 200, sent: SIZE },
    );
  });

  test('the hash covers the whole resumed file: a bad range is caught and the file fetched again', async () => {
    routes.set(
      '/corrupt.bin',
      rangeServer({ file: () => body, etag: () => '"v1"', cutFirstAt: CUT, corruptRange: true }),
    );
    const url = `${base}/corrupt.bin`;
    const opts = { cacheDir: cache, fileHash: sha256(body), ...quiet };
    await assert.rejects(getFile('corrupt.bin', url, opts));
    const file = await getFile('corrupt.bin', url, opts);
    assert.ok((await fsp.readFile(file)).equals(body));
    // cut, resumed (206, wrong bytes: refused), whole file again.
    assert.deepEqual(
      hitsOf('/corrupt.bin').map((h) => [h.status, h.sent]),
      [
        [200, CUT],
        [206, SIZE - CUT],
        [200, SIZE],
      ],
    );
  });

  test('a server that stalls mid-body hits the idle timeout; the next call resumes', async () => {
    let calls = 0;
    routes.set('/stall.bin', (req, res, hit) => {
      if (calls++ === 0) {
        hit.status = 200;
        res.writeHead(200, {
          'content-length': SIZE,
          'last-modified': 'Mon, 02 Nov 2026 10:00:00 GMT',
        });
        hit.sent = CUT;
        res.write(body.subarray(0, CUT)); // and then nothing
        return;
      }
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      const valid = req.headers['if-range'] === 'Mon, 02 Nov 2026 10:00:00 GMT';
      hit.status = valid && start > 0 ? 206 : 200;
      const from = hit.status === 206 ? start : 0;
      res.writeHead(hit.status, {
        'content-length': SIZE - from,
        ...(from > 0 ? { 'content-range': `bytes ${from}-${SIZE - 1}/${SIZE}` } : {}),
      });
      send(res, hit, body.subarray(from));
    });
    const url = `${base}/stall.bin`;
    await assert.rejects(
      getFile('stall.bin', url, { cacheDir: cache, idleTimeoutMs: 1000, ...quiet }),
      new RegExp(
        `broke off after ${CUT} of ${SIZE} bytes \\(no data for 1000 ms\\).*run again to resume`,
      ),
    );
    const file = await getFile('stall.bin', url, {
      cacheDir: cache,
      fileHash: sha256(body),
      ...quiet,
    });
    assert.ok((await fsp.readFile(file)).equals(body));
    const second = hitsOf('/stall.bin')[1]!;
    // Without an ETag, the Last-Modified date is the If-Range validator.
    assert.deepEqual(
      { range: second.range, ifRange: second.ifRange, sent: second.sent },
      { range: `bytes=${CUT}-`, ifRange: 'Mon, 02 Nov 2026 10:00:00 GMT', sent: SIZE - CUT },
    );
  });

  test('without a validator (no ETag or Last-Modified) nothing is kept to resume', async () => {
    routes.set('/plain.bin', (_req, res, hit) => {
      res.writeHead(200, { 'content-length': SIZE });
      send(res, hit, body, CUT);
    });
    await assert.rejects(getFile('plain.bin', `${base}/plain.bin`, { cacheDir: cache, ...quiet }));
    assert.deepEqual(await listing(path.join(cache, 'models')), []);
  });
});

describe('limits', () => {
  test('a Content-Length beyond maxBytes is refused before anything is written', async () => {
    routes.set('/big.bin', (_req, res, hit) => {
      res.writeHead(200, { 'content-length': SIZE, etag: '"v1"' });
      send(res, hit, body);
    });
    await assert.rejects(
      getFile('big.bin', `${base}/big.bin`, { cacheDir: cache, maxBytes: 100_000, ...quiet }),
      (error: XferError) => {
        assert.equal(error.code, 'DOWNLOAD_FAILED');
        assert.match(
          error.message,
          /announces 200000 bytes, more than the size cap of 100000 bytes \(maxBytes\); nothing was written/,
        );
        return true;
      },
    );
    assert.deepEqual(await listing(path.join(cache, 'models')), []);
  });

  test('a body without a length that grows past maxBytes is aborted and deleted', async () => {
    routes.set('/endless.bin', (_req, res, hit) => {
      res.writeHead(200, { etag: '"v1"' }); // chunked: no Content-Length
      send(res, hit, body);
    });
    await assert.rejects(
      getFile('endless.bin', `${base}/endless.bin`, {
        cacheDir: cache,
        maxBytes: 100_000,
        ...quiet,
      }),
      /larger than the size cap of 100000 bytes \(maxBytes\); the transfer was stopped/,
    );
    assert.deepEqual(await listing(path.join(cache, 'models')), []);
  });

  test('redirects: a loop stops at maxRedirects; https never goes down to http', async () => {
    routes.set('/loop', (_req, res) => {
      res.writeHead(302, { location: '/loop' });
      res.end();
    });
    const before = hitsOf('/loop').length;
    await assert.rejects(
      getFile('loop', `${base}/loop`, { cacheDir: cache, maxRedirects: 2, ...quiet }),
      /more than 2 redirects/,
    );
    assert.equal(hitsOf('/loop').length - before, 3);
    assert.match(
      redirectProblem(new URL('https://a.example/x'), new URL('http://b.example/x')) ?? '',
      /from https to plain http .*refusing the downgrade/,
    );
    assert.match(
      redirectProblem(new URL('https://a.example/x'), new URL('file:///etc/passwd')) ?? '',
      /not http\(s\)/,
    );
    assert.equal(
      redirectProblem(new URL('http://a.example/'), new URL('https://b.example/')),
      undefined,
    );
    assert.equal(
      redirectProblem(new URL('https://a.example/'), new URL('https://b.example/')),
      undefined,
    );
  });

  test('a full disk (ENOSPC) is one clear error and leaves no partial file', async () => {
    routes.set('/full.bin', (_req, res, hit) => {
      res.writeHead(200, { 'content-length': SIZE, etag: '"v1"' });
      send(res, hit, body);
    });
    const write = downloadSeams.write;
    let written = 0;
    downloadSeams.write = async (handle, chunk, position) => {
      if (written + chunk.length > 50_000) {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
          code: 'ENOSPC',
        });
      }
      written += chunk.length;
      return write(handle, chunk, position);
    };
    try {
      await assert.rejects(
        getFile('full.bin', `${base}/full.bin`, { cacheDir: cache, ...quiet }),
        (error: XferError) => {
          assert.equal(error.code, 'DOWNLOAD_FAILED');
          assert.match(
            error.message,
            /^the disk is full: no space left in .*models after writing 0\.\d MB of http:\/\/127\.0\.0\.1:\d+\/full\.bin \(the file needs 0\.2 MB\)\. The partial file was deleted\. Free some space there, or set XFER_HOME/,
          );
          assert.equal(error.details.errno, 'ENOSPC');
          return true;
        },
      );
    } finally {
      downloadSeams.write = write;
    }
    assert.deepEqual(await listing(path.join(cache, 'models')), []);
  });
});

describe('two processes', () => {
  test('two getFile calls in two processes for one file: both succeed, one download, right hash', async () => {
    // The server sends half the body, then holds the rest until the second process is seen
    // waiting on the lock, so the two really overlap on any machine.
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let firstByte: () => void = () => undefined;
    const started = new Promise<void>((resolve) => {
      firstByte = resolve;
    });
    routes.set('/slow.bin', (_req, res, hit) => {
      hit.status = 200;
      res.writeHead(200, { 'content-length': SIZE, etag: '"v1"' });
      res.write(body.subarray(0, SIZE / 2));
      firstByte();
      void released.then(() => {
        hit.sent = SIZE;
        res.end(body.subarray(SIZE / 2));
      });
    });
    const script = `
      import { getFile } from ${JSON.stringify(path.join(ROOT, 'src/weights/download.ts'))};
      const file = await getFile('slow.bin', ${JSON.stringify(`${base}/slow.bin`)}, {
        cacheDir: ${JSON.stringify(cache)}, fileHash: ${JSON.stringify(sha256(body))}, progress: false,
      });
      process.stdout.write(file);
    `;
    const run = (onStderr: (text: string) => void = () => undefined) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', '--input-type=module', '-e', script],
          { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => {
          stdout += d;
        });
        child.stderr.on('data', (d) => {
          stderr += d;
          onStderr(stderr);
        });
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const first = run();
    await started;
    // A safety net: a second process that never waits fails the assertions below, not the clock.
    const net = setTimeout(release, 20_000);
    const second = run((text) => {
      if (/waiting for process \d+, which is downloading/.test(text)) release();
    });
    const results = await Promise.all([first, second]);
    clearTimeout(net);
    const target = path.join(cache, 'models', 'slow.bin');
    for (const r of results) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, target);
    }
    assert.match(results[1].stderr, /waiting for process \d+, which is downloading .*slow\.bin/);
    assert.equal(sha256(await fsp.readFile(target)), sha256(body));
    // The second process waited, then found the file complete in the cache: one download.
    assert.equal(hitsOf('/slow.bin').length, 1);
    assert.deepEqual(await listing(path.join(cache, 'models')), ['slow.bin']);
  });

  test('a lock left by a dead process is broken; a live one is waited for', async () => {
    routes.set('/locked.bin', (_req, res, hit) => {
      res.writeHead(200, { 'content-length': SIZE });
      send(res, hit, body);
    });
    const models = path.join(cache, 'models');
    await fsp.mkdir(models, { recursive: true });
    // A pid that existed and has exited.
    const dead = spawn(process.execPath, ['-e', '']);
    const deadPid = dead.pid!;
    await new Promise((resolve) => dead.on('close', resolve));
    await fsp.writeFile(
      path.join(models, 'locked.bin.lock'),
      JSON.stringify({ pid: deadPid, host: os.hostname(), token: 'x', created: '' }),
    );
    const file = await getFile('locked.bin', `${base}/locked.bin`, { cacheDir: cache, ...quiet });
    assert.ok((await fsp.readFile(file)).equals(body));
    assert.deepEqual(await listing(models), ['locked.bin']);

    // A live holder: the second caller runs only after the first releases.
    const lock = path.join(dir, `live-${n}.lock`);
    const order: string[] = [];
    let waited = false;
    const first = withFileLock(lock, async () => {
      order.push('first in');
      await new Promise((resolve) => setTimeout(resolve, 300));
      order.push('first out');
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = withFileLock(lock, async () => order.push('second'), {
      pollMs: 20,
      onWait: (holder) => {
        waited = holder.pid === process.pid;
      },
    });
    await Promise.all([first, second]);
    assert.deepEqual(order, ['first in', 'first out', 'second']);
    assert.ok(waited);
  });

  test('a lock nobody refreshed for staleMs is broken even if its pid lives', async () => {
    const lock = path.join(dir, `old-${n}.lock`);
    await fsp.writeFile(
      lock,
      JSON.stringify({ pid: process.pid, host: os.hostname(), token: 'frozen', created: '' }),
    );
    const past = new Date(Date.now() - 10_000);
    await fsp.utimes(lock, past, past);
    const started = Date.now();
    const value = await withFileLock(lock, async () => 42, { staleMs: 5_000, pollMs: 20 });
    assert.equal(value, 42);
    assert.ok(Date.now() - started < 2_000);
    await assert.rejects(fsp.stat(lock), { code: 'ENOENT' });
  });
});

describe('datasets', () => {
  test('the cats-vs-dogs archive download resumes after a cut, and the data set is built', async () => {
    // A small archive of the same layout: PetImages/{Cat,Dog}/<n>.jpg, JFIF JPEGs.
    const app0 = Buffer.from([
      0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
      0x01, 0x00, 0x00,
    ]);
    const members: Record<string, Uint8Array> = {};
    for (const cls of ['Cat', 'Dog']) {
      for (let i = 0; i < 2; i++) {
        const jpeg = await sharp({
          create: { width: 64, height: 48, channels: 3, background: { r: i * 90, g: 10, b: 50 } },
        })
          .jpeg()
          .toBuffer();
        members[`PetImages/${cls}/${i}.jpg`] = Buffer.concat([
          jpeg.subarray(0, 2),
          app0,
          jpeg.subarray(2),
        ]);
      }
    }
    const archive = Buffer.from(zipSync(members, { level: 0 }));
    const cut = Math.floor(archive.length / 2);
    routes.set(
      '/kagglecatsanddogs_5340.zip',
      rangeServer({ file: () => archive, etag: () => '"zip1"', cutFirstAt: cut }),
    );
    const options = {
      url: `${base}/kagglecatsanddogs_5340.zip`,
      sha256: sha256(archive),
      size: archive.length,
      cacheDir: cache,
      dir: path.join(cache, 'small'),
      perClass: { train: 1, validation: 1, test: 0 },
      progress: false,
    };
    await assert.rejects(fetchCatsVsDogs(options), /run again to resume/);
    const result = await fetchCatsVsDogs(options);
    assert.equal(result.written, 4);
    assert.deepEqual(await listing(path.join(result.dir, 'train', 'dogs')), ['dog.0.jpg']);
    const second = hitsOf('/kagglecatsanddogs_5340.zip')[1]!;
    assert.deepEqual(
      { range: second.range, status: second.status, sent: second.sent },
      { range: `bytes=${cut}-`, status: 206, sent: archive.length - cut },
    );
  });
});
