import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { arrayToImg, imgToArray, loadImg, saveImg } from '../src/data/index.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';

let dir: string;
const file = (name: string) => path.join(dir, name);

/** Writes raw 8-bit pixels (interleaved) as an image file with sharp. */
async function writeImage(
  name: string,
  data: number[],
  width: number,
  height: number,
  channels: 1 | 3 | 4,
  format: 'png' | 'webp' | 'gif' | 'tiff' | 'jpeg' = 'png',
) {
  let image = sharp(Buffer.from(data), { raw: { width, height, channels } });
  if (channels === 1) image = image.toColourspace('b-w');
  // Lossless settings so decoded pixels can be compared exactly (sharp's TIFF default is JPEG).
  const lossless =
    format === 'webp'
      ? { lossless: true }
      : format === 'tiff'
        ? { compression: 'lzw' as const }
        : {};
  await image.toFormat(format, lossless).toFile(file(name));
}

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-data-image-'));
});

after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

test('loadImg keeps the size, or resizes to targetSize [height, width]', async () => {
  await writeImage('size.png', new Array(40 * 30 * 3).fill(9), 40, 30, 3);
  const img = await loadImg(file('size.png'));
  assert.deepEqual(
    [img.width, img.height, img.channels, img.data.length],
    [40, 30, 3, 40 * 30 * 3],
  );
  const small = await loadImg(file('size.png'), { targetSize: [10, 20] });
  assert.deepEqual([small.width, small.height, small.channels], [20, 10, 3]);
  assert.ok(small.data.every((v) => v === 9));
});

test('colour modes convert like PIL: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16', async () => {
  // Pure red, green, blue: 255*19595 + 32768 >> 16 = 76 (PIL's R*299/1000 = 76.2), 150, 29.
  await writeImage('rgb.png', [255, 0, 0, 0, 255, 0, 0, 0, 255], 3, 1, 3);
  const gray = await loadImg(file('rgb.png'), { colorMode: 'grayscale' });
  assert.equal(gray.channels, 1);
  assert.deepEqual([...gray.data], [76, 150, 29]);
  const rgba = await loadImg(file('rgb.png'), { colorMode: 'rgba' });
  assert.deepEqual([...rgba.data], [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255]);
  // RGBA -> RGB drops alpha (PIL's convert('RGB') does not composite onto a background).
  await writeImage('rgba.png', [200, 10, 30, 128, 1, 2, 3, 0], 2, 1, 4);
  const rgb = await loadImg(file('rgba.png'));
  assert.deepEqual([...rgb.data], [200, 10, 30, 1, 2, 3]);
  // A grayscale source becomes three equal channels.
  await writeImage('gray.png', [0, 100, 250], 3, 1, 1);
  const fromGray = await loadImg(file('gray.png'));
  assert.deepEqual([...fromGray.data], [0, 0, 0, 100, 100, 100, 250, 250, 250]);
  assert.deepEqual(
    [...(await loadImg(file('gray.png'), { colorMode: 'grayscale' })).data],
    [0, 100, 250],
  );
});

test("nearest resize picks PIL's pixels, where libvips's nearest kernel differs", async () => {
  // 5 -> 16 wide: Pillow 9.4 reads source columns 0,0,0,1,1,1,2,2,2,2,3,3,3,4,4,4 (sharp's own
  // nearest gives 0,0,0,0,1,1,1,...). 5 -> 3: positions 5/6, 5/2, 25/6 truncate to 0, 2, 4.
  await writeImage('row.png', [0, 50, 100, 150, 200], 5, 1, 1);
  const up = await loadImg(file('row.png'), { targetSize: [1, 16], colorMode: 'grayscale' });
  assert.deepEqual(
    [...up.data],
    [0, 0, 0, 50, 50, 50, 100, 100, 100, 100, 150, 150, 150, 200, 200, 200],
  );
  const down = await loadImg(file('row.png'), { targetSize: [1, 3], colorMode: 'grayscale' });
  assert.deepEqual([...down.data], [0, 100, 200]);
});

