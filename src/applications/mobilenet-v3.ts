/**
 * MobileNetV3Small and MobileNetV3Large (Howard et al., ICCV 2019), as Keras's
 * `applications/mobilenet_v3.py` builds them: inverted residual blocks with optional
 * squeeze-and-excitation, hard-swish in the deeper blocks, and a 1x1-convolution classifier. The
 * scaling to [-1, 1] is inside the model (`includePreprocessing`), so the models take pixels in
 * [0, 255] and `mobilenetV3.preprocessInput` passes them through.
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import { warn } from '../util/log.js';
import { checkBoolean } from '../util/validate.js';
import {
  apply,
  checkPositiveNumber,
  featurePooling,
  finishModel,
  imageInput,
  resolveOptions,
  resolveWeights,
} from './build.js';
import { correctPad } from './efficientnet.js';
import { obtainInputShape } from './input-shape.js';
import { KerasNames } from './keras-layers.js';
import { applicationModule } from './keras-module.js';
import { makeDivisible } from './mobilenet-v2.js';
import type { ApplicationOptions, ApplicationSpec, WeightFile } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/';

/** Keras's recorded hashes, with and without top, by weight file. */
const WEIGHT_HASHES: Record<string, [string, string]> = {
  'large_224_0.75_float': ['765b44a33ad4005b3ac83185abf1d0eb', '40af19a13ebea4e2ee0c676887f69a2e'],
  'large_224_1.0_float': ['59e551e166be033d707958cf9e29a6a7', '07fb09a5933dd0c8eaafa16978110389'],
  'large_minimalistic_224_1.0_float': [
    '675e7b876c45c57e9e63e6d90a36599c',
    'ec5221f64a2f6d1ef965a614bdae7973',
  ],
  'small_224_0.75_float': ['cb65d4e5be93758266aa0a7f2c6708b7', 'ebdb5cc8e0b497cd13a7c275d475c819'],
  'small_224_1.0_float': ['8768d4c2e7dee89b9d02b2d03d65d862', 'd3e8ec802a04aa4fc771ee12a9a9b836'],
  'small_minimalistic_224_1.0_float': [
    '99cd97fb2fcdad2bf028eb838de69e37',
    'cde8136e733e811080d9fcd8a252f7e4',
  ],
};

/** MobileNetV3's options: the common ones plus Keras's. */
export interface MobileNetV3Options extends ApplicationOptions {
  /**
   * Width multiplier of the blocks (rounded to multiples of 8). ImageNet weights exist for 0.75 and
   * 1.0 (1.0 only when `minimalistic`). Default 1.0.
   */
  alpha?: number;
  /**
   * The minimalistic variant: no squeeze-and-excitation, no hard-swish, no 5x5 convolutions (for
   * hardware that lacks them). Default false.
   */
  minimalistic?: boolean;
  /** Dropout rate before the classifier. Default 0.2. */
  dropoutRate?: number;
  /**
   * Whether the model scales its [0, 255] input to [-1, 1] itself (a `Rescaling` layer, Keras's
   * `include_preprocessing`). Default true.
   */
  includePreprocessing?: boolean;
}

/**
 * Keras's `hard_silu` (also named `hard_swish`): `x * relu6(x + 3) / 6`, absent from tfjs. Named
 * in tfjs's camel case, which tfjs writes to files as Keras's snake-case name and reads back.
 */
class HardSilu extends tf.serialization.Serializable {
  static className = 'hardSilu';
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.mul(x, tf.div(tf.relu6(tf.add(x, 3)), 6)));
  }
  getConfig(): tf.serialization.ConfigDict {
    return {};
  }
}
/** The same activation under the name Keras's MobileNetV3 code uses. */
class HardSwish extends HardSilu {
  static override className = 'hardSwish';
}
tf.serialization.registerClass(HardSilu);
tf.serialization.registerClass(HardSwish);

type Activation = (x: tf.SymbolicTensor) => tf.SymbolicTensor;

// Keras's MobileNetV3 batch norms: epsilon 1e-3, momentum 0.999.
function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: -1, epsilon: 1e-3, momentum: 0.999, name });
}

/** A Conv2D with Keras's default initializer (glorot uniform). */
function conv(
  filters: number,
  kernelSize: number,
  name: string,
  useBias: boolean,
  strides = 1,
): tf.layers.Layer {
  return tf.layers.conv2d({
    filters,
    kernelSize,
    strides,
    padding: 'same',
    useBias,
    kernelInitializer: 'glorotUniform',
    name,
  });
}

