/**
 * MobileNetV2 (Sandler et al., CVPR 2018), as Keras's `applications/mobilenet_v2.py` builds it:
 * a strided 3x3 convolution, 17 inverted residual blocks (expand 1x1, depthwise 3x3, linear
 * project 1x1), and a final 1x1 convolution to 1280 channels, with a width multiplier `alpha`.
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import { warn } from '../util/log.js';
import {
  apply,
  checkPositiveNumber,
  featurePooling,
  finishModel,
  imageInput,
  resolveOptions,
  resolveWeights,
} from './build.js';
import { obtainInputShape } from './input-shape.js';
import { applicationModule } from './keras-module.js';
import type { ApplicationOptions, ApplicationSpec, WeightFile } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/';
/** Input sizes Keras has ImageNet weights for. */
const WEIGHT_SIZES = [96, 128, 160, 192, 224];
/** Width multipliers Keras has ImageNet weights for. */
const WEIGHT_ALPHAS = [0.35, 0.5, 0.75, 1.0, 1.3, 1.4];

/** MobileNetV2's options: the common ones plus Keras's width multiplier. */
export interface MobileNetV2Options extends ApplicationOptions {
  /**
   * Width multiplier: scales the number of filters of every layer (rounded to multiples of 8).
   * ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3 and 1.4. Default 1.0.
   */
  alpha?: number;
}

/** Keras's `_make_divisible`: rounds to a multiple of `divisor`, never more than 10% down. */
export function makeDivisible(v: number, divisor: number, minValue = divisor): number {
  let rounded = Math.max(minValue, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (rounded < 0.9 * v) rounded += divisor;
  return rounded;
}

/** Keras's `imagenet_utils.correct_pad`: the padding a strided 3x3 'valid' convolution needs. */
function correctPad(x: tf.SymbolicTensor): [[number, number], [number, number]] {
  const [height, width] = [x.shape[1], x.shape[2]];
  const adjust = height == null || width == null ? [1, 1] : [1 - (height % 2), 1 - (width % 2)];
  return [
    [1 - adjust[0]!, 1],
    [1 - adjust[1]!, 1],
  ];
}

// Keras's MobileNetV2 batch norms: epsilon 1e-3, momentum 0.999.
function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: -1, epsilon: 1e-3, momentum: 0.999, name });
}

function relu6(name: string): tf.layers.Layer {
  return tf.layers.reLU({ maxValue: 6, name });
}

function pointwise(filters: number, name: string): tf.layers.Layer {
  return tf.layers.conv2d({ filters, kernelSize: 1, padding: 'same', useBias: false, name });
}

/** Keras's `_inverted_res_block`. Block 0 has no expansion and Keras's `expanded_conv_` names. */
function invertedResBlock(
  inputs: tf.SymbolicTensor,
  expansion: number,
  stride: number,
  alpha: number,
  filters: number,
  blockId: number,
): tf.SymbolicTensor {
  const inChannels = inputs.shape[3]!;
  const pointwiseFilters = makeDivisible(Math.trunc(filters * alpha), 8);
  let x = inputs;
  let prefix = `block_${blockId}_`;
  if (blockId) {
    x = apply(pointwise(expansion * inChannels, `${prefix}expand`), x);
    x = apply(batchNorm(`${prefix}expand_BN`), x);
    x = apply(relu6(`${prefix}expand_relu`), x);
  } else {
    prefix = 'expanded_conv_';
  }
  if (stride === 2) {
    x = apply(tf.layers.zeroPadding2d({ padding: correctPad(x), name: `${prefix}pad` }), x);
  }
  const depthwise = tf.layers.depthwiseConv2d({
    kernelSize: 3,
    strides: stride,
    useBias: false,
    padding: stride === 1 ? 'same' : 'valid',
    name: `${prefix}depthwise`,
  });
  x = apply(depthwise, x);
  x = apply(batchNorm(`${prefix}depthwise_BN`), x);
  x = apply(relu6(`${prefix}depthwise_relu`), x);
  x = apply(pointwise(pointwiseFilters, `${prefix}project`), x);
  x = apply(batchNorm(`${prefix}project_BN`), x);
  if (inChannels === pointwiseFilters && stride === 1) {
    return apply(tf.layers.add({ name: `${prefix}add` }), [inputs, x]);
  }
  return x;
}

