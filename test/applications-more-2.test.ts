/**
 * EfficientNetB0 to B7, built with random weights, against Keras 3's own numbers: parameter counts
 * with top as Keras's documentation gives them (5,330,571 for B0, Normalization's mean, variance
 * and count included), without top that minus the classifier ((channels + 1) * 1000), output
 * shapes, Keras's layer names, the in-model preprocessing, a forward pass and the input-size
 * checks. B0 is built twice (with top at 224, without top at the minimum size), B1 to B7 once
 * each with top at 32x32 (allowed without pretrained weights), and disposed at once.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  ConvNeXtBase,
  ConvNeXtTiny,
  convnext,
  EfficientNetB0,
  EfficientNetB1,
  EfficientNetB7,
  EfficientNetV2B0,
  EfficientNetV2S,
  efficientnet,
  efficientnetV2,
  getApplication,
  listApplications,
  MobileNetV3Large,
  MobileNetV3Small,
  mobilenetV3,
  NASNetMobile,
  nasnet,
  preprocessInput,
} from '../src/applications/index.js';
import { Normalization } from '../src/applications/normalization-layer.js';
import type { ApplicationSpec } from '../src/applications/spec.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';

before(async () => {
  await initBackend();
});

/** Keras's counts with top, default sizes and the channels of `top_conv` (1280 scaled by width). */
const KERAS: Record<string, { top: number; size: number; channels: number }> = {
  efficientnetb0: { top: 5_330_571, size: 224, channels: 1280 },
  efficientnetb1: { top: 7_856_239, size: 240, channels: 1280 },
  efficientnetb2: { top: 9_177_569, size: 260, channels: 1408 },
  efficientnetb3: { top: 12_320_535, size: 300, channels: 1536 },
  efficientnetb4: { top: 19_466_823, size: 380, channels: 1792 },
  efficientnetb5: { top: 30_562_527, size: 456, channels: 2048 },
  efficientnetb6: { top: 43_265_143, size: 528, channels: 2304 },
  efficientnetb7: { top: 66_658_687, size: 600, channels: 2560 },
};

const specs: ApplicationSpec[] = Object.keys(KERAS).map((name) => getApplication(name));

function values(x: tf.Tensor): number[] {
  return Array.from(x.dataSync());
}

function close(actual: number[], expected: number[], tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (const [i, v] of expected.entries()) {
    assert.ok(Math.abs(actual[i]! - v) < tolerance, `${actual} vs ${expected}`);
  }
}

test('the registry holds EfficientNetB0 to B7, by Keras module or class name', () => {
  const registered = new Set(listApplications().map((spec) => spec.name));
  for (const name of Object.keys(KERAS)) assert.ok(registered.has(name), name);
  assert.equal(getApplication('EfficientNetB0').build, EfficientNetB0);
  assert.equal(getApplication('efficientnet_b1').build, EfficientNetB1);
  assert.equal(getApplication('EFFICIENTNETB7').build, EfficientNetB7);
});

for (const spec of specs) {
  const keras = KERAS[spec.name]!;
  const classifier = (keras.channels + 1) * 1000;

  test(`${spec.className}: Keras's count, ${keras.size}x${keras.size}, layer names and top`, async () => {
    assert.deepEqual(spec.parameters, { top: keras.top, noTop: keras.top - classifier });
    assert.equal(spec.defaultInputSize, keras.size);
    assert.equal(spec.minInputSize, 32);
    assert.equal(spec.preprocessMode, 'none');
    const base = 'https://storage.googleapis.com/keras-applications/';
    const { top, noTop } = spec.weightSets.imagenet;
    assert.equal(top.url, `${base}${spec.name}.h5`);
    assert.equal(noTop.url, `${base}${spec.name}_notop.h5`);
    assert.match(top.fileHash ?? '', /^[0-9a-f]{32}$/);

    // B0 at its default size (the shape check of the top); the others at 32x32, to stay fast.
    const size = spec.name === 'efficientnetb0' ? keras.size : 32;
    const model = await spec.build({ weights: null, inputShape: [size, size, 3] });
    try {
      assert.equal(model.countParams(), keras.top);
      assert.equal(model.name, spec.name);
      assert.deepEqual(model.outputs[0]!.shape, [null, 1000]);
      const names = model.layers.map((l) => l.name);
      assert.deepEqual(names.slice(0, 4), [
        'input_layer',
        'rescaling',
        'normalization',
        'stem_conv_pad',
      ]);
      assert.deepEqual(names.slice(-4), [
        'top_activation',
        'avg_pool',
        'top_dropout',
        'predictions',
      ]);
      for (const name of [spec.firstConvLayer, spec.featureLayer, spec.classifierLayer]) {
        assert.ok(model.getLayer(name), name);
      }
      assert.deepEqual(model.getLayer('top_conv').getWeights()[0]!.shape, [
        1,
        1,
        model.getLayer('top_conv').getWeights()[0]!.shape[2]!,
        keras.channels,
      ]);
      assert.equal(model.getLayer('predictions').getWeights()[0]!.size + 1000, classifier);
    } finally {
      model.dispose();
    }
  });
}

