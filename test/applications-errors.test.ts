/**
 * The registry's name lookup and the builders' argument checks (Keras's `obtain_input_shape` and
 * constructor checks), with messages pinned by regex. Every case here fails before any weight is
 * created or downloaded, so the file runs in seconds.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  getApplication,
  listApplications,
  MobileNet,
  MobileNetV2,
  ResNet50,
  VGG16,
  VGG19,
} from '../src/applications/index.js';
import { initBackend } from '../src/engine/backend.js';
import * as tf from '../src/engine/tf.js';
import { XferError } from '../src/errors.js';

before(async () => {
  await initBackend();
});

/** Asserts an XferError with `code` whose message matches every pattern. */
async function rejects(
  promise: Promise<unknown>,
  code: string,
  ...patterns: RegExp[]
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof XferError, `not an XferError: ${error}`);
    assert.equal(error.code, code);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

test('getApplication takes the Keras module or class name in any case', () => {
  const cases: Array<[string, string]> = [
    ['vgg16', 'vgg16'],
    ['VGG16', 'vgg16'],
    ['Vgg19', 'vgg19'],
    ['ResNet50', 'resnet50'],
    ['mobilenet', 'mobilenet'],
    ['mobilenet_v2', 'mobilenet_v2'],
    ['MobileNetV2', 'mobilenet_v2'],
    ['mobilenetv2', 'mobilenet_v2'],
    ['MOBILENET-V2', 'mobilenet_v2'],
  ];
  for (const [query, name] of cases) assert.equal(getApplication(query).name, name, query);
  assert.equal(getApplication('VGG16').build, VGG16);
  assert.equal(getApplication('vgg19').build, VGG19);
  assert.equal(getApplication('resnet50').build, ResNet50);
  assert.equal(getApplication('mobilenet').build, MobileNet);
  assert.equal(getApplication('mobilenet_v2').build, MobileNetV2);
});

test('an unknown backbone lists the known ones and suggests the closest', () => {
  assert.throws(
    () => getApplication('vgg17'),
    (error: unknown) =>
      error instanceof XferError &&
      error.code === 'UNKNOWN_NAME' &&
      error.message ===
        `unknown backbone 'vgg17'; did you mean 'vgg16'? Known: ${listApplications()
          .map((s) => s.name)
          .join(', ')}`,
  );
  assert.throws(
    () => getApplication('efficientnet'),
    /unknown backbone 'efficientnet'.*Known: vgg16/,
  );
  assert.throws(
    () => getApplication(42 as never),
    /Expected a backbone name for name but received 42/,
  );
});

test("every spec names Keras's weight files, with Keras's hashes where Keras records them", () => {
  const base = 'https://storage.googleapis.com/tensorflow/keras-applications/';
  for (const spec of listApplications()) {
    const { top, noTop } = spec.weightSets.imagenet;
    // EfficientNet's files sit in the bucket's root, the others under tensorflow/.
    const bucket = /^https:\/\/storage\.googleapis\.com\/(tensorflow\/)?keras-applications\//;
    assert.ok(bucket.test(top.url) && bucket.test(noTop.url), spec.name);
    assert.notEqual(top.url, noTop.url);
  }
  for (const name of ['vgg16', 'vgg19', 'resnet50', 'mobilenet', 'mobilenet_v2']) {
    assert.equal(getApplication(name).defaultInputSize, 224);
    assert.equal(getApplication(name).minInputSize, 32);
  }
  const vgg = getApplication('vgg16').weightSets.imagenet;
  assert.equal(vgg.top.url, `${base}vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5`);
  assert.equal(vgg.top.fileHash, '64373286793e3c8b2b4e3219cbf3544b');
  assert.equal(vgg.noTop.fileHash, '6d6bbae143d832006294945121d1f1fc');
  const resnet = getApplication('resnet50').weightSets.imagenet;
  assert.equal(
    resnet.noTop.url,
    `${base}resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`,
  );
  assert.equal(resnet.noTop.fileHash, '4d473c1dd8becc155b73f8504c6f6626');
  const v2 = getApplication('mobilenet_v2').weightSets.imagenet;
  assert.equal(
    v2.noTop.url,
    `${base}mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5`,
  );
  assert.equal(v2.noTop.fileHash, undefined);
  assert.equal(
    getApplication('mobilenet').weightSets.imagenet.top.url,
    `${base}mobilenet/mobilenet_1_0_224_tf.h5`,
  );
});