/**
 * Keras's `GlobalAveragePooling2D(keepdims=True)`. tfjs's pooling has no `keepdims`, so a Reshape
 * to 1x1 (`<name>_reshape`, no weights) follows it.
 */
function poolKeepdims(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  const channels = x.shape[3]!;
  const pooled = apply(tf.layers.globalAveragePooling2d({ name }), x);
  return apply(
    tf.layers.reshape({ targetShape: [1, 1, channels], name: `${name}_reshape` }),
    pooled,
  );
}

/** The builders' shared state: Keras's generated names and the two activations. */
class Builder {
  readonly names = new KerasNames();

  relu: Activation = (x) => apply(tf.layers.reLU({ name: this.names.next('re_lu') }), x);

  hardSwish: Activation = (x) => {
    const layer = tf.layers.activation({
      activation: 'hardSilu' as 'linear',
      name: this.names.next('activation'),
    });
    return apply(layer, x);
  };

  /**
   * Keras's `hard_sigmoid`, `ReLU(6.0)(x + 3.0) * (1.0 / 6.0)`: the addition and the product are
   * Keras operations named `add` and `multiply`, here rescaling layers of those names.
   */
  hardSigmoid(x: tf.SymbolicTensor): tf.SymbolicTensor {
    x = apply(tf.layers.rescaling({ scale: 1, offset: 3, name: this.names.next('add') }), x);
    x = apply(tf.layers.reLU({ maxValue: 6, name: this.names.next('re_lu') }), x);
    return apply(tf.layers.rescaling({ scale: 1 / 6, name: this.names.next('multiply') }), x);
  }

  /** Keras's `_se_block`. */
  seBlock(
    inputs: tf.SymbolicTensor,
    filters: number,
    seRatio: number,
    prefix: string,
  ): tf.SymbolicTensor {
    let x = poolKeepdims(inputs, `${prefix}squeeze_excite_avg_pool`);
    x = apply(
      conv(makeDivisible(filters * seRatio, 8), 1, `${prefix}squeeze_excite_conv`, true),
      x,
    );
    x = apply(tf.layers.reLU({ name: `${prefix}squeeze_excite_relu` }), x);
    x = apply(conv(filters, 1, `${prefix}squeeze_excite_conv_1`, true), x);
    x = this.hardSigmoid(x);
    return apply(tf.layers.multiply({ name: `${prefix}squeeze_excite_mul` }), [inputs, x]);
  }

  /** Keras's `_inverted_res_block`. Block 0 has no expansion and the `expanded_conv_` prefix. */
  invertedResBlock(
    inputs: tf.SymbolicTensor,
    expansion: number,
    filters: number,
    kernelSize: number,
    stride: number,
    seRatio: number | null,
    activation: Activation,
    blockId: number,
  ): tf.SymbolicTensor {
    const inFilters = inputs.shape[3]!;
    let prefix = 'expanded_conv_';
    let x = inputs;
    if (blockId) {
      prefix = `expanded_conv_${blockId}_`;
      x = apply(conv(makeDivisible(inFilters * expansion, 8), 1, `${prefix}expand`, false), x);
      x = apply(batchNorm(`${prefix}expand_bn`), x);
      x = activation(x);
    }
    if (stride === 2) {
      const pad = correctPad(x, kernelSize);
      x = apply(tf.layers.zeroPadding2d({ padding: pad, name: `${prefix}depthwise_pad` }), x);
    }
    const depthwise = tf.layers.depthwiseConv2d({
      kernelSize,
      strides: stride,
      padding: stride === 1 ? 'same' : 'valid',
      useBias: false,
      depthwiseInitializer: 'glorotUniform',
      name: `${prefix}depthwise`,
    });
    x = apply(depthwise, x);
    x = apply(batchNorm(`${prefix}depthwise_bn`), x);
    x = activation(x);
    if (seRatio) x = this.seBlock(x, makeDivisible(inFilters * expansion, 8), seRatio, prefix);
    x = apply(conv(filters, 1, `${prefix}project`, false), x);
    x = apply(batchNorm(`${prefix}project_bn`), x);
    if (stride === 1 && inFilters === filters) {
      x = apply(tf.layers.add({ name: `${prefix}add` }), [inputs, x]);
    }
    return x;
  }
}

/** One block of a stack: expansion, filters (before alpha), kernel, stride, SE, hard-swish. */
type BlockRow = [
  expansion: number,
  filters: number,
  kernel: 3 | 'k',
  stride: number,
  se: boolean,
  hardSwish: boolean,
];

