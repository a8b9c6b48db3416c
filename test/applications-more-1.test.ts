/**
 * ResNet101/152, ResNetV2, DenseNet, InceptionV3 and Xception, built with random weights, against
 * Keras 3's own numbers: parameter counts with and without top (ResNet101, ResNet152, ResNet50V2,
 * DenseNet121, InceptionV3 and Xception as Keras's documentation and `model.summary()` give them;
 * the others worked out from Keras's layer definitions: conv k*k*in*out (+out with bias), batch
 * norm 4 per channel, 3 without scale, dense (in+1)*out), output shapes, Keras's layer names,
 * the recorded `parameters` of each spec, a forward pass and the input-size checks. Each model is
 * built twice (with top at the default size, without top at the minimum size) and disposed at once.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  DenseNet121,
  DenseNet169,
  DenseNet201,
  densenet,
  getApplication,
  InceptionV3,
  inceptionV3,
  listApplications,
  ResNet50V2,
  ResNet101,
  ResNet101V2,
  ResNet152,
  ResNet152V2,
  resnet,
  resnetV2,
  Xception,
  xception,
} from '../src/applications/index.js';
import type { ApplicationSpec } from '../src/applications/spec.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';

before(async () => {
  await initBackend();
});

interface Expected {
  top: number;
  noTop: number;
  /** Channels of the feature map, and its size at the minimum input size. */
  channels: number;
  minFeatureSize: number;
  preprocess: 'caffe' | 'tf' | 'torch';
  /** `len(model.layers)` with top, the input layer included. */
  layers: number;
}

const KERAS: Record<string, Expected> = {
  // Bottleneck stacks of 3, 4, 23, 3 and 3, 8, 36, 3 blocks; 11 layers per identity block.
  resnet101: {
    top: 44_707_176,
    noTop: 42_658_176,
    channels: 2048,
    minFeatureSize: 1,
    preprocess: 'caffe',
    layers: 347,
  },
  resnet152: {
    top: 60_419_944,
    noTop: 58_370_944,
    channels: 2048,
    minFeatureSize: 1,
    preprocess: 'caffe',
    layers: 517,
  },
  resnet50v2: {
    top: 25_613_800,
    noTop: 23_564_800,
    channels: 2048,
    minFeatureSize: 1,
    preprocess: 'tf',
    layers: 192,
  },
  resnet101v2: {
    top: 44_675_560,
    noTop: 42_626_560,
    channels: 2048,
    minFeatureSize: 1,
    preprocess: 'tf',
    layers: 379,
  },
  resnet152v2: {
    top: 60_380_648,
    noTop: 58_331_648,
    channels: 2048,
    minFeatureSize: 1,
    preprocess: 'tf',
    layers: 566,
  },
  // 64 + 32 per layer, halved at each transition: 1024, 1664 and 1920 channels at the end.
  densenet121: {
    top: 8_062_504,
    noTop: 7_037_504,
    channels: 1024,
    minFeatureSize: 1,
    preprocess: 'torch',
    layers: 429,
  },
  densenet169: {
    top: 14_307_880,
    noTop: 12_642_880,
    channels: 1664,
    minFeatureSize: 1,
    preprocess: 'torch',
    layers: 597,
  },
  densenet201: {
    top: 20_242_984,
    noTop: 18_321_984,
    channels: 1920,
    minFeatureSize: 1,
    preprocess: 'torch',
    layers: 709,
  },
  // 94 conv+bn+relu triples (282), 4 max and 9 average poolings, 15 concatenations, input and top.
  inception_v3: {
    top: 23_851_784,
    noTop: 21_802_784,
    channels: 2048,
    minFeatureSize: 1,
    preprocess: 'tf',
    layers: 313,
  },
  // 71 -> 35 -> 33, then four 'same' stride-2 poolings: 17, 9, 5, 3.
  xception: {
    top: 22_910_480,
    noTop: 20_861_480,
    channels: 2048,
    minFeatureSize: 3,
    preprocess: 'tf',
    layers: 134,
  },
};

