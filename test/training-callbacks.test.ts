import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { formatPath } from '../src/training/format.js';
import {
  Adam,
  CSVLogger,
  compile,
  EarlyStopping,
  getLearningRate,
  ReduceLROnPlateau,
  SGD,
  TerminateOnNaN,
} from '../src/training/index.js';

/** A one-weight model: its kernel is set to the epoch number, to see which epoch was restored. */
function tinyModel(metrics: string[] = []): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 1, inputShape: [1], useBias: false, kernelInitializer: 'zeros' }),
    ],
  });
  compile(model, { optimizer: SGD(0.1), loss: 'binary_crossentropy', metrics });
  return model;
}

function kernelValue(model: tf.LayersModel): number {
  return model.getWeights()[0]!.dataSync()[0]!;
}

function setKernel(model: tf.LayersModel, value: number): void {
  const t = tf.tensor2d([[value]]);
  model.setWeights([t]);
  t.dispose();
}

/** Runs a callback's epoch hooks over made-up values of one key, as Keras's tests do. */
async function drive(
  callback: EarlyStopping | ReduceLROnPlateau,
  model: tf.LayersModel,
  key: string,
  values: number[],
): Promise<{ epochsRun: number }> {
  callback.setModel(model);
  model.stopTraining = false;
  await callback.onTrainBegin();
  let epochsRun = 0;
  for (let epoch = 0; epoch < values.length; epoch++) {
    epochsRun += 1;
    setKernel(model, epoch);
    await callback.onEpochEnd(epoch, { [key]: values[epoch]! });
    if (model.stopTraining) break;
  }
  await callback.onTrainEnd();
  return { epochsRun };
}

/** Captures what xfer's warn() writes to stderr while `run` runs. */
async function captureStderr(run: () => Promise<void> | void): Promise<string> {
  const original = process.stderr.write.bind(process.stderr);
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    await run();
  } finally {
    process.stderr.write = original;
  }
  return text;
}

before(async () => {
  await initBackend();
});

