import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { ImageDataGenerator, loadImg } from '../src/data/index.js';
import { initBackend } from '../src/engine/backend.js';
import { XferError } from '../src/errors.js';
import { setQuiet } from '../src/util/log.js';
import { makeTempDir } from './helpers/image-folders.js';

let dir: string;

before(async () => {
  await initBackend();
  setQuiet(true);
  dir = await makeTempDir('formats');
});

after(async () => {
  setQuiet(false);
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A 6x4 RGB image with a distinct value in every byte. */
const width = 6;
const height = 4;
const rgb = Buffer.from(Array.from({ length: width * height * 3 }, (_, i) => (i * 23 + 7) % 256));
const raw = () => sharp(rgb, { raw: { width, height, channels: 3 } });

async function pixels(file: string, colorMode: 'rgb' | 'rgba' | 'grayscale' = 'rgb') {
  return [...(await loadImg(file, { colorMode })).data];
}

test('lossless formats decode to the exact pixels: PNG, WebP, TIFF, AVIF, GIF first frame', async () => {
  const cases: [string, Sharp][] = [
    ['png', raw().png()],
    ['webp', raw().webp({ lossless: true })],
    ['tiff', raw().tiff({ compression: 'lzw' })],
    ['avif', raw().avif({ lossless: true })],
  ];
  for (const [ext, pipeline] of cases) {
    const file = path.join(dir, `lossless.${ext}`);
    await pipeline.toFile(file);
    assert.deepEqual(await pixels(file), [...rgb], ext);
  }
  // An animated GIF: Keras (PIL) reads the first frame, and so do we.
  const red = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } })
    .png()
    .toBuffer();
  const blue = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'blue' } })
    .png()
    .toBuffer();
  const gif = path.join(dir, 'animated.gif');
  await sharp([red, blue], { join: { animated: true } })
    .gif()
    .toFile(gif);
  assert.equal((await sharp(gif).metadata()).pages, 2);
  const first = await loadImg(gif);
  assert.deepEqual([first.width, first.height], [4, 4]);
  assert.deepEqual([...first.data.subarray(0, 3)], [255, 0, 0]);
  assert.ok(
    first.data.every((v, i) => v === (i % 3 === 0 ? 255 : 0)),
    'only the first (red) frame',
  );
});

test('JPEG: progressive decodes like baseline; CMYK is converted to RGB', async () => {
  const base = path.join(dir, 'base.jpg');
  const progressive = path.join(dir, 'progressive.jpg');
  const smooth = sharp({
    create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 30, b: 60 } },
  });
  await smooth.clone().jpeg({ quality: 95 }).toFile(base);
  await smooth.clone().jpeg({ quality: 95, progressive: true }).toFile(progressive);
  const b = await pixels(base);
  const p = await pixels(progressive);
  assert.ok(
    b.every((v, i) => Math.abs(v - p[i]!) <= 1),
    'progressive = baseline within 1',
  );
  assert.ok(Math.abs(b[0]! - 200) <= 3 && Math.abs(b[1]! - 30) <= 3 && Math.abs(b[2]! - 60) <= 3);

  const cmyk = path.join(dir, 'cmyk.jpg');
  await smooth.clone().toColourspace('cmyk').jpeg({ quality: 95 }).toFile(cmyk);
  const meta = await sharp(cmyk).metadata();
  assert.deepEqual([meta.space, meta.channels], ['cmyk', 4]);
  const img = await loadImg(cmyk);
  assert.equal(img.channels, 3);
  // Through libvips's CMYK profile and back: the colour survives within a few levels per channel.
  const [r, g, bl] = img.data;
  assert.ok(
    Math.abs(r! - 200) <= 25 && Math.abs(g! - 30) <= 25 && Math.abs(bl! - 60) <= 25,
    `${r},${g},${bl}`,
  );
  assert.ok(r! > g! && bl! > g!, 'hue order kept');
});

