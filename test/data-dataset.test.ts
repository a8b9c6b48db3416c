import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { imageDatasetFromDirectory } from '../src/data/index.js';
import { NumpyRandomState } from '../src/data/numpy-random.js';
import { tfResize } from '../src/data/tf-resize.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';
import { setQuiet } from '../src/util/log.js';
import { makeTempDir } from './helpers/image-folders.js';

let dir: string;
/** Sorted file order: a/0 a/1 a/2 b/0 b/1; image k is filled with the value 10 * (k + 1). */
const files = ['a/0.png', 'a/1.png', 'a/2.png', 'b/0.png', 'b/1.png'];

before(async () => {
  await initBackend();
  setQuiet(true);
  dir = await makeTempDir('dataset');
  for (const [k, file] of files.entries()) {
    await fsp.mkdir(path.join(dir, path.dirname(file)), { recursive: true });
    const v = 10 * (k + 1);
    await sharp({ create: { width: 4, height: 2, channels: 3, background: { r: v, g: v, b: v } } })
      .png()
      .toFile(path.join(dir, file));
  }
});

after(async () => {
  setQuiet(false);
  await fsp.rm(dir, { recursive: true, force: true });
});

test("numpy's RandomState(seed).shuffle is reproduced bit for bit", () => {
  // Values printed by numpy 1.24: RandomState(42).shuffle(list(range(10))) etc.
  assert.deepEqual(
    new NumpyRandomState(42).shuffle([...Array(10).keys()]),
    [8, 1, 5, 0, 7, 2, 9, 4, 3, 6],
  );
  assert.deepEqual(
    new NumpyRandomState(123456).shuffle([...Array(1000).keys()]).slice(0, 10),
    [602, 357, 946, 829, 650, 232, 394, 680, 629, 29],
  );
  assert.equal(new NumpyRandomState(0).nextUint32(), 2357136044);
});

test("TF's bilinear resize: half-pixel centres, no antialias, float output", () => {
  const box = { left: 0, top: 0, width: 2, height: 1 };
  assert.deepEqual([...tfResize([0, 100], 2, 1, box, 4, 1, 'bilinear')], [0, 25, 75, 100]);
  assert.deepEqual([...tfResize([0, 100], 2, 1, box, 4, 1, 'nearest')], [0, 0, 100, 100]);
  // Downscaling 4 -> 2 reads positions 0.5 and 2.5 (no antialias): means of pairs.
  const wide = { left: 0, top: 0, width: 4, height: 1 };
  assert.deepEqual([...tfResize([0, 10, 20, 31], 4, 1, wide, 2, 1, 'bilinear')], [5, 25.5]);
});

test("files in Keras's order; shuffled by numpy's RandomState(seed); the split takes the last fraction", async () => {
  const plain = await imageDatasetFromDirectory(dir, { shuffle: false, imageSize: [2, 4] });
  assert.deepEqual(
    plain.filePaths,
    files.map((f) => path.join(dir, f)),
  );
  assert.deepEqual([...plain.labels!], [0, 0, 0, 1, 1]);
  assert.deepEqual(plain.classNames, ['a', 'b']);
  const { x, y } = await plain.getBatch(0);
  assert.deepEqual(x.shape, [5, 2, 4, 3]);
  assert.deepEqual(
    [...x.dataSync()].filter((_, i) => i % 24 === 0),
    [10, 20, 30, 40, 50],
  );
  assert.equal(y!.dtype, 'int32');
  tf.dispose([x, y!]);

  // numpy: RandomState(42).shuffle(range(5)) -> [1, 4, 2, 0, 3]; int(0.4 * 5) = 2 for validation.
  const [train, val] = await imageDatasetFromDirectory(dir, {
    seed: 42,
    validationSplit: 0.4,
    subset: 'both',
    imageSize: [2, 4],
    labelMode: 'categorical',
    batchSize: 2,
  });
  const order = [1, 4, 2, 0, 3].map((i) => path.join(dir, files[i]!));
  assert.deepEqual(train.filePaths, order.slice(0, 3));
  assert.deepEqual(val.filePaths, order.slice(3));
  assert.deepEqual([...val.labels!], [0, 1]);
  assert.equal(train.length, 2);
  const vb = await val.getBatch(0);
  assert.deepEqual([...vb.y!.dataSync()], [1, 0, 0, 1]);
  tf.dispose([vb.x, vb.y!]);

  const binary = await imageDatasetFromDirectory(dir, {
    labelMode: 'binary',
    shuffle: false,
    imageSize: [2, 4],
  });
  const bb = await binary.getBatch(0);
  assert.deepEqual(bb.y!.shape, [5, 1]);
  assert.deepEqual([...bb.y!.dataSync()], [0, 0, 0, 1, 1]);
  tf.dispose([bb.x, bb.y!]);

  const unlabelled = await imageDatasetFromDirectory(dir, {
    labels: null,
    shuffle: false,
    imageSize: [2, 4],
  });
  const ub = await unlabelled.getBatch(0);
  assert.equal(ub.y, null);
  assert.equal(unlabelled.classNames, null);
  tf.dispose(ub.x);
});

test('padToAspectRatio pads with zeros, centred; cropToAspectRatio crops the centre', async () => {
  const padded = await imageDatasetFromDirectory(dir, {
    shuffle: false,
    imageSize: [4, 4],
    padToAspectRatio: true,
    colorMode: 'grayscale',
  });
  const { x } = await padded.getBatch(0);
  const first = [...x.dataSync()].slice(0, 16);
  assert.deepEqual(first, [0, 0, 0, 0, 10, 10, 10, 10, 10, 10, 10, 10, 0, 0, 0, 0]);
  x.dispose();
  const cropped = await imageDatasetFromDirectory(dir, {
    shuffle: false,
    imageSize: [2, 2],
    cropToAspectRatio: true,
    colorMode: 'grayscale',
  });
  const c = await cropped.getBatch(0);
  assert.deepEqual([...c.x.dataSync()].slice(0, 4), [10, 10, 10, 10]);
  c.x.dispose();
});

test('bad options fail with one clear error, as Keras checks them', async () => {
  const rejects = (options: object, pattern: RegExp) =>
    assert.rejects(
      imageDatasetFromDirectory(dir, options),
      (e: unknown) => e instanceof XferError && pattern.test(e.message),
    );
  await rejects({ validationSplit: 0.2, subset: 'training' }, /needs a seed/);
  await rejects({ subset: 'training' }, /set both or neither/);
  await rejects({ cropToAspectRatio: true, padToAspectRatio: true }, /only one of/);
  await rejects({ classNames: ['a', 'zebra'] }, /classNames must name sub-folders/);
  await rejects({ labels: [0, 1] }, /labels has 2 entries but .* holds 5/);
  await rejects({ interpolation: 'lanczos5' }, /interpolation/);
  await rejects({ image_size: [2, 2] }, /did you mean 'imageSize'/);
});
