/**
 * Keras's preprocessing modes against hand-computed values, the per-family namespaces, and
 * decodePredictions with Keras's ImageNet class index.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';
import {
  decodePredictions,
  getApplication,
  mobilenet,
  mobilenetV2,
  preprocessInput,
  resnet50,
  vgg16,
  vgg19,
} from '../src/applications/index.js';
import { preprocessModeOf, preprocessPixels } from '../src/applications/preprocess-pixels.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';

before(async () => {
  await initBackend();
});

function close(actual: ArrayLike<number>, expected: number[], tolerance = 1e-4): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i]! - expected[i]!) <= tolerance,
      `element ${i}: ${actual[i]} is not ${expected[i]}`,
    );
  }
}

const PIXEL = [10, 20, 30];
// By hand, from Keras's _preprocess_numpy_input for channels_last.
const CAFFE = [30 - 103.939, 20 - 116.779, 10 - 123.68];
const TF = [10 / 127.5 - 1, 20 / 127.5 - 1, 30 / 127.5 - 1];
const TORCH = [(10 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (30 / 255 - 0.406) / 0.225];

test('caffe mode flips RGB to BGR and subtracts the BGR ImageNet mean, on 3-D and 4-D input', () => {
  const image = tf.tensor3d([[PIXEL]]);
  const out3 = preprocessInput(image, 'caffe');
  assert.deepEqual(out3.shape, [1, 1, 3]);
  close(out3.dataSync(), CAFFE);

  const batch = tf.tensor4d([[[PIXEL, [255, 0, 0]]]]);
  const out4 = preprocessInput(batch, 'caffe');
  assert.deepEqual(out4.shape, [1, 1, 2, 3]);
  close(out4.dataSync(), [...CAFFE, 0 - 103.939, 0 - 116.779, 255 - 123.68]);
  // A new tensor: the input keeps its values.
  close(batch.dataSync(), [...PIXEL, 255, 0, 0]);
  tf.dispose([image, out3, batch, out4]);
});

test('tf mode scales to [-1, 1]; torch mode scales to [0, 1] and normalizes per channel', () => {
  const image = tf.tensor4d([[[PIXEL]]]);
  const tfOut = preprocessInput(image, 'tf');
  close(tfOut.dataSync(), TF);
  const torchOut = preprocessInput(image, 'torch');
  close(torchOut.dataSync(), TORCH);
  const ends = preprocessInput(tf.tensor3d([[[0, 127.5, 255]]]), 'tf');
  close(ends.dataSync(), [-1, 0, 1], 1e-6);
  tf.dispose([image, tfOut, torchOut, ends]);
});

test('integer images are converted to float32 first', () => {
  const image = tf.tensor3d([[PIXEL]], [1, 1, 3], 'int32');
  const out = preprocessInput(image, 'caffe');
  assert.equal(out.dtype, 'float32');
  close(out.dataSync(), CAFFE);
  tf.dispose([image, out]);
});

test('preprocessInput rejects a bad mode, rank or channel count with a message saying what to do', () => {
  const image = tf.zeros([2, 2, 3]);
  assert.throws(
    () => preprocessInput(image, 'keras' as never),
    /Expected one of 'caffe', 'tf', 'torch' for mode but received 'keras'/,
  );
  assert.throws(
    () => preprocessInput(tf.zeros([4, 3]), 'tf'),
    (error: unknown) =>
      error instanceof XferError &&
      error.code === 'SHAPE_MISMATCH' &&
      /one image \[height, width, 3\] or a batch \[n, height, width, 3\].*\[4, 3\]/.test(
        error.message,
      ),
  );
  assert.throws(
    () => preprocessInput(tf.zeros([1, 2, 2, 4]), 'caffe'),
    /'caffe' mode needs 3 color channels.*\[1, 2, 2, 4\].*Convert the images to RGB/,
  );
  tf.dispose(image);
});

test("the per-family namespaces apply each family's Keras mode, which is data on its spec", () => {
  const image = tf.tensor4d([[[PIXEL]]]);
  const expected = { caffe: CAFFE, tf: TF, torch: TORCH };
  const modules = { vgg16, vgg19, resnet50, mobilenet, mobilenet_v2: mobilenetV2 };
  const keras = {
    vgg16: 'caffe',
    vgg19: 'caffe',
    resnet50: 'caffe',
    mobilenet: 'tf',
    mobilenet_v2: 'tf',
  };
  for (const [name, module] of Object.entries(modules)) {
    const spec = getApplication(name);
    assert.equal(spec.preprocessMode, keras[name as keyof typeof keras], name);
    const out = module.preprocessInput(image);
    close(out.dataSync(), expected[spec.preprocessMode as keyof typeof expected]);
    out.dispose();
    assert.equal(module.decodePredictions, decodePredictions);
  }
  image.dispose();
});

test("the shipped class index is Keras's file: its recorded md5, 1000 classes, unique wnids", () => {
  const url = new URL('../assets/imagenet_class_index.json', import.meta.url);
  const bytes = readFileSync(url);
  // imagenet_utils.py downloads this file with file_hash="c2c37ea517e94d9795004a39431a14cb".
  assert.equal(createHash('md5').update(bytes).digest('hex'), 'c2c37ea517e94d9795004a39431a14cb');
  const index: Record<string, [string, string]> = JSON.parse(bytes.toString('utf8'));
  assert.equal(Object.keys(index).length, 1000);
  assert.equal(new Set(Object.values(index).map(([wnid]) => wnid)).size, 1000);
  assert.deepEqual(index['0'], ['n01440764', 'tench']);
  assert.deepEqual(index['999'], ['n15075141', 'toilet_tissue']);
});

function predictionRow(entries: Record<number, number>): number[] {
  const row = new Array<number>(1000).fill(0);
  for (const [i, p] of Object.entries(entries)) row[Number(i)] = p;
  return row;
}

test('decodePredictions returns the top classes of each sample, most likely first', () => {
  const rows = [
    predictionRow({ 0: 0.3, 1: 0.2, 999: 0.5 }),
    predictionRow({ 281: 0.1, 282: 0.7, 285: 0.15, 207: 0.05 }),
  ];
  const preds = tf.tensor2d(rows);
  const decoded = decodePredictions(preds, 3);
  assert.equal(decoded.length, 2);
  assert.deepEqual(
    decoded[0]!.map((p) => [p.wnid, p.className]),
    [
      ['n15075141', 'toilet_tissue'],
      ['n01440764', 'tench'],
      ['n01443537', 'goldfish'],
    ],
  );
  close(
    decoded[0]!.map((p) => p.probability),
    [0.5, 0.3, 0.2],
    1e-7,
  );
  assert.deepEqual(
    decoded[1]!.map((p) => p.className),
    ['tiger_cat', 'Egyptian_cat', 'tabby'],
  );
  // top defaults to 5; plain arrays work too.
  const fromArrays = decodePredictions(rows);
  assert.equal(fromArrays[1]!.length, 5);
  assert.deepEqual(
    fromArrays[1]!.slice(0, 4).map((p) => p.className),
    ['tiger_cat', 'Egyptian_cat', 'tabby', 'golden_retriever'],
  );
  preds.dispose();
});

test('decodePredictions rejects anything but [n, 1000], naming the shape received', () => {
  const wrongWidth = tf.zeros([1, 10]);
  assert.throws(
    () => decodePredictions(wrongWidth),
    (error: unknown) =>
      error instanceof XferError &&
      error.code === 'SHAPE_MISMATCH' &&
      /shape \[samples, 1000\], but received shape \[1, 10\]/.test(error.message),
  );
  const noBatch = tf.zeros([1000]);
  assert.throws(() => decodePredictions(noBatch), /received shape \[1000\]/);
  assert.throws(() => decodePredictions([[0.5, 0.5]]), /received shape \[1, 2\]/);
  assert.throws(
    () => decodePredictions([predictionRow({})], 0),
    /Expected positive integer for top but received 0/,
  );
  tf.dispose([wrongWidth, noBatch]);
});

/** Values that exercise float32 rounding: integers 0..255, fractions, and augmentation's output. */
function pixelValues(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) =>
    i % 3 === 0 ? i % 256 : Math.fround(((i * 7919) % 25500) / 100 + 0.001 * (i % 7)),
  );
}

