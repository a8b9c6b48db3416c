import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { getApplication } from '../src/applications/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { frozenSplit } from '../src/training/accelerate-fit.js';
import { unfreezeFrom } from '../src/training/fine-tune-layers.js';
import { flattenModel, frozenCut } from '../src/training/frozen-cut.js';
import { compile, fit, SGD } from '../src/training/index.js';
import { trainableVariables } from '../src/training/steps.js';
import { trainedScaleWeights, withoutAcceleration } from './helpers/accelerate.js';

type ST = tf.SymbolicTensor;

/** VGG-like chain: three blocks of conv (→ BN in block 2) → ReLU, each ending in a max pool. */
function chainBackbone(): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3], name: 'input_1' });
  let x: ST = input;
  const filters = [8, 12, 16];
  filters.forEach((f, i) => {
    const b = `block${i + 1}`;
    x = tf.layers
      .conv2d({ filters: f, kernelSize: 3, padding: 'same', name: `${b}_conv1` })
      .apply(x) as ST;
    if (i === 1) x = tf.layers.batchNormalization({ name: `${b}_bn` }).apply(x) as ST;
    x = tf.layers.activation({ activation: 'relu', name: `${b}_relu` }).apply(x) as ST;
    x = tf.layers.maxPooling2d({ poolSize: 2, name: `${b}_pool` }).apply(x) as ST;
  });
  return tf.model({ inputs: input, outputs: x, name: 'chain' });
}

/**
 * MobileNetV2-like: a stem, block_1 (no skip: the channels change), block_2 and block_3 (skip:
 * `block_N_add`), block_4 (stride 2, no skip), as Keras's `_inverted_res_block` names them.
 */
function residualBackbone(): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3], name: 'input_1' });
  const conv = (x: ST, f: number, name: string, strides = 1) =>
    tf.layers.conv2d({ filters: f, kernelSize: 1, strides, useBias: false, name }).apply(x) as ST;
  const bn = (x: ST, name: string) =>
    tf.layers.batchNormalization({ name, epsilon: 1e-3, momentum: 0.999 }).apply(x) as ST;
  const relu6 = (x: ST, name: string) => tf.layers.reLU({ maxValue: 6, name }).apply(x) as ST;
  let x = relu6(
    bn(
      tf.layers
        .conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', name: 'Conv1' })
        .apply(input) as ST,
      'bn_Conv1',
    ),
    'Conv1_relu',
  );
  const block = (inp: ST, id: number, out: number, strides: number): ST => {
    const p = `block_${id}_`;
    let h = relu6(bn(conv(inp, 24, `${p}expand`), `${p}expand_BN`), `${p}expand_relu`);
    h = tf.layers
      .depthwiseConv2d({
        kernelSize: 3,
        strides,
        padding: 'same',
        useBias: false,
        name: `${p}depthwise`,
      })
      .apply(h) as ST;
    h = relu6(bn(h, `${p}depthwise_BN`), `${p}depthwise_relu`);
    h = bn(conv(h, out, `${p}project`), `${p}project_BN`);
    const channels = inp.shape[3];
    return strides === 1 && channels === out
      ? (tf.layers.add({ name: `${p}add` }).apply([inp, h]) as ST)
      : h;
  };
  x = block(x, 1, 12, 1);
  x = block(x, 2, 12, 1);
  x = block(x, 3, 12, 1);
  x = block(x, 4, 16, 2);
  return tf.model({ inputs: input, outputs: x, name: 'residual' });
}

/** The seed's fine-tuning model: the backbone, GAP, Dense(1, sigmoid). */
function seedModel(backbone: tf.LayersModel): tf.Sequential {
  const model = tf.sequential({
    name: 'classifier',
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'output_layer' }),
    ],
  });
  trainedScaleWeights(model, 5);
  return model;
}

const x = () => tf.randomUniform([8, 32, 32, 3], -1, 1, 'float32', 9);
const y = () => tf.tensor2d([1, 0, 0, 1, 1, 0, 1, 0], [8, 1]);

interface Run {
  before: Float32Array[];
  after: Float32Array[];
  names: string[];
  prefixLayers: number | null;
  cutLayer: string | null;
  /** How many weight tensors the step trains. */
  trainable: number;
}