test('an input smaller than 32x32 is refused, naming the size received and the minimum', async () => {
  await rejects(
    VGG16({ weights: null, includeTop: false, inputShape: [16, 16, 3] }),
    'INVALID_ARGUMENT',
    /VGG16 needs images of at least 32x32, but received inputShape \[16, 16, 3\]\. Resize the images to at least 32x32/,
  );
  await rejects(
    MobileNetV2({ weights: null, includeTop: false, inputShape: [64, 31, 3] }),
    'INVALID_ARGUMENT',
    /at least 32x32, but received inputShape \[64, 31, 3\]/,
  );
});

test('ImageNet weights need 3 channels', async () => {
  await rejects(
    ResNet50({ includeTop: false, inputShape: [64, 64, 1] }),
    'INVALID_ARGUMENT',
    /ResNet50 with weights 'imagenet' needs 3 input channels \(RGB\), but inputShape \[64, 64, 1\] has 1\. Convert the images to RGB, or pass weights: null/,
  );
});

test('includeTop with ImageNet weights needs the default shape', async () => {
  await rejects(
    VGG16({ inputShape: [160, 160, 3] }),
    'INVALID_ARGUMENT',
    /VGG16 with includeTop: true and weights 'imagenet' needs inputShape \[224, 224, 3\].*received \[160, 160, 3\].*pass includeTop: false/,
  );
  await rejects(
    VGG16({ inputShape: [224, 224, 1] }),
    'INVALID_ARGUMENT',
    /needs inputShape \[224, 224, 3\].*received \[224, 224, 1\]/,
  );
  // MobileNets take the default size from a square shape they have weights for, as in Keras.
  await rejects(
    MobileNetV2({ inputShape: [200, 200, 3] }),
    'INVALID_ARGUMENT',
    /MobileNetV2 .*needs inputShape \[224, 224, 3\].*received \[200, 200, 3\]/,
  );
});

test('ImageNet weights with the top need classes 1000', async () => {
  await rejects(
    MobileNet({ classes: 10 }),
    'INVALID_ARGUMENT',
    /MobileNet with weights 'imagenet' and includeTop: true has the 1000 ImageNet classes, but received classes: 10\. .*includeTop: false/,
  );
  await assert.rejects(
    ResNet50({ weights: null, classes: 0 }),
    /Expected positive integer for classes but received 0/,
  );
});

test('pooling must be avg, max or null', async () => {
  await assert.rejects(
    VGG16({ weights: null, includeTop: false, pooling: 'mean' as never }),
    (error: unknown) =>
      error instanceof XferError &&
      error.code === 'INVALID_ARGUMENT' &&
      /^Expected 'avg', 'max' or null for pooling but received 'mean' of type string$/.test(
        error.message,
      ),
  );
});

test('malformed options are refused at the boundary', async () => {
  await assert.rejects(
    VGG16({ weights: null, inputShape: [224, 224] as never }),
    /Expected an array \[height, width, channels\] of 3 positive integers \(channels last\) for inputShape but received \[224, 224\]/,
  );
  await assert.rejects(
    VGG16({ weights: null, includeTop: 'yes' as never }),
    /Expected boolean for includeTop but received 'yes'/,
  );
  await assert.rejects(
    VGG16({ weights: 3 as never }),
    /Expected 'imagenet', null \(random initialization\), or the path or URL of a weights file for weights but received 3/,
  );
  await rejects(
    VGG16({ weights: '/nonexistent/vgg16.h5' }),
    'NOT_FOUND',
    /VGG16: the weights file '\/nonexistent\/vgg16\.h5' does not exist\. Pass weights: 'imagenet'/,
  );
  await assert.rejects(
    MobileNetV2({ weights: null, classifierActivation: 'sigmoidal' }),
    /Expected null or one of 'softmax', 'linear', 'sigmoid'.* for classifierActivation but received 'sigmoidal'/,
  );
  await assert.rejects(
    MobileNetV2({ weights: null, inputTensor: tf.zeros([1, 64, 64, 3]) as never }),
    /Expected a symbolic tensor \(the output of tf\.input\(\) or of a layer\) for inputTensor/,
  );
  await rejects(
    MobileNetV2({
      weights: null,
      includeTop: false,
      inputShape: [64, 64, 3],
      inputTensor: tf.input({ shape: [96, 96, 3] }),
    }),
    'SHAPE_MISMATCH',
    /inputShape \[64, 64, 3\] does not match the shape of inputTensor \[null, 96, 96, 3\]/,
  );
});

