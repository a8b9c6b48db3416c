import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import type { XferError } from '../src/errors.js';
import { cacheDir, getFile, loadWeights } from '../src/weights/index.js';
import {
  captureStderr,
  kerasFixtureModel,
  kerasFixtureOutput,
  writeH5pyFixture,
} from './helpers/weights-fixtures.js';
import { closedPort, startServer, type TestServer } from './helpers/weights-server.js';

let dir: string;
let cache: string;
let body: Buffer;
let sha256: string;
let md5: string;
let server: TestServer;
const savedHome = process.env.XFER_HOME;

before(async () => {
  await initBackend();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-weights-download-'));
  const fixture = path.join(dir, 'fixture.h5');
  await writeH5pyFixture('save_weights', fixture);
  body = await fsp.readFile(fixture);
  sha256 = createHash('sha256').update(body).digest('hex');
  md5 = createHash('md5').update(body).digest('hex');
  server = await startServer({
    '/weights.h5': (_req, res) => {
      res.writeHead(200, {
        'content-length': body.length,
        'content-type': 'application/octet-stream',
      });
      res.end(body);
    },
    '/redirect/weights.h5': (_req, res) => {
      res.writeHead(302, { location: '/weights.h5' });
      res.end();
    },
    '/loop': (_req, res) => {
      res.writeHead(301, { location: '/loop' });
      res.end();
    },
    '/truncated.h5': (_req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 1000));
      // Give the first bytes time to leave, then drop the connection mid-body.
      setTimeout(() => res.destroy(), 50);
    },
    '/stalled.h5': (_req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 10));
    },
  });
});
after(async () => {
  await server.close();
  await fsp.rm(dir, { recursive: true, force: true });
  if (savedHome === undefined) delete process.env.XFER_HOME;
  else process.env.XFER_HOME = savedHome;
});

let n = 0;
beforeEach(() => {
  n++;
  cache = path.join(dir, `cache-${n}`);
});

const quiet = { progress: false };

/** The error must name the URL and the exact path to put the file by hand. */
function namesUrlAndPath(code: string, url: string, file: string, message: RegExp) {
  return (error: XferError) => {
    assert.equal(error.code, code);
    assert.match(error.message, message);
    assert.ok(error.message.includes(url), `message names the URL: ${error.message}`);
    assert.ok(error.message.includes(file), `message names ${file}: ${error.message}`);
    return true;
  };
}

async function leftovers(folder: string): Promise<string[]> {
  try {
    return await fsp.readdir(folder);
  } catch {
    return [];
  }
}

