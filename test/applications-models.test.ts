/**
 * Every registered backbone, built with random weights (weights: null), against Keras's own
 * numbers: parameter counts with and without top (as `model.summary()` prints them in Keras 3),
 * output shapes, the layer names the spec promises, and a forward pass. Like Keras's
 * `applications_test.py`, this runs over the registry, so a new family is tested by adding it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  getApplication,
  listApplications,
  MobileNet,
  MobileNetV2,
  ResNet50,
} from '../src/applications/index.js';
import { makeDivisible } from '../src/applications/mobilenet-v2.js';
import * as tf from '../src/engine/tf.js';

/** Keras 3's counts and feature channels, with the default options. */
const KERAS: Record<string, { top: number; noTop: number; channels: number; modelName: string }> = {
  vgg16: { top: 138_357_544, noTop: 14_714_688, channels: 512, modelName: 'vgg16' },
  vgg19: { top: 143_667_240, noTop: 20_024_384, channels: 512, modelName: 'vgg19' },
  resnet50: { top: 25_636_712, noTop: 23_587_712, channels: 2048, modelName: 'resnet50' },
  mobilenet: { top: 4_253_864, noTop: 3_228_864, channels: 1024, modelName: 'mobilenet_1.00_224' },
  mobilenet_v2: {
    top: 3_538_984,
    noTop: 2_257_984,
    channels: 1280,
    modelName: 'mobilenetv2_1.00_224',
  },
};

const models: tf.LayersModel[] = [];
after(() => {
  for (const model of models) model.dispose();
});

function keep(model: tf.LayersModel): tf.LayersModel {
  models.push(model);
  return model;
}

test('the registry holds the five Keras families, each with Keras numbers to check against', () => {
  const registered = listApplications().map((spec) => spec.name);
  for (const name of Object.keys(KERAS)) assert.ok(registered.includes(name), name);
});

// The other families are tested in their own files (applications-more-*.test.ts).
for (const spec of listApplications().filter((s) => s.name in KERAS)) {
  const keras = KERAS[spec.name]!;

  test(`${spec.className} with top: Keras's parameter count, output and layer names`, async () => {
    assert.deepEqual(spec.parameters, { top: keras.top, noTop: keras.noTop });
    const model = await spec.build({ weights: null });
    assert.equal(model.countParams(), keras.top);
    assert.equal(model.name, keras.modelName);
    assert.deepEqual(model.inputs[0]!.shape, [null, 224, 224, 3]);
    assert.deepEqual(model.outputs[0]!.shape, [null, 1000]);
    assert.equal(model.layers.at(-1)!.name, spec.classifierLayer);
    for (const name of [spec.firstConvLayer, spec.featureLayer]) {
      assert.ok(model.getLayer(name), `${name} is in the model`);
    }
    // The weights are too large to keep for the whole file (VGG19 is 575 MB).
    model.dispose();
  });

  test(`${spec.className} without top: Keras's parameter count, feature map and a forward pass`, async () => {
    const model = keep(
      await spec.build({ weights: null, includeTop: false, inputShape: [64, 64, 3] }),
    );
    assert.equal(model.countParams(), keras.noTop);
    assert.equal(model.layers.at(-1)!.name, spec.featureLayer);
    assert.equal(model.getLayer(spec.firstConvLayer).name, spec.firstConvLayer);
    // Every family has an output stride of 32.
    assert.deepEqual(model.outputs[0]!.shape, [null, 2, 2, keras.channels]);
    const y = tf.tidy(() => model.predict(tf.randomUniform([2, 64, 64, 3], 0, 1)) as tf.Tensor);
    assert.deepEqual(y.shape, [2, 2, 2, keras.channels]);
    assert.ok(y.dataSync().every(Number.isFinite));
    y.dispose();
  });
}

test('pooling gives a 2-D output of the feature channels, avg and max, with Keras layer names', async () => {
  const resnetAvg = keep(await ResNet50({ weights: null, includeTop: false, pooling: 'avg' }));
  assert.deepEqual(resnetAvg.outputs[0]!.shape, [null, 2048]);
  assert.equal(resnetAvg.layers.at(-1)!.name, 'avg_pool');
  assert.equal(resnetAvg.countParams(), KERAS.resnet50!.noTop);

  const v2Max = keep(
    await MobileNetV2({
      weights: null,
      includeTop: false,
      pooling: 'max',
      inputShape: [96, 96, 3],
    }),
  );
  assert.deepEqual(v2Max.outputs[0]!.shape, [null, 1280]);
  assert.equal(v2Max.layers.at(-1)!.getClassName(), 'GlobalMaxPooling2D');
  const y = tf.tidy(() => v2Max.predict(tf.ones([1, 96, 96, 3])) as tf.Tensor);
  assert.deepEqual(y.shape, [1, 1280]);
  // relu6 features, max-pooled: within [0, 6].
  const values = y.dataSync();
  assert.ok(values.every((v) => v >= 0 && v <= 6));
  y.dispose();

  const mobilenetAvg = keep(await MobileNet({ weights: null, includeTop: false, pooling: 'avg' }));
  assert.deepEqual(mobilenetAvg.outputs[0]!.shape, [null, 1024]);
  assert.equal(mobilenetAvg.layers.at(-1)!.getClassName(), 'GlobalAveragePooling2D');
  // No size given and no top: any size is accepted, and Keras's name says so.
  assert.deepEqual(mobilenetAvg.inputs[0]!.shape, [null, null, null, 3]);
  assert.equal(mobilenetAvg.name, 'mobilenet_1.00_None');
});

