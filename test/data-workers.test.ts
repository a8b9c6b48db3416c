/**
 * Loading images in worker threads (`workers` option of flowFromDirectory): the batches are the
 * same, bit for bit, as on the main thread (augmentation included, since the parameters are still
 * drawn on the main thread), a file that breaks is replaced the same way, and idle workers never
 * keep the process alive.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { vgg16 } from '../src/applications/index.js';
import { preprocessInput } from '../src/applications/preprocess.js';
import {
  affineTransform,
  channelShift,
  denseSource,
  type FillMode,
  flip,
  kerasAffineMatrix,
  transformInto,
  transformPixels,
} from '../src/data/affine.js';
import { batchSeed } from '../src/data/array-iterator.js';
import {
  ImageDataGenerator,
  type ImageDataGeneratorOptions,
  imageDatasetFromDirectory,
  imgToArray,
  loadImg,
} from '../src/data/index.js';
import { closeImagePools, sharedPool } from '../src/data/pool.js';
import { aspectCropBox, nearestSource, resizeNearest } from '../src/data/resize.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { setQuiet } from '../src/util/log.js';
import { Random } from '../src/util/random.js';
import { makeTempDir } from './helpers/image-folders.js';

const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
let root: string;

/** Photo-like RGB JPEGs of varied sizes (smooth gradient plus noise), so resizing matters. */
async function writeImages(dir: string, count: number, seed: number): Promise<void> {
  const random = new Random(seed);
  await fsp.mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const width = 40 + random.randint(0, 30);
    const height = 30 + random.randint(0, 30);
    const pixels = Buffer.alloc(width * height * 3);
    for (let p = 0; p < pixels.length; p++) {
      pixels[p] = ((p % (width * 3)) * 2 + random.randint(0, 60)) & 255;
    }
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(path.join(dir, `${i}.jpg`));
  }
}

before(async () => {
  setQuiet(true);
  root = await makeTempDir('workers');
  await writeImages(path.join(root, 'cats'), 7, 1);
  await writeImages(path.join(root, 'dogs'), 6, 2);
});

after(async () => {
  setQuiet(false);
  await closeImagePools();
  await fsp.rm(root, { recursive: true, force: true });
});

const AUGMENT: ImageDataGeneratorOptions = {
  rotationRange: 40,
  widthShiftRange: 0.2,
  heightShiftRange: 0.2,
  shearRange: 10,
  zoomRange: 0.2,
  channelShiftRange: 20,
  horizontalFlip: true,
  verticalFlip: true,
  fillMode: 'reflect',
  rescale: 1 / 255,
};

/** Every batch of two epochs, x and y as plain arrays. */
async function epochs(workers: number, options: ImageDataGeneratorOptions, extra = {}) {
  const it = await new ImageDataGenerator(options).flowFromDirectory(root, {
    targetSize: [24, 32],
    batchSize: 5,
    seed: 11,
    interpolation: 'bilinear',
    workers,
    ...extra,
  });
  const out: { x: Float32Array; y: Float32Array }[] = [];
  for (let epoch = 0; epoch < 2; epoch++) {
    for (let i = 0; i < it.length; i++) {
      const { x, y } = await it.getBatch(i);
      out.push({ x: x.dataSync() as Float32Array, y: y!.dataSync() as Float32Array });
      tf.dispose([x, y!]);
    }
    it.onEpochEnd();
  }
  return { out, it };
}

function assertSameBatches(
  a: { x: Float32Array; y: Float32Array }[],
  b: { x: Float32Array; y: Float32Array }[],
) {
  assert.equal(a.length, b.length);
  a.forEach((batch, i) => {
    assert.equal(batch.x.length, b[i]!.x.length);
    // Bit for bit: compare the float32 bytes.
    assert.ok(
      Buffer.from(batch.x.buffer, batch.x.byteOffset, batch.x.byteLength).equals(
        Buffer.from(b[i]!.x.buffer, b[i]!.x.byteOffset, b[i]!.x.byteLength),
      ),
      `batch ${i} differs`,
    );
    assert.deepEqual([...batch.y], [...b[i]!.y]);
  });
}

test('batches are identical with 0, 1 and 2 workers, with and without augmentation', async () => {
  for (const options of [AUGMENT, { fillMode: 'constant', cval: 7 } as const, {}]) {
    const main = await epochs(0, options);
    assert.equal(main.it.workers, 0);
    // 13 images in batches of 5: 3 batches per epoch, 2 epochs.
    assert.equal(main.out.length, 6);
    for (const workers of [1, 2]) {
      const threaded = await epochs(workers, options);
      assert.equal(threaded.it.workers, workers);
      // The workers really ran (no fallback to the main thread).
      assert.equal(sharedPool(workers).running, workers);
      assertSameBatches(main.out, threaded.out);
    }
  }
  // The augmented batches really are augmented (they differ from the plain ones).
  const plain = await epochs(2, { rescale: 1 / 255 });
  const augmented = await epochs(2, AUGMENT);
  assert.notDeepEqual(
    [...plain.out[0]!.x.subarray(0, 50)],
    [...augmented.out[0]!.x.subarray(0, 50)],
  );
  assert.equal(sharedPool(2).running, 2);
});

