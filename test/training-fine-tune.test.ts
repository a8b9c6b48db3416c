/**
 * Fine-tuning (src/training/fine-tune*.ts) on a tiny conv model with Keras block names: which
 * weights change, BatchNormalization statistics, per-group learning rates, epoch numbering.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { MobileNetV2, VGG16 } from '../src/applications/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import {
  blockOf,
  Callback,
  compile,
  fineTune,
  fit,
  getLearningRate,
  groupLearningRates,
  type Logs,
  setLearningRate,
  unfreezeFrom,
} from '../src/training/index.js';

before(async () => {
  await initBackend();
});

/** block1 (conv + BN) and block2 (conv + BN) as a nested backbone, then GAP + Dense. */
function tinyModel(seed = 1): { model: tf.Sequential; backbone: tf.LayersModel } {
  const init = (s: number) => tf.initializers.glorotUniform({ seed: seed * 10 + s });
  const input = tf.input({ shape: [8, 8, 2], name: 'input_1' });
  let x = tf.layers
    .conv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      name: 'block1_conv1',
      kernelInitializer: init(1),
    })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'block1_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .conv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      name: 'block2_conv1',
      kernelInitializer: init(2),
    })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'block2_bn' }).apply(x) as tf.SymbolicTensor;
  const backbone = tf.model({ inputs: input, outputs: x, name: 'tiny_backbone' });
  const model = tf.sequential({
    name: 'classifier',
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }),
      tf.layers.dense({
        units: 1,
        activation: 'sigmoid',
        name: 'output_layer',
        kernelInitializer: init(3),
      }),
    ],
  });
  return { model, backbone };
}

function data(n = 16): { x: tf.Tensor; y: tf.Tensor } {
  const x = tf.randomNormal([n, 8, 8, 2], 0, 1, 'float32', 7);
  // A learnable target: the sign of the mean of the first channel.
  const y = tf.tidy(() =>
    tf.cast(tf.greater(tf.mean(tf.slice(x, [0, 0, 0, 0], [n, 8, 8, 1]), [1, 2, 3]), 0), 'float32'),
  );
  return { x, y };
}

/** Every weight's values by name (BN moving statistics included). */
function snapshot(model: tf.LayersModel): Map<string, Float32Array> {
  return new Map(
    model.weights.map((w) => [w.originalName ?? w.name, w.read().dataSync() as Float32Array]),
  );
}

function changed(before: Map<string, Float32Array>, after: Map<string, Float32Array>): string[] {
  return [...before.keys()]
    .filter((k) => before.get(k)!.some((v, i) => v !== after.get(k)![i]))
    .sort();
}

test('blockOf reads Keras block names of VGG, MobileNetV2, ResNet and MobileNet', () => {
  assert.equal(blockOf('block5_conv1'), 'block5');
  assert.equal(blockOf('block_16_project_BN'), 'block_16');
  assert.equal(blockOf('conv5_block3_2_conv'), 'conv5_block3');
  assert.equal(blockOf('conv_pw_13_bn'), 'conv_13');
  assert.equal(blockOf('block7a_expand_conv'), 'block7');
  assert.equal(blockOf('Conv_1'), undefined);
  assert.equal(blockOf('output_layer'), undefined);
});

test('unfreezeFrom: a layer name, a count of weighted layers, blocks, all', () => {
  const { model } = tinyModel();
  const byName = unfreezeFrom(model, 'block2_conv1');
  assert.equal(byName.firstLayer, 'block2_conv1');
  assert.deepEqual(byName.trainableLayers, ['block2_conv1', 'block2_bn', 'output_layer']);
  // block2_conv1 4*4*9+4 = 148, BN gamma+beta 8, dense 4+1 = 5.
  assert.equal(byName.trainableParams, 148 + 8 + 5);
  assert.deepEqual(
    model.trainableWeights.map((w) => w.originalName),
    [
      'block2_conv1/kernel',
      'block2_conv1/bias',
      'block2_bn/gamma',
      'block2_bn/beta',
      'output_layer/kernel',
      'output_layer/bias',
    ],
  );
  assert.equal(
    (model.getLayer('tiny_backbone') as tf.LayersModel).getLayer('block1_conv1').trainable,
    false,
  );

  assert.equal(unfreezeFrom(model, { blocks: 1 }).firstLayer, 'block2_conv1');
  assert.equal(unfreezeFrom(model, { blocks: 2 }).firstLayer, 'block1_conv1');
  assert.deepEqual(unfreezeFrom(model, 2).trainableLayers, ['block2_bn', 'output_layer']);
  const all = unfreezeFrom(model, 'all');
  // conv1 2*4*9+4 = 76, conv2 4*4*9+4 = 148, two BNs 8 each, dense 5.
  assert.equal(all.trainableParams, 76 + 148 + 16 + 5);

  assert.throws(() => unfreezeFrom(model, 'block9_conv1'), /block9_conv1.*block1_conv1/s);
  assert.throws(() => unfreezeFrom(model, 6), /at most 5/);
  assert.throws(() => unfreezeFrom(model, { blocks: 3 }), /at most 2/);
  assert.throws(() => unfreezeFrom(model, 0), /positive integer/);
  model.dispose();
});

