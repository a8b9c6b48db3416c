/**
 * Measures the offline demo's claim on its shipped data: the pretrained demo backbone, frozen, with
 * a new head (GlobalAveragePooling2D + Dense(1, sigmoid)) beats the same network trained from
 * scratch on the same images for the same epochs, and reaches at least 0.90 test accuracy.
 *
 * (a) transfer: the backbone runs once in inference mode (a frozen BatchNormalization uses its
 *     moving statistics, as in Keras, and xfer caches a frozen prefix's outputs the same way);
 *     only the head trains, on those features. The assembled model (backbone + head) is then
 *     evaluated end to end on the test images.
 * (b) scratch: the same architecture, seeded random weights, every layer trainable (BN in
 *     training mode), the same optimizer, learning rate, batches and epochs.
 * Both use inputs x / 255, Adam, binary cross-entropy and mini-batches shuffled by the seed. Each
 * is scored on the test images twice: with the last epoch's weights, and with the weights of the
 * epoch of lowest validation loss (what ModelCheckpoint(save_best_only) keeps). Prints both, with
 * wall and CPU seconds (the machine may be shared), per seed.
 *
 * Usage: node --import tsx scripts/demo-check.ts [--data DIR] [--backbone DIR] [--epochs 8]
 *        [--batch 20] [--lr 0.01] [--seeds 1,2,3]
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import {
  buildDemoBackbone,
  DEMO_BACKBONE_DIR,
  DEMO_DATA_DIR,
  demoBackbone,
} from '../src/demo/backbone.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { Random } from '../src/util/random.js';

interface Split {
  x: tf.Tensor4D;
  y: tf.Tensor2D;
}

/** A split's images (x / 255) and labels (the class folders' alphabetical index). */
async function loadSplit(dir: string): Promise<{ split: Split; classes: string[] }> {
  const classes = (await fsp.readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const pixels: number[] = [];
  const labels: number[] = [];
  let shape: [number, number] | undefined;
  for (const [label, name] of classes.entries()) {
    const files = (await fsp.readdir(path.join(dir, name)))
      .filter((f) => f.endsWith('.png'))
      .sort();
    for (const file of files) {
      const { data, info } = await sharp(path.join(dir, name, file))
        .toColourspace('b-w')
        .raw()
        .toBuffer({ resolveWithObject: true });
      shape ??= [info.height, info.width];
      for (const v of data) pixels.push(v / 255);
      labels.push(label);
    }
  }
  const [h, w] = shape!;
  return {
    split: {
      x: tf.tensor4d(pixels, [labels.length, h, w, 1]),
      y: tf.tensor2d(labels, [labels.length, 1]),
    },
    classes,
  };
}

function head(input: tf.SymbolicTensor, seed: number): tf.SymbolicTensor {
  const pooled = tf.layers
    .globalAveragePooling2d({ name: 'global_average_pooling2d' })
    .apply(input);
  return tf.layers
    .dense({
      units: 1,
      activation: 'sigmoid',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1000 }),
      name: 'dense',
    })
    .apply(pooled) as tf.SymbolicTensor;
}

interface RunResult {
  /** Test accuracy with the last epoch's weights. */
  last: number;
  /** Test accuracy with the weights of the epoch of lowest validation loss (ModelCheckpoint). */
  best: number;
  bestEpoch: number;
}

/**
 * Seeded mini-batch training with trainOnBatch (fit's shuffle uses Math.random). After each
 * epoch the validation loss decides, as ModelCheckpoint(save_best_only) does, which weights are
 * kept; both the last and the kept weights are scored on the test split.
 */
async function train(
  model: tf.LayersModel,
  data: { train: Split; validation: Split; test: Split },
  options: { epochs: number; batch: number; seed: number },
): Promise<RunResult> {
  const random = new Random(options.seed);
  const order = Array.from({ length: data.train.x.shape[0] }, (_, i) => i);
  let bestLoss = Number.POSITIVE_INFINITY;
  let best: tf.Tensor[] = [];
  let bestEpoch = 0;
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    random.shuffle(order);
    for (let start = 0; start < order.length; start += options.batch) {
      const picked = tf.tensor1d(order.slice(start, start + options.batch), 'int32');
      const xb = tf.gather(data.train.x, picked);
      const yb = tf.gather(data.train.y, picked);
      await model.trainOnBatch(xb, yb);
      tf.dispose([picked, xb, yb]);
    }
    const loss = await validationLoss(model, data.validation);
    if (loss < bestLoss) {
      bestLoss = loss;
      bestEpoch = epoch;
      tf.dispose(best);
      best = model.getWeights().map((w) => w.clone());
    }
  }
  const last = await accuracy(model, data.test);
  model.setWeights(best);
  tf.dispose(best);
  return { last, best: await accuracy(model, data.test), bestEpoch };
}