/** Python's `str(float(alpha))`, as Keras writes it into weight file names: 1.0, 0.35, 1.4. */
function pythonFloat(value: number): string {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

/** Keras's weight file for a width multiplier and input size. */
function weightFile(alpha: number, rows: number, includeTop: boolean): WeightFile {
  const fileName = `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_${pythonFloat(alpha)}_${rows}${includeTop ? '' : '_no_top'}.h5`;
  return { url: `${BASE_URL}${fileName}` };
}

/** Expansion, output filters and stride of blocks 0 to 16. */
const BLOCKS: ReadonlyArray<[expansion: number, filters: number, stride: number]> = [
  [1, 16, 1],
  [6, 24, 2],
  [6, 24, 1],
  [6, 32, 2],
  [6, 32, 1],
  [6, 32, 1],
  [6, 64, 2],
  [6, 64, 1],
  [6, 64, 1],
  [6, 64, 1],
  [6, 96, 1],
  [6, 96, 1],
  [6, 96, 1],
  [6, 160, 2],
  [6, 160, 1],
  [6, 160, 1],
  [6, 320, 1],
];

/**
 * MobileNetV2: 3,538,984 parameters at alpha 1.0 (2,257,984 without top). Expects
 * `mobilenetV2.preprocessInput` ('tf' mode) input. The default model name is Keras's,
 * `mobilenetv2_<alpha>_<rows>`, e.g. `mobilenetv2_1.00_224`.
 * @example
 * const backbone = await MobileNetV2({ includeTop: false, inputShape: [160, 160, 3] });
 */
export async function MobileNetV2(options?: MobileNetV2Options): Promise<tf.LayersModel> {
  await initBackend();
  const spec = MOBILENET_V2_SPEC;
  const o = resolveOptions(spec.className, options);
  const alpha = checkPositiveNumber('alpha', options?.alpha ?? 1.0);

  // Keras takes the default size from a square input (shape or tensor) of a size it has weights for.
  const given = o.inputShape;
  const defaultSize =
    given && given[0] === given[1] && WEIGHT_SIZES.includes(given[0] ?? 0) ? given[0]! : 224;
  const shape = obtainInputShape({
    model: spec.className,
    inputShape: given,
    defaultSize,
    minSize: spec.minInputSize,
    requireFlatten: o.includeTop,
    weights: o.weights,
  });
  let rows = shape[0];
  if (o.weights === 'imagenet') {
    if (!WEIGHT_ALPHAS.includes(alpha)) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `MobileNetV2 has ImageNet weights only for alpha 0.35, 0.5, 0.75, 1.0, 1.3 or 1.4, but received alpha ${alpha}. Pick one of those, or pass weights: null to train from scratch.`,
        { alpha },
      );
    }
    if (rows !== shape[1] || !WEIGHT_SIZES.includes(rows ?? 0)) {
      rows = 224;
      warn(
        'MobileNetV2: inputShape is undefined or non-square, or its size is not 96, 128, 160, 192 or 224; the weights for 224x224 are loaded.',
      );
    }
  }
  const weights = await resolveWeights(o, weightFile(alpha, rows ?? 224, o.includeTop));

  const { image, inputs } = imageInput(o, shape);
  const firstConv = tf.layers.conv2d({
    filters: makeDivisible(32 * alpha, 8),
    kernelSize: 3,
    strides: [2, 2],
    padding: 'same',
    useBias: false,
    name: 'Conv1',
  });
  let x = apply(firstConv, image);
  x = apply(batchNorm('bn_Conv1'), x);
  x = apply(relu6('Conv1_relu'), x);
  BLOCKS.forEach(([expansion, filters, stride], blockId) => {
    x = invertedResBlock(x, expansion, stride, alpha, filters, blockId);
  });

  // The last convolution is not thinned for alpha < 1, only widened for alpha > 1 (the paper's rule).
  const lastFilters = alpha > 1.0 ? makeDivisible(1280 * alpha, 8) : 1280;
  x = apply(pointwise(lastFilters, 'Conv_1'), x);
  x = apply(batchNorm('Conv_1_bn'), x);
  x = apply(relu6('out_relu'), x);

  if (o.includeTop) {
    x = apply(tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }), x);
    x = apply(
      tf.layers.dense({
        units: o.classes,
        activation: o.classifierActivation,
        name: 'predictions',
      }),
      x,
    );
  } else {
    x = featurePooling(x, o.pooling);
  }
  // Keras's name, Python formatting included (`None` when the size is open).
  const name = o.name ?? `mobilenetv2_${alpha.toFixed(2)}_${rows ?? 'None'}`;
  return finishModel(inputs, x, name, weights);
}

export const MOBILENET_V2_SPEC: ApplicationSpec = {
  name: 'mobilenet_v2',
  className: 'MobileNetV2',
  build: MobileNetV2,
  preprocessMode: 'tf',
  defaultInputSize: 224,
  minInputSize: 32,
  weightSets: {
    imagenet: { top: weightFile(1.0, 224, true), noTop: weightFile(1.0, 224, false) },
  },
  firstConvLayer: 'Conv1',
  featureLayer: 'out_relu',
  classifierLayer: 'predictions',
  parameters: { top: 3_538_984, noTop: 2_257_984 },
};

/** `keras.applications.mobilenet_v2`: its preprocessing ('tf') and ImageNet decoding. */
export const mobilenetV2 = applicationModule(MOBILENET_V2_SPEC);