test('imageDatasetFromDirectory gives the same batches with and without workers', async () => {
  for (const extra of [{}, { cropToAspectRatio: true, interpolation: 'nearest' as const }]) {
    const load = async (workers: number) => {
      const ds = await imageDatasetFromDirectory(root, {
        imageSize: [20, 28],
        batchSize: 4,
        seed: 5,
        verbose: false,
        workers,
        ...extra,
      });
      assert.equal(ds.workers, workers);
      const out: { x: Float32Array; y: Float32Array }[] = [];
      for (let i = 0; i < ds.length; i++) {
        const { x, y } = await ds.getBatch(i);
        out.push({ x: x.dataSync() as Float32Array, y: y!.dataSync() as Float32Array });
        tf.dispose([x, y!]);
      }
      return out;
    };
    const main = await load(0);
    assert.equal(main.length, 4);
    assertSameBatches(main, await load(2));
    assert.equal(sharedPool(2).running, 2);
  }
});

test('flow (in-memory images) gives the same augmented batches with and without workers', async () => {
  const random = new Random(9);
  const x = tf.tensor4d(
    Float32Array.from({ length: 10 * 12 * 14 * 3 }, () => random.randint(0, 256)),
    [10, 12, 14, 3],
  );
  const y = tf.tensor1d(Float32Array.from({ length: 10 }, (_, i) => i));
  const run = async (workers: number) => {
    const it = new ImageDataGenerator(AUGMENT).flow(x, y, { batchSize: 4, seed: 2, workers });
    assert.equal(it.workers, workers);
    const out: { x: Float32Array; y: Float32Array }[] = [];
    for (let i = 0; i < it.length; i++) {
      const batch = await it.getBatch(i);
      out.push({ x: batch.x.dataSync() as Float32Array, y: batch.y!.dataSync() as Float32Array });
      tf.dispose([batch.x, batch.y!]);
    }
    it.dispose();
    return out;
  };
  const main = await run(0);
  assert.equal(main.length, 3);
  assertSameBatches(main, await run(2));
  // The source images are left as they were.
  assert.equal(x.dataSync()[0], new Random(9).randint(0, 256));
  tf.dispose([x, y]);
});

test('transformPixels (flips in place) equals the step-by-step Keras order', () => {
  const [h, w, c] = [9, 13, 3];
  const random = new Random(4);
  const src = Float32Array.from({ length: h * w * c }, () => random.randint(0, 256));
  const settings = { fillMode: 'nearest', cval: 0, interpolationOrder: 1 } as const;
  for (const [theta, flipHorizontal, flipVertical] of [
    [0, true, true],
    [25, true, false],
    [25, false, true],
    [25, true, true],
  ] as const) {
    const params = { theta, flipHorizontal, flipVertical, channelShiftIntensity: 9, zx: 1.1 };
    let expected = affineTransform(
      src,
      h,
      w,
      c,
      kerasAffineMatrix({ theta, tx: 0, ty: 0, shear: 0, zx: 1.1, zy: 1 }, h, w)!,
      'nearest',
      0,
    );
    expected = channelShift(expected, 9);
    if (flipHorizontal) expected = flip(expected, h, w, c, true);
    if (flipVertical) expected = flip(expected, h, w, c, false);
    const input = src.slice();
    assert.deepEqual(transformPixels(input, h, w, c, params, settings), expected);
    assert.deepEqual(input, src, 'the input is left alone');
  }
});

/** The seed's augmentation and preprocess_input: the pipeline's one-pass path (no channel shift). */
type Preprocess = (x: tf.Tensor3D) => tf.Tensor3D;

const SEED: ImageDataGeneratorOptions = {
  rotationRange: 40,
  widthShiftRange: 0.2,
  heightShiftRange: 0.2,
  zoomRange: 0.2,
  horizontalFlip: true,
  fillMode: 'constant',
  preprocessingFunction: (x) => preprocessInput(x, 'caffe') as tf.Tensor3D,
  preprocessingFunctionOnBatch: true,
};

