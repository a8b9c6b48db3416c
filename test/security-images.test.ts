/**
 * Image decoding treats files as untrusted: the format comes from the bytes, not the name (a PNG
 * named .jpg loads; text, SVG or PDF named .jpg never reach a decoder), and the pixel limit
 * (default sharp's 268402689, configurable) is checked from the header before decoding.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { DEFAULT_PIXEL_LIMIT } from '../src/data/decode.js';
import { sniffImageFormat } from '../src/data/decoders.js';
import { ImageDataGenerator, loadImg } from '../src/data/index.js';
import { XferError } from '../src/errors.js';
import { captureStderr } from './helpers/weights-fixtures.js';

let dir: string;
before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-security-images-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A 5x3 image whose every byte differs, as lossless PNG. */
const rgb = Buffer.from(Array.from({ length: 5 * 3 * 3 }, (_, i) => (i * 37 + 11) % 256));
const png = () =>
  sharp(rgb, { raw: { width: 5, height: 3, channels: 3 } })
    .png()
    .toBuffer();

async function corruptError(file: string, options = {}): Promise<XferError> {
  try {
    await loadImg(file, options);
  } catch (error) {
    assert.ok(error instanceof XferError, String(error));
    assert.equal(error.code, 'CORRUPT_FILE');
    return error;
  }
  assert.fail(`${file} loaded`);
}

test('a PNG named .jpg loads as the PNG it is, pixel for pixel', async () => {
  const file = path.join(dir, 'really-a-png.jpg');
  await fsp.writeFile(file, await png());
  const img = await loadImg(file);
  assert.deepEqual([img.width, img.height], [5, 3]);
  assert.deepEqual([...img.data], [...rgb]);
});

test('text, SVG and PDF named .jpg are refused from their bytes, before any decoder', async () => {
  const svg =
    '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4" fill="red"/></svg>';
  // libvips would decode this SVG (librsvg): the refusal is xfer's own, not sharp's.
  assert.equal((await sharp(Buffer.from(svg)).metadata()).format, 'svg');
  const cases: [string, string][] = [
    ['text.jpg', 'hello, I am not an image\n'],
    ['vector.jpg', svg],
    ['doc.jpg', '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n'],
  ];
  for (const [name, content] of cases) {
    const file = path.join(dir, name);
    await fsp.writeFile(file, content);
    const error = await corruptError(file);
    assert.match(error.message, /not JPEG, PNG, GIF, WebP, TIFF, AVIF\/HEIF, BMP or PNM/, name);
  }
});

test('a text file named .jpg in a class folder is skipped as not an image', async () => {
  const root = path.join(dir, 'folder');
  await fsp.mkdir(path.join(root, 'a'), { recursive: true });
  await fsp.writeFile(path.join(root, 'a', 'ok.jpg'), await png());
  await fsp.writeFile(path.join(root, 'a', 'text.jpg'), 'not an image at all');
  const { result: it } = await captureStderr(() =>
    new ImageDataGenerator().flowFromDirectory(root, { targetSize: [3, 5], batchSize: 1 }),
  );
  assert.equal(it.samples, 1);
  assert.deepEqual(
    it.skipped.map((s) => s.filename),
    [path.join('a', 'text.jpg')],
  );
});

test('sniffImageFormat names each allowed format from its first bytes', async () => {
  const raw = () => sharp(rgb, { raw: { width: 5, height: 3, channels: 3 } });
  assert.equal(sniffImageFormat(await raw().jpeg().toBuffer()), 'jpeg');
  assert.equal(sniffImageFormat(await raw().png().toBuffer()), 'png');
  assert.equal(sniffImageFormat(await raw().gif().toBuffer()), 'gif');
  assert.equal(sniffImageFormat(await raw().webp().toBuffer()), 'webp');
  assert.equal(sniffImageFormat(await raw().tiff().toBuffer()), 'tiff');
  assert.equal(sniffImageFormat(await raw().avif().toBuffer()), 'heif');
  assert.equal(sniffImageFormat(Buffer.from('BM')), 'bmp');
  assert.equal(sniffImageFormat(Buffer.from('P6\n1 1\n255\n')), 'pnm');
  assert.equal(sniffImageFormat(Buffer.from('<svg')), undefined);
  assert.equal(sniffImageFormat(new Uint8Array(0)), undefined);
});

/** A PNG whose header claims width x height, with one tiny (invalid) data chunk. */
function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const chunk = (type: string, body: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, 'latin1');
    return Buffer.concat([head, body, Buffer.alloc(4)]); // CRC left 0: never reached
  };
  return Buffer.concat([
    Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.alloc(16)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test("the pixel limit defaults to sharp's 268402689 and is read from the header", async () => {
  assert.equal(DEFAULT_PIXEL_LIMIT, 268402689);
  // 16384 x 16384 = 268435456 pixels, just over: refused from 57 bytes, nothing allocated.
  const bomb = path.join(dir, 'bomb.png');
  await fsp.writeFile(bomb, pngHeader(16384, 16384));
  const error = await corruptError(bomb);
  assert.match(error.message, /16384x16384 = 268435456 pixels, over the limit of 268402689/);
});

test('limitInputPixels is configurable: 15 pixels pass at 15, fail at 14', async () => {
  const file = path.join(dir, 'small.png');
  await fsp.writeFile(file, await png());
  assert.equal((await loadImg(file, { limitInputPixels: 15 })).width, 5);
  const error = await corruptError(file, { limitInputPixels: 14 });
  assert.match(error.message, /5x3 = 15 pixels, over the limit of 14/);
});
