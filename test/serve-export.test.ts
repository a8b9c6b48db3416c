/**
 * `exportTfjs` and `exportKerasH5` on a run folder: what they write reloads into the same
 * predictions, and the tfjs export's preprocessing metadata is Keras's arithmetic.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '../src/engine/tf.js';
import { loadClassifier } from '../src/recipes/classifier.js';
import { exportKerasH5, exportTfjs } from '../src/recipes/export.js';
import { loadModel, loadWeights } from '../src/weights/index.js';
import { makeTempDir } from './helpers/image-folders.js';
import { buildRunFolder } from './helpers/serve-run.js';

let tmp: string;
let runDir: string;
let input: tf.Tensor4D;

before(async () => {
  tmp = await makeTempDir('serve-export');
  runDir = await buildRunFolder(path.join(tmp, 'run'), {
    classNames: ['a', 'b', 'c'],
    preprocessing: { mode: 'caffe' },
  });
  input = tf.randomUniform([2, 32, 32, 3], -100, 100, 'float32', 5) as tf.Tensor4D;
});

after(async () => {
  input?.dispose();
  await fsp.rm(tmp, { recursive: true, force: true });
});

function outputs(model: tf.LayersModel): number[] {
  return tf.tidy(() => Array.from((model.predict(input) as tf.Tensor).dataSync()));
}

function assertClose(actual: number[], expected: number[], tolerance: number): void {
  assert.equal(actual.length, expected.length);
  for (const [i, v] of actual.entries()) {
    assert.ok(Math.abs(v - expected[i]!) <= tolerance, `[${i}] ${v} vs ${expected[i]}`);
  }
}

test('exportTfjs writes a model folder that reloads to the same outputs, with its metadata', async () => {
  const out = path.join(tmp, 'tfjs');
  const metadata = await exportTfjs(runDir, out);
  const { model } = await loadClassifier(runDir);
  const again = await loadModel(out);
  assertClose(outputs(again), outputs(model), 0);
  const onDisk = JSON.parse(await fsp.readFile(path.join(out, 'xfer.json'), 'utf8'));
  assert.deepEqual(onDisk, metadata);
  assert.deepEqual(again.getUserDefinedMetadata(), { xfer: metadata });
  assert.deepEqual(metadata.classNames, ['a', 'b', 'c']);
  assert.equal(metadata.classMode, 'categorical');
  assert.equal(metadata.imageSize, 32);
  // caffe: y = BGR(x) - [103.939, 116.779, 123.68] (Keras's imagenet_utils).
  assert.deepEqual(metadata.affine, {
    weights: [
      [0, 0, 1],
      [0, 1, 0],
      [1, 0, 0],
    ],
    bias: [-103.939, -116.779, -123.68],
  });
});

test("exportTfjs's affine map is Keras's for the tf and torch modes", async () => {
  const tfRun = await buildRunFolder(path.join(tmp, 'run-tf'), {
    classNames: ['x', 'y'],
    preprocessing: { mode: 'tf' },
  });
  const tfMeta = await exportTfjs(tfRun, path.join(tmp, 'tfjs-tf'));
  const s = Number((1 / 127.5).toPrecision(7));
  assert.deepEqual(tfMeta.affine, {
    weights: [
      [s, 0, 0],
      [0, s, 0],
      [0, 0, s],
    ],
    bias: [-1, -1, -1],
  });
  assert.equal(tfMeta.classMode, 'binary');
  const torchRun = await buildRunFolder(path.join(tmp, 'run-torch'), {
    classNames: ['x', 'y'],
    preprocessing: { mode: 'torch' },
  });
  const torch = (await exportTfjs(torchRun, path.join(tmp, 'tfjs-torch'))).affine!;
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  for (let c = 0; c < 3; c++) {
    assert.ok(Math.abs(torch.weights[c]![c]! - 1 / (255 * std[c]!)) < 1e-6);
    assert.ok(Math.abs(torch.bias[c]! + mean[c]! / std[c]!) < 1e-5);
  }
});

test('exportKerasH5 writes Keras HDF5 weights that load back into the same architecture', async () => {
  const out = path.join(tmp, 'classifier.weights.h5');
  await exportKerasH5(runDir, out);
  const { model } = await loadClassifier(runDir);
  const fresh = await buildRunFolder(path.join(tmp, 'other'), {
    classNames: ['a', 'b', 'c'],
    preprocessing: { mode: 'caffe' },
    seed: 99,
  });
  const other = (await loadClassifier(fresh)).model;
  assert.notDeepEqual(outputs(other), outputs(model), 'a different seed gives different weights');
  await loadWeights(other, out);
  assertClose(outputs(other), outputs(model), 0);
  // The run's model/ folder (what `xfer export <model-dir>` is given) names the same run.
  const viaModel = path.join(tmp, 'via-model.h5');
  await exportKerasH5(path.join(runDir, 'model'), viaModel);
  const third = (await loadClassifier(fresh)).model;
  await loadWeights(third, viaModel);
  assertClose(outputs(third), outputs(model), 0);
  await assert.rejects(exportKerasH5(runDir, path.join(tmp, 'weights.bin')), {
    code: 'INVALID_ARGUMENT',
    message: /Expected a file path ending in '\.h5' or '\.hdf5' for out/,
  });
});
