import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import {
  DEMO_BACKBONE_DIR,
  DEMO_CLASSES,
  DEMO_DATA_DIR,
  DEMO_PRETRAIN_CLASSES,
  demoBackbone,
} from '../src/demo/backbone.js';
import * as tf from '../src/engine/tf.js';
import { loadModel } from '../src/weights/index.js';

/** Images per class that scripts/make-demo-data.ts writes. */
const SPLIT_SIZES = { train: 100, validation: 50, test: 100 } as const;

/**
 * Parameters, counted by hand (3x3 convs without bias, BN = 4 per channel, 2 of them trainable):
 * block1 9*1*16 + 4*16 = 208; block2 9*16*32 + 4*32 = 4,736; block3 9*32*64 + 4*64 = 18,688;
 * predictions 64*8 + 8 = 520.
 */
const PARAMS_NO_TOP = 208 + 4_736 + 18_688;
const PARAMS_TOP = PARAMS_NO_TOP + 520;
const NON_TRAINABLE = 2 * (16 + 32 + 64);

const LAYER_NAMES = [
  'input_1',
  ...[1, 2, 3].flatMap((b) => [
    `block${b}_conv1`,
    `block${b}_bn`,
    `block${b}_relu`,
    ...(b < 3 ? [`block${b}_pool`] : []),
  ]),
];

async function pngFiles(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).filter((f) => f.endsWith('.png')).sort();
}

/** The split's images as [n, 28, 28, 1] in [0, 1], and labels in DEMO_CLASSES order. */
async function loadSplit(split: string): Promise<{ x: tf.Tensor4D; labels: number[] }> {
  const pixels: number[] = [];
  const labels: number[] = [];
  for (const [label, name] of DEMO_CLASSES.entries()) {
    const dir = path.join(DEMO_DATA_DIR, split, name);
    for (const file of await pngFiles(dir)) {
      const data = await sharp(path.join(dir, file)).toColourspace('b-w').raw().toBuffer();
      for (const v of data) pixels.push(v / 255);
      labels.push(label);
    }
  }
  return { x: tf.tensor4d(pixels, [labels.length, 28, 28, 1]), labels };
}

test('the demo data has the seed layout: train/validation/test, one folder per class, expected counts', async () => {
  assert.deepEqual((await fsp.readdir(DEMO_DATA_DIR)).sort(), [
    'LICENSE',
    'test',
    'train',
    'validation',
  ]);
  for (const [split, count] of Object.entries(SPLIT_SIZES)) {
    assert.deepEqual((await fsp.readdir(path.join(DEMO_DATA_DIR, split))).sort(), [
      ...DEMO_CLASSES,
    ]);
    for (const name of DEMO_CLASSES) {
      const dir = path.join(DEMO_DATA_DIR, split, name);
      assert.equal((await pngFiles(dir)).length, count, `${split}/${name}`);
      assert.equal((await fsp.readdir(dir)).length, count, `${split}/${name} holds only PNGs`);
    }
  }
});

test('every demo image is a 28x28 single-channel 8-bit PNG, and no image appears twice', async () => {
  const seen = new Map<string, string>();
  for (const split of Object.keys(SPLIT_SIZES)) {
    for (const name of DEMO_CLASSES) {
      const dir = path.join(DEMO_DATA_DIR, split, name);
      for (const file of await pngFiles(dir)) {
        const bytes = await fsp.readFile(path.join(dir, file));
        const meta = await sharp(bytes).metadata();
        assert.equal(meta.format, 'png', file);
        assert.equal(meta.width, 28, file);
        assert.equal(meta.height, 28, file);
        assert.equal(meta.channels, 1, file);
        assert.equal(meta.depth, 'uchar', file);
        const key = bytes.toString('base64');
        assert.equal(
          seen.get(key),
          undefined,
          `${split}/${name}/${file} duplicates ${seen.get(key)}`,
        );
        seen.set(key, `${split}/${name}/${file}`);
      }
    }
  }
});

test("the demo data carries Fashion-MNIST's MIT licence", async () => {
  const text = await fsp.readFile(path.join(DEMO_DATA_DIR, 'LICENSE'), 'utf8');
  assert.match(text, /Fashion-MNIST/);
  assert.match(text, /Copyright: 2017, Zalando SE/);
  assert.match(text, /Permission is hereby granted, free of charge/);
});

