/**
 * Keras's freezing semantics on tfjs-layers (src/engine/freezing.ts, batchnorm.ts,
 * frozen-gradients.ts). Runs on the cpu backend: the reference cases train conv layers, which
 * need gradient kernels tfjs-backend-wasm 4.22.0 lacks.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { initBackend } from '../src/engine/backend.js';
import { setBatchNormInferenceMode } from '../src/engine/index.js';
import * as tf from '../src/engine/tf.js';

before(async () => {
  await initBackend('cpu');
});

type Layer = tf.layers.Layer;
type Weight = tf.LayerVariable;

const names = (weights: Weight[]) => weights.map((w) => w.originalName);
const apply = (layer: Layer, x: tf.SymbolicTensor) => layer.apply(x) as tf.SymbolicTensor;

/** block1 and block2 of VGG16, scaled down, with Keras's layer names. */
function miniVgg(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3], name: 'input_1' });
  let x = apply(
    tf.layers.conv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      name: 'block1_conv1',
    }),
    input,
  );
  x = apply(
    tf.layers.conv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      name: 'block1_conv2',
    }),
    x,
  );
  x = apply(tf.layers.maxPooling2d({ poolSize: 2, name: 'block1_pool' }), x);
  x = apply(
    tf.layers.conv2d({
      filters: 8,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      name: 'block2_conv1',
    }),
    x,
  );
  return tf.model({ inputs: input, outputs: x, name: 'vgg16' });
}

/** A MobileNetV2-like backbone: conv without bias, BN, ReLU6, depthwise conv, BN. */
function miniMobileNet(name = 'backbone'): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  let x = apply(
    tf.layers.conv2d({
      filters: 4,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      useBias: false,
      name: 'Conv1',
    }),
    input,
  );
  x = apply(tf.layers.batchNormalization({ name: 'bn_Conv1' }), x);
  x = apply(tf.layers.activation({ activation: 'relu6', name: 'Conv1_relu' }), x);
  x = apply(
    tf.layers.depthwiseConv2d({
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      name: 'expanded_conv_depthwise',
    }),
    x,
  );
  x = apply(tf.layers.batchNormalization({ name: 'expanded_conv_depthwise_BN' }), x);
  x = apply(tf.layers.activation({ activation: 'relu6', name: 'expanded_conv_depthwise_relu' }), x);
  x = apply(
    tf.layers.conv2d({ filters: 6, kernelSize: 1, useBias: false, name: 'expanded_conv_project' }),
    x,
  );
  return tf.model({ inputs: input, outputs: x, name });
}

/** The seed's model: backbone, GlobalAveragePooling2D, Dense(1, sigmoid). */
function withHead(backbone: tf.LayersModel): tf.Sequential {
  return tf.sequential({
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }),
      tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'dense' }),
    ],
  });
}

async function snapshot(weights: Weight[]): Promise<Map<string, Buffer>> {
  const values = new Map<string, Buffer>();
  for (const w of weights) {
    const data = (await w.read().data()) as Float32Array;
    values.set(
      w.originalName,
      Buffer.from(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
    );
  }
  return values;
}

/** Names of the weights whose bits changed. */
async function changed(before: Map<string, Buffer>, weights: Weight[]): Promise<string[]> {
  const after = await snapshot(weights);
  return [...before.keys()].filter((name) => !before.get(name)!.equals(after.get(name)!));
}

/** Gives the BN layers moving statistics far from a batch's, so inference ≠ training mode. */
function setMovingStatistics(model: tf.LayersModel): void {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const [gamma, beta, mean] = layer.getWeights();
    const n = mean!.shape[0]!;
    layer.setWeights([gamma!, beta!, tf.fill([n], -0.3), tf.fill([n], 2.5)]);
  }
}

const data = () => ({
  xs: tf.randomNormal([8, 8, 8, 3], 0, 1, 'float32', 1),
  ys: tf.tensor2d([0, 1, 0, 1, 1, 0, 1, 0], [8, 1]),
});

// ---------------------------------------------------------------------------------------------
// 1. trainable flags and weights, as Keras 3's layer.py