test('the seed pipeline (nearest, augmentation, preprocess_input) is the same with and without workers', async () => {
  for (const keepAspectRatio of [false, true]) {
    const extra = { interpolation: 'nearest' as const, keepAspectRatio };
    const main = await epochs(0, SEED, extra);
    const threaded = await epochs(2, SEED, extra);
    assert.equal(sharedPool(2).running, 2);
    assertSameBatches(main.out, threaded.out);
  }
});

test("a batch equals load_img, apply_transform and standardize, image by image (Keras's path)", async () => {
  // The seed's own style too: vgg16.preprocessInput called per image (the workers apply its mode).
  const literal = { ...SEED, preprocessingFunction: vgg16.preprocessInput as Preprocess };
  delete literal.preprocessingFunctionOnBatch;
  for (const options of [SEED, literal]) {
    await batchMatchesKeras(new ImageDataGenerator(options));
  }
});

async function batchMatchesKeras(gen: ImageDataGenerator): Promise<void> {
  const it = await gen.flowFromDirectory(root, {
    targetSize: [24, 32],
    batchSize: 5,
    shuffle: false,
    seed: 11,
    workers: 2,
  });
  const { x, y } = await it.getBatch(1);
  const batch = x.dataSync() as Float32Array;
  tf.dispose([x, y!]);
  const rng = new Random(batchSeed(11, 0, 1));
  const size = 24 * 32 * 3;
  for (let k = 0; k < 5; k++) {
    const params = gen.drawTransform([24, 32, 3], rng);
    const img = await loadImg(path.join(root, it.filenames[5 + k]!), { targetSize: [24, 32] });
    const expected = tf.tidy(() =>
      gen.standardize(gen.applyTransform(imgToArray(img), params)).dataSync(),
    );
    assert.deepEqual(batch.subarray(k * size, (k + 1) * size), expected, `image ${k}`);
  }
}

test('the one-pass warp from a nearest view equals resize, then transformPixels step by step', () => {
  const random = new Random(21);
  const fills: FillMode[] = ['constant', 'nearest', 'reflect', 'wrap'];
  for (let trial = 0; trial < 48; trial++) {
    const channels = [1, 3, 4][trial % 3]!;
    const [width, height] = [20 + random.randint(0, 30), 15 + random.randint(0, 30)];
    const [outHeight, outWidth] = [8 + random.randint(0, 20), 8 + random.randint(0, 20)];
    const raw = Uint8Array.from({ length: width * height * channels }, () =>
      random.randint(0, 256),
    );
    const box =
      trial % 4 === 0
        ? aspectCropBox(width, height, outWidth, outHeight)
        : { left: 0, top: 0, width, height };
    const settings = {
      fillMode: fills[trial % 4]!,
      cval: trial % 5,
      interpolationOrder: (trial % 6 === 5 ? 0 : 1) as 0 | 1,
    };
    const params = {
      theta: trial % 7 === 0 ? 0 : random.uniform(-40, 40),
      tx: random.uniform(-5, 5),
      ty: random.uniform(-5, 5),
      shear: trial % 2 ? random.uniform(-15, 15) : 0,
      zx: random.uniform(0.8, 1.2),
      zy: random.uniform(0.8, 1.2),
      flipHorizontal: trial % 3 === 0,
      flipVertical: trial % 5 === 0,
      channelShiftIntensity: trial % 8 === 0 ? 12 : null,
    };
    const resized = Float32Array.from(
      resizeNearest(raw, width, channels, box, outWidth, outHeight),
    );
    const expected = transformPixels(resized, outHeight, outWidth, channels, params, settings);
    const fromView = new Float32Array(resized.length);
    transformInto(
      nearestSource(raw, width, channels, box, outWidth, outHeight),
      params,
      settings,
      fromView,
    );
    assert.deepEqual(fromView, expected, `trial ${trial} (view of the bytes)`);
    const fromFloats = new Float32Array(resized.length);
    transformInto(
      denseSource(resized, outHeight, outWidth, channels),
      params,
      settings,
      fromFloats,
    );
    assert.deepEqual(fromFloats, expected, `trial ${trial} (dense floats)`);
  }
});

test('a batch keeps its values when the next one is made (reused memory), on wasm and cpu', async () => {
  await initBackend();
  const backend = tf.getBackend();
  try {
    for (const name of ['wasm', 'cpu']) {
      await tf.setBackend(name);
      const it = await new ImageDataGenerator(SEED).flowFromDirectory(root, {
        targetSize: [16, 16],
        batchSize: 4,
        seed: 2,
        workers: 2,
      });
      const first = await it.getBatch(0);
      const copy = (first.x.dataSync() as Float32Array).slice();
      const kept: tf.Tensor[] = [first.x, first.y!];
      for (let i = 1; i < it.length; i++) {
        const next = await it.getBatch(i);
        kept.push(next.x, next.y!);
      }
      assert.deepEqual(first.x.dataSync(), copy, `${name}: batch 0 changed`);
      tf.dispose(kept);
    }
  } finally {
    await tf.setBackend(backend);
  }
});