test('EfficientNetB0 without top: features, pooling, SE blocks, stochastic depth, a forward pass', async () => {
  const features = await EfficientNetB0({
    weights: null,
    includeTop: false,
    inputShape: [32, 32, 3],
  });
  try {
    assert.equal(features.countParams(), 4_049_571);
    assert.equal(features.layers.at(-1)!.name, 'top_activation');
    assert.deepEqual(features.outputs[0]!.shape, [null, 1, 1, 1280]);

    // Normalization's mean, variance and count are non-trainable: 3 + 3 + 1 of the 7 parameters
    // Keras counts beyond the convolutions; an identity until ImageNet weights are loaded.
    const norm = features.getLayer('normalization');
    assert.deepEqual(
      norm.weights.map((w) => [w.originalName, w.shape, w.trainable]),
      [
        ['normalization/mean', [3], false],
        ['normalization/variance', [3], false],
        ['normalization/count', [], false],
      ],
    );
    assert.equal(norm.getClassName(), 'Normalization');

    // Keras's block: expansion, padded strided depthwise, SE (squeeze to filters_in / 4), project.
    for (const name of [
      'block1a_dwconv',
      'block1a_se_squeeze',
      'block1a_se_reshape',
      'block1a_se_excite',
      'block2a_expand_conv',
      'block2a_dwconv_pad',
      'block7a_project_bn',
    ]) {
      assert.ok(features.getLayer(name), name);
    }
    // block2b: 24 in, expanded 6x to 144, SE squeeze to 6; block6d: 192 in, 1152 and 48.
    assert.deepEqual(features.getLayer('block2b_se_reduce').getWeights()[0]!.shape, [1, 1, 144, 6]);
    assert.deepEqual(
      features.getLayer('block6d_se_expand').getWeights()[0]!.shape,
      [1, 1, 48, 1152],
    );
    assert.deepEqual(features.getLayer('block3a_dwconv').getWeights()[0]!.shape, [5, 5, 144, 1]);
    // Stochastic depth: drop rate 0.2 * b / 16 for the b-th block, whole samples at a time.
    const drop = features.getLayer('block2b_drop').getConfig();
    assert.equal(drop.rate, (0.2 * 2) / 16);
    assert.deepEqual(drop.noiseShape, [null, 1, 1, 1]);
    assert.equal(features.getLayer('block7a_project_bn').getConfig().epsilon, 1e-3);
    // Blocks that change width or stride have no residual (B0 has 16 blocks, 9 additions).
    assert.throws(() => features.getLayer('block2a_add'));
    assert.equal(features.layers.filter((l) => l.name.endsWith('_add')).length, 9);
    // Keras's initializers: variance scaling over fan out, scale 2 (uniform here, see the file).
    const init = features.getLayer('stem_conv').getConfig().kernelInitializer as {
      config: Record<string, unknown>;
    };
    assert.deepEqual(
      { scale: init.config.scale, mode: init.config.mode },
      { scale: 2, mode: 'fanOut' },
    );

    // Pixels in [0, 255] go in as they are: the model rescales them itself.
    const y = tf.tidy(
      () => features.predict(tf.randomUniform([2, 32, 32, 3], 0, 255)) as tf.Tensor,
    );
    assert.deepEqual(y.shape, [2, 1, 1, 1280]);
    // swish(x) >= -0.2785 (its minimum, at x = -1.278).
    assert.ok(values(y).every((v) => Number.isFinite(v) && v > -0.279));
    y.dispose();
    // The rescaling to [0, 1] is the model's first step.
    const rescaled = tf.model({
      inputs: features.inputs,
      outputs: features.getLayer('normalization').output as tf.SymbolicTensor,
    });
    const r = rescaled.predict(tf.fill([1, 32, 32, 3], 51)) as tf.Tensor;
    close(values(r).slice(0, 3), [0.2, 0.2, 0.2]);
    r.dispose();
  } finally {
    features.dispose();
  }

  const pooled = await EfficientNetB0({ weights: null, includeTop: false, pooling: 'max' });
  assert.deepEqual(pooled.inputs[0]!.shape, [null, null, null, 3]);
  assert.deepEqual(pooled.outputs[0]!.shape, [null, 1280]);
  assert.equal(pooled.layers.at(-1)!.name, 'max_pool');
  pooled.dispose();
});