test("preprocessInput on the CPU backends is numpy's float32 arithmetic, bit for bit", (t) => {
  const python = '/usr/bin/python3';
  try {
    execFileSync(python, ['-c', 'import numpy'], { stdio: 'ignore' });
  } catch {
    t.skip('numpy is not installed at /usr/bin/python3 (Debian python3-numpy): skipped');
    return;
  }
  // Keras's _preprocess_numpy_input for channels_last, on a float32 array.
  const script = `
import sys, numpy as np
mode = sys.argv[1]
x = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32).copy().reshape(-1, 3)
if mode == 'tf':
    x /= 127.5
    x -= 1.
elif mode == 'torch':
    x /= 255.
    for i, (m, s) in enumerate(zip([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])):
        x[..., i] -= m
        x[..., i] /= s
else:
    x = x[..., ::-1].copy()
    for i, m in enumerate([103.939, 116.779, 123.68]):
        x[..., i] -= m
sys.stdout.buffer.write(x.astype(np.float32).tobytes())
`;
  const values = pixelValues(3 * 4000);
  for (const mode of ['caffe', 'tf', 'torch'] as const) {
    const expected = execFileSync(python, ['-c', script, mode], {
      input: Buffer.from(values.buffer),
      maxBuffer: 1 << 24,
    });
    for (const backend of ['wasm', 'cpu']) {
      tf.setBackend(backend);
      const out = tf.tidy(() =>
        preprocessInput(tf.tensor3d(values, [40, 100, 3]), mode).dataSync(),
      );
      assert.ok(
        Buffer.from(new Float32Array(out).buffer).equals(expected),
        `${mode} on ${backend} differs from numpy`,
      );
    }
  }
  tf.setBackend('wasm');
});

test('the per-family functions are known to image pipelines by their mode', () => {
  assert.equal(preprocessModeOf(vgg16.preprocessInput), 'caffe');
  assert.equal(preprocessModeOf(mobilenetV2.preprocessInput), 'tf');
  assert.equal(
    preprocessModeOf((x: tf.Tensor) => preprocessInput(x, 'caffe')),
    undefined,
  );
  const values = pixelValues(3 * 50);
  for (const fn of [vgg16.preprocessInput, mobilenetV2.preprocessInput]) {
    const viaTensor = tf.tidy(() => fn(tf.tensor3d(values, [5, 10, 3])).dataSync());
    const inPlace = values.slice();
    preprocessPixels(inPlace, 3, preprocessModeOf(fn)!);
    assert.deepEqual(inPlace, new Float32Array(viaTensor));
  }
});
