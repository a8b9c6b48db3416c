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
 * Both use inputs x / 255, Adam, binary cross-entropy, mini-batches shuffled by the seed, and the
 * last epoch's weights. Prints test accuracy and wall time per seed.
 *
 * Usage: node --import tsx scripts/demo-check.ts [--data DIR] [--backbone DIR] [--epochs 20]
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
    const files = (await fsp.readdir(path.join(dir, name))).filter((f) => f.endsWith('.png')).sort();
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
  const pooled = tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }).apply(input);
  return tf.layers
    .dense({
      units: 1,
      activation: 'sigmoid',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1000 }),
      name: 'dense',
    })
    .apply(pooled) as tf.SymbolicTensor;
}

/** Seeded mini-batch training with trainOnBatch (fit's shuffle uses Math.random). */
async function train(
  model: tf.LayersModel,
  data: Split,
  options: { epochs: number; batch: number; seed: number },
): Promise<void> {
  const random = new Random(options.seed);
  const order = Array.from({ length: data.x.shape[0] }, (_, i) => i);
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    random.shuffle(order);
    for (let start = 0; start < order.length; start += options.batch) {
      const picked = tf.tensor1d(order.slice(start, start + options.batch), 'int32');
      const xb = tf.gather(data.x, picked);
      const yb = tf.gather(data.y, picked);
      await model.trainOnBatch(xb, yb);
      tf.dispose([picked, xb, yb]);
    }
  }
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string', default: DEMO_DATA_DIR },
      backbone: { type: 'string', default: DEMO_BACKBONE_DIR },
      epochs: { type: 'string', default: '20' },
      batch: { type: 'string', default: '20' },
      lr: { type: 'string', default: '0.01' },
      seeds: { type: 'string', default: '1,2,3' },
    },
  });
  const epochs = Number(values.epochs);
  const batch = Number(values.batch);
  const lr = Number(values.lr);
  const backend = await initBackend();

  const { split: trainData, classes } = await loadSplit(path.join(values.data, 'train'));
  const { split: testData } = await loadSplit(path.join(values.data, 'test'));
  console.log(
    `backend ${backend}; classes ${classes.join(', ')}; ${trainData.x.shape[0]} train, ${testData.x.shape[0]} test images; epochs ${epochs}, batch ${batch}, Adam lr ${lr}`,
  );

  for (const seed of values.seeds.split(',').map(Number)) {
    // (a) transfer
    let started = performance.now();
    let cpu = process.cpuUsage();
    const backbone = await demoBackbone({ weights: values.backbone });
    backbone.trainable = false;
    const features = { x: backbone.predict(trainData.x, { batchSize: 100 }) as tf.Tensor4D, y: trainData.y };
    const featureInput = tf.input({ shape: features.x.shape.slice(1) });
    const headModel = tf.model({ inputs: featureInput, outputs: head(featureInput, seed) });
    headModel.compile({ optimizer: tf.train.adam(lr), loss: 'binaryCrossentropy' });
    await train(headModel, features, { epochs, batch, seed });
    // The assembled model, as a user holds it: frozen backbone, then the trained head's layers.
    const transfer = tf.sequential({ layers: [backbone, headModel.layers[1]!, headModel.layers[2]!] });
    const transferAccuracy = await accuracy(transfer, testData);
    const transferSeconds = (performance.now() - started) / 1000;
    const transferCpu = cpuSeconds(cpu);
    const trainable = transfer.trainableWeights.reduce((n, w) => n + tf.util.sizeFromShape(w.shape as number[]), 0);
    features.x.dispose();

    // (b) scratch
    started = performance.now();
    cpu = process.cpuUsage();
    const scratchBase = buildDemoBackbone({ seed });
    const scratch = tf.model({ inputs: scratchBase.inputs, outputs: head(scratchBase.outputs[0]!, seed) });
    scratch.compile({ optimizer: tf.train.adam(lr), loss: 'binaryCrossentropy' });
    await train(scratch, trainData, { epochs, batch, seed });
    const scratchAccuracy = await accuracy(scratch, testData);
    const scratchSeconds = (performance.now() - started) / 1000;
    const scratchCpu = cpuSeconds(cpu);

    console.log(
      `seed ${seed}: transfer ${transferAccuracy.toFixed(3)} (${transferSeconds.toFixed(1)} s wall, ${transferCpu.toFixed(1)} s cpu, ${trainable} trainable params) | scratch ${scratchAccuracy.toFixed(3)} (${scratchSeconds.toFixed(1)} s wall, ${scratchCpu.toFixed(1)} s cpu, ${scratch.countParams()} params)`,
    );
    transfer.dispose();
    scratch.dispose();
  }
}

await main();