test("Normalization is Keras's: (x - mean) / sqrt(variance), from weights or fixed values", () => {
  const fixed = new Normalization({ mean: [1, 2, 3], variance: [4, 9, 16] });
  const out = fixed.apply(tf.tensor2d([[3, 5, 7]])) as tf.Tensor;
  close(values(out), [1, 1, 1]);
  assert.equal(fixed.countParams(), 0);
  const adapted = new Normalization({ axis: -1 });
  adapted.build([null, 3]);
  adapted.setWeights([tf.tensor1d([1, 2, 3]), tf.tensor1d([4, 9, 16]), tf.scalar(5, 'int32')]);
  const back = new Normalization({ mean: [1, 2, 3], variance: [4, 9, 16], invert: true });
  const y = adapted.apply(tf.tensor2d([[3, 5, 7]])) as tf.Tensor;
  close(values(y), [1, 1, 1]);
  const z = back.apply(y) as tf.Tensor;
  close(values(z), [3, 5, 7]);
  assert.deepEqual(adapted.getConfig().axis, -1);
  tf.dispose([out, y, z]);
});

test("efficientnet.preprocessInput is Keras's pass-through: pixels stay in [0, 255]", () => {
  const pixel = tf.tensor4d([[[[255, 0, 51]]]], [1, 1, 1, 3], 'int32');
  const out = efficientnet.preprocessInput(pixel);
  assert.equal(out.dtype, 'float32');
  assert.deepEqual(values(out), [255, 0, 51]);
  const same = preprocessInput(tf.tensor3d([[[1, 2, 3]]]), 'none');
  assert.deepEqual(values(same), [1, 2, 3]);
  tf.dispose([pixel, out, same]);
});

/** Asserts an XferError INVALID_ARGUMENT whose message matches `pattern`. */
async function refused(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof XferError, `not an XferError: ${error}`);
    assert.equal(error.code, 'INVALID_ARGUMENT');
    assert.match(error.message, pattern);
    return true;
  });
}

test("inputs under Keras's minimum are refused; the pretrained top needs the default size", async () => {
  await refused(
    EfficientNetB0({ weights: null, includeTop: false, inputShape: [31, 31, 3] }),
    /^EfficientNetB0 needs images of at least 32x32, but received inputShape \[31, 31, 3\]\. Resize the images to at least 32x32 \(the default is 224x224\)\.$/,
  );
  await refused(
    EfficientNetB7({ weights: null, includeTop: false, inputShape: [600, 16, 3] }),
    /^EfficientNetB7 needs images of at least 32x32.*the default is 600x600/,
  );
  await refused(
    EfficientNetB1({ inputShape: [224, 224, 3] }),
    /^EfficientNetB1 with includeTop: true and weights 'imagenet' needs inputShape \[240, 240, 3\].*received \[224, 224, 3\]/,
  );
});

test('EfficientNet builders and their namespace are reachable from the public surface', async () => {
  const xfer: Record<string, unknown> = await import('../src/index.js');
  for (const spec of specs) assert.equal(xfer[spec.className], spec.build, spec.className);
  assert.equal(xfer.efficientnet, efficientnet);
});

// MobileNetV3: Keras's documented counts; without top that minus conv_2 ((576 + 1) * 1024 for
// Small, (960 + 1) * 1280 for Large) and the logits ((1024 or 1280 + 1) * 1000).
const V3: Record<string, { top: number; noTop: number; lastConv: number; feature: string }> = {
  mobilenet_v3_small: { top: 2_554_968, noTop: 939_120, lastConv: 576, feature: 'activation_17' },
  mobilenet_v3_large: { top: 5_507_432, noTop: 2_996_352, lastConv: 960, feature: 'activation_19' },
};