describe('EarlyStopping', () => {
  test("stops where Keras's test says: epoch max(patience, 1) + 2", async () => {
    // keras/src/callbacks/early_stopping_test.py, test_early_stopping_patience.
    const losses = [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5];
    const model = tinyModel();
    for (const patience of [0, 1, 2, 3]) {
      const stopper = new EarlyStopping({ monitor: 'loss', patience });
      await drive(stopper, model, 'loss', losses);
      assert.equal(stopper.stoppedEpoch, Math.max(patience, 1) + 2, `patience ${patience}`);
    }
  });

  test("mode 'auto' maximizes val_accuracy (a compiled accuracy metric)", async () => {
    const model = tinyModel(['accuracy']);
    // Maximizing: 0.6 is best, then two epochs without improvement → stop at epoch 3 with
    // patience 2. Minimizing would have stopped at epoch 2 (0.5 best, 0.6 and 0.55 worse).
    const stopper = new EarlyStopping({ monitor: 'val_accuracy', patience: 2 });
    await drive(stopper, model, 'val_accuracy', [0.5, 0.6, 0.55, 0.58, 0.9]);
    assert.equal(stopper.stoppedEpoch, 3);
    assert.equal(stopper.best, 0.6);
    // camelCase is mapped to Keras's key.
    const camel = new EarlyStopping({ monitor: 'valAccuracy', patience: 2 });
    assert.equal(camel.monitor, 'val_accuracy');
    await drive(camel, model, 'val_accuracy', [0.5, 0.6, 0.55, 0.58, 0.9]);
    assert.equal(camel.stoppedEpoch, 3);
  });

  test("mode 'auto' reads the direction from a model compiled with tfjs's own compile too", async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 1, inputShape: [1], useBias: false })],
    });
    model.compile({ optimizer: 'sgd', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    const stopper = new EarlyStopping({ monitor: 'val_accuracy', patience: 2 });
    await drive(stopper, model, 'val_accuracy', [0.5, 0.6, 0.55, 0.58, 0.9]);
    assert.equal(stopper.stoppedEpoch, 3);
  });

  test("mode 'auto' minimizes a loss used as a metric, and refuses to guess otherwise", async () => {
    const model = tinyModel(['mse']);
    const stopper = new EarlyStopping({ monitor: 'val_mse', patience: 0 });
    await drive(stopper, model, 'val_mse', [0.5, 0.4, 0.45]);
    assert.equal(stopper.stoppedEpoch, 2);
    const unknown = new EarlyStopping({ monitor: 'val_f1' });
    unknown.setModel(model);
    await unknown.onTrainBegin();
    assert.throws(
      () => unknown.onEpochEnd(0, { val_f1: 0.5 }),
      /EarlyStopping received monitor 'val_f1', but xfer cannot tell whether it should be maximized or minimized.*compiled: loss, mse.*mode: 'max'/,
    );
    const explicit = new EarlyStopping({ monitor: 'val_f1', mode: 'max', patience: 0 });
    await drive(explicit, model, 'val_f1', [0.5, 0.7, 0.6]);
    assert.equal(explicit.stoppedEpoch, 2);
  });

  test('minDelta: smaller changes are not improvements', async () => {
    const model = tinyModel();
    const values = [1.0, 0.95, 0.92, 0.85];
    const strict = new EarlyStopping({ monitor: 'loss', patience: 2, minDelta: 0.1 });
    await drive(strict, model, 'loss', values);
    assert.equal(strict.stoppedEpoch, 2); // 0.95 and 0.92 are within 0.1 of 1.0
    const loose = new EarlyStopping({ monitor: 'loss', patience: 2 });
    await drive(loose, model, 'loss', values);
    assert.equal(loose.stoppedEpoch, 0); // every epoch improved
    assert.equal(model.stopTraining, false);
  });

  test("baseline and restoreBestWeights: Keras's no-epoch-beats-the-baseline case", async () => {
    const model = tinyModel();
    const stopper = new EarlyStopping({
      monitor: 'val_loss',
      patience: 5,
      baseline: 0.5,
      restoreBestWeights: true,
    });
    const { epochsRun } = await drive(
      stopper,
      model,
      'val_loss',
      [0.9, 0.8, 0.7, 0.71, 0.72, 0.73],
    );
    assert.equal(epochsRun, 5);
    assert.equal(stopper.stoppedEpoch, 4);
    assert.equal(kernelValue(model), 2); // the weights of epoch 2 (0.7), restored
  });

  test('restoreBestWeights restores the best epoch, and holds no tensors afterwards', async () => {
    const model = tinyModel();
    const before = tf.memory().numTensors;
    const stopper = new EarlyStopping({
      monitor: 'val_loss',
      patience: 2,
      restoreBestWeights: true,
    });
    const { epochsRun } = await drive(stopper, model, 'val_loss', [0.2, 0.15, 0.1, 0.11, 0.12]);
    assert.equal(epochsRun, 5);
    assert.equal(stopper.stoppedEpoch, 4);
    assert.equal(stopper.bestEpoch, 2);
    assert.equal(kernelValue(model), 2);
    assert.equal(tf.memory().numTensors, before);
    // Without restoreBestWeights the last epoch's weights stay.
    const plain = new EarlyStopping({ monitor: 'val_loss', patience: 2 });
    await drive(plain, model, 'val_loss', [0.2, 0.15, 0.1, 0.11, 0.12]);
    assert.equal(kernelValue(model), 4);
  });

  test('startFromEpoch: no monitoring during the warm-up', async () => {
    const model = tinyModel();
    const rising = [1, 2, 3, 4, 5];
    const warm = new EarlyStopping({ monitor: 'loss', patience: 0, startFromEpoch: 2 });
    await drive(warm, model, 'loss', rising);
    assert.equal(warm.stoppedEpoch, 3); // epoch 2 sets the best, epoch 3 is worse
    const cold = new EarlyStopping({ monitor: 'loss', patience: 0 });
    await drive(cold, model, 'loss', rising);
    assert.equal(cold.stoppedEpoch, 1);
  });

  test('state resets at train begin (reusable across fit calls)', async () => {
    const model = tinyModel();
    const stopper = new EarlyStopping({ monitor: 'loss', patience: 1 });
    await drive(stopper, model, 'loss', [1, 2, 3]);
    assert.equal(stopper.stoppedEpoch, 1);
    await stopper.onTrainBegin();
    assert.equal(stopper.best, undefined);
    assert.equal(stopper.wait, 0);
    assert.equal(stopper.stoppedEpoch, 0);
  });

  test('a missing monitored key warns once, listing the available keys', async () => {
    const model = tinyModel(['accuracy']);
    const stopper = new EarlyStopping({ patience: 0 });
    stopper.setModel(model);
    const text = await captureStderr(async () => {
      await stopper.onTrainBegin();
      await stopper.onEpochEnd(0, { loss: 1, accuracy: 0.5 });
      await stopper.onEpochEnd(1, { loss: 1, accuracy: 0.5 });
    });
    assert.match(
      text,
      /EarlyStopping is conditioned on metric 'val_loss', which is not available\. Available metrics are: loss, accuracy\. Validation metrics appear only when fit gets validationData\./,
    );
    assert.equal(text.match(/not available/g)?.length, 1);
    assert.equal(stopper.stoppedEpoch, 0);
  });

  test('bad options are refused with one clear message', () => {
    assert.throws(
      () => new EarlyStopping({ patience: -1 }),
      /Expected non-negative integer for patience but received -1/,
    );
    assert.throws(
      () => new EarlyStopping({ mode: 'maximum' as 'max' }),
      /Expected one of 'auto', 'min', 'max' for mode but received 'maximum'/,
    );
  });
});

