import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { ImageDataGenerator } from '../src/data/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import {
  Adam,
  CSVLogger,
  compile,
  EarlyStopping,
  evaluate,
  fit,
  ModelCheckpoint,
  predict,
  predictImage,
} from '../src/training/index.js';
import { loadModel, loadWeights } from '../src/weights/index.js';

let dir: string;

function tinyModel(): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 2, inputShape: [1], name: 'dense_a' }),
      tf.layers.dense({ units: 1, name: 'dense_b' }),
    ],
  });
  compile(model, { optimizer: 'sgd', loss: 'mse', metrics: ['mae'] });
  return model;
}

/** Sets every weight of the model to `value`, so a file shows which epoch it came from. */
function fillWeights(model: tf.LayersModel, value: number): void {
  const values = model.getWeights().map((w) => tf.fill(w.shape, value));
  model.setWeights(values);
  tf.dispose(values);
}

function firstWeight(model: tf.LayersModel): number {
  return model.getWeights()[0]!.dataSync()[0]!;
}

async function drive(
  callback: ModelCheckpoint,
  model: tf.LayersModel,
  values: number[],
  key = 'val_loss',
) {
  callback.setModel(model);
  await callback.onTrainBegin();
  for (let epoch = 0; epoch < values.length; epoch++) {
    fillWeights(model, epoch + 1);
    await callback.onEpochBegin(epoch);
    await callback.onEpochEnd(epoch, { loss: 1, [key]: values[epoch]! });
  }
  await callback.onTrainEnd();
}

before(async () => {
  await initBackend();
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'xfer-ckpt-'));
});

after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('ModelCheckpoint', () => {
  test('saveBestOnly keeps the best epoch in the file (weights-only, Keras .h5)', async () => {
    const file = path.join(dir, 'best.weights.h5');
    const model = tinyModel();
    const checkpoint = new ModelCheckpoint(file, { saveBestOnly: true, saveWeightsOnly: true });
    // Best val_loss at epoch index 1 (weights filled with 2); epochs 2 and 3 are worse.
    await drive(checkpoint, model, [0.5, 0.3, 0.4, 0.35]);
    assert.equal(checkpoint.bestValue, 0.3);
    assert.equal(checkpoint.lastSavedPath, file);
    const fresh = tinyModel();
    await loadWeights(fresh, file);
    assert.deepEqual(
      fresh.getWeights().map((w) => Array.from(w.dataSync())),
      model
        .getWeights()
        .map((w) => w.shape.reduce((a, b) => a * b, 1))
        .map((n) => Array(n).fill(2)),
    );
    // The best survives into a second fit (as in Keras): a worse run does not overwrite it.
    await drive(checkpoint, model, [0.45, 0.31]);
    await loadWeights(fresh, file);
    assert.equal(firstWeight(fresh), 2);
    // mode 'max' keeps the highest.
    const maxFile = path.join(dir, 'max.weights.h5');
    const byAccuracy = new ModelCheckpoint(maxFile, {
      monitor: 'val_mae',
      mode: 'max',
      saveBestOnly: true,
      saveWeightsOnly: true,
    });
    await drive(byAccuracy, model, [0.5, 0.3, 0.7, 0.6], 'val_mae');
    await loadWeights(fresh, maxFile);
    assert.equal(firstWeight(fresh), 3);
  });

  test('filename templates: one file per epoch, named by epoch and metric', async () => {
    const sub = path.join(dir, 'templated');
    const model = tinyModel();
    const checkpoint = new ModelCheckpoint(path.join(sub, 'w.{epoch:02d}-{val_loss:.2f}.h5'), {
      saveWeightsOnly: true,
    });
    await drive(checkpoint, model, [0.5, 0.25, 0.125]);
    assert.deepEqual((await fsp.readdir(sub)).sort(), [
      'w.01-0.50.h5',
      'w.02-0.25.h5',
      'w.03-0.12.h5',
    ]);
    assert.equal(checkpoint.lastSavedPath, path.join(sub, 'w.03-0.12.h5'));
    const fresh = tinyModel();
    await loadWeights(fresh, path.join(sub, 'w.02-0.25.h5'));
    assert.equal(firstWeight(fresh), 2);
  });

  test('the whole model as a tfjs folder, loadable with loadModel', async () => {
    const folder = path.join(dir, 'model-{epoch}');
    const model = tinyModel();
    const checkpoint = new ModelCheckpoint(folder, { monitor: 'val_loss', saveBestOnly: true });
    await drive(checkpoint, model, [0.5, 0.4, 0.6]);
    assert.deepEqual((await fsp.readdir(dir)).filter((f) => f.startsWith('model-')).sort(), [
      'model-1',
      'model-2',
    ]);
    const loaded = await loadModel(path.join(dir, 'model-2'));
    assert.equal(firstWeight(loaded), 2);
    assert.deepEqual(loaded.outputs[0]!.shape, [null, 1]);
  });

  test('saveFreq in batches', async () => {
    const model = tinyModel();
    const x = tf.tensor2d([[1], [2], [3], [4], [5]]);
    const y = tf.tensor2d([[1], [2], [3], [4], [5]]);
    const checkpoint = new ModelCheckpoint(path.join(dir, 'freq', 'e{epoch}b{batch}.h5'), {
      saveWeightsOnly: true,
      saveFreq: 2,
    });
    // 3 batches per epoch (2, 2, 1 rows), 2 epochs: saves after batches 2 and 4 and 6 overall.
    await fit(
      model,
      { x, y },
      { epochs: 2, batchSize: 2, shuffle: false, verbose: 0, callbacks: [checkpoint] },
    );
    assert.deepEqual((await fsp.readdir(path.join(dir, 'freq'))).sort(), [
      'e1b2.h5',
      'e2b1.h5',
      'e2b3.h5',
    ]);
    tf.dispose([x, y]);
  });

  test('paths are checked when the callback is made, not after an epoch', () => {
    assert.throws(
      () => new ModelCheckpoint(path.join(dir, 'ckpt'), { saveWeightsOnly: true }),
      /Expected a path ending in '\.h5' with saveWeightsOnly \(Keras HDF5 weights\), e\.g\. 'best\.weights\.h5' for filepath/,
    );
    assert.throws(
      () => new ModelCheckpoint(path.join(dir, 'model.h5')),
      /Expected a folder path without '\.h5' when saving the whole model/,
    );
    assert.throws(
      () => new ModelCheckpoint('x.h5', { saveWeightsOnly: true, saveFreq: 0 }),
      /Expected positive integer for saveFreq but received 0/,
    );
  });
});