const specs: ApplicationSpec[] = Object.keys(KERAS).map((name) => getApplication(name));

test('the registry holds the ten new architectures, found by Keras module or class name', () => {
  const registered = new Set(listApplications().map((spec) => spec.name));
  for (const name of Object.keys(KERAS)) assert.ok(registered.has(name), name);
  const cases: Array<[string, unknown]> = [
    ['ResNet101', ResNet101],
    ['resnet152', ResNet152],
    ['ResNet50V2', ResNet50V2],
    ['resnet101v2', ResNet101V2],
    ['resnet_152_v2', ResNet152V2],
    ['DenseNet121', DenseNet121],
    ['densenet169', DenseNet169],
    ['DENSENET201', DenseNet201],
    ['inception_v3', InceptionV3],
    ['InceptionV3', InceptionV3],
    ['inceptionv3', InceptionV3],
    ['Xception', Xception],
  ];
  for (const [query, build] of cases) assert.equal(getApplication(query).build, build, query);
});

for (const spec of specs) {
  const keras = KERAS[spec.name]!;

  test(`${spec.className}: Keras's counts with and without top, shapes, layer names, a forward pass`, async () => {
    assert.deepEqual(spec.parameters, { top: keras.top, noTop: keras.noTop });
    assert.equal(spec.preprocessMode, keras.preprocess);

    const size = spec.defaultInputSize;
    const top = await spec.build({ weights: null });
    try {
      assert.equal(top.countParams(), keras.top);
      assert.equal(top.name, spec.name);
      assert.equal(top.layers.length, keras.layers);
      assert.deepEqual(top.inputs[0]!.shape, [null, size, size, 3]);
      assert.deepEqual(top.outputs[0]!.shape, [null, 1000]);
      assert.equal(top.layers.at(-1)!.name, spec.classifierLayer);
      assert.equal(top.layers.at(-2)!.name, 'avg_pool');
      for (const name of [spec.firstConvLayer, spec.featureLayer]) assert.ok(top.getLayer(name));
      // Keras's glorot_uniform (variance scaling 1 over fan average, uniform), which tfjs
      // serializes as VarianceScaling; tfjs's own default is glorot normal.
      for (const name of [spec.firstConvLayer, spec.classifierLayer]) {
        const init = top.getLayer(name).getConfig().kernelInitializer as {
          config: Record<string, unknown>;
        };
        const { scale, mode, distribution } = init.config;
        assert.deepEqual(
          { scale, mode, distribution },
          { scale: 1, mode: 'fanAvg', distribution: 'uniform' },
          name,
        );
      }
    } finally {
      top.dispose();
    }

    const min = spec.minInputSize;
    const features = await spec.build({
      weights: null,
      includeTop: false,
      inputShape: [min, min, 3],
    });
    try {
      assert.equal(features.countParams(), keras.noTop);
      assert.equal(features.layers.at(-1)!.name, spec.featureLayer);
      const shape = [null, keras.minFeatureSize, keras.minFeatureSize, keras.channels];
      assert.deepEqual(features.outputs[0]!.shape, shape);
      const y = tf.tidy(
        () => features.predict(tf.randomUniform([1, min, min, 3], -1, 1)) as tf.Tensor,
      );
      assert.deepEqual(y.shape, [1, ...shape.slice(1)]);
      // Every feature layer here ends in a relu.
      assert.ok(y.dataSync().every((v) => Number.isFinite(v) && v >= 0));
      y.dispose();
    } finally {
      features.dispose();
    }
  });
}