describe('ReduceLROnPlateau', () => {
  const flat = [1, 1, 1, 1, 1, 1, 1, 1];

  test('halves the rate every `patience` flat epochs, and logs learning_rate', async () => {
    const model = tinyModel();
    const reducer = new ReduceLROnPlateau({ monitor: 'val_loss', factor: 0.5, patience: 2 });
    reducer.setModel(model);
    await reducer.onTrainBegin();
    const logged: number[] = [];
    for (let epoch = 0; epoch < flat.length; epoch++) {
      const logs = { val_loss: flat[epoch]! };
      await reducer.onEpochEnd(epoch, logs);
      logged.push((logs as Record<string, number>).learning_rate!);
    }
    // Epoch 0 sets the best; waits reach 2 at epochs 2, 4 and 6 → three halvings.
    assert.deepEqual(logged, [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]);
    assert.equal(getLearningRate(model.optimizer), 0.0125);
  });

  test('cooldown delays the next count; minLr bounds the rate', async () => {
    const model = tinyModel();
    const reducer = new ReduceLROnPlateau({ factor: 0.5, patience: 2, cooldown: 2 });
    await drive(reducer, model, 'val_loss', flat);
    // Reductions at epoch 2 and epoch 5 (epochs 3 and 4 spent in cooldown), none at 7.
    assert.equal(getLearningRate(model.optimizer), 0.025);

    const bounded = tinyModel();
    const floor = new ReduceLROnPlateau({ factor: 0.5, patience: 2, minLr: 0.03 });
    await drive(floor, bounded, 'val_loss', flat);
    assert.equal(getLearningRate(bounded.optimizer), 0.03);
  });

  test("an improvement resets the wait (min_delta 1e-4, Keras's default)", async () => {
    const model = tinyModel();
    const reducer = new ReduceLROnPlateau({ factor: 0.5, patience: 2 });
    // 0.99995 is not an improvement on 1 by more than 1e-4; 0.9 is.
    await drive(reducer, model, 'val_loss', [1, 0.99995, 0.9, 0.9, 0.9]);
    assert.equal(getLearningRate(model.optimizer), 0.05); // one reduction, at epoch 4
  });

  test('the new rate reaches the optimizer: SGD and Adam steps shrink with it', async () => {
    for (const [name, optimizer] of [
      ['sgd', SGD(0.1)],
      ['adam', Adam(0.1)],
    ] as const) {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({ units: 1, inputShape: [1], useBias: false, kernelInitializer: 'ones' }),
        ],
      });
      compile(model, { optimizer, loss: 'mse' });
      const reducer = new ReduceLROnPlateau({ monitor: 'loss', factor: 0.1, patience: 0 });
      reducer.setModel(model);
      await reducer.onTrainBegin();
      await reducer.onEpochEnd(0, { loss: 1 });
      await reducer.onEpochEnd(1, { loss: 1 }); // reduces 0.1 → 0.01
      assert.ok(Math.abs(getLearningRate(optimizer)! - 0.01) < 1e-12, name);
      const x = tf.tensor2d([[1]]);
      const y = tf.tensor2d([[0]]);
      const before = kernelValue(model);
      await model.trainOnBatch(x, y);
      const step = before - kernelValue(model);
      tf.dispose([x, y]);
      // SGD: lr * d/dw (w - 0)^2 = 0.01 * 2 = 0.02. Adam's first step is lr * sign(g) = 0.01.
      const expected = name === 'sgd' ? 0.02 : 0.01;
      assert.ok(Math.abs(step - expected) < 1e-5, `${name}: step ${step}, expected ${expected}`);
    }
  });

  test('factor must be below 1', () => {
    assert.throws(
      () => new ReduceLROnPlateau({ factor: 1 }),
      /Expected number between 0 and 1 \(exclusive\) for factor but received 1/,
    );
  });
});