async function validationLoss(model: tf.LayersModel, data: Split): Promise<number> {
  const loss = tf.tidy(() => {
    const p = tf.clipByValue(
      model.predict(data.x, { batchSize: 100 }) as tf.Tensor,
      1e-7,
      1 - 1e-7,
    );
    const y = data.y;
    return tf.neg(
      tf.mean(tf.add(tf.mul(y, tf.log(p)), tf.mul(tf.sub(1, y), tf.log(tf.sub(1, p))))),
    );
  });
  const value = (await loss.data())[0]!;
  loss.dispose();
  return value;
}

async function accuracy(model: tf.LayersModel, data: Split): Promise<number> {
  const hits = tf.tidy(() => {
    const p = model.predict(data.x, { batchSize: 100 }) as tf.Tensor;
    return tf.sum(tf.cast(tf.equal(tf.greater(p, 0.5), tf.cast(data.y, 'bool')), 'float32'));
  });
  const value = (await hits.data())[0]! / data.x.shape[0];
  hits.dispose();
  return value;
}

/** CPU seconds (user + system) of this process since `since`: wall time lies on a shared machine. */
function cpuSeconds(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
}

function format(name: string, r: RunResult, wall: number, cpu: number): string {
  return `${name} ${r.last.toFixed(3)} last / ${r.best.toFixed(3)} best-val (epoch ${r.bestEpoch}) ${wall.toFixed(1)} s wall ${cpu.toFixed(1)} s cpu`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string', default: DEMO_DATA_DIR },
      backbone: { type: 'string', default: DEMO_BACKBONE_DIR },
      epochs: { type: 'string', default: '8' },
      batch: { type: 'string', default: '20' },
      lr: { type: 'string', default: '0.01' },
      seeds: { type: 'string', default: '1,2,3' },
    },
  });
  const epochs = Number(values.epochs);
  const batch = Number(values.batch);
  const lr = Number(values.lr);
  const backend = await initBackend();

  const splits = {
    train: (await loadSplit(path.join(values.data, 'train'))).split,
    validation: (await loadSplit(path.join(values.data, 'validation'))).split,
    test: (await loadSplit(path.join(values.data, 'test'))).split,
  };
  const { classes } = await loadSplit(path.join(values.data, 'test'));
  const counts = Object.entries(splits).map(([k, v]) => `${v.x.shape[0]} ${k}`);
  console.log(
    `backend ${backend}; classes ${classes.join(', ')}; ${counts.join(', ')} images; epochs ${epochs}, batch ${batch}, Adam lr ${lr}`,
  );

  for (const seed of values.seeds.split(',').map(Number)) {
    // (a) transfer: the frozen backbone's features once, then the head alone.
    let started = performance.now();
    let cpu = process.cpuUsage();
    const backbone = await demoBackbone({ weights: values.backbone });
    backbone.trainable = false;
    const featuresOf = (s: Split): Split => ({
      x: backbone.predict(s.x, { batchSize: 100 }) as tf.Tensor4D,
      y: s.y,
    });
    const features = {
      train: featuresOf(splits.train),
      validation: featuresOf(splits.validation),
      test: featuresOf(splits.test),
    };
    const featureInput = tf.input({ shape: features.train.x.shape.slice(1) });
    const headModel = tf.model({ inputs: featureInput, outputs: head(featureInput, seed) });
    headModel.compile({ optimizer: tf.train.adam(lr), loss: 'binaryCrossentropy' });
    const transferResult = await train(headModel, features, { epochs, batch, seed });
    const transferWall = (performance.now() - started) / 1000;
    const transferCpu = cpuSeconds(cpu);
    // The assembled model, as a user holds it: the frozen backbone, then the head's layers. It
    // must score what the head scored on the cached features.
    const transfer = tf.sequential({
      layers: [backbone, headModel.layers[1]!, headModel.layers[2]!],
    });
    const endToEnd = await accuracy(transfer, splits.test);
    if (endToEnd !== transferResult.best) {
      throw new Error(
        `assembled model scores ${endToEnd}, the head on features ${transferResult.best}`,
      );
    }
    const trainable = transfer.trainableWeights.reduce(
      (n, w) => n + tf.util.sizeFromShape(w.shape as number[]),
      0,
    );
    tf.dispose([features.train.x, features.validation.x, features.test.x]);

    // (b) scratch: the same architecture, random weights, everything trainable.
    started = performance.now();
    cpu = process.cpuUsage();
    const scratchBase = buildDemoBackbone({ seed });
    const scratch = tf.model({
      inputs: scratchBase.inputs,
      outputs: head(scratchBase.outputs[0]!, seed),
    });
    scratch.compile({ optimizer: tf.train.adam(lr), loss: 'binaryCrossentropy' });
    const scratchResult = await train(scratch, splits, { epochs, batch, seed });
    const scratchWall = (performance.now() - started) / 1000;
    const scratchCpu = cpuSeconds(cpu);

    console.log(
      `seed ${seed}: ${format('transfer', transferResult, transferWall, transferCpu)} (${trainable} trainable) | ${format('scratch', scratchResult, scratchWall, scratchCpu)} (${scratch.countParams()} params)`,
    );
    transfer.dispose();
    scratch.dispose();
  }
}

await main();