test('pretrained weights allow only softmax or logits on the top', async () => {
  await rejects(
    ResNet50({ classifierActivation: 'sigmoid' }),
    'INVALID_ARGUMENT',
    /ResNet50 with pretrained weights and includeTop: true allows only classifierActivation 'softmax' or null \(logits\), but received 'sigmoid'/,
  );
});

test("MobileNet's ImageNet rules: alpha from Keras's list, depth multiplier 1", async () => {
  await rejects(
    MobileNet({ includeTop: false, alpha: 0.6 }),
    'INVALID_ARGUMENT',
    /MobileNet has ImageNet weights only for alpha 0\.25, 0\.5, 0\.75 or 1\.0, but received alpha 0\.6/,
  );
  await rejects(
    MobileNet({ includeTop: false, depthMultiplier: 2 }),
    'INVALID_ARGUMENT',
    /MobileNet with weights 'imagenet' needs depthMultiplier 1, but received 2/,
  );
  await rejects(
    MobileNetV2({ includeTop: false, alpha: 0.25 }),
    'INVALID_ARGUMENT',
    /MobileNetV2 has ImageNet weights only for alpha 0\.35, 0\.5, 0\.75, 1\.0, 1\.3 or 1\.4, but received alpha 0\.25/,
  );
  await assert.rejects(
    MobileNetV2({ weights: null, alpha: -1 }),
    /Expected positive number for alpha but received -1/,
  );
  await assert.rejects(
    MobileNet({ weights: null, dropout: 1.5 }),
    /Expected number between 0 and 1 for dropout/,
  );
});

test('pooling with the top is ignored with a warning, as Keras ignores it', async () => {
  const written: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  let model: tf.LayersModel;
  try {
    model = await MobileNetV2({ weights: null, pooling: 'avg', inputShape: [32, 32, 3] });
  } finally {
    process.stderr.write = write;
  }
  assert.deepEqual(model.outputs[0]!.shape, [null, 1000]);
  assert.match(
    written.join(''),
    /MobileNetV2: pooling 'avg' is ignored because includeTop is true; pass includeTop: false/,
  );
  model.dispose();
});

test('every registered backbone and its Keras module namespace is reachable from the public surface', async () => {
  const xfer: Record<string, unknown> = await import('../src/index.js');
  const namespaces: Record<string, string> = {
    vgg16: 'vgg16',
    vgg19: 'vgg19',
    resnet50: 'resnet50',
    mobilenet: 'mobilenet',
    mobilenet_v2: 'mobilenetV2',
    resnet101: 'resnet',
    resnet152: 'resnet',
    resnet50v2: 'resnetV2',
    resnet101v2: 'resnetV2',
    resnet152v2: 'resnetV2',
    densenet121: 'densenet',
    densenet169: 'densenet',
    densenet201: 'densenet',
    inception_v3: 'inceptionV3',
    xception: 'xception',
    efficientnetb0: 'efficientnet',
    efficientnetb1: 'efficientnet',
    efficientnetb2: 'efficientnet',
    efficientnetb3: 'efficientnet',
    efficientnetb4: 'efficientnet',
    efficientnetb5: 'efficientnet',
    efficientnetb6: 'efficientnet',
    efficientnetb7: 'efficientnet',
    mobilenet_v3_small: 'mobilenetV3',
    mobilenet_v3_large: 'mobilenetV3',
    'efficientnetv2-b0': 'efficientnetV2',
    'efficientnetv2-b1': 'efficientnetV2',
    'efficientnetv2-b2': 'efficientnetV2',
    'efficientnetv2-b3': 'efficientnetV2',
    'efficientnetv2-s': 'efficientnetV2',
    convnext_tiny: 'convnext',
    convnext_small: 'convnext',
    convnext_base: 'convnext',
    nasnet_mobile: 'nasnet',
  };
  for (const spec of listApplications()) {
    assert.equal(xfer[spec.className], spec.build, spec.className);
    assert.ok(spec.name in namespaces, `${spec.name} has a Keras module namespace listed here`);
    const namespace = xfer[namespaces[spec.name]!] as { preprocessInput?: unknown };
    assert.equal(typeof namespace?.preprocessInput, 'function', spec.name);
  }
  for (const name of [
    'getApplication',
    'listApplications',
    'preprocessInput',
    'decodePredictions',
  ]) {
    assert.equal(typeof xfer[name], 'function', name);
  }
});