test('MobileNetV3Small and Large: registered, pass-through preprocessing, Keras weight files', () => {
  assert.equal(getApplication('MobileNetV3Small').build, MobileNetV3Small);
  assert.equal(getApplication('mobilenet_v3_large').build, MobileNetV3Large);
  const base = 'https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/';
  const small = getApplication('mobilenetv3small');
  assert.deepEqual(small.weightSets.imagenet.top, {
    url: `${base}weights_mobilenet_v3_small_224_1.0_float.h5`,
    fileHash: '8768d4c2e7dee89b9d02b2d03d65d862',
  });
  assert.deepEqual(getApplication('MobileNetV3Large').weightSets.imagenet.noTop, {
    url: `${base}weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5`,
    fileHash: '07fb09a5933dd0c8eaafa16978110389',
  });
  for (const name of Object.keys(V3)) {
    const spec = getApplication(name);
    assert.deepEqual(spec.parameters, { top: V3[name]!.top, noTop: V3[name]!.noTop });
    assert.equal(spec.preprocessMode, 'none');
    assert.equal(spec.featureLayer, V3[name]!.feature);
  }
  const pixel = tf.tensor4d([[[[255, 0, 51]]]]);
  const out = mobilenetV3.preprocessInput(pixel);
  assert.deepEqual(values(out), [255, 0, 51]);
  tf.dispose([pixel, out]);
});

for (const [name, keras] of Object.entries(V3)) {
  test(`${name}: Keras's counts, hard-swish, SE with hard-sigmoid, a forward pass on [0, 255]`, async () => {
    const spec = getApplication(name);
    // Keras accepts any size of at least 32x32 with the top too: the classifier is pooled.
    const model = await spec.build({ weights: null });
    try {
      assert.equal(model.countParams(), keras.top);
      assert.equal(model.name, spec.className);
      assert.deepEqual(model.inputs[0]!.shape, [null, null, null, 3]);
      assert.deepEqual(model.outputs[0]!.shape, [null, 1000]);
      const names = model.layers.map((l) => l.name);
      assert.deepEqual(names.slice(0, 4), ['input_layer', 'rescaling', 'conv', 'conv_bn']);
      assert.deepEqual(names.slice(-4), ['dropout', 'logits', 'flatten', 'predictions']);
      assert.deepEqual(model.getLayer('conv_1').getWeights()[0]!.shape.slice(3), [keras.lastConv]);
      for (const layer of [spec.firstConvLayer, spec.featureLayer, spec.classifierLayer]) {
        assert.ok(model.getLayer(layer), layer);
      }
      // The stem's activation is Keras's hard_silu: x * relu6(x + 3) / 6 (tfjs's camel case).
      assert.equal(model.getLayer('activation').getConfig().activation, 'hardSilu');
      // The scaling to [-1, 1] is the model's first step.
      const rescale = model.getLayer('rescaling').getConfig();
      assert.deepEqual([rescale.scale, rescale.offset], [1 / 127.5, -1]);
      // An SE block: pooled to 1x1, squeezed to a quarter (rounded to 8), hard-sigmoid gate.
      const se = name === 'mobilenet_v3_small' ? 'expanded_conv_' : 'expanded_conv_3_';
      for (const suffix of ['avg_pool', 'conv', 'relu', 'conv_1', 'mul']) {
        assert.ok(model.getLayer(`${se}squeeze_excite_${suffix}`), suffix);
      }
      const y = tf.tidy(() => model.predict(tf.randomUniform([1, 64, 48, 3], 0, 255)) as tf.Tensor);
      assert.deepEqual(y.shape, [1, 1000]);
      const probabilities = values(y);
      assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4);
      y.dispose();
    } finally {
      model.dispose();
    }
  });
}