test("bilinear resize is PIL's antialiased filter (hand-computed, equal to Pillow 9.4)", async () => {
  // 4 -> 2: scale 2, support 2. Output 0: centre 1, taps 0..2 with triangle weights .75,.75,.25
  // normalized to 3/7,3/7,1/7: (0*3 + 100*3 + 200)/7 = 71.4 -> 71. Output 1: taps 1..3, weights
  // 1/7,3/7,3/7: (100 + 600 + 765)/7 = 209.3 -> 209.
  await writeImage('ramp.png', [0, 100, 200, 255], 4, 1, 1);
  const img = await loadImg(file('ramp.png'), {
    targetSize: [1, 2],
    colorMode: 'grayscale',
    interpolation: 'bilinear',
  });
  assert.deepEqual([...img.data], [71, 209]);
});

test("keepAspectRatio centre-crops with Keras's integer box before resizing", async () => {
  // 6x2 -> 2x2: crop width min(6, 2*2//2) = 2 starting at (6-2)//2 = 2: columns 2 and 3.
  await writeImage('wide.png', [10, 20, 30, 40, 50, 60, 11, 21, 31, 41, 51, 61], 6, 2, 1);
  const img = await loadImg(file('wide.png'), {
    targetSize: [2, 2],
    colorMode: 'grayscale',
    keepAspectRatio: true,
  });
  assert.deepEqual([...img.data], [30, 40, 31, 41]);
});

test('decodes PNG, WebP, GIF, TIFF exactly and JPEG closely', async () => {
  const pattern = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 255, 0];
  for (const format of ['png', 'webp', 'gif', 'tiff'] as const) {
    await writeImage(`p.${format}`, pattern, 3, 2, 3, format);
    const img = await loadImg(file(`p.${format}`));
    assert.deepEqual([img.width, img.height], [3, 2], format);
    assert.deepEqual([...img.data], pattern, format);
  }
  const flat = new Array(16 * 16 * 3).fill(0).map((_, i) => (i % 3 === 0 ? 200 : 40));
  await writeImage('p.jpg', flat, 16, 16, 3, 'jpeg');
  const jpg = await loadImg(file('p.jpg'));
  assert.ok(jpg.data.every((v, i) => Math.abs(v - flat[i]!) <= 3));
});