/** Unfreezes from `from`, then two SGD steps of batch 4; the weights before and after. */
async function fineTuneTwoSteps(build: () => tf.LayersModel, from: string): Promise<Run> {
  const model = seedModel(build());
  unfreezeFrom(model, from);
  compile(model, { optimizer: SGD(0.05), loss: 'binary_crossentropy' });
  const before = model.getWeights().map((w) => w.dataSync() as Float32Array);
  const xs = x();
  const ys = y();
  await fit(model, { x: xs, y: ys }, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
  const variables = trainableVariables(model);
  const split = await frozenSplit(model, variables, [32, 32, 3], true);
  const after = model.getWeights().map((w) => w.dataSync() as Float32Array);
  const names = model.weights.map((w) => w.name);
  tf.dispose([xs, ys]);
  model.dispose();
  return {
    before,
    after,
    names,
    prefixLayers: split?.prefixLayers ?? null,
    cutLayer: split?.cutLayer ?? null,
    trainable: variables.length,
  };
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const diff = (a: Float32Array, b: Float32Array) => maxAbs(a.map((v, i) => v - b[i]!));

/**
 * Same weights after two steps as plain tfjs, within 1e-5 of each tensor's scale; and the same
 * updates (after − before) within 1e-3 of their scale, which is what the split could get wrong.
 * Returns how many tensors changed.
 */
function assertSameTraining(fast: Run, slow: Run): number {
  let changed = 0;
  fast.after.forEach((w, i) => {
    const name = fast.names[i]!;
    const scale = Math.max(maxAbs(slow.after[i]!), 1e-6);
    assert.ok(diff(w, slow.after[i]!) <= 1e-5 * scale, `${name}: ${diff(w, slow.after[i]!)}`);
    const dFast = w.map((v, j) => v - fast.before[i]![j]!);
    const dSlow = slow.after[i]!.map((v, j) => v - slow.before[i]![j]!);
    const dScale = maxAbs(dSlow);
    if (dScale > 0) changed++;
    assert.ok(
      diff(dFast, dSlow) <= 1e-3 * Math.max(dScale, 1e-7),
      `${name} update: ${diff(dFast, dSlow)} of ${dScale}`,
    );
  });
  return changed;
}

before(async () => {
  await initBackend();
});

describe('fit splits a partly unfrozen nested backbone', () => {
  test('linear chain: block3 trains in tfjs, block1..block2 run on onnxruntime', async () => {
    const fast = await fineTuneTwoSteps(chainBackbone, 'block3_conv1');
    const slow = await withoutAcceleration(() => fineTuneTwoSteps(chainBackbone, 'block3_conv1'));
    assert.equal(fast.cutLayer, 'block2_pool');
    // block1: conv, relu, pool; block2: conv, bn, relu, pool
    assert.equal(fast.prefixLayers, 7);
    assert.equal(slow.prefixLayers, null, 'XFER_ACCELERATE=0 does not split');
    // block3_conv1's kernel and bias, the head's kernel and bias: each one changed
    assert.equal(fast.trainable, 4);
    assert.equal(assertSameTraining(fast, slow), 4);
  });

  test('residual graph: the cut never crosses a skip connection', async () => {
    // block_3 has a skip from block_2_add: the cut falls back to the end of block_2.
    const fast = await fineTuneTwoSteps(residualBackbone, 'block_3_depthwise');
    const slow = await withoutAcceleration(() =>
      fineTuneTwoSteps(residualBackbone, 'block_3_depthwise'),
    );
    assert.equal(fast.cutLayer, 'block_2_add');
    assert.ok(fast.prefixLayers! > 0);
    assert.equal(assertSameTraining(fast, slow), fast.trainable);
  });

  test('residual graph: a block without a skip is cut at the previous project_BN', async () => {
    // block_2 adds block_1's output to its own: the cut cannot be inside block_2 or at its
    // start, so it is block_1_project_BN, whose output feeds both block_2_expand and block_2_add.
    const inside = await fineTuneTwoSteps(residualBackbone, 'block_2_project');
    assert.equal(inside.cutLayer, 'block_1_project_BN');
    // block_4 has no skip: cutting right before it, at block_3_add, is valid.
    const fast = await fineTuneTwoSteps(residualBackbone, 'block_4_expand');
    const slow = await withoutAcceleration(() =>
      fineTuneTwoSteps(residualBackbone, 'block_4_expand'),
    );
    assert.equal(fast.cutLayer, 'block_3_add');
    assert.equal(assertSameTraining(fast, slow), fast.trainable);
  });
});

describe('the cut in the applications, top block unfrozen', () => {
  test("MobileNetV2: after block_15_add; the head on its features gives the model's outputs", async () => {
    const backbone = await getApplication('mobilenet_v2').build({
      includeTop: false,
      weights: null,
      inputShape: [32, 32, 3],
    });
    const model = seedModel(backbone);
    unfreezeFrom(model, { blocks: 1 });
    compile(model, { optimizer: SGD(0.01), loss: 'binary_crossentropy' });
    const split = await frozenSplit(model, trainableVariables(model), [32, 32, 3], false);
    assert.ok(split);
    // block_16 has no skip (160 → 320 channels): the cut is block_15's residual sum.
    assert.equal(split.cutLayer, 'block_15_add');
    // 142 of MobileNetV2's 153 layers after its input; the GAP and Dense train in tfjs.
    assert.equal(split.prefixLayers, 142);
    const xs = x();
    const features = await split.features(xs);
    const viaSplit = split.head.predict(features) as tf.Tensor;
    const whole = model.predict(xs) as tf.Tensor;
    const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(viaSplit, whole))).dataSync()[0]!);
    assert.ok(gap < 1e-5, `split forward differs by ${gap}`);
    tf.dispose([xs, features, viaSplit, whole]);
    model.dispose();
  });

  test('ResNet50: after conv5_block2_out, the last residual sum before the unfrozen block', async () => {
    const backbone = await getApplication('resnet50').build({
      includeTop: false,
      weights: null,
      inputShape: [32, 32, 3],
    });
    const model = seedModel(backbone);
    const frozenNames = (target: { blocks: number }) => {
      unfreezeFrom(model, target);
      const trainable = new Set(model.trainableWeights.map((w) => w.read()));
      const plan = flattenModel(model)!;
      const c = frozenCut(
        plan,
        (l) => !l.weights.some((w: tf.LayerVariable) => trainable.has(w.read())),
      );
      return plan.steps[c - 1]!.layer.name;
    };
    assert.equal(frozenNames({ blocks: 1 }), 'conv5_block2_out');
    assert.equal(frozenNames({ blocks: 2 }), 'conv5_block1_out');
    model.dispose();
  });
});
