/**
 * The `weights` option through the weights module: 'imagenet' resolves Keras's file name in the
 * `models` cache, a path loads that file, and a download that cannot happen fails naming the URL.
 * The cache is a temp folder (XFER_HOME) holding files the test writes in Keras's format.
 */
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { MobileNetV2 } from '../src/applications/index.js';
import { initBackend } from '../src/engine/backend.js';
import type * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';
import { setQuiet } from '../src/util/log.js';
import { saveWeights } from '../src/weights/index.js';

const home = mkdtempSync(path.join(os.tmpdir(), 'xfer-applications-'));
const models = path.join(home, 'models');
const previousHome = process.env.XFER_HOME;
let source: tf.LayersModel;
let weightsFile: string;

before(async () => {
  process.env.XFER_HOME = home;
  mkdirSync(models, { recursive: true });
  await initBackend();
  source = await MobileNetV2({ weights: null, includeTop: false, inputShape: [32, 32, 3] });
  // Keras's name for alpha 1.0 at 96x96 without top; it records no hash for MobileNetV2.
  weightsFile = path.join(
    models,
    'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5',
  );
  await saveWeights(source, weightsFile);
});

after(() => {
  source.dispose();
  if (previousHome === undefined) delete process.env.XFER_HOME;
  else process.env.XFER_HOME = previousHome;
  setQuiet(false);
  rmSync(home, { recursive: true, force: true });
});

function assertSameWeights(actual: tf.LayersModel, expected: tf.LayersModel): void {
  const a = actual.getWeights();
  const e = expected.getWeights();
  assert.equal(a.length, e.length);
  a.forEach((weight, i) => {
    assert.deepEqual(weight.shape, e[i]!.shape);
    assert.deepEqual(weight.dataSync(), e[i]!.dataSync(), `weight ${i}`);
  });
}

test("weights: 'imagenet' loads Keras's file for the size and alpha from the models cache", async () => {
  const model = await MobileNetV2({ includeTop: false, inputShape: [96, 96, 3] });
  assert.equal(model.name, 'mobilenetv2_1.00_96');
  assertSameWeights(model, source);
  model.dispose();
});

test('weights: a path loads that file, whatever the input size', async () => {
  const model = await MobileNetV2({
    weights: weightsFile,
    includeTop: false,
    inputShape: [48, 64, 3],
  });
  assertSameWeights(model, source);
  model.dispose();
});

test('a weights file without the top does not fit a model with it, and says so', async () => {
  await assert.rejects(
    MobileNetV2({ weights: weightsFile, classes: 10 }),
    (error: unknown) => error instanceof XferError && error.code === 'WEIGHTS_MISMATCH',
  );
});

async function offline(): Promise<boolean> {
  try {
    await lookup('storage.googleapis.com');
    return false;
  } catch {
    return true;
  }
}

test("weights: 'imagenet' with no network fails with an XferError naming Keras's URL", {
  skip: (await offline()) ? false : 'this machine can reach storage.googleapis.com',
}, async () => {
  setQuiet(true);
  const url =
    'https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5';
  await assert.rejects(
    MobileNetV2({ includeTop: false, inputShape: [128, 128, 3] }),
    (error: unknown) =>
      error instanceof XferError && error.code === 'DOWNLOAD_FAILED' && error.message.includes(url),
  );
});