test('pooling gives 2-D features with Keras layer names; any size is accepted without top', async () => {
  const v2 = await ResNet50V2({ weights: null, includeTop: false, pooling: 'max' });
  assert.deepEqual(v2.inputs[0]!.shape, [null, null, null, 3]);
  assert.deepEqual(v2.outputs[0]!.shape, [null, 2048]);
  assert.equal(v2.layers.at(-1)!.name, 'max_pool');
  assert.equal(v2.countParams(), KERAS.resnet50v2!.noTop);
  // Output stride 32 on a non-square input: 64x96 -> 2x3 before pooling.
  const y = tf.tidy(() => v2.predict(tf.ones([2, 64, 96, 3])) as tf.Tensor);
  assert.deepEqual(y.shape, [2, 2048]);
  y.dispose();
  assert.deepEqual(v2.getLayer('post_relu').outputShape, [null, null, null, 2048]);
  v2.dispose();

  const dense = await DenseNet121({
    weights: null,
    includeTop: false,
    pooling: 'avg',
    inputShape: [64, 64, 3],
  });
  assert.deepEqual(dense.outputs[0]!.shape, [null, 1024]);
  assert.equal(dense.layers.at(-1)!.name, 'avg_pool');
  dense.dispose();

  // InceptionV3 and Xception leave their pooling unnamed: Keras's generated names.
  const inception = await InceptionV3({
    weights: null,
    includeTop: false,
    pooling: 'avg',
    inputShape: [75, 75, 3],
  });
  assert.equal(inception.layers.at(-1)!.name, 'global_average_pooling2d');
  assert.deepEqual(inception.outputs[0]!.shape, [null, 2048]);
  inception.dispose();
  const xcept = await Xception({
    weights: null,
    includeTop: false,
    pooling: 'max',
    inputShape: [71, 71, 3],
  });
  assert.equal(xcept.layers.at(-1)!.name, 'global_max_pooling2d');
  assert.deepEqual(xcept.outputs[0]!.shape, [null, 2048]);
  xcept.dispose();
});

test("layers Keras leaves unnamed get Keras's generated names, in Keras's creation order", async () => {
  const inception = await InceptionV3({
    weights: null,
    includeTop: false,
    inputShape: [75, 75, 3],
  });
  const names = new Set(inception.layers.map((l) => l.name));
  // 94 conv2d_bn blocks, numbered from conv2d to conv2d_93.
  for (const name of ['conv2d', 'conv2d_93', 'batch_normalization_93', 'activation_93']) {
    assert.ok(names.has(name), name);
  }
  assert.ok(!names.has('conv2d_94'));
  for (const name of [
    'max_pooling2d_3',
    'average_pooling2d_8',
    'concatenate_1',
    'mixed9_1',
    'mixed10',
  ]) {
    assert.ok(names.has(name), name);
  }
  // The stem: 3x3/2 to 32 channels, then the third conv2d_bn at 64 channels.
  assert.deepEqual(inception.getLayer('conv2d').getWeights()[0]!.shape, [3, 3, 3, 32]);
  assert.deepEqual(inception.getLayer('conv2d_2').getWeights()[0]!.shape, [3, 3, 32, 64]);
  // mixed9's 1x3 and 3x1 branches: the 79th and 80th conv2d_bn of Keras's code (5 in the stem,
  // 7 in each of mixed0-2, 4 in mixed3, 10 in each of mixed4-7, 6 in mixed8, then 1x1, 1x1, 1x3).
  assert.deepEqual(inception.getLayer('conv2d_78').getWeights()[0]!.shape, [1, 3, 384, 384]);
  assert.deepEqual(inception.getLayer('conv2d_79').getWeights()[0]!.shape, [3, 1, 384, 384]);
  // Batch norm without scale: beta, moving mean and variance only; Keras's default epsilon.
  const bn = inception.getLayer('batch_normalization');
  assert.equal(bn.getWeights().length, 3);
  assert.equal(bn.getConfig().scale, false);
  assert.equal(bn.getConfig().epsilon, 1e-3);
  inception.dispose();

  const xcept = await Xception({ weights: null, includeTop: false, inputShape: [71, 71, 3] });
  // The four shortcut projections (blocks 2, 3, 4, 13) and the twelve additions.
  assert.deepEqual(xcept.getLayer('conv2d_3').getWeights()[0]!.shape, [1, 1, 728, 1024]);
  assert.ok(xcept.getLayer('batch_normalization_3'));
  assert.ok(xcept.getLayer('add_11'));
  assert.deepEqual(
    xcept
      .getLayer('block14_sepconv2')
      .getWeights()
      .map((w) => w.shape),
    [
      [3, 3, 1536, 1],
      [1, 1, 1536, 2048],
    ],
  );
  xcept.dispose();

  const v2 = await ResNet50V2({ weights: null, includeTop: false, inputShape: [32, 32, 3] });
  // The 1x1 max-pooling shortcuts of the three strided identity blocks.
  const pools = v2.layers.filter((l) => l.name.startsWith('max_pooling2d')).map((l) => l.name);
  assert.deepEqual(pools, ['max_pooling2d', 'max_pooling2d_1', 'max_pooling2d_2']);
  // ResNetV2 downsamples in the last block of a stack, in its 3x3 convolution.
  assert.deepEqual(v2.getLayer('conv2_block3_2_conv').getConfig().strides, [2, 2]);
  // Pre-activation: no batch norm after the stem; the projection has a bias, the bottleneck not.
  assert.throws(() => v2.getLayer('conv1_bn'));
  assert.equal(v2.getLayer('conv2_block1_0_conv').getWeights().length, 2);
  assert.equal(v2.getLayer('conv2_block1_1_conv').getWeights().length, 1);
  assert.equal(v2.getLayer('post_bn').getConfig().epsilon, 1.001e-5);
  v2.dispose();

  const dn = await DenseNet121({ weights: null, includeTop: false, inputShape: [32, 32, 3] });
  assert.ok(dn.getLayer('zero_padding2d') && dn.getLayer('zero_padding2d_1'));
  assert.ok(dn.getLayer('conv5_block16_concat') && dn.getLayer('pool4_pool'));
  // Transition to half the channels: conv4 ends at 256 + 24 * 32 = 1024, pool4 gives 512.
  assert.deepEqual(dn.getLayer('pool4_conv').getWeights()[0]!.shape, [1, 1, 1024, 512]);
  dn.dispose();
});