test('model.trainable = false freezes every layer, and one layer can be re-enabled (seed)', () => {
  const vgg16 = miniVgg();
  assert.equal(vgg16.trainable, true);
  vgg16.trainable = false;
  const conv1 = vgg16.getLayer('block1_conv1');
  assert.equal(conv1.trainable, false);
  assert.ok(vgg16.layers.every((layer) => layer.trainable === false));
  assert.deepEqual(vgg16.trainableWeights, []);
  assert.equal(vgg16.nonTrainableWeights.length, 6);

  conv1.trainable = true;
  assert.equal(conv1.trainable, true);
  assert.deepEqual(names(conv1.trainableWeights), ['block1_conv1/kernel', 'block1_conv1/bias']);
  // Keras: a model whose own flag is false contributes no trainable weights.
  assert.deepEqual(vgg16.trainableWeights, []);
  assert.equal(vgg16.nonTrainableWeights.length, 6);

  vgg16.trainable = true; // recursive: every layer again
  assert.equal(vgg16.getLayer('block1_conv2').trainable, true);
  assert.equal(vgg16.trainableWeights.length, 6);
});

test('a nested model follows Keras 3: variable flags decide, ancestors do not gate', () => {
  const vgg16 = miniVgg();
  const outer = withHead(vgg16);
  vgg16.trainable = false;
  assert.deepEqual(names(outer.trainableWeights), ['dense/kernel', 'dense/bias']);
  assert.equal(outer.nonTrainableWeights.length, 6);

  // keras/src/layers/layer.py: outer.trainable_weights = [v for v in outer.weights if
  // v.trainable]; the frozen vgg16 does not filter its re-enabled layer out.
  vgg16.getLayer('block1_conv1').trainable = true;
  assert.deepEqual(vgg16.trainableWeights, []);
  assert.deepEqual(names(outer.trainableWeights), [
    'block1_conv1/kernel',
    'block1_conv1/bias',
    'dense/kernel',
    'dense/bias',
  ]);

  outer.trainable = false; // reaches the layers of the nested model
  assert.equal(vgg16.trainable, false);
  assert.equal(vgg16.getLayer('block1_conv1').trainable, false);
  assert.deepEqual(outer.trainableWeights, []);
});

test('a layer built with trainable: false starts frozen and can be unfrozen (seed dense1)', () => {
  const dense1 = tf.layers.dense({
    units: 32,
    activation: 'relu',
    trainable: false,
    name: 'dense1',
  });
  const model = tf.sequential({
    layers: [
      tf.layers.inputLayer({ inputShape: [10] }),
      dense1,
      tf.layers.dense({ units: 64, name: 'dense2' }),
    ],
  });
  assert.deepEqual(names(model.trainableWeights), ['dense2/kernel', 'dense2/bias']);
  assert.deepEqual(names(model.nonTrainableWeights), ['dense1/kernel', 'dense1/bias']);
  dense1.trainable = true;
  assert.equal(model.trainableWeights.length, 4);
});

test("BatchNormalization's moving statistics are never trainable", () => {
  const backbone = miniMobileNet();
  const bn = backbone.getLayer('bn_Conv1');
  assert.deepEqual(names(bn.trainableWeights), ['bn_Conv1/gamma', 'bn_Conv1/beta']);
  assert.deepEqual(names(bn.nonTrainableWeights), [
    'bn_Conv1/moving_mean',
    'bn_Conv1/moving_variance',
  ]);
  backbone.trainable = false;
  assert.equal(bn.nonTrainableWeights.length, 4);
  backbone.trainable = true;
  assert.deepEqual(names(bn.nonTrainableWeights), [
    'bn_Conv1/moving_mean',
    'bn_Conv1/moving_variance',
  ]);
});

test('weights keep layer order whatever the flags, so getWeights/setWeights stay aligned', () => {
  const vgg16 = miniVgg();
  const order = names(vgg16.weights);
  vgg16.getLayer('block1_conv1').trainable = false;
  assert.deepEqual(names(vgg16.weights), order);
  assert.deepEqual(names(vgg16.trainableWeights), order.slice(2));
});

// ---------------------------------------------------------------------------------------------
// 2. a frozen layer costs no gradient work

/** Counts the calls of tfjs-core's registered gradient functions, by kernel name. */
const gradientCalls = new Map<string, number>();
function countGradientCalls(kernelNames: string[]): void {
  for (const kernelName of kernelNames) {
    const config = tf.getGradient(kernelName);
    if (config === undefined || gradientCalls.has(kernelName)) continue;
    gradientCalls.set(kernelName, 0);
    tf.registerGradient({
      ...config,
      gradFunc: (dy, saved, attrs) => {
        gradientCalls.set(kernelName, gradientCalls.get(kernelName)! + 1);
        return config.gradFunc(dy, saved, attrs);
      },
    });
  }
}