test('classes and classifierActivation shape the top; name overrides the model name', async () => {
  const model = keep(
    await MobileNetV2({ weights: null, classes: 10, classifierActivation: null, name: 'mine' }),
  );
  assert.equal(model.name, 'mine');
  assert.deepEqual(model.outputs[0]!.shape, [null, 10]);
  // 1280 x 10 + 10 instead of 1280 x 1000 + 1000.
  assert.equal(model.countParams(), KERAS.mobilenet_v2!.noTop + 1280 * 10 + 10);
  const config = model.getLayer('predictions').getConfig();
  assert.equal(config.activation, 'linear');
});

test('MobileNet top keeps Keras layer names and count with classes and a smaller size', async () => {
  const model = keep(await MobileNet({ weights: null, inputShape: [128, 128, 3], classes: 5 }));
  assert.equal(model.name, 'mobilenet_1.00_128');
  for (const name of ['dropout', 'conv_preds', 'reshape_2', 'predictions']) {
    assert.ok(model.getLayer(name));
  }
  assert.deepEqual(model.outputs[0]!.shape, [null, 5]);
  assert.equal(model.countParams(), KERAS.mobilenet!.noTop + 1024 * 5 + 5);
});

test('width multipliers follow Keras: MobileNet alpha 0.5 and MobileNetV2 alpha 0.35 and 1.4', async () => {
  const half = keep(
    await MobileNet({ weights: null, includeTop: false, alpha: 0.5, inputShape: [32, 32, 3] }),
  );
  assert.equal(half.name, 'mobilenet_0.50_32');
  assert.deepEqual(half.outputs[0]!.shape, [null, 1, 1, 512]);
  assert.equal(half.getLayer('conv1').getWeights()[0]!.shape[3], 16);

  const thin = keep(
    await MobileNetV2({ weights: null, includeTop: false, alpha: 0.35, inputShape: [32, 32, 3] }),
  );
  assert.equal(thin.name, 'mobilenetv2_0.35_32');
  // _make_divisible(32 * 0.35, 8) = 16; the last convolution stays at 1280 below alpha 1.
  assert.equal(thin.getLayer('Conv1').getWeights()[0]!.shape[3], 16);
  assert.deepEqual(thin.outputs[0]!.shape, [null, 1, 1, 1280]);

  const wide = keep(
    await MobileNetV2({ weights: null, includeTop: false, alpha: 1.4, inputShape: [32, 32, 3] }),
  );
  assert.deepEqual(wide.outputs[0]!.shape, [null, 1, 1, 1792]);
});

test('makeDivisible is Keras _make_divisible', () => {
  // Values worked by hand from max(8, int(v + 4) // 8 * 8), plus 8 when that is under 0.9 v.
  assert.equal(makeDivisible(32 * 0.35, 8), 16);
  assert.equal(makeDivisible(5, 8), 8);
  assert.equal(makeDivisible(18, 8), 24);
  assert.equal(makeDivisible(24, 8), 24);
  assert.equal(makeDivisible(1280 * 1.4, 8), 1792);
});

test('BatchNormalization epsilon and momentum are Keras', async () => {
  const resnet = keep(
    await getApplication('resnet50').build({
      weights: null,
      includeTop: false,
      inputShape: [32, 32, 3],
    }),
  );
  const resnetBn = resnet.getLayer('conv1_bn').getConfig();
  assert.equal(resnetBn.epsilon, 1.001e-5);
  assert.equal(resnetBn.momentum, 0.99);

  const v2 = models.find((m) => m.name.startsWith('mobilenetv2_1.00'))!;
  for (const name of ['bn_Conv1', 'block_16_project_BN', 'Conv_1_bn']) {
    const config = v2.getLayer(name).getConfig();
    assert.equal(config.epsilon, 1e-3);
    assert.equal(config.momentum, 0.999);
  }
  const v1 = models.find((m) => m.name.startsWith('mobilenet_1.00'))!;
  const v1Bn = v1.getLayer('conv_pw_13_bn').getConfig();
  assert.equal(v1Bn.epsilon, 1e-3);
  assert.equal(v1Bn.momentum, 0.99);
});

test('inputTensor: the model is built on it, from its source inputs', async () => {
  const input = tf.input({ shape: [64, 64, 3], name: 'images' });
  const scaled = tf.layers
    .rescaling({ scale: 1 / 127.5, offset: -1 })
    .apply(input) as tf.SymbolicTensor;
  const model = keep(await MobileNetV2({ weights: null, includeTop: false, inputTensor: scaled }));
  assert.equal(model.inputs.length, 1);
  assert.equal(model.inputs[0], input);
  assert.deepEqual(model.outputs[0]!.shape, [null, 2, 2, 1280]);
  // Keras takes the name from the tensor's size as from inputShape.
  assert.equal(model.name, 'mobilenetv2_1.00_64');
});