test('MobileNetV3 without top, minimalistic, and its option checks', async () => {
  const features = await MobileNetV3Small({
    weights: null,
    includeTop: false,
    inputShape: [32, 32, 3],
  });
  assert.equal(features.countParams(), V3.mobilenet_v3_small!.noTop);
  assert.equal(features.layers.at(-1)!.name, 'activation_17');
  assert.deepEqual(features.outputs[0]!.shape, [null, 1, 1, 576]);
  // hard_sigmoid is Keras's relu6(x + 3) / 6, whose two operations are named add and multiply.
  const at = features.layers.findIndex((l) => l.name === 'add');
  const gate = features.layers.slice(at, at + 3);
  assert.deepEqual(
    gate.map((l) => l.getClassName()),
    ['Rescaling', 'ReLU', 'Rescaling'],
  );
  assert.equal(gate[2]!.name, 'multiply');
  const g = tf.tidy(() =>
    gate.reduce(
      (x, layer) => layer.apply(x) as tf.Tensor,
      tf.tensor1d([-4, -1.5, 0, 1.5, 4]) as tf.Tensor,
    ),
  );
  close(values(g), [0, 0.25, 0.5, 0.75, 1]);
  g.dispose();
  features.dispose();

  // Minimalistic: relu only, 3x3 kernels, no SE; the top is still conv_2 and the logits.
  const minimal = await MobileNetV3Large({
    weights: null,
    minimalistic: true,
    inputShape: [64, 64, 3],
  });
  const names = minimal.layers.map((l) => l.name);
  assert.ok(!names.some((n) => n.includes('squeeze_excite') || n.startsWith('activation')));
  assert.deepEqual(
    minimal.getLayer('expanded_conv_3_depthwise').getWeights()[0]!.shape,
    [3, 3, 72, 1],
  );
  const head = (960 + 1) * 1280 + (1280 + 1) * 1000;
  const noTop = await MobileNetV3Large({ weights: null, minimalistic: true, includeTop: false });
  assert.equal(minimal.countParams() - noTop.countParams(), head);
  minimal.dispose();
  noTop.dispose();

  await refused(
    MobileNetV3Small({ weights: null, inputShape: [31, 64, 3] }),
    /^MobileNetV3Small needs images of at least 32x32, but received inputShape \[31, 64, 3\]/,
  );
  await refused(
    MobileNetV3Large({ alpha: 0.5 }),
    /^MobileNetV3Large has ImageNet weights only for alpha 0.75 or 1.0.*received alpha 0.5/,
  );
  await refused(
    MobileNetV3Small({ alpha: 0.75, minimalistic: true }),
    /alpha 0.75 with minimalistic: true/,
  );
});

// EfficientNetV2: Keras's documented counts with top; without top that minus the classifier.
const V2: Record<string, { top: number; size: number; channels: number }> = {
  'efficientnetv2-b0': { top: 7_200_312, size: 224, channels: 1280 },
  'efficientnetv2-b1': { top: 8_212_124, size: 240, channels: 1280 },
  'efficientnetv2-b2': { top: 10_178_374, size: 260, channels: 1408 },
  'efficientnetv2-b3': { top: 14_467_622, size: 300, channels: 1536 },
  'efficientnetv2-s': { top: 21_612_360, size: 384, channels: 1280 },
};

for (const [name, keras] of Object.entries(V2)) {
  test(`${name}: Keras's count, ${keras.size}x${keras.size}, weight files, layer names`, async () => {
    const spec = getApplication(name);
    const classifier = (keras.channels + 1) * 1000;
    assert.deepEqual(spec.parameters, { top: keras.top, noTop: keras.top - classifier });
    assert.equal(spec.defaultInputSize, keras.size);
    assert.equal(spec.preprocessMode, 'none');
    const base = 'https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/';
    assert.equal(spec.weightSets.imagenet.top.url, `${base}${name}.h5`);
    assert.equal(spec.weightSets.imagenet.noTop.url, `${base}${name}_notop.h5`);

    const model = await spec.build({ weights: null, inputShape: [32, 32, 3] });
    try {
      assert.equal(model.countParams(), keras.top);
      assert.equal(model.name, name);
      assert.deepEqual(model.outputs[0]!.shape, [null, 1000]);
      assert.deepEqual(model.layers.map((l) => l.name).slice(-4), [
        'top_activation',
        'avg_pool',
        'top_dropout',
        'predictions',
      ]);
      for (const layer of [spec.firstConvLayer, spec.featureLayer, spec.classifierLayer]) {
        assert.ok(model.getLayer(layer), layer);
      }
      assert.equal(model.getLayer('top_bn').getConfig().momentum, 0.9);
      const y = tf.tidy(() => model.predict(tf.randomUniform([1, 32, 32, 3], 0, 255)) as tf.Tensor);
      assert.ok(Math.abs(values(y).reduce((a, b) => a + b, 0) - 1) < 1e-4);
      y.dispose();
    } finally {
      model.dispose();
    }
  });
}