describe('getFile', () => {
  test('downloads once, checks the sha256, then answers from the cache without the network', async () => {
    const url = `${server.url}/weights.h5`;
    const before = server.requests.length;
    const file = await getFile('weights.h5', url, { cacheDir: cache, fileHash: sha256, ...quiet });
    assert.equal(file, path.join(cache, 'models', 'weights.h5'));
    assert.ok((await fsp.readFile(file)).equals(body));
    const again = await getFile('weights.h5', url, { cacheDir: cache, fileHash: sha256, ...quiet });
    assert.equal(again, file);
    assert.deepEqual(server.requests.slice(before), ['/weights.h5']);
    assert.deepEqual(await leftovers(path.join(cache, 'models')), ['weights.h5']);
  });

  test("an md5 is recognized by its length ('auto'), and a cacheSubdir is honoured", async () => {
    const file = await getFile('w.h5', `${server.url}/weights.h5`, {
      cacheDir: cache,
      cacheSubdir: 'datasets',
      fileHash: md5,
      ...quiet,
    });
    assert.equal(file, path.join(cache, 'datasets', 'w.h5'));
  });

  test('follows redirects, at most 5', async () => {
    const before = server.requests.length;
    await getFile('weights.h5', `${server.url}/redirect/weights.h5`, {
      cacheDir: cache,
      fileHash: sha256,
      ...quiet,
    });
    assert.deepEqual(server.requests.slice(before), ['/redirect/weights.h5', '/weights.h5']);
    const url = `${server.url}/loop`;
    await assert.rejects(
      getFile('loop', url, { cacheDir: cache, ...quiet }),
      namesUrlAndPath(
        'DOWNLOAD_FAILED',
        url,
        path.join(cache, 'models', 'loop'),
        /more than 5 redirects/,
      ),
    );
  });

  test('a hash mismatch deletes the download and says where to put the file', async () => {
    const url = `${server.url}/weights.h5`;
    const wrong = '0'.repeat(64);
    const target = path.join(cache, 'models', 'weights.h5');
    await assert.rejects(
      getFile('weights.h5', url, { cacheDir: cache, fileHash: wrong, ...quiet }),
      namesUrlAndPath(
        'HASH_MISMATCH',
        url,
        target,
        new RegExp(
          `has sha256 ${sha256}, but 0{64} was expected, so it was deleted.*put it at .*\\(its sha256 must be 0{64}\\)`,
        ),
      ),
    );
    assert.deepEqual(await leftovers(path.join(cache, 'models')), []);
  });

  test('a cached file whose hash does not match is downloaded again, with a warning', async () => {
    const target = path.join(cache, 'models', 'weights.h5');
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await fsp.writeFile(target, 'stale partial content');
    const before = server.requests.length;
    const { stderr } = await captureStderr(() =>
      getFile('weights.h5', `${server.url}/weights.h5`, {
        cacheDir: cache,
        fileHash: sha256,
        ...quiet,
      }),
    );
    assert.match(
      stderr,
      /the cached file .*weights\.h5 has sha256 [0-9a-f]{64}, not [0-9a-f]{64} \(incomplete or outdated\); downloading it again/,
    );
    assert.equal(server.requests.length - before, 1);
    assert.ok((await fsp.readFile(target)).equals(body));
  });

  test('a truncated body fails and leaves nothing behind', async () => {
    const url = `${server.url}/truncated.h5`;
    const target = path.join(cache, 'models', 'truncated.h5');
    await assert.rejects(
      getFile('truncated.h5', url, { cacheDir: cache, ...quiet }),
      namesUrlAndPath(
        'DOWNLOAD_FAILED',
        url,
        target,
        new RegExp(
          `(broke off after 1000 of ${body.length} bytes|truncated: 1000 of ${body.length} bytes)`,
        ),
      ),
    );
    assert.deepEqual(await leftovers(path.join(cache, 'models')), []);
  });

  test('HTTP 404 fails, naming the status', async () => {
    const url = `${server.url}/missing.h5`;
    await assert.rejects(
      getFile('missing.h5', url, { cacheDir: cache, ...quiet }),
      namesUrlAndPath(
        'DOWNLOAD_FAILED',
        url,
        path.join(cache, 'models', 'missing.h5'),
        /the server answered HTTP 404 Not Found/,
      ),
    );
  });

  test('a refused connection fails, saying so', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/weights.h5`;
    await assert.rejects(
      getFile('weights.h5', url, { cacheDir: cache, ...quiet }),
      namesUrlAndPath(
        'DOWNLOAD_FAILED',
        url,
        path.join(cache, 'models', 'weights.h5'),
        /the connection was refused/,
      ),
    );
  });

  test('a server that stops sending times out', async () => {
    const url = `${server.url}/stalled.h5`;
    await assert.rejects(
      getFile('stalled.h5', url, { cacheDir: cache, idleTimeoutMs: 200, ...quiet }),
      namesUrlAndPath(
        'DOWNLOAD_FAILED',
        url,
        path.join(cache, 'models', 'stalled.h5'),
        /broke off after 10 of \d+ bytes \(no data for 200 ms\)/,
      ),
    );
  });

  test('bad arguments are named', async () => {
    await assert.rejects(getFile('a/b.h5', `${server.url}/weights.h5`), {
      code: 'INVALID_ARGUMENT',
      message:
        "Expected a plain file name (no folders) for fname but received 'a/b.h5' of type string",
    });
    await assert.rejects(getFile('a.h5', 'ftp://example.com/a.h5'), {
      code: 'INVALID_ARGUMENT',
      message: /for origin/,
    });
    await assert.rejects(getFile('a.h5', `${server.url}/weights.h5`, { fileHash: 'abc' }), {
      code: 'INVALID_ARGUMENT',
      message: /Expected a md5 hash of 32 hex digits for fileHash but received 'abc'/,
    });
    await assert.rejects(
      getFile('a.h5', `${server.url}/weights.h5`, { fileHash: md5, hashAlgorithm: 'sha256' }),
      {
        code: 'INVALID_ARGUMENT',
        message: /a sha256 hash of 64 hex digits/,
      },
    );
  });
});

describe('cacheDir and URL sources', () => {
  test('cacheDir is $XFER_HOME, else ~/.cache/xfer', () => {
    process.env.XFER_HOME = path.join(dir, 'home');
    assert.equal(cacheDir(), path.join(dir, 'home'));
    assert.equal(cacheDir('models'), path.join(dir, 'home', 'models'));
    delete process.env.XFER_HOME;
    assert.equal(cacheDir(), path.join(os.homedir(), '.cache', 'xfer'));
  });

  test('loadWeights from a URL downloads into $XFER_HOME/models and loads the Keras file', async () => {
    process.env.XFER_HOME = path.join(dir, 'url-home');
    const model = kerasFixtureModel();
    await loadWeights(model, `${server.url}/weights.h5`, { fileHash: sha256 });
    assert.ok(
      (await fsp.readFile(path.join(dir, 'url-home', 'models', 'weights.h5'))).equals(body),
    );
    const output = tf.tidy(
      () => (model.predict(tf.tensor2d([[1, 2, 3]])) as tf.Tensor).dataSync()[0]!,
    );
    assert.ok(Math.abs(output - kerasFixtureOutput([1, 2, 3])) < 1e-5);
  });
});