test('closing the pool with images queued and in flight loses none of them', async () => {
  const run = async (workers: number, close: boolean) => {
    // 13 images in one batch: more than one worker holds at once, so some wait in the queue.
    const it = await new ImageDataGenerator(SEED).flowFromDirectory(root, {
      targetSize: [16, 16],
      batchSize: 13,
      seed: 4,
      workers,
    });
    const pending = it.getBatch(0);
    if (close) {
      // The tasks are handed to the pool together, once the backend is ready: close right after.
      while (sharedPool(workers).running === 0) await new Promise((r) => setImmediate(r));
      await closeImagePools();
    }
    const { x, y } = await pending;
    const values = x.dataSync() as Float32Array;
    tf.dispose([x, y!]);
    return { x: values, y: new Float32Array(0) };
  };
  assertSameBatches([await run(0, false)], [await run(1, true)]);
});

test('a file that breaks after the scan is replaced the same way with workers', async () => {
  const dir = await makeTempDir('workers-broken');
  try {
    await writeImages(path.join(dir, 'a'), 3, 5);
    await writeImages(path.join(dir, 'b'), 2, 6);
    const run = async (workers: number) => {
      const it = await new ImageDataGenerator(AUGMENT).flowFromDirectory(dir, {
        targetSize: [16, 16],
        batchSize: 5,
        shuffle: false,
        classMode: 'sparse',
        seed: 3,
        workers,
      });
      await fsp.writeFile(path.join(dir, 'a', '1.jpg'), 'broken now');
      const { x, y } = await it.getBatch(0);
      const result = { x: x.dataSync() as Float32Array, y: y!.dataSync() as Float32Array };
      tf.dispose([x, y!]);
      await fsp.copyFile(path.join(dir, 'a', '2.jpg'), path.join(dir, 'a', '1.jpg'));
      return { result, it };
    };
    // Keep the good bytes of 1.jpg to restore it between the two runs.
    const good = await fsp.readFile(path.join(dir, 'a', '1.jpg'));
    const main = await run(0);
    await fsp.writeFile(path.join(dir, 'a', '1.jpg'), good);
    const threaded = await run(2);
    assert.deepEqual(
      threaded.it.skipped.map((s) => s.filename),
      [path.join('a', '1.jpg')],
    );
    assert.match(threaded.it.skipped[0]!.reason, /cannot decode image/);
    assertSameBatches([main.result], [threaded.result]);
    // Labels stay right: three of class a, two of class b.
    assert.deepEqual([...threaded.result.y], [0, 0, 0, 1, 1]);
    // Slot 1 holds 2.jpg's pixels (augmented with slot 1's own parameters): it differs from slot 2.
    const size = 16 * 16 * 3;
    assert.notDeepEqual(
      [...threaded.result.x.subarray(size, 2 * size)],
      [...threaded.result.x.subarray(2 * size, 3 * size)],
    );
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('workers is checked, and idle workers end when the pool closes', async () => {
  const gen = new ImageDataGenerator();
  await assert.rejects(
    gen.flowFromDirectory(root, { workers: -1 }),
    /Expected an integer from 0 \(load on the main thread\) to 256 for workers but received -1/,
  );
  await assert.rejects(gen.flowFromDirectory(root, { workers: 1.5 }), /for workers/);
  const it = await gen.flowFromDirectory(root, { targetSize: [8, 8] });
  assert.ok(it.workers >= 1, 'the default is one worker per core');
  await closeImagePools();
  assert.equal(sharedPool(2).running, 0);
});

test('a process that used workers exits by itself, without closing the pool', () => {
  const index = pathToFileURL(path.join(repo, 'src', 'data', 'index.ts')).href;
  const pool = pathToFileURL(path.join(repo, 'src', 'data', 'pool.ts')).href;
  const script = `
    const { ImageDataGenerator } = await import(${JSON.stringify(index)});
    const it = await new ImageDataGenerator({ rotationRange: 30 }).flowFromDirectory(
      ${JSON.stringify(root)}, { targetSize: [8, 8], batchSize: 4, workers: 2 });
    const { x } = await it.getBatch(0);
    const { sharedPool } = await import(${JSON.stringify(pool)});
    console.log('shape', x.shape.join('x'), 'workers', sharedPool(2).running);
  `;
  const started = Date.now();
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: repo, encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(child.status, 0, child.stderr);
  assert.match(child.stdout, /shape 4x8x8x3 workers 2/);
  // It ends as soon as its work is done, not after the pool's idle timeout or the spawn limit.
  assert.ok(Date.now() - started < 50_000);
});
