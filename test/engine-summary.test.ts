/**
 * Keras-style summary and parameter counts (src/engine/summary.ts) under Keras's freezing
 * semantics. Every expected count is computed by hand in the comments: a Dense layer has
 * (inputs + 1) x units parameters, a 3x3 Conv2D (3 x 3 x inChannels + 1) x filters, and a
 * BatchNormalization 4 x channels (gamma and beta trainable, moving mean and variance never).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import { countParams, summary } from '../src/engine/index.js';
import * as tf from '../src/engine/tf.js';

before(async () => {
  await initBackend('cpu');
});

const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor) => layer.apply(x) as tf.SymbolicTensor;
const quiet = { printFn: null };
const counts = (totalParams: number, trainableParams: number, nonTrainableParams: number) => ({
  totalParams,
  trainableParams,
  nonTrainableParams,
});

/** The numbers tfjs's own model.summary() prints, for comparison. */
function tfjsSummaryCounts(model: tf.LayersModel) {
  const lines: string[] = [];
  model.summary(undefined, undefined, (line: string) => lines.push(line));
  const read = (label: string) =>
    Number(lines.find((l) => l.startsWith(label))!.slice(label.length));
  return counts(read('Total params: '), read('Trainable params: '), read('Non-trainable params: '));
}

// Seed, section 1: the classifier on a 4x4x512 feature map.

test('Flatten then Dense(512) on a 4x4x512 map has 4,194,816 parameters (seed)', () => {
  const model = tf.sequential({
    name: 'flatten_head',
    layers: [
      tf.layers.inputLayer({ inputShape: [4, 4, 512] }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ units: 512, name: 'dense' }),
    ],
  });
  // (4 x 4 x 512 + 1) x 512 = 8,193 x 512
  assert.deepEqual(countParams(model), counts(4_194_816, 4_194_816, 0));
  const text = summary(model, quiet);
  assert.match(text, /^Model: "flatten_head"$/m);
  assert.match(text, /^ flatten \(Flatten\) +\(None, 8192\) +0$/m);
  assert.match(text, /^ dense \(Dense\) +\(None, 512\) +4,194,816$/m);
  assert.match(
    text,
    /^Total params: 4,194,816\nTrainable params: 4,194,816\nNon-trainable params: 0\n_+$/m,
  );
  assert.doesNotMatch(text, /InputLayer/); // Keras's Sequential.layers leaves its input out
});

test('GlobalAveragePooling2D then Dense(512) has 262,656 parameters (seed)', () => {
  const model = tf.sequential({
    layers: [
      tf.layers.inputLayer({ inputShape: [4, 4, 512] }),
      tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }),
      tf.layers.dense({ units: 512, name: 'dense' }),
    ],
  });
  // (512 + 1) x 512
  assert.deepEqual(countParams(model), counts(262_656, 262_656, 0));
  // A name wider than its column continues on the next line, broken at a space.
  assert.match(
    summary(model, quiet),
    /^ global_average_pooling2d +\(None, 512\) +0\n \(GlobalAveragePooling2D\)$/m,
  );
});

// Seed, section 3: temp_model and final_model.

function tempModel(options: { freezeDense1?: boolean; batchNorm?: boolean } = {}): tf.Sequential {
  const dense1 = tf.layers.dense({ units: 32, activation: 'relu', name: 'dense1' });
  if (options.freezeDense1) dense1.trainable = false; // before it is added, as the seed does
  const model = tf.sequential({ name: 'temp_model' });
  model.add(tf.layers.inputLayer({ inputShape: [10] }));
  model.add(dense1);
  if (options.batchNorm) model.add(tf.layers.batchNormalization({ name: 'batch_normalization' }));
  model.add(tf.layers.dense({ units: 64, activation: 'relu', name: 'dense2' }));
  return model;
}

function finalModel(temp: tf.Sequential): tf.Sequential {
  const model = tf.sequential({ name: 'final_model' });
  model.add(tf.layers.inputLayer({ inputShape: [10] }));
  model.add(temp); // a model added as a layer
  model.add(tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'dense3' }));
  return model;
}

test('temp_model.trainable = false makes all 2,464 parameters non-trainable (seed)', () => {
  const temp = tempModel();
  assert.equal(temp.trainable, true);
  temp.trainable = false;
  assert.equal(temp.trainable, false);
  // dense1: (10 + 1) x 32 = 352; dense2: (32 + 1) x 64 = 2,112
  assert.deepEqual(countParams(temp), counts(2_464, 0, 2_464));
  assert.deepEqual(tfjsSummaryCounts(temp), countParams(temp));
});

test('dense1 frozen before it is added: 352 non-trainable; final_model adds 65 trainable (seed)', () => {
  const temp = tempModel({ freezeDense1: true });
  assert.deepEqual(countParams(temp), counts(2_464, 2_112, 352));
  const final = finalModel(temp);
  // dense3: (64 + 1) x 1 = 65
  assert.deepEqual(countParams(final), counts(2_529, 2_177, 352));
  assert.deepEqual(tfjsSummaryCounts(final), countParams(final));
  const text = summary(final, { ...quiet, showTrainable: true });
  assert.match(text, /^ temp_model \(Sequential\) +\(None, 64\) +2,464 +Y$/m);
  assert.match(text, /^ dense3 \(Dense\) +\(None, 1\) +65 +Y$/m);
  assert.match(text, /^Total params: 2,529\nTrainable params: 2,177\nNon-trainable params: 352$/m);
});