test('decodes BMP (24-bit, bottom-up) and Netpbm, which sharp cannot', async () => {
  // 2x2 BMP: 14-byte file header, 40-byte info header, rows of 6 bytes padded to 8, BGR, bottom row first.
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'latin1');
  header.writeUInt32LE(54 + 16, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(2, 18);
  header.writeInt32LE(2, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  const rows = Buffer.from([
    /* bottom: */ 255, 0, 0, 0, 255, 0, 0, 0, /* top:    */ 0, 0, 255, 10, 20, 30, 0, 0,
  ]);
  await fsp.writeFile(file('x.bmp'), Buffer.concat([header, rows]));
  const bmp = await loadImg(file('x.bmp'));
  assert.deepEqual([...bmp.data], [255, 0, 0, 30, 20, 10, 0, 0, 255, 0, 255, 0]);

  await fsp.writeFile(
    file('x.ppm'),
    Buffer.concat([Buffer.from('P6\n# comment\n2 1\n255\n'), Buffer.from([1, 2, 3, 4, 5, 6])]),
  );
  assert.deepEqual([...(await loadImg(file('x.ppm'))).data], [1, 2, 3, 4, 5, 6]);
  await fsp.writeFile(file('x.pgm'), 'P2 3 1 15 0 15 5');
  assert.deepEqual(
    [...(await loadImg(file('x.pgm'), { colorMode: 'grayscale' })).data],
    [0, 255, 85],
  );
});

test('applies EXIF orientation (unlike PIL, which leaves phone photos sideways)', async () => {
  // Stored 4 wide x 2 high with a red top-left pixel; orientation 6 means "rotate 90 degrees
  // clockwise to display": 2 wide x 4 high with the red pixel at the top-right.
  const data = new Array(4 * 2 * 3).fill(0);
  data[0] = 255;
  await sharp(Buffer.from(data), { raw: { width: 4, height: 2, channels: 3 } })
    .png()
    .withMetadata({ orientation: 6 })
    .toFile(file('exif.png'));
  const img = await loadImg(file('exif.png'));
  assert.deepEqual([img.width, img.height], [2, 4]);
  assert.deepEqual([...img.data.subarray(3, 6)], [255, 0, 0]);
  assert.equal(
    img.data.reduce((a, b) => a + b, 0),
    255,
  );
});

test('missing, empty, truncated and non-image files fail with one clear error naming the file', async () => {
  await assert.rejects(
    loadImg(file('nope.jpg')),
    (e: unknown) => e instanceof XferError && e.code === 'NOT_FOUND' && /nope\.jpg/.test(e.message),
  );
  await fsp.writeFile(file('zero.png'), Buffer.alloc(0));
  await assert.rejects(
    loadImg(file('zero.png')),
    (e: unknown) =>
      e instanceof XferError && e.code === 'CORRUPT_FILE' && /zero\.png.*empty/.test(e.message),
  );
  await fsp.writeFile(file('text.jpg'), 'this is not an image');
  await assert.rejects(
    loadImg(file('text.jpg')),
    (e: unknown) =>
      e instanceof XferError && e.code === 'CORRUPT_FILE' && /text\.jpg/.test(e.message),
  );
  const jpeg = await sharp({
    create: { width: 64, height: 64, channels: 3, background: '#808080' },
  })
    .jpeg()
    .toBuffer();
  await fsp.writeFile(file('half.jpg'), jpeg.subarray(0, jpeg.length >> 1));
  await assert.rejects(
    loadImg(file('half.jpg')),
    (e: unknown) =>
      e instanceof XferError && e.code === 'CORRUPT_FILE' && /half\.jpg/.test(e.message),
  );
  await assert.rejects(
    loadImg(dir),
    (e: unknown) =>
      e instanceof XferError && e.code === 'INVALID_ARGUMENT' && /directory/.test(e.message),
  );
  await assert.rejects(
    loadImg(file('size.png'), { interpolation: 'cubic' as never }),
    /Expected one of 'nearest', 'bilinear', 'bicubic', 'lanczos', 'box', 'hamming' for interpolation but received 'cubic'/,
  );
  await assert.rejects(loadImg(file('size.png'), { targetSize: [224] as never }), /targetSize/);
});

test('imgToArray gives float32 HWC; arrayToImg scales like Keras; saveImg round-trips', async () => {
  const x = imgToArray({
    data: Uint8Array.from([0, 128, 255, 7, 8, 9]),
    width: 2,
    height: 1,
    channels: 3,
  });
  assert.deepEqual(x.shape, [1, 2, 3]);
  assert.equal(x.dtype, 'float32');
  assert.deepEqual([...x.dataSync()], [0, 128, 255, 7, 8, 9]);
  // scale: (v - min) / (max - min) * 255, truncated: [-1, 0, 1] -> [0, 127, 255].
  const y = tf.tensor3d([-1, 0, 1], [1, 3, 1]);
  assert.deepEqual([...arrayToImg(y).data], [0, 127, 255]);
  assert.deepEqual(
    [...arrayToImg(tf.tensor3d([-5, 12.9, 300], [1, 3, 1]), { scale: false }).data],
    [0, 12, 255],
  );
  await saveImg(file('saved.png'), x);
  const back = await loadImg(file('saved.png'));
  // Keras's default scale=true stretches 0..255 to 0..255: unchanged.
  assert.deepEqual([...back.data], [0, 128, 255, 7, 8, 9]);
  tf.dispose([x, y]);
});