/** Keras's `MobileNetV3Small` stack_fn: 'k' is 5 (3 when minimalistic). */
const SMALL: readonly BlockRow[] = [
  [1, 16, 3, 2, true, false],
  [72 / 16, 24, 3, 2, false, false],
  [88 / 24, 24, 3, 1, false, false],
  [4, 40, 'k', 2, true, true],
  [6, 40, 'k', 1, true, true],
  [6, 40, 'k', 1, true, true],
  [3, 48, 'k', 1, true, true],
  [3, 48, 'k', 1, true, true],
  [6, 96, 'k', 2, true, true],
  [6, 96, 'k', 1, true, true],
  [6, 96, 'k', 1, true, true],
];

/** Keras's `MobileNetV3Large` stack_fn. */
const LARGE: readonly BlockRow[] = [
  [1, 16, 3, 1, false, false],
  [4, 24, 3, 2, false, false],
  [3, 24, 3, 1, false, false],
  [3, 40, 'k', 2, true, false],
  [3, 40, 'k', 1, true, false],
  [3, 40, 'k', 1, true, false],
  [6, 80, 3, 2, false, true],
  [2.5, 80, 3, 1, false, true],
  [2.3, 80, 3, 1, false, true],
  [2.3, 80, 3, 1, false, true],
  [6, 112, 3, 1, true, true],
  [6, 112, 3, 1, true, true],
  [6, 160, 'k', 2, true, true],
  [6, 160, 'k', 1, true, true],
  [6, 160, 'k', 1, true, true],
];

function weightFile(type: string, alpha: number, minimalistic: boolean, top: boolean): WeightFile {
  const alphaText = Number.isInteger(alpha) ? alpha.toFixed(1) : String(alpha);
  const model = `${type}${minimalistic ? '_minimalistic' : ''}_224_${alphaText}_float`;
  const hashes = WEIGHT_HASHES[model];
  const file = top
    ? `weights_mobilenet_v3_${model}.h5`
    : `weights_mobilenet_v3_${model}_no_top_v2.h5`;
  const result: WeightFile = { url: `${BASE_URL}${file}` };
  if (hashes) result.fileHash = hashes[top ? 0 : 1];
  return result;
}

/** Keras's `MobileNetV3(stack_fn, last_point_ch, ...)`. */
async function buildMobileNetV3(
  spec: ApplicationSpec,
  type: 'small' | 'large',
  options: MobileNetV3Options | undefined,
): Promise<tf.LayersModel> {
  await initBackend();
  const o = resolveOptions(spec.className, options);
  const alpha = checkPositiveNumber('alpha', options?.alpha ?? 1.0);
  const minimalistic = checkBoolean('minimalistic', options?.minimalistic ?? false);
  const includePreprocessing = checkBoolean(
    'includePreprocessing',
    options?.includePreprocessing ?? true,
  );
  const dropoutRate = options?.dropoutRate ?? 0.2;
  if (typeof dropoutRate !== 'number' || !(dropoutRate >= 0 && dropoutRate < 1)) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `${spec.className}: dropoutRate must be a number in [0, 1), but received ${String(dropoutRate)}.`,
      { dropoutRate },
    );
  }
  // Keras accepts any size of at least 32x32, with or without top: the classifier is pooled.
  const shape = obtainInputShape({
    model: spec.className,
    inputShape: o.inputShape,
    defaultSize: spec.defaultInputSize,
    minSize: spec.minInputSize,
    requireFlatten: false,
    weights: o.weights,
  });
  if (o.weights === 'imagenet') {
    if ((!minimalistic && alpha !== 0.75 && alpha !== 1.0) || (minimalistic && alpha !== 1.0)) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `${spec.className} has ImageNet weights only for alpha 0.75 or 1.0 (1.0 when minimalistic), but received alpha ${alpha}${minimalistic ? ' with minimalistic: true' : ''}. Pick one of those, or pass weights: null to train from scratch.`,
        { alpha, minimalistic },
      );
    }
    if (shape[0] !== shape[1] || shape[0] !== 224) {
      warn(
        `${spec.className}: inputShape is undefined or non-square, or its size is not 224; the weights for 224x224 are loaded.`,
      );
    }
  }
  const weights = await resolveWeights(o, weightFile(type, alpha, minimalistic, o.includeTop));

  const b = new Builder();
  const activation = minimalistic ? b.relu : b.hardSwish;
  const kernel = minimalistic ? 3 : 5;
  const seRatio = minimalistic ? null : 0.25;

  const { image, inputs } = imageInput(o, shape);
  let x = image;
  if (includePreprocessing) {
    const rescale = tf.layers.rescaling({
      scale: 1.0 / 127.5,
      offset: -1.0,
      name: b.names.next('rescaling'),
    });
    x = apply(rescale, x);
  }
  x = apply(conv(16, 3, 'conv', false, 2), x);
  x = apply(batchNorm('conv_bn'), x);
  x = activation(x);

  const rows = type === 'small' ? SMALL : LARGE;
  rows.forEach(([expansion, filters, k, stride, se, hard], blockId) => {
    x = b.invertedResBlock(
      x,
      expansion,
      makeDivisible(filters * alpha, 8),
      k === 'k' ? kernel : k,
      stride,
      se ? seRatio : null,
      hard ? activation : b.relu,
      blockId,
    );
  });

  const lastConvChannels = makeDivisible(x.shape[3]! * 6, 8);
  let lastPointChannels = type === 'small' ? 1024 : 1280;
  if (alpha > 1.0) lastPointChannels = makeDivisible(lastPointChannels * alpha, 8);
  x = apply(conv(lastConvChannels, 1, 'conv_1', false), x);
  x = apply(batchNorm('conv_1_bn'), x);
  x = activation(x);

  if (o.includeTop) {
    x = poolKeepdims(x, b.names.next('global_average_pooling2d'));
    x = apply(conv(lastPointChannels, 1, 'conv_2', true), x);
    x = activation(x);
    if (dropoutRate > 0) {
      x = apply(tf.layers.dropout({ rate: dropoutRate, name: b.names.next('dropout') }), x);
    }
    x = apply(conv(o.classes, 1, 'logits', true), x);
    x = apply(tf.layers.flatten({ name: b.names.next('flatten') }), x);
    x = apply(tf.layers.activation({ activation: o.classifierActivation, name: 'predictions' }), x);
  } else {
    x = featurePooling(x, o.pooling, { avg: 'avg_pool', max: 'max_pool' });
  }
  return finishModel(inputs, x, o.name ?? spec.className, weights);
}