test('fit after unfreezeFrom changes only the unfrozen weights; BN statistics stay by default', async () => {
  const { x, y } = data();
  for (const trainBatchNorm of [false, true]) {
    const { model } = tinyModel();
    unfreezeFrom(model, 'block2_conv1', { trainBatchNorm });
    compile(model, { optimizer: 'sgd', loss: 'binary_crossentropy' });
    const before = snapshot(model);
    await fit(model, { x, y }, { epochs: 1, batchSize: 8, verbose: 0, shuffle: false });
    const moved = changed(before, snapshot(model));
    const trained = [
      'block2_bn/beta',
      'block2_bn/gamma',
      'block2_conv1/bias',
      'block2_conv1/kernel',
      'output_layer/bias',
      'output_layer/kernel',
    ];
    const stats = ['block2_bn/moving_mean', 'block2_bn/moving_variance'];
    assert.deepEqual(
      moved,
      trainBatchNorm ? [...trained, ...stats].sort() : trained,
      `trainBatchNorm ${trainBatchNorm}`,
    );
    model.dispose();
  }
  tf.dispose([x, y]);
});

test('groupLearningRates: SGD steps are each group rate times the gradient', () => {
  const { model, backbone } = tinyModel();
  unfreezeFrom(model, 'all');
  const optimizer = groupLearningRates(backbone, {
    optimizer: 'sgd',
    learningRate: 0.1,
    backboneLearningRate: 0.01,
  });
  const { x, y } = data(4);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(
    () =>
      tf.mean(tf.square(tf.sub(model.apply(x) as tf.Tensor, tf.reshape(y, [4, 1])))) as tf.Scalar,
    variables,
  );
  const before = new Map(variables.map((v) => [v.name, v.dataSync().slice()]));
  const gradValues = new Map(Object.entries(grads).map(([k, g]) => [k, g.dataSync().slice()]));
  optimizer.applyGradients(grads);
  const backboneNames = new Set(backbone.weights.map((w) => (w.read() as tf.Variable).name));
  for (const v of variables) {
    const rate = backboneNames.has(v.name) ? 0.01 : 0.1;
    const after = v.dataSync();
    const g = gradValues.get(v.name)!;
    before.get(v.name)!.forEach((b, i) => {
      assert.ok(Math.abs(after[i]! - (b - rate * g[i]!)) < 1e-6, `${v.name}[${i}]`);
    });
  }
  // ReduceLROnPlateau-style changes keep the ratio.
  assert.equal(getLearningRate(optimizer), 0.1);
  setLearningRate(optimizer, 0.05);
  assert.ok(Math.abs(optimizer.backboneLearningRate - 0.005) < 1e-12);
  tf.dispose([value, x, y, ...Object.values(grads)]);
  model.dispose();
});

test('groupLearningRates: a first Adam step moves each group by about its rate', async () => {
  const { model, backbone } = tinyModel();
  unfreezeFrom(model, 'all');
  compile(model, {
    optimizer: groupLearningRates(backbone, { learningRate: 1e-2, backboneLearningRate: 1e-4 }),
    loss: 'binary_crossentropy',
  });
  const { x, y } = data(8);
  const before = snapshot(model);
  await fit(model, { x, y }, { epochs: 1, batchSize: 8, verbose: 0 });
  const after = snapshot(model);
  const maxStep = (name: string) =>
    Math.max(...before.get(name)!.map((b, i) => Math.abs(after.get(name)![i]! - b)));
  // Adam's first step is lr * m̂ / (√v̂ + ε) = lr * sign(g) for every non-zero gradient.
  assert.ok(
    Math.abs(maxStep('block1_conv1/kernel') - 1e-4) < 1e-6,
    String(maxStep('block1_conv1/kernel')),
  );
  assert.ok(
    Math.abs(maxStep('output_layer/kernel') - 1e-2) < 1e-4,
    String(maxStep('output_layer/kernel')),
  );
  tf.dispose([x, y]);
  model.dispose();
});

