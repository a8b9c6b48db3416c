/**
 * TerminateOnNaN's weight check: a NaN that the loss hides (tfjs's cross-entropy clips a NaN
 * prediction into a finite loss on the wasm backend) still stops training, after the batch that
 * made it, with Keras's message.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import type { XferError } from '../src/errors.js';
import {
  Adam,
  arrayBatches,
  compile,
  fit,
  nonFiniteWeight,
  SGD,
  TerminateOnNaN,
} from '../src/training/index.js';
import { setQuiet } from '../src/util/log.js';

before(async () => {
  await initBackend();
});

function twoLayerModel(): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 3, inputShape: [2], name: 'hidden', activation: 'tanh' }),
      tf.layers.dense({ units: 1, name: 'out', activation: 'sigmoid' }),
    ],
  });
  compile(model, { optimizer: SGD(0.1), loss: 'binary_crossentropy' });
  return model;
}

/** Writes `value` into element `index` of the model's weight `name`. */
function inject(model: tf.LayersModel, name: string, index: number, value: number): void {
  const variable = model.trainableWeights.find((w) => w.originalName === name)!;
  const values = Float32Array.from(variable.read().dataSync());
  values[index] = value;
  const tensor = tf.tensor(values, variable.shape as number[]);
  variable.write(tensor);
  tensor.dispose();
}

async function captureStdoutAsync(work: () => Promise<void>): Promise<string> {
  const original = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    await work();
  } finally {
    process.stdout.write = original;
  }
  return out;
}

/** Captures what `work` prints on stdout (the training loop's messages go there, as Keras's). */
function captureStdout(work: () => void): string {
  const original = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    work();
  } finally {
    process.stdout.write = original;
  }
  return out;
}

test('a NaN weight behind a finite loss stops training after that batch, with the message', () => {
  const model = twoLayerModel();
  const callback = new TerminateOnNaN();
  callback.setModel(model);
  model.stopTraining = false;
  assert.equal(nonFiniteWeight(model), null);
  callback.onTrainBatchEnd(0, { loss: 0.7 });
  assert.equal(model.stopTraining, false);
  inject(model, 'out/bias', 0, Number.NaN);
  const printed = captureStdout(() => callback.onTrainBatchEnd(1, { loss: 0.7 }));
  assert.equal(model.stopTraining, true);
  assert.equal(
    printed,
    'Batch 1: Invalid weights (out/bias is NaN or Inf), terminating training\n',
  );
  // raiseError: an XferError naming the weight, with details the run folder's message uses.
  model.stopTraining = false;
  assert.throws(
    () => {
      const raising = new TerminateOnNaN({ raiseError: true });
      raising.setModel(model);
      raising.onTrainBatchEnd(4, { loss: 0.7 });
    },
    (error: XferError) => {
      assert.match(error.message, /^weight out\/bias became NaN or infinite at batch 4/);
      assert.deepEqual(error.details, { batch: 4, diverged: true, weight: 'out/bias' });
      return true;
    },
  );
  model.dispose();
});

test("checkWeights: 'epoch' checks at the epoch's end only, 'none' never; Inf counts as NaN", () => {
  const model = twoLayerModel();
  inject(model, 'hidden/kernel', 3, Number.POSITIVE_INFINITY);
  setQuiet(true);
  try {
    const perEpoch = new TerminateOnNaN({ checkWeights: 'epoch' });
    perEpoch.setModel(model);
    model.stopTraining = false;
    perEpoch.onTrainBatchEnd(0, { loss: 0.5 });
    assert.equal(model.stopTraining, false);
    perEpoch.onEpochEnd(0);
    assert.equal(model.stopTraining, true);
    const never = new TerminateOnNaN({ checkWeights: 'none' });
    never.setModel(model);
    model.stopTraining = false;
    never.onTrainBatchEnd(0, { loss: 0.5 });
    never.onEpochEnd(0);
    assert.equal(model.stopTraining, false);
  } finally {
    setQuiet(false);
  }
  assert.throws(
    () => new TerminateOnNaN({ checkWeights: 'step' as 'batch' }),
    /Expected 'batch', 'epoch' or 'none' for checkWeights/,
  );
  model.dispose();
});

test('finite weights whose sum overflows float32 are not reported', () => {
  const model = twoLayerModel();
  inject(model, 'hidden/kernel', 0, 3e38);
  inject(model, 'hidden/kernel', 1, 3e38);
  assert.equal(nonFiniteWeight(model), null);
  model.dispose();
});

test('fit at a learning rate of 1e30: NaN weights behind a finite loss stop it in the first epoch', async () => {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        units: 8,
        inputShape: [2],
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.dense({
        units: 1,
        activation: 'sigmoid',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
  compile(model, { optimizer: Adam(1e30), loss: 'binary_crossentropy' });
  const x = tf.tensor2d([0.5, -1, 1, 2, -2, 0.3, 1.5, -0.7], [4, 2]);
  const y = tf.tensor2d([1, 0, 1, 0], [4, 1]);
  let history: Awaited<ReturnType<typeof fit>> | undefined;
  const printed = await captureStdoutAsync(async () => {
    history = await fit(model, arrayBatches(x, y, { batchSize: 2 }), {
      epochs: 20,
      verbose: 0,
      callbacks: [new TerminateOnNaN()],
    });
  });
  assert.deepEqual(history!.epoch, [0]);
  // The loss stayed finite: Keras's loss check alone would have trained 20 epochs of NaN.
  assert.ok(Number.isFinite(history!.history.loss![0]!), String(history!.history.loss));
  assert.notEqual(nonFiniteWeight(model), null);
  assert.match(printed, /^Batch 1: Invalid weights \(\S+ is NaN or Inf\), terminating training\n$/);
  tf.dispose([x, y]);
  model.dispose();
});