const COMMON = {
  preprocessMode: 'none',
  defaultInputSize: 224,
  minInputSize: 32,
  firstConvLayer: 'conv',
  classifierLayer: 'predictions',
} as const;

export const MOBILENET_V3_SMALL_SPEC: ApplicationSpec = {
  ...COMMON,
  name: 'mobilenet_v3_small',
  className: 'MobileNetV3Small',
  build: MobileNetV3Small,
  weightSets: {
    imagenet: {
      top: weightFile('small', 1.0, false, true),
      noTop: weightFile('small', 1.0, false, false),
    },
  },
  // The hard-swish after conv_1: the stem's, then two in each of the eight hard-swish blocks.
  featureLayer: 'activation_17',
  parameters: { top: 2_554_968, noTop: 939_120 },
};

export const MOBILENET_V3_LARGE_SPEC: ApplicationSpec = {
  ...COMMON,
  name: 'mobilenet_v3_large',
  className: 'MobileNetV3Large',
  build: MobileNetV3Large,
  weightSets: {
    imagenet: {
      top: weightFile('large', 1.0, false, true),
      noTop: weightFile('large', 1.0, false, false),
    },
  },
  // The stem's hard-swish, two in each of the nine hard-swish blocks, then conv_1's.
  featureLayer: 'activation_19',
  parameters: { top: 5_507_432, noTop: 2_996_352 },
};

/**
 * MobileNetV3Small: 2,554,968 parameters (939,120 without top). Takes pixels in [0, 255]: the
 * scaling to [-1, 1] is inside the model. Any input of at least 32x32 is accepted, with top too.
 * @example
 * const backbone = await MobileNetV3Small({ includeTop: false, pooling: 'avg' });
 */
export async function MobileNetV3Small(options?: MobileNetV3Options): Promise<tf.LayersModel> {
  return buildMobileNetV3(MOBILENET_V3_SMALL_SPEC, 'small', options);
}

/**
 * MobileNetV3Large: 5,507,432 parameters (2,996,352 without top). Takes pixels in [0, 255].
 * @example
 * const backbone = await MobileNetV3Large({ includeTop: false, minimalistic: true });
 */
export async function MobileNetV3Large(options?: MobileNetV3Options): Promise<tf.LayersModel> {
  return buildMobileNetV3(MOBILENET_V3_LARGE_SPEC, 'large', options);
}

/** `keras.applications.mobilenet_v3`: a pass-through `preprocessInput` and ImageNet decoding. */
export const mobilenetV3 = applicationModule(MOBILENET_V3_SMALL_SPEC);

/** The family, in Keras's order, for the registry. */
export const MOBILENET_V3_SPECS: readonly ApplicationSpec[] = [
  MOBILENET_V3_SMALL_SPEC,
  MOBILENET_V3_LARGE_SPEC,
];