const BACKWARD_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
];
// relu6 is min(relu(x), 6) in tfjs-layers (Relu itself also runs in the loss, so is left out).
const BACKBONE_GRADIENTS = ['Conv2D', 'DepthwiseConv2dNative', 'FusedBatchNorm', 'Minimum'];

/** Kernel launches of one trainOnBatch step (after a first, warm-up step), by name. */
async function stepKernels(
  model: tf.LayersModel,
  { xs, ys }: { xs: tf.Tensor; ys: tf.Tensor } = data(),
): Promise<Map<string, number>> {
  await model.trainOnBatch(xs, ys);
  countGradientCalls(BACKBONE_GRADIENTS);
  for (const k of gradientCalls.keys()) gradientCalls.set(k, 0);
  const profile = await tf.profile(async () => {
    await model.trainOnBatch(xs, ys);
  });
  const counts = new Map<string, number>();
  for (const { name } of profile.kernels) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

test('a backbone frozen after it was built gets no backward pass in sequential([backbone, gap, dense])', async () => {
  // Reference: the trainable backbone runs every backward kernel (the counting works).
  const reference = withHead(miniMobileNet('reference'));
  reference.compile({ optimizer: 'sgd', loss: 'binaryCrossentropy' });
  const trainable = await stepKernels(reference);
  for (const name of ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter']) {
    assert.ok((trainable.get(name) ?? 0) > 0, `${name} runs for a trainable backbone`);
  }
  for (const name of BACKBONE_GRADIENTS) {
    assert.ok(gradientCalls.get(name)! > 0, `${name} gradient runs for a trainable backbone`);
  }

  const backbone = miniMobileNet();
  const model = withHead(backbone);
  backbone.trainable = false;
  model.compile({ optimizer: 'sgd', loss: 'binaryCrossentropy' });
  const frozen = await stepKernels(model);
  for (const name of BACKWARD_KERNELS) assert.equal(frozen.get(name) ?? 0, 0, name);
  for (const name of BACKBONE_GRADIENTS)
    assert.equal(gradientCalls.get(name), 0, `${name} gradient`);
  // Only the head's weights are updated by the optimizer.
  assert.deepEqual(names(model.trainableWeights), ['dense/kernel', 'dense/bias']);
});

test('a frozen conv between trainable layers passes the gradient through, without its filter gradient', async () => {
  const input = tf.input({ shape: [6, 6, 2] });
  const convA = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'conv_a' });
  // No activation: tfjs-core would run it as a fused conv whose gradient computes dx AND dW.
  const convB = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'conv_b' });
  const pool = tf.layers.globalAveragePooling2d({});
  const dense = tf.layers.dense({ units: 1, name: 'dense' });
  const output = apply(dense, apply(pool, apply(convB, apply(convA, input))));
  const model = tf.model({ inputs: input, outputs: output });
  convB.trainable = false;
  const xs = tf.randomNormal([4, 6, 6, 2], 0, 1, 'float32', 2);
  const ys = tf.randomNormal([4, 1], 0, 1, 'float32', 3);
  const kernelA = convA.weights[0]!.read() as tf.Variable;
  const gradOfKernelA = (loss: () => tf.Scalar) =>
    tf.tidy(() => tf.variableGrads(loss, [kernelA]).grads[kernelA.name]!.dataSync().slice());

  // Reference: the same network written with tfjs-core's fused ops, as tfjs-layers runs it.
  const [w, b] = [(l: Layer) => l.getWeights()[0]!, (l: Layer) => l.getWeights()[1]!];
  const reference = gradOfKernelA(() => {
    const a = tf.fused.conv2d({
      x: xs as tf.Tensor4D,
      filter: kernelA as tf.Tensor4D,
      strides: 1,
      pad: 'same',
      bias: b(convA),
    });
    const h = tf.fused.conv2d({
      x: a,
      filter: w(convB) as tf.Tensor4D,
      strides: 1,
      pad: 'same',
      bias: b(convB),
    });
    const out = tf.add(
      tf.matMul(tf.mean(h, [1, 2]) as tf.Tensor2D, w(dense) as tf.Tensor2D),
      b(dense),
    );
    return tf.losses.meanSquaredError(ys, out) as tf.Scalar;
  });
  const patched = gradOfKernelA(
    () =>
      tf.losses.meanSquaredError(ys, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar,
  );
  assert.equal(patched.length, 3 * 3 * 2 * 3);
  for (const [i, g] of patched.entries()) {
    assert.ok(Math.abs(g - reference[i]!) <= 1e-5 * (1 + Math.abs(g)), `dW[${i}]: ${g}`);
  }

  model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  const kernels = await stepKernels(model, { xs, ys });
  assert.equal(kernels.get('Conv2DBackpropInput'), 1); // conv_b's input gradient, for conv_a
  assert.equal(kernels.get('Conv2DBackpropFilter'), 1); // conv_a's filter gradient only
});