test('EfficientNetV2: fused blocks, in-model preprocessing (ImageNet for B, [-1, 1] for S)', async () => {
  assert.equal(getApplication('EfficientNetV2B0').build, EfficientNetV2B0);
  assert.equal(getApplication('efficientnet_v2_s').build, EfficientNetV2S);
  const pixel = tf.tensor4d([[[[255, 0, 51]]]]);
  const passed = efficientnetV2.preprocessInput(pixel);
  assert.deepEqual(values(passed), [255, 0, 51]);

  const b0 = await EfficientNetV2B0({ weights: null, includeTop: false, inputShape: [32, 32, 3] });
  try {
    assert.equal(b0.countParams(), 5_919_312);
    assert.deepEqual(b0.outputs[0]!.shape, [null, 1, 1, 1280]);
    // Fixed ImageNet mean and variance: a Normalization without weights.
    assert.equal(b0.getLayer('normalization').countParams(), 0);
    const n = tf.tidy(() => {
      const scaled = b0.getLayer('rescaling').apply(pixel) as tf.Tensor;
      return b0.getLayer('normalization').apply(scaled) as tf.Tensor;
    });
    close(values(n), [(1 - 0.485) / 0.229, -0.456 / 0.224, (0.2 - 0.406) / 0.225], 1e-4);
    n.dispose();
    // block1a: fused, no expansion: its 3x3 convolution is the projection, then swish.
    assert.deepEqual(b0.getLayer('block1a_project_conv').getWeights()[0]!.shape, [3, 3, 32, 16]);
    assert.ok(b0.getLayer('block1a_project_activation'));
    // block2a: fused with expansion: a strided 3x3 expansion, a 1x1 projection, no SE.
    assert.deepEqual(b0.getLayer('block2a_expand_conv').getConfig().strides, [2, 2]);
    assert.deepEqual(b0.getLayer('block2a_project_conv').getWeights()[0]!.shape, [1, 1, 64, 32]);
    assert.throws(() => b0.getLayer('block2a_se_squeeze'));
    // block4a: MBConv with SE, 'same' depthwise even when strided (no padding layer).
    assert.ok(b0.getLayer('block4a_dwconv2') && b0.getLayer('block4a_se_excite'));
    assert.throws(() => b0.getLayer('block4a_dwconv_pad'));
    // Stochastic depth rate 0.2 * b / 21 (Keras divides by the unscaled block count).
    assert.equal(b0.getLayer('block2b_drop').getConfig().rate, (0.2 * 2) / 21);
  } finally {
    b0.dispose();
  }

  const s = await EfficientNetV2S({ weights: null, includeTop: false, inputShape: [32, 32, 3] });
  const rescale = s.getLayer('rescaling').getConfig();
  assert.deepEqual([rescale.scale, rescale.offset], [1 / 128, -1]);
  assert.throws(() => s.getLayer('normalization'));
  s.dispose();
  const raw = await EfficientNetV2B0({
    weights: null,
    includeTop: false,
    includePreprocessing: false,
    inputShape: [32, 32, 3],
  });
  assert.equal(raw.layers[1]!.name, 'stem_conv');
  raw.dispose();
  pixel.dispose();
  passed.dispose();
});

// ConvNeXt: Keras's documented counts with top; without top that minus the head's dense layer
// (Keras keeps a LayerNormalization on the features, the same size as the head's).
const CNX: Record<string, { top: number; dims: number }> = {
  convnext_tiny: { top: 28_589_128, dims: 768 },
  convnext_small: { top: 50_223_688, dims: 768 },
  convnext_base: { top: 88_591_464, dims: 1024 },
};