describe('the seed workflow on a folder of images', () => {
  let data: string;
  before(async () => {
    // Bright images are 'dog' (class 1), dark ones 'cat' (class 0): GAP + a sigmoid unit separates them.
    data = path.join(dir, 'images');
    for (const split of ['train', 'validation']) {
      for (const [cls, base] of [
        ['cat', 30],
        ['dog', 220],
      ] as const) {
        const folder = path.join(data, split, cls);
        await fsp.mkdir(folder, { recursive: true });
        for (let i = 0; i < 6; i++) {
          const v = base + i * 4;
          await sharp({
            create: { width: 12, height: 12, channels: 3, background: { r: v, g: v, b: v } },
          })
            .png()
            .toFile(path.join(folder, `${i}.png`));
        }
      }
    }
  });

  function headModel(units: number): tf.Sequential {
    return tf.sequential({
      layers: [
        tf.layers.globalAveragePooling2d({
          inputShape: [8, 8, 3],
          name: 'global_average_pooling2d',
        }),
        tf.layers.dense({
          units,
          activation: units === 1 ? 'sigmoid' : 'softmax',
          name: 'output_layer',
        }),
      ],
    });
  }

  const preprocess = <T extends tf.Tensor>(x: T): T =>
    tf.tidy(() => tf.sub(tf.div(x, 127.5), 1)) as T;

  test('flowFromDirectory → fit with ModelCheckpoint + EarlyStopping + CSVLogger → evaluate → predictImage', async () => {
    const gen = new ImageDataGenerator({ preprocessingFunction: preprocess });
    const flow = {
      targetSize: [8, 8] as [number, number],
      batchSize: 4,
      classMode: 'binary' as const,
      seed: 1,
    };
    const trainIter = await gen.flowFromDirectory(path.join(data, 'train'), flow);
    const valIter = await gen.flowFromDirectory(path.join(data, 'validation'), {
      ...flow,
      shuffle: false,
    });
    const model = headModel(1);
    compile(model, { optimizer: Adam(0.1), loss: 'binary_crossentropy', metrics: ['accuracy'] });
    const checkpointPath = path.join(dir, 'run', 'best.weights.h5');
    const csv = path.join(dir, 'run', 'history.csv');
    const history = await fit(model, trainIter, {
      epochs: 8,
      stepsPerEpoch: trainIter.length,
      validationData: valIter,
      validationSteps: valIter.length,
      verbose: 0,
      callbacks: [
        new ModelCheckpoint(checkpointPath, { saveBestOnly: true, saveWeightsOnly: true }),
        new EarlyStopping({ patience: 10 }),
        new CSVLogger(csv),
      ],
    });
    const epochs = history.epoch.length;
    assert.equal(epochs, 8);
    const valLoss = history.history.val_loss!;
    assert.ok(valLoss[epochs - 1]! < valLoss[0]!, `val_loss ${valLoss}`);
    assert.equal(history.history.val_accuracy![epochs - 1], 1);
    const csvLines = (await fsp.readFile(csv, 'utf8')).trimEnd().split('\n');
    assert.equal(csvLines[0], 'epoch,accuracy,loss,val_accuracy,val_loss');
    assert.equal(csvLines.length, epochs + 1);

    // The checkpoint holds the epoch with the lowest val_loss: evaluating it gives that value.
    const best = Math.min(...valLoss);
    const restored = headModel(1);
    compile(restored, { optimizer: 'adam', loss: 'binary_crossentropy', metrics: ['accuracy'] });
    await loadWeights(restored, checkpointPath);
    const evaluated = await evaluate(restored, valIter, { verbose: 0 });
    assert.ok(Math.abs(evaluated.loss! - best) < 1e-5, `${evaluated.loss} vs best ${best}`);

    // predict over the iterator: rows in file order (shuffle false): 6 cats then 6 dogs.
    const probabilities = await predict(restored, valIter);
    const p = Array.from(probabilities.dataSync());
    probabilities.dispose();
    assert.equal(p.length, 12);
    assert.ok(p.slice(0, 6).every((v) => v < 0.5) && p.slice(6).every((v) => v >= 0.5), `${p}`);

    // The seed's predict_func: a dog image → (its sigmoid output, 1, 'dog').
    const dogFile = path.join(data, 'validation', 'dog', '0.png');
    const dog = await predictImage(dogFile, restored, preprocess, { classNames: ['cat', 'dog'] });
    assert.equal(dog.classIndex, 1);
    assert.equal(dog.className, 'dog');
    assert.ok(Math.abs(dog.probability - p[6]!) < 1e-6);
    const cat = await predictImage(
      path.join(data, 'validation', 'cat', '0.png'),
      restored,
      preprocess,
      {
        classNames: ['cat', 'dog'],
      },
    );
    // The seed returns the sigmoid output itself for class 0 too (pred[0, 0]), not 1 - p.
    assert.deepEqual([cat.classIndex, cat.className], [0, 'cat']);
    assert.ok(Math.abs(cat.probability - p[0]!) < 1e-6);
  });

  test('predictImage: binary output from hand-set weights, multi-class argmax, threshold', async () => {
    const file = path.join(dir, 'red.png');
    // 20x20 solid red; the model's input is 8x8, so predictImage resizes (a solid colour stays).
    await sharp({
      create: { width: 20, height: 20, channels: 3, background: { r: 255, g: 0, b: 0 } },
    })
      .png()
      .toFile(file);
    const toUnit = (x: tf.Tensor) => tf.div(x, 255);
    const binary = headModel(1);
    // GAP of the /255 image is [1, 0, 0]; kernel [2, 0, 0] and bias -1 → sigmoid(1).
    const set = (m: tf.LayersModel, kernel: number[][], bias: number[]) => {
      const values = [tf.tensor2d(kernel), tf.tensor1d(bias)];
      m.setWeights(values);
      tf.dispose(values);
    };
    set(binary, [[2], [0], [0]], [-1]);
    const sigmoid1 = 1 / (1 + Math.exp(-1));
    const yes = await predictImage(file, binary, toUnit);
    assert.equal(yes.classIndex, 1);
    assert.equal(yes.className, '1');
    assert.ok(Math.abs(yes.probability - sigmoid1) < 1e-6, `${yes.probability}`);
    const strict = await predictImage(file, binary, toUnit, {
      threshold: 0.8,
      classNames: ['cat', 'dog'],
    });
    assert.deepEqual([strict.classIndex, strict.className], [0, 'cat']);

    const multi = headModel(3);
    // Logits [0, 3, 1] for the red image → softmax argmax 1.
    set(
      multi,
      [
        [0, 3, 1],
        [0, 0, 0],
        [0, 0, 0],
      ],
      [0, 0, 0],
    );
    const result = await predictImage(file, multi, toUnit, { classNames: ['a', 'b', 'c'] });
    const e = [1, Math.exp(3), Math.exp(1)];
    assert.deepEqual([result.classIndex, result.className], [1, 'b']);
    assert.ok(Math.abs(result.probability - e[1]! / (e[0]! + e[1]! + e[2]!)) < 1e-6);
    await assert.rejects(
      predictImage(file, multi, toUnit, { classNames: ['cat', 'dog'] }),
      /classNames has 2 names but the model outputs 3 classes/,
    );
  });
});