test('a change of trainable after compile takes effect at the next compile, with tfjs warning', async () => {
  const backbone = miniVgg();
  const model = withHead(backbone);
  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'binaryCrossentropy' });
  backbone.trainable = false;
  const { xs, ys } = data();
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (message: string) => warnings.push(String(message));
  let before = await snapshot(backbone.weights);
  try {
    await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0 });
  } finally {
    console.warn = warn;
  }
  assert.ok(
    warnings.some((w) => /Discrepancy between trainableweights and collected trainable/.test(w)),
  );
  assert.ok((await changed(before, backbone.weights)).length > 0, 'still trained, as compiled');

  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'binaryCrossentropy' });
  before = await snapshot(backbone.weights);
  await model.fit(xs, ys, { epochs: 1, batchSize: 8, verbose: 0 });
  assert.deepEqual(await changed(before, backbone.weights), []);
});

// ---------------------------------------------------------------------------------------------
// 3. frozen BatchNormalization runs in inference mode

test('fit leaves every frozen backbone weight bit-identical, BN moving statistics included', async () => {
  const backbone = miniMobileNet();
  setMovingStatistics(backbone);
  const model = withHead(backbone);
  backbone.trainable = false;
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'binaryCrossentropy' });
  const head = model.getLayer('dense').weights;
  const beforeBackbone = await snapshot(backbone.weights);
  const beforeHead = await snapshot(head);
  const { xs, ys } = data();
  await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 });
  assert.equal(beforeBackbone.size, 11); // 3 kernels + 2 x (gamma, beta, moving mean, variance)
  assert.deepEqual(await changed(beforeBackbone, backbone.weights), []);
  assert.deepEqual(await changed(beforeHead, head), ['dense/kernel', 'dense/bias']);
});

test("a frozen BN layer's training-mode output equals its inference output", async () => {
  const backbone = miniMobileNet();
  setMovingStatistics(backbone);
  const bn = backbone.getLayer('bn_Conv1');
  const x = tf.randomNormal([2, 4, 4, 4], 3, 2, 'float32', 4);
  const run = (training: boolean) => (bn.apply(x, { training }) as tf.Tensor).dataSync();
  assert.notDeepEqual(run(true), run(false)); // trainable: batch statistics
  backbone.trainable = false; // frozen through its parent
  assert.deepEqual(run(true), run(false));
});

test('setBatchNormInferenceMode keeps BN statistics while the unfrozen backbone fine-tunes', async () => {
  const backbone = miniMobileNet();
  setMovingStatistics(backbone);
  const model = withHead(backbone);
  assert.equal(setBatchNormInferenceMode(model, true), 2);
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'binaryCrossentropy' });
  const bn = backbone.getLayer('bn_Conv1');
  const x = tf.randomNormal([2, 4, 4, 4], 3, 2, 'float32', 5);
  assert.deepEqual(
    (bn.apply(x, { training: true }) as tf.Tensor).dataSync(),
    (bn.apply(x) as tf.Tensor).dataSync(),
  );

  const { xs, ys } = data();
  let before = await snapshot(backbone.weights);
  await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
  const updated = await changed(before, backbone.weights);
  assert.ok(updated.includes('Conv1/kernel') && updated.includes('bn_Conv1/gamma'), updated.join());
  assert.ok(!updated.some((name) => /moving_(mean|variance)$/.test(name)), updated.join());

  assert.equal(setBatchNormInferenceMode(backbone, false), 2);
  before = await snapshot(backbone.weights);
  await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
  assert.ok((await changed(before, backbone.weights)).includes('bn_Conv1/moving_mean'));
});

test('setBatchNormInferenceMode rejects what is not a model, and non-boolean modes', () => {
  assert.throws(
    () => setBatchNormInferenceMode({} as Layer, true),
    /Expected a tfjs-layers model or layer for model but received \{\} of type object/,
  );
  assert.throws(
    () => setBatchNormInferenceMode(miniVgg(), 'yes' as unknown as boolean),
    /Expected boolean for enabled but received 'yes' of type string/,
  );
});
