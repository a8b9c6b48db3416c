/**
 * Pretrains the offline demo's backbone on the eight Fashion-MNIST classes that the demo does NOT
 * use, and saves it in tfjs layers format to `assets/demo/backbone/` (model.json + weights.bin),
 * top included (`avg_pool` + `predictions` over the eight classes), as Keras ships its
 * applications' weights.
 *
 * Training: the first `--per-class` images of each of the eight classes from Fashion-MNIST's
 * training split, inputs x / 255, Adam (`--lr`, the last epoch at `--final-lr`), categorical
 * cross-entropy, mini-batches shuffled by a seeded generator, weights initialized from the same seed: a rerun on the same backend
 * reproduces the same weights. The reported accuracy is on all images of the eight classes in
 * the test split (`t10k`), which training never sees.
 *
 * Usage: node --import tsx scripts/pretrain-demo-backbone.ts [--out DIR] [--exclude pullover,t_shirt]
 *        [--per-class 6000] [--epochs 5] [--batch 64] [--lr 0.002] [--final-lr 0.0002] [--seed 1]
 * The defaults write the shipped weights (48,000 images, about 15 minutes on one core).
 */
import { parseArgs } from 'node:util';
import {
  buildDemoBackbone,
  DEMO_BACKBONE_DIR,
  DEMO_CLASSES,
  DEMO_PRETRAIN_CLASSES,
} from '../src/demo/backbone.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { Random } from '../src/util/random.js';
import { saveModel } from '../src/weights/index.js';
import {
  FASHION_MNIST_CLASSES,
  type FashionMnistSplit,
  imageAt,
  indicesOf,
  labelOfFolder,
  loadFashionMnist,
} from './fashion-mnist.js';

/** Images x / 255 as [n, 28, 28, 1] and one-hot targets over `labels` (in that order). */
function toTensors(split: FashionMnistSplit, indices: number[], labels: number[]) {
  const size = split.height * split.width;
  const pixels = new Float32Array(indices.length * size);
  const classes = new Int32Array(indices.length);
  indices.forEach((index, i) => {
    const image = imageAt(split, index);
    for (let p = 0; p < size; p++) pixels[i * size + p] = image[p]! / 255;
    classes[i] = labels.indexOf(split.labels[index]!);
  });
  return {
    x: tf.tensor4d(pixels, [indices.length, split.height, split.width, 1]),
    y: tf.oneHot(tf.tensor1d(classes, 'int32'), labels.length),
  };
}

async function accuracy(model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): Promise<number> {
  const predicted = tf.tidy(() => tf.argMax(model.predict(x, { batchSize: 256 }) as tf.Tensor, -1));
  const truth = tf.tidy(() => tf.argMax(y, -1));
  const hits = tf.tidy(() => tf.sum(tf.cast(tf.equal(predicted, truth), 'float32')));
  const value = (await hits.data())[0]! / x.shape[0]!;
  tf.dispose([predicted, truth, hits]);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: DEMO_BACKBONE_DIR },
      exclude: { type: 'string', default: DEMO_CLASSES.join(',') },
      'per-class': { type: 'string', default: '6000' },
      epochs: { type: 'string', default: '5' },
      batch: { type: 'string', default: '64' },
      lr: { type: 'string', default: '0.002' },
      'final-lr': { type: 'string', default: '0.0002' },
      seed: { type: 'string', default: '1' },
    },
  });
  const perClass = Number(values['per-class']);
  const epochs = Number(values.epochs);
  const batchSize = Number(values.batch);
  const seed = Number(values.seed);
  const backend = await initBackend();

  const excluded = values.exclude.split(',').map(labelOfFolder);
  const labels = FASHION_MNIST_CLASSES.map((_, i) => i).filter((i) => !excluded.includes(i));
  const names = labels.map((i) => FASHION_MNIST_CLASSES[i]!);
  if (values.out === DEMO_BACKBONE_DIR && names.join() !== DEMO_PRETRAIN_CLASSES.join()) {
    throw new Error(`DEMO_PRETRAIN_CLASSES (${DEMO_PRETRAIN_CLASSES}) must be ${names}`);
  }
  const trainSplit = loadFashionMnist('train');
  const testSplit = loadFashionMnist('t10k');
  const trainIndices = labels.flatMap((l) => indicesOf(trainSplit, l).slice(0, perClass));
  const testIndices = labels.flatMap((l) => indicesOf(testSplit, l));
  const train = toTensors(trainSplit, trainIndices, labels);
  const test = toTensors(testSplit, testIndices, labels);
  console.log(`backend ${backend}; pretraining on ${names.join(', ')}`);
  console.log(`${trainIndices.length} training images, ${testIndices.length} test images`);

  const model = buildDemoBackbone({ includeTop: true, seed });
  const optimizer = tf.train.adam(Number(values.lr));
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
  const random = new Random(seed);
  const order = trainIndices.map((_, i) => i);
  const started = performance.now();
  for (let epoch = 1; epoch <= epochs; epoch++) {
    // The last epoch runs at a tenth of the rate: the weights settle, and so do the BN statistics
    // that the frozen backbone will use in inference mode.
    if (epoch === epochs && epochs > 1) {
      (optimizer as unknown as { learningRate: number }).learningRate = Number(values['final-lr']);
    }
    random.shuffle(order);
    let lossSum = 0;
    let batches = 0;
    for (let start = 0; start < order.length; start += batchSize) {
      const picked = tf.tensor1d(order.slice(start, start + batchSize), 'int32');
      const xb = tf.gather(train.x, picked);
      const yb = tf.gather(train.y, picked);
      lossSum += (await model.trainOnBatch(xb, yb)) as number;
      batches++;
      tf.dispose([picked, xb, yb]);
    }
    const testAccuracy = await accuracy(model, test.x, test.y);
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    console.log(
      `epoch ${epoch}/${epochs}: loss ${(lossSum / batches).toFixed(4)}, test accuracy ${testAccuracy.toFixed(4)} (${seconds} s)`,
    );
  }
  const trainAccuracy = await accuracy(model, train.x, train.y);
  const testAccuracy = await accuracy(model, test.x, test.y);
  console.log(
    `final: train accuracy ${trainAccuracy.toFixed(4)}, test accuracy ${testAccuracy.toFixed(4)}`,
  );
  await saveModel(model, values.out);
  console.log(`saved ${values.out}/model.json and weights.bin (${model.countParams()} parameters)`);
}

await main();