test("weight sets are Keras's files and hashes", () => {
  const base = 'https://storage.googleapis.com/tensorflow/keras-applications/';
  const hashes: Record<string, [string, string, string]> = {
    resnet101: [
      'resnet/resnet101',
      'f1aeb4b969a6efcfb50fad2f0c20cfc5',
      '88cf7a10940856eca736dc7b7e228a21',
    ],
    resnet152: [
      'resnet/resnet152',
      '100835be76be38e30d865e96f2aaae62',
      'ee4c566cf9a93f14d82f913c2dc6dd0c',
    ],
    resnet50v2: [
      'resnet/resnet50v2',
      '3ef43a0b657b3be2300d5770ece849e0',
      'fac2f116257151a9d068a22e544a4917',
    ],
    resnet101v2: [
      'resnet/resnet101v2',
      '6343647c601c52e1368623803854d971',
      'c0ed64b8031c3730f411d2eb4eea35b5',
    ],
    resnet152v2: [
      'resnet/resnet152v2',
      'a49b44d1979771252814e80f8ec446f9',
      'ed17cf2e0169df9d443503ef94b23b33',
    ],
    densenet121: [
      'densenet/densenet121',
      '9d60b8095a5708f2dcce2bca79d332c7',
      '30ee3e1110167f948a6b9946edeeb738',
    ],
    densenet169: [
      'densenet/densenet169',
      'd699b8f76981ab1b30698df4c175e90b',
      'b8c4d4c20dd625c148057b9ff1c1176b',
    ],
    densenet201: [
      'densenet/densenet201',
      '1ceb130c1ea1b78c3bf6114dbdfd8807',
      'c13680b51ded0fb44dff2d8f86ac8bb1',
    ],
    inception_v3: [
      'inception_v3/inception_v3',
      '9a0d58056eeedaa3f26cb7ebd46da564',
      'bcbd6486424b2319ff4ef7d526e38f63',
    ],
    xception: [
      'xception/xception',
      '0a58e3b7378bc2990ea3b43d5981f1f6',
      'b0042744bf5b25fce3cb969f33bebb97',
    ],
  };
  for (const spec of specs) {
    const [file, topHash, noTopHash] = hashes[spec.name]!;
    const { top, noTop } = spec.weightSets.imagenet;
    assert.equal(top.url, `${base}${file}_weights_tf_dim_ordering_tf_kernels.h5`);
    assert.equal(noTop.url, `${base}${file}_weights_tf_dim_ordering_tf_kernels_notop.h5`);
    assert.equal(top.fileHash, topHash);
    assert.equal(noTop.fileHash, noTopHash);
  }
});

