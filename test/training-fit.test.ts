import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Batch, BatchSource } from '../src/data/source.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import {
  Adam,
  arrayBatches,
  Callback,
  compile,
  evaluate,
  fit,
  type Logs,
  predict,
  TerminateOnNaN,
} from '../src/training/index.js';

/**
 * A separable problem: label 1 when x0 + x1 > 0. 40 rows, so batches of 16 leave a short last
 * batch of 8 (the case where an unweighted mean of batch means differs from Keras's).
 */
function separable(rows = 40): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < rows; i++) {
    const a = Math.sin(i * 1.7) * 2;
    const b = Math.cos(i * 2.3) * 2 + (i % 3) * 0.1;
    xs.push(a, b);
    ys.push(a + b > 0 ? 1 : 0);
  }
  return { x: tf.tensor2d(xs, [rows, 2]), y: tf.tensor2d(ys, [rows, 1]) };
}

function binaryModel(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: 4,
        inputShape: [2],
        activation: 'tanh',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.dense({
        units: 1,
        activation: 'sigmoid',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
}

/** Records every hook call, to check the order fit calls them in. */
class Recorder extends Callback {
  events: string[] = [];
  batchLogs: Logs[] = [];
  override onTrainBegin(): void {
    this.events.push('trainBegin');
  }
  override onEpochBegin(epoch: number): void {
    this.events.push(`epochBegin ${epoch}`);
  }
  override onTrainBatchBegin(batch: number): void {
    this.events.push(`batchBegin ${batch}`);
  }
  override onTrainBatchEnd(batch: number, logs?: Logs): void {
    this.events.push(`batchEnd ${batch}`);
    this.batchLogs.push({ ...logs });
  }
  override onTestBegin(): void {
    this.events.push('testBegin');
  }
  override onTestEnd(): void {
    this.events.push('testEnd');
  }
  override onEpochEnd(epoch: number): void {
    this.events.push(`epochEnd ${epoch}`);
  }
  override onTrainEnd(): void {
    this.events.push('trainEnd');
  }
}

/** Wraps a source and records which batches were fetched and when its epoch ended. */
class CountingSource implements BatchSource {
  readonly calls: string[] = [];
  constructor(private readonly inner: BatchSource) {}
  get length(): number {
    return this.inner.length;
  }
  getBatch(index: number): Promise<Batch> {
    this.calls.push(`get ${index}`);
    return this.inner.getBatch(index);
  }
  onEpochEnd(): void {
    this.calls.push('epochEnd');
    this.inner.onEpochEnd?.();
  }
}

before(async () => {
  await initBackend();
});

describe('fit', () => {
  test('learns a separable problem from tensors; history and validation keys as Keras', async () => {
    const { x, y } = separable();
    const model = binaryModel();
    compile(model, { optimizer: Adam(0.05), loss: 'binary_crossentropy', metrics: ['accuracy'] });
    const history = await fit(
      model,
      { x, y },
      {
        epochs: 15,
        batchSize: 16,
        seed: 3,
        validationData: [x, y],
        verbose: 0,
      },
    );
    assert.deepEqual(Object.keys(history.history), [
      'loss',
      'accuracy',
      'val_loss',
      'val_accuracy',
    ]);
    assert.deepEqual(history.epoch, [...Array(15).keys()]);
    for (const values of Object.values(history.history)) assert.equal(values.length, 15);
    const loss = history.history.loss!;
    assert.ok(loss[14]! < loss[0]! * 0.6, `loss ${loss[0]} → ${loss[14]}`);
    assert.ok(
      history.history.val_accuracy![14]! >= 0.9,
      `val_accuracy ${history.history.val_accuracy![14]}`,
    );
    // val_ metrics are the model's at the epoch's end: equal to a fresh evaluate after training.
    const evaluated = await evaluate(model, { x, y }, { verbose: 0 });
    assert.ok(Math.abs(evaluated.loss! - history.history.val_loss![14]!) < 1e-6);
    tf.dispose([x, y]);
  });

  test("epoch logs are Keras's sample-weighted means: with lr 0, equal to tfjs's evaluate", async () => {
    const { x, y } = separable();
    const model = binaryModel();
    compile(model, {
      optimizer: tf.train.sgd(0),
      loss: 'binary_crossentropy',
      metrics: ['accuracy'],
    });
    const [tfjsLoss, tfjsAcc] = (model.evaluate(x, y, { batchSize: 40 }) as tf.Scalar[]).map(
      (t) => t.dataSync()[0]!,
    );
    const recorder = new Recorder();
    const history = await fit(model, arrayBatches(x, y, { batchSize: 16 }), {
      epochs: 1,
      verbose: 0,
      callbacks: [recorder],
    });
    assert.ok(
      Math.abs(history.history.loss![0]! - tfjsLoss!) < 1e-6,
      `${history.history.loss![0]} vs ${tfjsLoss}`,
    );
    assert.ok(Math.abs(history.history.accuracy![0]! - tfjsAcc!) < 1e-6);
    // Batch logs carry the running mean; the last one is the epoch's value.
    assert.equal(recorder.batchLogs.length, 3);
    assert.ok(Math.abs(recorder.batchLogs[2]!.loss! - history.history.loss![0]!) < 1e-9);
    tf.dispose([x, y]);
  });

  test('hooks in order; the next batch is fetched before the current one trains', async () => {
    const { x, y } = separable(8);
    const model = binaryModel();
    compile(model, { optimizer: 'adam', loss: 'binary_crossentropy' });
    const source = new CountingSource(arrayBatches(x, y, { batchSize: 4 }));
    const recorder = new Recorder();
    const calls: string[] = [];
    // Interleave the source's log with the callback's.
    const getBatch = source.getBatch.bind(source);
    source.getBatch = (index) => {
      calls.push(`get ${index}`);
      return getBatch(index);
    };
    recorder.onTrainBatchBegin = (batch: number) => {
      calls.push(`train ${batch}`);
    };
    await fit(model, source, {
      epochs: 2,
      validationData: arrayBatches(x, y, { batchSize: 8 }),
      verbose: 0,
      callbacks: [recorder],
    });
    assert.deepEqual(calls, [
      'get 0',
      'get 1',
      'train 0',
      'train 1',
      'get 0',
      'get 1',
      'train 0',
      'train 1',
    ]);
    assert.deepEqual(recorder.events, [
      'trainBegin',
      'epochBegin 0',
      'batchEnd 0',
      'batchEnd 1',
      'testBegin',
      'testEnd',
      'epochEnd 0',
      'epochBegin 1',
      'batchEnd 0',
      'batchEnd 1',
      'testBegin',
      'testEnd',
      'epochEnd 1',
      'trainEnd',
    ]);
    assert.deepEqual(source.calls, ['get 0', 'get 1', 'epochEnd', 'get 0', 'get 1', 'epochEnd']);
    tf.dispose([x, y]);
  });

  test('stepsPerEpoch continues across epochs and cycles the source', async () => {
    const { x, y } = separable(12);
    const model = binaryModel();
    compile(model, { optimizer: 'adam', loss: 'binary_crossentropy' });
    const source = new CountingSource(arrayBatches(x, y, { batchSize: 4 })); // 3 batches
    const history = await fit(model, source, { epochs: 3, stepsPerEpoch: 2, verbose: 0 });
    assert.equal(history.epoch.length, 3);
    // 6 steps over a 3-batch source: two full passes, each ended by onEpochEnd.
    // The reshuffle comes after the last batch of a pass is fetched, before the next pass starts.
    assert.deepEqual(source.calls, [
      'get 0',
      'get 1',
      'get 2',
      'epochEnd',
      'get 0',
      'get 1',
      'get 2',
      'epochEnd',
    ]);
    tf.dispose([x, y]);
  });

  test('a callback setting stopTraining ends fit after that epoch', async () => {
    const { x, y } = separable(8);
    const model = binaryModel();
    compile(model, { optimizer: 'adam', loss: 'binary_crossentropy' });
    class StopAt1 extends Callback {
      override onEpochEnd(epoch: number): void {
        if (epoch === 1 && this.model) this.model.stopTraining = true;
      }
    }
    const history = await fit(
      model,
      { x, y },
      { epochs: 10, verbose: 0, callbacks: [new StopAt1()] },
    );
    assert.deepEqual(history.epoch, [0, 1]);
    // initialEpoch: epochs 3 and 4 run, numbered so.
    const resumed = await fit(model, { x, y }, { epochs: 5, initialEpoch: 3, verbose: 0 });
    assert.deepEqual(resumed.epoch, [3, 4]);
    tf.dispose([x, y]);
  });

  test('TerminateOnNaN stops mid-epoch at the first NaN batch', async () => {
    const { x, y } = separable(16);
    const bad = tf.tidy(() => tf.concat([tf.fill([4, 2], Number.NaN), tf.slice(x, 4, 12)]));
    const model = binaryModel();
    // mse: tfjs's binary crossentropy clips NaN predictions into a finite loss.
    compile(model, { optimizer: 'adam', loss: 'mse' });
    const recorder = new Recorder();
    const history = await fit(model, arrayBatches(bad, y, { batchSize: 4 }), {
      epochs: 3,
      verbose: 0,
      callbacks: [new TerminateOnNaN(), recorder],
    });
    assert.equal(recorder.batchLogs.length, 1);
    assert.deepEqual(history.epoch, [0]);
    assert.ok(Number.isNaN(history.history.loss![0]!));
    tf.dispose([x, y, bad]);
  });

  test('no tensor leaks: the count is flat across epochs, and back after fit', async () => {
    const { x, y } = separable();
    const model = binaryModel();
    compile(model, { optimizer: Adam(0.01), loss: 'binary_crossentropy', metrics: ['accuracy'] });
    const counts: number[] = [];
    class Count extends Callback {
      override onEpochEnd(): void {
        counts.push(tf.memory().numTensors);
      }
    }
    const start = tf.memory().numTensors;
    await fit(
      model,
      { x, y },
      { epochs: 4, batchSize: 16, validationData: [x, y], verbose: 0, callbacks: [new Count()] },
    );
    assert.equal(new Set(counts).size, 1, `tensors per epoch: ${counts}`);
    // What remains is Adam's state, made at its first step: first and second moments for each of
    // the 4 trainable weights (its beta powers were made with the optimizer, before `start`).
    const adamState = tf.memory().numTensors - start;
    assert.equal(adamState, 2 * 4);
    await fit(model, { x, y }, { epochs: 2, batchSize: 16, verbose: 0 });
    assert.equal(tf.memory().numTensors - start, adamState);
    tf.dispose([x, y]);
  });

  test('frozen layers keep their weights; the compiled trainable ones change', async () => {
    const { x, y } = separable();
    const model = binaryModel();
    model.layers[0]!.trainable = false;
    compile(model, { optimizer: Adam(0.05), loss: 'binary_crossentropy' });
    const before = model.getWeights().map((w) => w.arraySync());
    await fit(model, { x, y }, { epochs: 2, verbose: 0 });
    const after = model.getWeights().map((w) => w.arraySync());
    assert.deepEqual(after[0], before[0]); // frozen kernel
    assert.deepEqual(after[1], before[1]); // frozen bias
    assert.notDeepEqual(after[2], before[2]); // trained kernel
    tf.dispose([x, y]);
  });

  test('binary labels of shape [n] train like [n, 1]; mismatched targets are refused', async () => {
    const { x, y } = separable();
    const flat = tf.reshape(y, [40]);
    const a = binaryModel();
    const b = binaryModel();
    compile(a, {
      optimizer: tf.train.sgd(0.1),
      loss: 'binary_crossentropy',
      metrics: ['accuracy'],
    });
    compile(b, {
      optimizer: tf.train.sgd(0.1),
      loss: 'binary_crossentropy',
      metrics: ['accuracy'],
    });
    const ha = await fit(a, { x, y }, { epochs: 2, shuffle: false, verbose: 0 });
    const hb = await fit(b, { x, y: flat }, { epochs: 2, shuffle: false, verbose: 0 });
    assert.deepEqual(hb.history, ha.history);
    const oneHot = tf.oneHot(tf.cast(flat, 'int32'), 2);
    await assert.rejects(
      fit(a, { x, y: oneHot }, { epochs: 1, verbose: 0 }),
      /targets of shape \[32,2\] do not match the model's output of shape \[32,1\]/,
    );
    tf.dispose([x, y, flat, oneHot]);
  });

  test('clear errors for an uncompiled model and for options that do not apply', async () => {
    const { x, y } = separable(8);
    const model = binaryModel();
    await assert.rejects(
      fit(model, { x, y }),
      /model 'sequential_\d+' is not compiled\. Call compile\(model, /,
    );
    compile(model, { optimizer: 'adam', loss: 'binary_crossentropy' });
    await assert.rejects(
      fit(model, arrayBatches(x, y), { batchSize: 4 }),
      /batchSize applies to tensor data only; a BatchSource sets its own batch size/,
    );
    await assert.rejects(
      fit(model, { x, y }, { epochs: 0 }),
      /Expected positive integer for epochs but received 0/,
    );
    await assert.rejects(
      fit(model, [x, y] as never),
      /Expected a BatchSource \(e\.g\. flowFromDirectory\) or \{ x: tf\.Tensor, y: tf\.Tensor \} for data/,
    );
    const empty: BatchSource = { length: 0, getBatch: () => Promise.reject(new Error('none')) };
    await assert.rejects(fit(model, empty), /data has 0 batches/);
    tf.dispose([x, y]);
  });

  test('a model compiled with tfjs directly trains too, its accuracy logged as accuracy', async () => {
    const { x, y } = separable(16);
    const model = binaryModel();
    model.compile({ optimizer: 'adam', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    const history = await fit(model, { x, y }, { epochs: 1, verbose: 0 });
    assert.deepEqual(Object.keys(history.history), ['loss', 'accuracy']);
    tf.dispose([x, y]);
  });
});

describe('evaluate and predict', () => {
  test("equal tfjs's model.evaluate and model.predict on the same tensors", async () => {
    const { x, y } = separable();
    const model = binaryModel();
    compile(model, { optimizer: 'adam', loss: 'binary_crossentropy', metrics: ['accuracy'] });
    const [tfjsLoss, tfjsAcc] = (model.evaluate(x, y, { batchSize: 16 }) as tf.Scalar[]).map(
      (t) => t.dataSync()[0]!,
    );
    const ours = await evaluate(model, { x, y }, { batchSize: 16, verbose: 0 });
    assert.deepEqual(Object.keys(ours), ['loss', 'accuracy']);
    assert.ok(Math.abs(ours.loss! - tfjsLoss!) < 1e-6, `${ours.loss} vs ${tfjsLoss}`);
    assert.ok(Math.abs(ours.accuracy! - tfjsAcc!) < 1e-6);
    const viaSource = await evaluate(model, arrayBatches(x, y, { batchSize: 7 }), { verbose: 0 });
    assert.ok(Math.abs(viaSource.loss! - tfjsLoss!) < 1e-6);

    const expected = model.predict(x) as tf.Tensor;
    const fromTensor = await predict(model, x, { batchSize: 16 });
    const fromSource = await predict(model, arrayBatches(x, y, { batchSize: 9 }));
    assert.deepEqual(fromTensor.shape, [40, 1]);
    assert.deepEqual(Array.from(fromTensor.dataSync()), Array.from(expected.dataSync()));
    assert.deepEqual(Array.from(fromSource.dataSync()), Array.from(expected.dataSync()));
    const firstTwo = await predict(model, arrayBatches(x, null, { batchSize: 9 }), { steps: 2 });
    assert.deepEqual(firstTwo.shape, [18, 1]);
    tf.dispose([x, y, expected, fromTensor, fromSource, firstTwo]);
  });

  test('categorical and sparse accuracy match tfjs on a 3-class softmax', async () => {
    const rows = 30;
    const x = tf.randomNormal([rows, 4], 0, 1, 'float32', 7);
    const labels = tf.tensor1d(
      Array.from({ length: rows }, (_, i) => i % 3),
      'int32',
    );
    const oneHot = tf.oneHot(labels, 3);
    const make = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({
            units: 3,
            inputShape: [4],
            activation: 'softmax',
            kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }),
          }),
        ],
      });
    const categorical = make();
    compile(categorical, { optimizer: 'adam', loss: 'categorical_crossentropy', metrics: ['acc'] });
    const sparse = make();
    sparse.setWeights(categorical.getWeights());
    compile(sparse, {
      optimizer: 'adam',
      loss: 'sparse_categorical_crossentropy',
      metrics: ['accuracy'],
    });
    const c = await evaluate(categorical, { x, y: oneHot }, { verbose: 0 });
    const s = await evaluate(sparse, { x, y: labels }, { verbose: 0 });
    assert.deepEqual(Object.keys(c), ['loss', 'acc']);
    assert.ok(Math.abs(c.loss! - s.loss!) < 1e-6);
    assert.equal(c.acc, s.accuracy);
    const [tfjsLoss, tfjsAcc] = (categorical.evaluate(x, oneHot) as tf.Scalar[]).map(
      (t) => t.dataSync()[0]!,
    );
    assert.ok(Math.abs(c.loss! - tfjsLoss!) < 1e-6);
    assert.ok(Math.abs(c.acc! - tfjsAcc!) < 1e-6);
    tf.dispose([x, labels, oneHot]);
  });
});