test('fineTune: head first with the backbone unchanged, then fine-tuning numbered on', async () => {
  const { model } = tinyModel();
  compile(model, { optimizer: 'adam', loss: 'binary_crossentropy', metrics: ['accuracy'] });
  const { x, y } = data(32);
  const epochs: number[] = [];
  const seen: Array<Map<string, Float32Array>> = [snapshot(model)];
  class Recorder extends Callback {
    override onEpochEnd(epoch: number, _logs?: Logs): void {
      epochs.push(epoch);
      seen.push(snapshot(this.model!));
    }
  }
  const result = await fineTune(
    model,
    { x, y },
    {
      frozenEpochs: 2,
      epochs: 2,
      baseLearningRate: 1e-2,
      unfreeze: { blocks: 1 },
      callbacks: [new Recorder()],
      validationData: [x, y],
      batchSize: 8,
      verbose: 0,
    },
  );
  assert.deepEqual(epochs, [0, 1, 2, 3]);
  assert.deepEqual(result.frozen!.epoch, [0, 1]);
  assert.deepEqual(result.fineTuned.epoch, [2, 3]);
  assert.deepEqual(Object.keys(result.history).sort(), [
    'accuracy',
    'loss',
    'val_accuracy',
    'val_loss',
  ]);
  assert.equal(result.history.loss!.length, 4);
  // Frozen stage: only the head moved.
  assert.deepEqual(changed(seen[0]!, seen[2]!), ['output_layer/bias', 'output_layer/kernel']);
  // Fine-tuning block2: block2's conv and BN scale/offset too, never block1 or BN statistics.
  assert.deepEqual(changed(seen[2]!, seen[4]!), [
    'block2_bn/beta',
    'block2_bn/gamma',
    'block2_conv1/bias',
    'block2_conv1/kernel',
    'output_layer/bias',
    'output_layer/kernel',
  ]);
  assert.deepEqual(result.unfrozen.trainableLayers, ['block2_conv1', 'block2_bn', 'output_layer']);
  tf.dispose([x, y]);
  model.dispose();
});

test('GroupOptimizer state round-trips through getWeights / setWeights', async () => {
  const { model, backbone } = tinyModel();
  unfreezeFrom(model, 'all');
  const optimizer = groupLearningRates(backbone, {
    learningRate: 1e-2,
    backboneLearningRate: 1e-3,
  });
  compile(model, { optimizer, loss: 'binary_crossentropy' });
  const { x, y } = data(8);
  await fit(model, { x, y }, { epochs: 2, batchSize: 4, verbose: 0, shuffle: false });
  const saved = await optimizer.getWeights();
  // Adam per group: its step count, then two moments per variable (2 head variables, 8 backbone).
  assert.equal(saved.filter((w) => w.name.startsWith('head/')).length, 1 + 2 * 2);
  assert.equal(saved.filter((w) => w.name.startsWith('backbone/')).length, 1 + 2 * 8);
  assert.equal(saved.find((w) => w.name === 'head/iter')?.tensor.dataSync()[0], 4);
  const copy = groupLearningRates(backbone, { learningRate: 1e-2, backboneLearningRate: 1e-3 });
  await copy.setWeights(saved.map((w) => ({ name: w.name, tensor: w.tensor.clone() })));
  const again = await copy.getWeights();
  assert.deepEqual(
    again.map((w) => [w.name, Array.from(w.tensor.dataSync())]),
    saved.map((w) => [w.name, Array.from(w.tensor.dataSync())]),
  );
  tf.dispose([x, y]);
  model.dispose();
});

test('the top block of VGG16 and MobileNetV2, counted by Keras names', async () => {
  const vgg = await VGG16({ includeTop: false, weights: null, inputShape: [224, 224, 3] });
  const top = unfreezeFrom(vgg, { blocks: 1 });
  assert.equal(top.firstLayer, 'block5_conv1');
  // Three 3x3 convs 512 -> 512 with bias: 3 * (512 * 512 * 9 + 512).
  assert.equal(top.trainableParams, 3 * (512 * 512 * 9 + 512));
  assert.equal(unfreezeFrom(vgg, { blocks: 2 }).firstLayer, 'block4_conv1');
  vgg.dispose();
  const mobile = await MobileNetV2({ includeTop: false, weights: null, inputShape: [224, 224, 3] });
  const last = unfreezeFrom(mobile, { blocks: 1 });
  assert.equal(last.firstLayer, 'block_16_expand');
  assert.deepEqual(last.trainableLayers.slice(-2), ['Conv_1', 'Conv_1_bn']);
  // expand 160*960, depthwise 9*960, project 960*320, Conv_1 320*1280 (no biases), and the
  // gamma and beta of BNs over 960, 960, 320 and 1280 channels.
  assert.equal(
    last.trainableParams,
    160 * 960 + 9 * 960 + 960 * 320 + 320 * 1280 + 2 * (960 + 960 + 320 + 1280),
  );
  mobile.dispose();
});