for (const [name, keras] of Object.entries(CNX)) {
  test(`${name}: Keras's count, weight files, layer names, a forward pass`, async () => {
    const spec = getApplication(name);
    const dense = (keras.dims + 1) * 1000;
    assert.deepEqual(spec.parameters, { top: keras.top, noTop: keras.top - dense });
    assert.equal(spec.preprocessMode, 'none');
    const base = 'https://storage.googleapis.com/tensorflow/keras-applications/convnext/';
    assert.equal(spec.weightSets.imagenet.top.url, `${base}${name}.h5`);
    assert.equal(spec.weightSets.imagenet.noTop.url, `${base}${name}_notop.h5`);
    assert.match(spec.weightSets.imagenet.noTop.fileHash ?? '', /^[0-9a-f]{64}$/);

    const model = await spec.build({ weights: null, inputShape: [32, 32, 3] });
    try {
      assert.equal(model.countParams(), keras.top);
      assert.equal(model.name, name);
      assert.deepEqual(model.layers.map((l) => l.name).slice(0, 4), [
        'input_layer',
        `${name}_prestem_normalization`,
        `${name}_stem_conv`,
        `${name}_stem_layernorm`,
      ]);
      assert.deepEqual(model.layers.map((l) => l.name).slice(-3), [
        `${name}_head_gap`,
        `${name}_head_layernorm`,
        `${name}_head_dense`,
      ]);
      for (const layer of [spec.firstConvLayer, spec.classifierLayer]) {
        assert.ok(model.getLayer(layer), layer);
      }
      const y = tf.tidy(() => model.predict(tf.randomUniform([1, 32, 32, 3], 0, 255)) as tf.Tensor);
      assert.deepEqual(y.shape, [1, 1000]);
      assert.ok(Math.abs(values(y).reduce((a, b) => a + b, 0) - 1) < 1e-4);
      y.dispose();
    } finally {
      model.dispose();
    }
  });
}

test('ConvNeXt blocks: 7x7 depthwise, layer norm, GELU MLP, LayerScale; features without top', async () => {
  assert.equal(getApplication('ConvNeXtTiny').build, ConvNeXtTiny);
  assert.equal(getApplication('convnextbase').build, ConvNeXtBase);
  const pixel = tf.tensor4d([[[[255, 0, 51]]]]);
  const passed = convnext.preprocessInput(pixel);
  assert.deepEqual(values(passed), [255, 0, 51]);

  const features = await ConvNeXtTiny({ weights: null, includeTop: false, pooling: 'avg' });
  try {
    assert.equal(features.countParams(), 27_820_128);
    assert.deepEqual(features.inputs[0]!.shape, [null, null, null, 3]);
    assert.deepEqual(features.outputs[0]!.shape, [null, 768]);
    assert.deepEqual(features.layers.map((l) => l.name).slice(-2), [
      'global_average_pooling2d',
      'layer_normalization',
    ]);
    const block = 'convnext_tiny_stage_2_block_8';
    assert.deepEqual(
      features
        .getLayer(`${block}_depthwise_conv`)
        .getWeights()
        .map((w) => w.shape),
      [[7, 7, 384, 1], [384]],
    );
    assert.deepEqual(
      features.getLayer(`${block}_pointwise_conv_1`).getWeights()[0]!.shape,
      [384, 1536],
    );
    assert.equal(features.getLayer(`${block}_gelu`).getConfig().activation, 'gelu');
    assert.equal(features.getLayer(`${block}_layernorm`).getConfig().epsilon, 1e-6);
    const gamma = features.getLayer(`${block}_layer_scale`).getWeights()[0]!;
    assert.deepEqual(gamma.shape, [384]);
    close(values(gamma).slice(0, 2), [1e-6, 1e-6], 1e-12);
    // 18 blocks, each closed by Keras's `inputs + x` operation: add to add_17.
    assert.ok(features.getLayer('add_17'));
    assert.throws(() => features.getLayer('add_18'));
    assert.deepEqual(
      features.getLayer('convnext_tiny_downsampling_conv_2').getWeights()[0]!.shape,
      [2, 2, 384, 768],
    );
    // The ImageNet mean and std in [0, 255] units, fixed: no weights.
    const prestem = features.getLayer('convnext_tiny_prestem_normalization');
    assert.equal(prestem.countParams(), 0);
    const n = prestem.apply(pixel) as tf.Tensor;
    close(
      values(n),
      [(255 - 0.485 * 255) / (0.229 * 255), -0.456 / 0.224, (51 - 0.406 * 255) / (0.225 * 255)],
      1e-4,
    );
    n.dispose();
  } finally {
    features.dispose();
  }

  // LayerScale multiplies by gamma and keeps Keras's config keys through a tfjs round trip.
  const LayerScale = tf.serialization.SerializationMap.getMap().classNameMap
    .LayerScale![0] as never as new (
    args: Record<string, unknown>,
  ) => tf.layers.Layer;
  const input = tf.input({ shape: [3] });
  const scaled = new LayerScale({ initValues: 0.5, projectionDim: 3, name: 'scale' }).apply(input);
  const model = tf.model({ inputs: input, outputs: scaled as tf.SymbolicTensor });
  const json = model.toJSON(null, false) as { config: { layers: Array<{ config: object }> } };
  assert.deepEqual(json.config.layers[1]!.config, {
    name: 'scale',
    trainable: true,
    init_values: 0.5,
    projection_dim: 3,
  });
  const back = await tf.models.modelFromJSON({ modelTopology: json as never });
  const out = back.predict(tf.tensor2d([[2, 4, 6]])) as tf.Tensor;
  close(values(out), [1, 2, 3]);
  tf.dispose([pixel, passed, out]);
});