test("a frozen nested Sequential with BatchNormalization: Keras's counts", () => {
  const temp = tempModel({ batchNorm: true });
  const final = finalModel(temp);
  // temp_model: dense1 352 + BN 4 x 32 = 128 + dense2 2,112 = 2,592; final adds dense3's 65.
  // Trainable: everything but BN's moving mean and variance (2 x 32 = 64).
  assert.deepEqual(countParams(final), counts(2_657, 2_593, 64));
  temp.trainable = false;
  assert.deepEqual(countParams(final), counts(2_657, 65, 2_592));
  assert.deepEqual(tfjsSummaryCounts(final), countParams(final));
  assert.match(
    summary(final, { ...quiet, showTrainable: true }),
    /^ temp_model \(Sequential\) +\(None, 64\) +2,592 +N$/m,
  );
  // Unfreezing gives gamma and beta back, never the moving statistics.
  temp.trainable = true;
  assert.deepEqual(countParams(final), counts(2_657, 2_593, 64));
});

// Seed, sections 3-4: VGG16 without its top, frozen, under a new head.

function vgg16Features(): tf.LayersModel {
  const input = tf.input({ shape: [224, 224, 3], name: 'input_1' });
  let x = input;
  const blocks: Array<[number, number]> = [
    [2, 64],
    [2, 128],
    [3, 256],
    [3, 512],
    [3, 512],
  ];
  blocks.forEach(([convs, filters], b) => {
    for (let c = 1; c <= convs; c++) {
      const name = `block${b + 1}_conv${c}`;
      x = apply(
        tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu', name }),
        x,
      );
    }
    x = apply(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: `block${b + 1}_pool` }), x);
  });
  return tf.model({ inputs: input, outputs: x, name: 'vgg16' });
}

test('a frozen VGG16 backbone under GAP + Dense(1): 14,714,688 non-trainable, 513 trainable', () => {
  const vgg16 = vgg16Features();
  // Keras's VGG16(include_top=False): 14,714,688 (sum over the 13 convs of (9 x in + 1) x out).
  assert.deepEqual(countParams(vgg16), counts(14_714_688, 14_714_688, 0));
  const model = tf.sequential({
    name: 'sequential',
    layers: [
      vgg16,
      tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }),
      tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'dense' }),
    ],
  });
  vgg16.trainable = false;
  // dense: (512 + 1) x 1 = 513
  assert.deepEqual(countParams(model), counts(14_715_201, 513, 14_714_688));
  const text = summary(model, quiet);
  assert.match(text, /^ vgg16 \(Functional\) +\(None, 7, 7, 512\) +14,714,688$/m);
  assert.match(
    text,
    /^Total params: 14,715,201\nTrainable params: 513\nNon-trainable params: 14,714,688$/m,
  );

  // Keras 3: re-enabling block1_conv1 inside the frozen backbone trains it in the outer model
  // ((9 x 3 + 1) x 64 = 1,792), while the backbone itself still reports no trainable weights.
  vgg16.getLayer('block1_conv1').trainable = true;
  assert.deepEqual(countParams(vgg16), counts(14_714_688, 0, 14_714_688));
  assert.deepEqual(countParams(model), counts(14_715_201, 2_305, 14_712_896));
});

// The table itself.

test('a graph with branches gets a "Connected to" column and its input row', () => {
  const input = tf.input({ shape: [4], name: 'input_1' });
  const a = apply(tf.layers.dense({ units: 3, name: 'a' }), input);
  const b = apply(tf.layers.dense({ units: 3, name: 'b' }), input);
  const sum = tf.layers.add({ name: 'add' }).apply([a, b]) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: sum, name: 'branches' });
  const text = summary(model, quiet);
  assert.match(text, /^ Layer \(type\) +Output Shape +Param # +Connected to$/m);
  assert.match(text, /^ input_1 \(InputLayer\) +\(None, 4\) +0 +-$/m);
  assert.match(text, /^ a \(Dense\) +\(None, 3\) +15 +input_1\[0\]\[0\]$/m);
  assert.match(text, /^ add \(Add\) +\(None, 3\) +0 +a\[0\]\[0\], b\[0\]\[0\]$/m);
  for (const line of text.split('\n')) assert.ok(line.length <= 108, line);
});

test('summary wraps cells to lineLength and hands each line to printFn', () => {
  const model = finalModel(tempModel());
  const printed: string[] = [];
  const text = summary(model, { lineLength: 40, printFn: (line) => printed.push(line) });
  assert.deepEqual(printed, text.split('\n'));
  for (const line of printed) assert.ok(line.length <= 40, `${line.length}: ${line}`);
  assert.equal(printed[1], '_'.repeat(40));
  assert.ok(printed.some((line) => line.includes('temp_model')));

  const log = console.log; // by default it prints, as Keras's model.summary() does
  const logged: string[] = [];
  console.log = (line: string) => logged.push(line);
  try {
    summary(model, { lineLength: 40 });
  } finally {
    console.log = log;
  }
  assert.deepEqual(logged, printed);
});

test('summary and countParams reject what is not a model, with one clear message', () => {
  assert.throws(
    () => summary(42 as never, quiet),
    /Expected a tfjs-layers model or layer for model but received 42 of type number/,
  );
  assert.throws(
    () => summary(tf.layers.dense({ units: 1 }), quiet),
    /Expected a tfjs-layers model \(tf\.sequential or tf\.model\) for model/,
  );
  assert.throws(
    () => summary(tempModel(), { printFn: 'yes' as never }),
    /Expected a function or null for printFn but received 'yes' of type string/,
  );
  assert.throws(
    () => summary(tempModel(), { ...quiet, lineLength: 0 }),
    /Expected positive integer for lineLength/,
  );
  assert.throws(
    () => countParams(null as never),
    /Expected a tfjs-layers model or layer for model but received null/,
  );
  assert.deepEqual(countParams(tf.layers.batchNormalization({}) as never), counts(0, 0, 0)); // unbuilt
});