test("the Keras module namespaces preprocess in their family's mode", () => {
  const pixel = tf.tensor4d([[[[255, 0, 51]]]]);
  const values = (x: tf.Tensor): number[] => Array.from(x.dataSync());
  const close = (actual: number[], expected: number[]): void => {
    for (const [i, v] of expected.entries())
      assert.ok(Math.abs(actual[i]! - v) < 1e-4, `${actual} vs ${expected}`);
  };
  // caffe: BGR minus the ImageNet mean; tf: [-1, 1]; torch: [0, 1] then ImageNet mean and std.
  close(values(resnet.preprocessInput(pixel)), [51 - 103.939, 0 - 116.779, 255 - 123.68]);
  const tfMode = [1, -1, 51 / 127.5 - 1];
  close(values(resnetV2.preprocessInput(pixel)), tfMode);
  close(values(inceptionV3.preprocessInput(pixel)), tfMode);
  close(values(xception.preprocessInput(pixel)), tfMode);
  close(values(densenet.preprocessInput(pixel)), [
    (1 - 0.485) / 0.229,
    -0.456 / 0.224,
    (0.2 - 0.406) / 0.225,
  ]);
});

test('the new builders and namespaces are reachable from the public surface', async () => {
  const xfer: Record<string, unknown> = await import('../src/index.js');
  for (const spec of specs) assert.equal(xfer[spec.className], spec.build, spec.className);
  for (const name of ['resnet', 'resnetV2', 'densenet', 'inceptionV3', 'xception']) {
    assert.equal(
      typeof (xfer[name] as { preprocessInput?: unknown })?.preprocessInput,
      'function',
      name,
    );
  }
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

test("inputs under Keras's minimum sizes are refused; the top needs the default size", async () => {
  await refused(
    InceptionV3({ weights: null, includeTop: false, inputShape: [74, 74, 3] }),
    /^InceptionV3 needs images of at least 75x75, but received inputShape \[74, 74, 3\]\. Resize the images to at least 75x75 \(the default is 299x299\)\.$/,
  );
  await refused(
    Xception({ weights: null, includeTop: false, inputShape: [299, 70, 3] }),
    /^Xception needs images of at least 71x71, but received inputShape \[299, 70, 3\]/,
  );
  await refused(
    DenseNet169({ weights: null, includeTop: false, inputShape: [31, 31, 3] }),
    /^DenseNet169 needs images of at least 32x32, but received inputShape \[31, 31, 3\]/,
  );
  await refused(
    ResNet152V2({ weights: null, includeTop: false, inputShape: [224, 16, 3] }),
    /^ResNet152V2 needs images of at least 32x32/,
  );
  await refused(
    InceptionV3({ inputShape: [224, 224, 3] }),
    /^InceptionV3 with includeTop: true and weights 'imagenet' needs inputShape \[299, 299, 3\].*received \[224, 224, 3\]\. Omit inputShape \(images are then resized to 299x299\)/,
  );
  await refused(
    Xception({ classes: 2 }),
    /^Xception with weights 'imagenet' and includeTop: true has the 1000 ImageNet classes, but received classes: 2/,
  );
});

test('classes and classifierActivation shape the top', async () => {
  const model = await Xception({
    weights: null,
    classes: 3,
    classifierActivation: null,
    inputShape: [71, 71, 3],
  });
  assert.deepEqual(model.outputs[0]!.shape, [null, 3]);
  assert.equal(model.countParams(), KERAS.xception!.noTop + 2048 * 3 + 3);
  assert.equal(model.getLayer('predictions').getConfig().activation, 'linear');
  model.dispose();
});