test('PNG palette, 16-bit and alpha: exact values; alpha dropped for rgb (as PIL), kept for rgba', async () => {
  const palette = path.join(dir, 'palette.png');
  const two = Buffer.from([255, 0, 0, 0, 0, 255, 0, 0, 255, 255, 0, 0]); // red, blue / blue, red
  await sharp(two, { raw: { width: 2, height: 2, channels: 3 } })
    .png({ palette: true, colours: 4, dither: 0 })
    .toFile(palette);
  assert.equal((await sharp(palette).metadata()).isPalette, true);
  assert.deepEqual(await pixels(palette), [...two]);

  // A 16-bit RGB PNG written by hand (big-endian samples, filter 0).
  const deep = path.join(dir, 'deep.png');
  const words = [0x8080, 0x1234, 0xffff, 0x0000, 0x00ff, 0xff00];
  const scanline = Buffer.alloc(1 + words.length * 2);
  words.forEach((v, i) => {
    scanline.writeUInt16BE(v, 1 + i * 2);
  });
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(2, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr.set([16, 2, 0, 0, 0], 8);
  await fsp.writeFile(
    deep,
    Buffer.concat([
      PNG_SIGNATURE,
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(scanline)),
      chunk('IEND', Buffer.alloc(0)),
    ]),
  );
  assert.equal((await sharp(deep).metadata()).depth, 'ushort');
  // PIL (Keras) keeps the high byte of each 16-bit sample.
  assert.deepEqual(
    await pixels(deep),
    words.map((v) => v >> 8),
  );

  const alpha = path.join(dir, 'alpha.png');
  await sharp(Buffer.from([255, 0, 0, 128, 0, 255, 0, 0]), {
    raw: { width: 2, height: 1, channels: 4 },
  })
    .png()
    .toFile(alpha);
  assert.deepEqual(await pixels(alpha, 'rgb'), [255, 0, 0, 0, 255, 0]);
  assert.deepEqual(await pixels(alpha, 'rgba'), [255, 0, 0, 128, 0, 255, 0, 0]);
  // PIL's L of (255, 0, 0) = (255 * 19595 + 0x8000) >> 16 = 76
  assert.deepEqual(await pixels(alpha, 'grayscale'), [76, 150]);
});

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** CRC-32 (PNG's), for hand-made chunks. */
function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

/** A PNG header claiming width x height with no pixel data: a decompression bomb's shape. */
function pngClaiming(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A BMP header claiming width x height, 24-bit, with no pixel data. */
function bmpClaiming(w: number, h: number): Buffer {
  const b = Buffer.alloc(54);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(54, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  return b;
}

test('the pixel limit refuses decompression bombs from the header, before decoding', async () => {
  const bomb = path.join(dir, 'bomb.png');
  await fsp.writeFile(bomb, pngClaiming(30000, 30000));
  await assert.rejects(
    loadImg(bomb),
    (e: unknown) =>
      e instanceof XferError &&
      e.code === 'CORRUPT_FILE' &&
      /30000x30000 = 900000000 pixels, over the limit of 268402689/.test(e.message),
  );
  const bmpBomb = path.join(dir, 'bomb.bmp');
  await fsp.writeFile(bmpBomb, bmpClaiming(20000, 20000));
  await assert.rejects(loadImg(bmpBomb), /20000x20000 = 400000000 pixels/);
  // The limit is configurable: a 6x4 image is refused under 20 pixels, read under 24.
  const small = path.join(dir, 'small.png');
  await raw().png().toFile(small);
  await assert.rejects(
    loadImg(small, { limitInputPixels: 20 }),
    /6x4 = 24 pixels, over the limit of 20/,
  );
  assert.equal((await loadImg(small, { limitInputPixels: 24 })).width, 6);
  await assert.rejects(loadImg(small, { limitInputPixels: -1 }), /limitInputPixels/);
  // flowFromDirectory skips a bomb at scan time, naming it.
  const tree = path.join(dir, 'tree');
  await fsp.mkdir(path.join(tree, 'a'), { recursive: true });
  await fsp.copyFile(bomb, path.join(tree, 'a', 'bomb.png'));
  await fsp.copyFile(small, path.join(tree, 'a', 'ok.png'));
  const it = await new ImageDataGenerator().flowFromDirectory(tree, { targetSize: [4, 6] });
  assert.deepEqual(it.filenames, [path.join('a', 'ok.png')]);
  assert.match(it.skipped[0]!.reason, /over the limit/);
});

test('symbolic links to folders are followed only with followLinks; links to files always count', async () => {
  const tree = path.join(dir, 'links');
  const outside = path.join(dir, 'outside');
  await fsp.mkdir(path.join(tree, 'cats'), { recursive: true });
  await fsp.mkdir(outside, { recursive: true });
  const small = path.join(dir, 'small.png');
  await raw().png().toFile(small);
  await fsp.copyFile(small, path.join(tree, 'cats', 'a.png'));
  await fsp.copyFile(small, path.join(outside, 'b.png'));
  await fsp.symlink(outside, path.join(tree, 'cats', 'more'));
  await fsp.symlink(small, path.join(tree, 'cats', 'c.png'));
  const gen = new ImageDataGenerator();
  const plain = await gen.flowFromDirectory(tree, { targetSize: [4, 6] });
  assert.deepEqual(plain.filenames, [path.join('cats', 'a.png'), path.join('cats', 'c.png')]);
  const followed = await gen.flowFromDirectory(tree, { targetSize: [4, 6], followLinks: true });
  assert.deepEqual(followed.filenames, [
    path.join('cats', 'a.png'),
    path.join('cats', 'c.png'),
    path.join('cats', 'more', 'b.png'),
  ]);
  // A link back up the tree does not loop.
  await fsp.symlink(tree, path.join(tree, 'cats', 'loop'));
  const looped = await gen.flowFromDirectory(tree, { targetSize: [4, 6], followLinks: true });
  assert.ok(looped.samples >= 3 && looped.samples < 10);
});
