/**
 * The image workers' JPEG decoder (libjpeg-turbo in WebAssembly): it gives sharp's pixels, and
 * Pillow's where Debian's python3-pil is installed, for the plain files it takes, and leaves
 * every other file (EXIF rotation, CMYK, truncated, over the pixel limit) to sharp. An embedded ICC
 * profile is ignored on both paths, as Pillow ignores it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { decodeImageBytes, finishImage, resolveLoadOptions } from '../src/data/decode.js';
import { decodePlainJpeg, jpegCodec, plainJpegHeader } from '../src/data/jpeg-wasm.js';
import { Random } from '../src/util/random.js';
import { makeTempDir } from './helpers/image-folders.js';

let dir: string;
before(async () => {
  dir = await makeTempDir('jpeg-wasm');
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A photo-like RGB image (gradients and noise), odd-sized so partial MCUs are exercised. */
function photo(width: number, height: number, seed: number): ReturnType<typeof sharp> {
  const random = new Random(seed);
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        pixels[(y * width + x) * 3 + c] = (x * (c + 1) + y * 2 + random.randint(0, 40)) & 255;
      }
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } });
}

/** `jpeg` with an APP1 Exif segment holding only an Orientation tag (big-endian TIFF). */
function withOrientation(jpeg: Buffer, orientation: number): Buffer {
  const tiff = Buffer.from([
    ...[0x4d, 0x4d, 0x00, 0x2a, 0, 0, 0, 8], // "MM", 42, IFD0 at 8
    ...[0, 1], // one entry
    ...[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0], // Orientation, SHORT, 1 value
    ...[0, 0, 0, 0], // no next IFD
  ]);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const length = Buffer.from([(payload.length + 2) >> 8, (payload.length + 2) & 255]);
  return Buffer.concat([
    jpeg.subarray(0, 2),
    Buffer.from([0xff, 0xe1]),
    length,
    payload,
    jpeg.subarray(2),
  ]);
}

async function plainJpegs(): Promise<Record<string, Buffer>> {
  const base = photo(203, 151, 3);
  return {
    baseline: await base.clone().jpeg({ quality: 90 }).toBuffer(),
    progressive: await base.clone().jpeg({ quality: 80, progressive: true }).toBuffer(),
    '4:4:4': await base.clone().jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer(),
    grey: await base.clone().toColourspace('b-w').jpeg({ quality: 90 }).toBuffer(),
    'EXIF without rotation': withOrientation(await base.clone().jpeg().toBuffer(), 1),
    'EXIF, no orientation tag': await base
      .clone()
      .jpeg()
      .withExif({ IFD0: { Copyright: 'xfer' } })
      .toBuffer(),
    // Display P3: sharp would convert through the profile unless told to ignore it, as PIL does.
    'an ICC profile': await base.clone().jpeg({ quality: 95 }).withIccProfile('p3').toBuffer(),
  };
}

test('plain JPEGs decode to exactly the pixels sharp gives (after load_img conversion)', async () => {
  const codec = await jpegCodec();
  assert.ok(codec, 'the WebAssembly codec loads');
  for (const [name, bytes] of Object.entries(await plainJpegs())) {
    const header = plainJpegHeader(bytes);
    assert.deepEqual(header && [header.width, header.height], [203, 151], name);
    const raw = decodePlainJpeg(codec, bytes, Number.POSITIVE_INFINITY);
    assert.ok(raw, `${name}: decoded by the codec`);
    assert.equal(raw.channels, name === 'grey' ? 1 : 3, name);
    const viaSharp = await decodeImageBytes(bytes, `${name}.jpg`);
    for (const colorMode of ['rgb', 'grayscale', 'rgba'] as const) {
      for (const interpolation of ['nearest', 'bilinear'] as const) {
        const options = resolveLoadOptions({ colorMode, interpolation, targetSize: [64, 80] });
        assert.deepEqual(
          finishImage(raw, options).data,
          finishImage(viaSharp, options).data,
          `${name}, ${colorMode}, ${interpolation}`,
        );
      }
    }
  }
});

test("plain JPEGs decode to Pillow's pixels (Debian python3-pil)", async (t) => {
  const python = '/usr/bin/python3';
  try {
    execFileSync(python, ['-c', 'import PIL'], { stdio: 'ignore' });
  } catch {
    t.skip(
      'Debian python3-pil is not installed at /usr/bin/python3: the Pillow comparison is skipped',
    );
    return;
  }
  const codec = (await jpegCodec())!;
  for (const [name, bytes] of Object.entries(await plainJpegs())) {
    const file = path.join(dir, `${name.replace(/\W/g, '_')}.jpg`);
    await fsp.writeFile(file, bytes);
    const pil = execFileSync(
      python,
      [
        '-c',
        'import sys; from PIL import Image; sys.stdout.buffer.write(Image.open(sys.argv[1]).tobytes())',
        file,
      ],
      { maxBuffer: 1 << 24 },
    );
    const raw = decodePlainJpeg(codec, bytes, Number.POSITIVE_INFINITY)!;
    assert.ok(Buffer.from(raw.data).equals(pil), `${name}: the same bytes as Pillow`);
  }
});

test('files that need more than libjpeg are left to sharp', async () => {
  const codec = (await jpegCodec())!;
  const base = photo(64, 48, 5);
  const plain = await base.clone().jpeg().toBuffer();
  const cases: Record<string, Buffer> = {
    'EXIF orientation 6 (rotated)': withOrientation(plain, 6),
    CMYK: await base.clone().toColourspace('cmyk').jpeg().toBuffer(),
    truncated: plain.subarray(0, plain.length - 100),
    'no end-of-image marker': plain.subarray(0, plain.length - 2),
    'not a JPEG': await base.clone().png().toBuffer(),
  };
  assert.equal((await sharp(cases['EXIF orientation 6 (rotated)']!).metadata()).orientation, 6);
  for (const [name, bytes] of Object.entries(cases)) {
    assert.equal(plainJpegHeader(bytes), null, name);
    assert.equal(decodePlainJpeg(codec, bytes, Number.POSITIVE_INFINITY), null, name);
  }
  // Over the pixel limit: sharp refuses it with the usual message.
  assert.equal(decodePlainJpeg(codec, plain, 64 * 48 - 1), null);
  await assert.rejects(decodeImageBytes(plain, 'big.jpg', 64 * 48 - 1), /over the limit/);
  // Scan data the codec cannot decode (a plain header, garbage after it): left to sharp, and the
  // codec still decodes the next file.
  const sos = plain.indexOf(Buffer.from([0xff, 0xda]));
  const garbage = Buffer.concat([
    plain.subarray(0, sos + 20),
    Buffer.alloc(300, 0xff),
    Buffer.from([0xff, 0xd9]),
  ]);
  assert.ok(plainJpegHeader(garbage), 'the header alone looks plain');
  assert.equal(decodePlainJpeg(codec, garbage, Number.POSITIVE_INFINITY), null);
  assert.equal(decodePlainJpeg(codec, plain, Number.POSITIVE_INFINITY)?.width, 64);
});