describe('CSVLogger', () => {
  let dir: string;
  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-csv-'));
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  test("Keras's columns: epoch, then sorted keys; val_ twins as NA; append keeps rows", async () => {
    const file = path.join(dir, 'log.csv');
    const logger = new CSVLogger(file);
    await logger.onTrainBegin();
    await logger.onEpochEnd(0, { loss: 0.5, accuracy: 0.75 });
    await logger.onEpochEnd(1, { loss: 0.25, accuracy: 1 });
    await logger.onTrainEnd();
    assert.equal(
      await fsp.readFile(file, 'utf8'),
      'epoch,accuracy,loss,val_accuracy,val_loss\n0,0.75,0.5,NA,NA\n1,1.0,0.25,NA,NA\n',
    );

    const more = new CSVLogger(file, { append: true });
    await more.onTrainBegin();
    await more.onEpochEnd(2, { loss: 0.125, accuracy: 1 });
    assert.equal(
      await fsp.readFile(file, 'utf8'),
      'epoch,accuracy,loss,val_accuracy,val_loss\n0,0.75,0.5,NA,NA\n1,1.0,0.25,NA,NA\n2,1.0,0.125,NA,NA\n',
    );
    // No temp file is left beside it.
    assert.deepEqual(await fsp.readdir(dir), ['log.csv']);
  });

  test('separator, and validation keys as given', async () => {
    const file = path.join(dir, 'semi.csv');
    const logger = new CSVLogger(file, { separator: ';' });
    await logger.onTrainBegin();
    await logger.onEpochEnd(0, { loss: 0.5, val_loss: 0.625 });
    assert.equal(await fsp.readFile(file, 'utf8'), 'epoch;loss;val_loss\n0;0.5;0.625\n');
  });
});

describe('TerminateOnNaN', () => {
  test('stops on a NaN or infinite loss, not on a finite one', async () => {
    const model = tinyModel();
    const callback = new TerminateOnNaN();
    callback.setModel(model);
    model.stopTraining = false;
    callback.onTrainBatchEnd(0, { loss: 0.5 });
    assert.equal(model.stopTraining, false);
    callback.onTrainBatchEnd(1, { loss: Number.NaN });
    assert.equal(model.stopTraining, true);
    model.stopTraining = false;
    callback.onTrainBatchEnd(2, { loss: Number.POSITIVE_INFINITY });
    assert.equal(model.stopTraining, true);
    assert.throws(
      () => new TerminateOnNaN({ raiseError: true }).onTrainBatchEnd(3, { loss: Number.NaN }),
      /NaN or Inf loss encountered at batch 3/,
    );
  });
});

describe('formatPath (ModelCheckpoint file names)', () => {
  test("Python's format specs, as Keras fills them", () => {
    const logs = { epoch: 3, val_loss: 0.41666, loss: 1.5e-5, val_accuracy: 0.875 };
    assert.equal(formatPath('w.{epoch:02d}-{val_loss:.2f}.h5', logs), 'w.03-0.42.h5');
    assert.equal(formatPath('{epoch}-{val_accuracy}', logs), '3-0.875');
    assert.equal(
      formatPath('{loss:.2e}|{val_accuracy:.1%}|{epoch:>4d}|{epoch:<3d}|', logs),
      '1.50e-05|87.5%|   3|3  |',
    );
    assert.equal(formatPath('{{epoch}}-{valLoss:.3f}', logs), '{epoch}-0.417');
    assert.equal(formatPath('{val_loss:g}', logs), '0.41666');
    assert.throws(
      () => formatPath('w.{epoch:02d}-{val_acc:.2f}.h5', logs),
      /cannot fill \{val_acc\} in the path 'w\.\{epoch:02d\}-\{val_acc:\.2f\}\.h5': no value named 'val_acc'\. Available: epoch, val_loss, loss, val_accuracy/,
    );
    assert.throws(() => formatPath('{val_loss:02d}', logs), /format code 'd' needs an integer/);
    // Exact ties round to even, as Python's format does ('%.2f' % 0.125 == '0.12'); JS rounds up.
    const ties = { epoch: 1, a: 0.125, b: 0.375, c: 2.5, d: 0.5 };
    assert.equal(
      formatPath('{a:.2f} {b:.2f} {c:.0f} {d:.0f} {a:.1e}', ties),
      '0.12 0.38 2 0 1.2e-01',
    );
  });
});