test('the shipped backbone is a tfjs layers folder whose weights.bin holds every parameter as float32', async () => {
  const json = JSON.parse(await fsp.readFile(path.join(DEMO_BACKBONE_DIR, 'model.json'), 'utf8'));
  assert.equal(json.format, 'layers-model');
  assert.deepEqual(json.weightsManifest[0].paths, ['weights.bin']);
  const bin = await fsp.stat(path.join(DEMO_BACKBONE_DIR, 'weights.bin'));
  assert.equal(bin.size, 4 * PARAMS_TOP);
});

test('demoBackbone builds the Keras-style layers, loads the shipped weights and counts its parameters', async () => {
  const backbone = await demoBackbone();
  assert.deepEqual(
    backbone.layers.map((l) => l.name),
    LAYER_NAMES,
  );
  assert.deepEqual(backbone.outputs[0]!.shape, [null, 7, 7, 64]);
  assert.equal(backbone.countParams(), PARAMS_NO_TOP);
  const nonTrainable = backbone.nonTrainableWeights.reduce(
    (n, w) => n + tf.util.sizeFromShape(w.shape as number[]),
    0,
  );
  assert.equal(nonTrainable, NON_TRAINABLE);

  // The same weights as tfjs's own loader reads from the folder: the pretrained top classifies
  // identically through both.
  const withTop = await demoBackbone({ includeTop: true });
  assert.deepEqual(
    withTop.layers.slice(-2).map((l) => l.name),
    ['avg_pool', 'predictions'],
  );
  assert.equal(withTop.countParams(), PARAMS_TOP);
  assert.deepEqual(withTop.outputs[0]!.shape, [null, DEMO_PRETRAIN_CLASSES.length]);
  const reference = await loadModel(DEMO_BACKBONE_DIR);
  const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 7);
  const ours = withTop.predict(x) as tf.Tensor;
  const theirs = reference.predict(x) as tf.Tensor;
  assert.ok(tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]! < 1e-6);

  // And not the random initialization.
  const random = await demoBackbone({ weights: null });
  const a = backbone.predict(x) as tf.Tensor;
  const b = random.predict(x) as tf.Tensor;
  assert.ok(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! > 0.1);
  tf.dispose([x, ours, theirs, a, b]);
  for (const m of [backbone, withTop, reference, random]) m.dispose();
});

/** Nearest-centroid accuracy on the test images, centroids from the train images' GAP features. */
async function nearestCentroidAccuracy(backbone: tf.LayersModel): Promise<number> {
  const features = async (split: string) => {
    const { x, labels } = await loadSplit(split);
    const pooled = tf.tidy(() =>
      tf.mean(backbone.predict(x, { batchSize: 100 }) as tf.Tensor, [1, 2]),
    );
    x.dispose();
    return { f: pooled as tf.Tensor2D, labels };
  };
  const train = await features('train');
  const testSet = await features('test');
  const accuracy = tf.tidy(() => {
    const centroids = DEMO_CLASSES.map((_, c) => {
      const rows = train.labels.flatMap((l, i) => (l === c ? [i] : []));
      return tf.mean(tf.gather(train.f, rows), 0);
    });
    const distances = tf.stack(
      centroids.map((c) => tf.sum(tf.square(tf.sub(testSet.f, c)), 1)),
      1,
    );
    const predicted = tf.argMin(distances, 1);
    return tf.mean(tf.cast(tf.equal(predicted, tf.tensor1d(testSet.labels, 'int32')), 'float32'));
  });
  const value = accuracy.dataSync()[0]!;
  tf.dispose([train.f, testSet.f, accuracy]);
  return value;
}

test("the pretrained features separate the demo's two classes; random ones barely do", async () => {
  // Measured with the shipped weights: 0.925 (and 0.927 on all 2,000 test-split images of the
  // two classes). The same architecture with random weights (seed 0): 0.570.
  const pretrained = await demoBackbone();
  const pretrainedAccuracy = await nearestCentroidAccuracy(pretrained);
  assert.ok(
    pretrainedAccuracy >= 0.85,
    `pretrained nearest-centroid accuracy ${pretrainedAccuracy}`,
  );
  const random = await demoBackbone({ weights: null, seed: 0 });
  const randomAccuracy = await nearestCentroidAccuracy(random);
  assert.ok(randomAccuracy <= 0.7, `random-weights nearest-centroid accuracy ${randomAccuracy}`);
  pretrained.dispose();
  random.dispose();
});
