import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { zipSync } from 'fflate';
import sharp from 'sharp';
import { fetchCatsVsDogs, ImageDataGenerator } from '../src/data/index.js';
import { XferError } from '../src/errors.js';
import { setQuiet } from '../src/util/log.js';
import { jsonLines, runXfer } from './helpers/cli.js';
import { makeTempDir } from './helpers/image-folders.js';

let tmp: string;
let server: http.Server;
let url: string;
let requests = 0;
let archive: Buffer;
let sha256: string;
const members = new Map<string, Uint8Array>();

before(async () => {
  setQuiet(true);
  tmp = await makeTempDir('datasets');
  // The archive's layout: PetImages/{Cat,Dog}/<n>.jpg, plus files TFDS passes over.
  for (const cls of ['Cat', 'Dog']) {
    for (let n = 0; n < 10; n++) {
      const jpeg = await sharp({
        create: {
          width: 8,
          height: 6,
          channels: 3,
          background: { r: n * 20, g: cls === 'Cat' ? 0 : 200, b: 50 },
        },
      })
        .jpeg()
        .toBuffer();
      members.set(`PetImages/${cls}/${n}.jpg`, withJfif(jpeg));
    }
  }
  members.set('PetImages/Cat/3.jpg', new Uint8Array(0)); // empty, like Cat/666.jpg
  // A JPEG without the JFIF marker, which TFDS drops too.
  members.set(
    'PetImages/Dog/5.jpg',
    await sharp(members.get('PetImages/Dog/4.jpg')!).jpeg().toBuffer(),
  );
  members.set('PetImages/Cat/Thumbs.db', new Uint8Array([1, 2, 3]));
  members.set('readme[1].txt', new TextEncoder().encode('Kaggle cats and dogs'));
  archive = Buffer.from(zipSync(Object.fromEntries(members), { level: 6 }));
  sha256 = createHash('sha256').update(archive).digest('hex');
  server = http.createServer((req, res) => {
    requests++;
    if (req.url !== '/kagglecatsanddogs_5340.zip') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': archive.length }).end(archive);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/kagglecatsanddogs_5340.zip`;
});

after(async () => {
  setQuiet(false);
  await new Promise((resolve) => server.close(resolve));
  await fsp.rm(tmp, { recursive: true, force: true });
});

/** Inserts a JFIF APP0 segment after SOI (sharp writes none; the archive's images have one). */
function withJfif(jpeg: Buffer): Buffer {
  const app0 = Buffer.from([
    0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01,
    0x00, 0x00,
  ]);
  return Buffer.concat([jpeg.subarray(0, 2), app0, jpeg.subarray(2)]);
}

const list = async (dir: string) => (await fsp.readdir(dir)).sort();

test('builds train/validation/test x cats/dogs in file-number order, dropping non-JFIF files as TFDS', async () => {
  assert.ok(Buffer.from(members.get('PetImages/Cat/0.jpg')!.subarray(0, 10)).includes('JFIF'));
  const dir = path.join(tmp, 'small');
  const options = {
    dir,
    url,
    sha256,
    size: archive.length,
    cacheDir: path.join(tmp, 'cache'),
    perClass: { train: 3, validation: 2, test: 2 },
    progress: false,
  };
  const result = await fetchCatsVsDogs(options);
  assert.equal(result.dir, dir);
  assert.deepEqual(result.dropped.sort(), ['PetImages/Cat/3.jpg', 'PetImages/Dog/5.jpg']);
  assert.equal(result.written, 14);
  assert.deepEqual(await list(path.join(dir, 'train', 'cats')), [
    'cat.0.jpg',
    'cat.1.jpg',
    'cat.2.jpg',
  ]);
  assert.deepEqual(await list(path.join(dir, 'validation', 'cats')), ['cat.4.jpg', 'cat.5.jpg']);
  assert.deepEqual(await list(path.join(dir, 'test', 'cats')), ['cat.6.jpg', 'cat.7.jpg']);
  assert.deepEqual(await list(path.join(dir, 'validation', 'dogs')), ['dog.3.jpg', 'dog.4.jpg']);
  assert.deepEqual(await list(path.join(dir, 'test', 'dogs')), ['dog.6.jpg', 'dog.7.jpg']);
  assert.deepEqual(
    await fsp.readFile(path.join(dir, 'test', 'dogs', 'dog.7.jpg')),
    Buffer.from(members.get('PetImages/Dog/7.jpg')!),
  );
  const it = await new ImageDataGenerator().flowFromDirectory(path.join(dir, 'train'), {
    targetSize: [6, 8],
    classMode: 'binary',
  });
  assert.deepEqual([it.samples, it.classIndices], [6, { cats: 0, dogs: 1 }]);

  // Complete: nothing to do. Interrupted (a file and the marker gone): only the missing file is
  // written, from the cached archive, without a new download.
  const before = requests;
  assert.equal((await fetchCatsVsDogs(options)).written, 0);
  await fsp.rm(path.join(dir, '.xfer-dataset.json'));
  await fsp.rm(path.join(dir, 'validation', 'dogs', 'dog.4.jpg'));
  assert.equal((await fetchCatsVsDogs(options)).written, 1);
  assert.equal(requests, before, 'the archive came from the cache');
  assert.ok(await fsp.stat(path.join(dir, 'validation', 'dogs', 'dog.4.jpg')));
});

test('a wrong hash or size is refused; too few images is a clear error', async () => {
  const common = { url, perClass: { train: 1, validation: 1, test: 1 }, progress: false };
  await assert.rejects(
    fetchCatsVsDogs({
      ...common,
      dir: path.join(tmp, 'h'),
      cacheDir: path.join(tmp, 'c1'),
      sha256: 'a'.repeat(64),
      size: null,
    }),
    (e: unknown) =>
      e instanceof XferError && e.code === 'HASH_MISMATCH' && /sha256/.test(e.message),
  );
  await assert.rejects(
    fetchCatsVsDogs({
      ...common,
      dir: path.join(tmp, 's'),
      cacheDir: path.join(tmp, 'c2'),
      sha256: null,
      size: 5,
    }),
    (e: unknown) =>
      e instanceof XferError &&
      e.code === 'HASH_MISMATCH' &&
      /has \d+ bytes, not 5/.test(e.message),
  );
  await assert.rejects(
    fetchCatsVsDogs({
      ...common,
      dir: path.join(tmp, 'n'),
      cacheDir: path.join(tmp, 'c3'),
      sha256,
      size: archive.length,
      perClass: { train: 5, validation: 5, test: 5 },
    }),
    (e: unknown) =>
      e instanceof XferError &&
      e.code === 'NO_DATA' &&
      /only 9 readable cats images; 15 are needed/.test(e.message),
  );
});

test('xfer datasets fetch cats-vs-dogs builds the folder from the command line', async () => {
  const dir = path.join(tmp, 'cli');
  const result = await runXfer(
    [
      'datasets',
      'fetch',
      'cats-vs-dogs',
      '--dir',
      dir,
      '--url',
      url,
      '--sha256',
      sha256,
      '--per-class',
      '2,1,1',
      '--json',
    ],
    { env: { XFER_HOME: path.join(tmp, 'cli-cache') } },
  );
  assert.equal(result.code, 0, result.stderr);
  const [line] = jsonLines(result.stdout);
  assert.deepEqual(line, {
    dir,
    perClass: { train: 2, validation: 1, test: 1 },
    dropped: 1,
    written: 8,
  });
  assert.deepEqual(await list(path.join(dir, 'train', 'dogs')), ['dog.0.jpg', 'dog.1.jpg']);
  const unknown = await runXfer(['datasets', 'fetch', 'cats-vs-dog']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /did you mean 'cats-vs-dogs'/);
});