test("NASNetMobile: Keras's counts, cells and names, 'tf' preprocessing, a forward pass", async () => {
  const spec = getApplication('NASNetMobile');
  assert.equal(spec.build, NASNetMobile);
  assert.deepEqual(spec.parameters, { top: 5_326_716, noTop: 5_326_716 - (1056 + 1) * 1000 });
  assert.equal(spec.preprocessMode, 'tf');
  const pixel = tf.tensor4d([[[[255, 0, 51]]]]);
  const scaled = nasnet.preprocessInput(pixel);
  close(values(scaled), [1, -1, 51 / 127.5 - 1]);
  const base = 'https://storage.googleapis.com/tensorflow/keras-applications/nasnet/';
  assert.deepEqual(spec.weightSets.imagenet.noTop, {
    url: `${base}NASNet-mobile-no-top.h5`,
    fileHash: '1ed92395b5b598bdda52abe5c0dbfd63',
  });

  const model = await NASNetMobile({ weights: null });
  try {
    assert.equal(model.countParams(), 5_326_716);
    assert.equal(model.name, 'nasnet_mobile');
    assert.deepEqual(model.inputs[0]!.shape, [null, 224, 224, 3]);
    assert.deepEqual(model.layers.map((l) => l.name).slice(-3), [
      spec.featureLayer,
      'global_average_pooling2d',
      'predictions',
    ]);
    // 44 filters in the first stack, 88 and 176 after each reduction; a normal cell concatenates
    // 6 branches, a reduction cell 4 (stem_2: 4 x 22 = 88 channels into normal cell 0).
    assert.deepEqual(model.getLayer('normal_conv_1_0').getWeights()[0]!.shape, [1, 1, 88, 44]);
    assert.deepEqual(model.getLayer('normal_concat_12').outputShape, [null, 7, 7, 1056]);
    // reduce_4's previous output (6 x 44 = 264 channels, same size) is projected to 88 first.
    assert.deepEqual(
      model.getLayer('adjust_conv_projection_reduce_4').getWeights()[0]!.shape,
      [1, 1, 264, 88],
    );
    assert.deepEqual(
      model
        .getLayer('separable_conv_1_reduction_right1_reduce_4')
        .getWeights()
        .map((w) => w.shape),
      [
        [7, 7, 88, 1],
        [1, 1, 88, 88],
      ],
    );
    // The shifted second path of a reducing adjustment: pad, crop, pool, conv (4 of them).
    for (const name of ['zero_padding2d_3', 'cropping2d_3', 'concatenate_3', 'adjust_bn_stem_2']) {
      assert.ok(model.getLayer(name), name);
    }
    assert.equal(model.getLayer('stem_bn1').getConfig().momentum, 0.9997);
    const y = tf.tidy(() => model.predict(tf.randomUniform([1, 224, 224, 3], -1, 1)) as tf.Tensor);
    assert.ok(Math.abs(values(y).reduce((a, b) => a + b, 0) - 1) < 1e-4);
    y.dispose();
  } finally {
    model.dispose();
  }
  // Without top Keras still fixes the input at 224x224.
  const features = await NASNetMobile({ weights: null, includeTop: false, pooling: 'avg' });
  assert.deepEqual(features.inputs[0]!.shape, [null, 224, 224, 3]);
  assert.deepEqual(features.outputs[0]!.shape, [null, 1056]);
  assert.equal(features.countParams(), spec.parameters!.noTop);
  features.dispose();
  await refused(
    NASNetMobile({ weights: null, includeTop: false, inputShape: [31, 31, 3] }),
    /^NASNetMobile needs images of at least 32x32/,
  );
  await refused(
    NASNetMobile({ includeTop: false, inputShape: [null, null, 3] as never }),
    /^NASNetMobile with weights 'imagenet' needs a fixed height and width/,
  );
  tf.dispose([pixel, scaled]);
});
