/**
 * MobileNet v1 (Howard et al., 2017), as Keras's `applications/mobilenet.py` builds it: a strided
 * 3x3 convolution, then 13 depthwise-separable blocks, with a width multiplier `alpha`.
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import { warn } from '../util/log.js';
import { checkNumberInRange, checkPositiveInteger } from '../util/validate.js';
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

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/';
/** Input sizes Keras has ImageNet weights for. */
const WEIGHT_SIZES = [128, 160, 192, 224];
/** Width multipliers Keras has ImageNet weights for. */
const WEIGHT_ALPHAS = [0.25, 0.5, 0.75, 1.0];

/** MobileNet's options: the common ones plus Keras's width and depth multipliers and dropout. */
export interface MobileNetOptions extends ApplicationOptions {
  /**
   * Width multiplier: scales the number of filters of every layer. ImageNet weights exist for
   * 0.25, 0.5, 0.75 and 1.0. Default 1.0.
   */
  alpha?: number;
  /** Depth multiplier of the depthwise convolutions; must be 1 with ImageNet weights. Default 1. */
  depthMultiplier?: number;
  /** Dropout rate before the classifier (with the top only). Default 0.001. */
  dropout?: number;
}

// Keras's MobileNet leaves BatchNormalization at its defaults.
function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: -1, epsilon: 1e-3, momentum: 0.99, name });
}

function relu6(name: string): tf.layers.Layer {
  return tf.layers.reLU({ maxValue: 6, name });
}

/** Keras's `_conv_block`: the first, strided convolution. */
function convBlock(x: tf.SymbolicTensor, filters: number, alpha: number): tf.SymbolicTensor {
  const conv = tf.layers.conv2d({
    filters: Math.trunc(filters * alpha),
    kernelSize: [3, 3],
    padding: 'same',
    useBias: false,
    strides: [2, 2],
    name: 'conv1',
  });
  x = apply(conv, x);
  x = apply(batchNorm('conv1_bn'), x);
  return apply(relu6('conv1_relu'), x);
}

/** Keras's `_depthwise_conv_block`: depthwise 3x3, then pointwise 1x1, each with BN and ReLU6. */
function depthwiseConvBlock(
  x: tf.SymbolicTensor,
  pointwiseFilters: number,
  alpha: number,
  depthMultiplier: number,
  blockId: number,
  stride = 1,
): tf.SymbolicTensor {
  if (stride !== 1) {
    x = apply(
      tf.layers.zeroPadding2d({
        padding: [
          [0, 1],
          [0, 1],
        ],
        name: `conv_pad_${blockId}`,
      }),
      x,
    );
  }
  const depthwise = tf.layers.depthwiseConv2d({
    kernelSize: [3, 3],
    padding: stride === 1 ? 'same' : 'valid',
    depthMultiplier,
    strides: [stride, stride],
    useBias: false,
    name: `conv_dw_${blockId}`,
  });
  x = apply(depthwise, x);
  x = apply(batchNorm(`conv_dw_${blockId}_bn`), x);
  x = apply(relu6(`conv_dw_${blockId}_relu`), x);
  const pointwise = tf.layers.conv2d({
    filters: Math.trunc(pointwiseFilters * alpha),
    kernelSize: [1, 1],
    padding: 'same',
    useBias: false,
    strides: [1, 1],
    name: `conv_pw_${blockId}`,
  });
  x = apply(pointwise, x);
  x = apply(batchNorm(`conv_pw_${blockId}_bn`), x);
  return apply(relu6(`conv_pw_${blockId}_relu`), x);
}

/** Keras's weight file for a width multiplier and input size. */
function weightFile(alpha: number, rows: number, includeTop: boolean): WeightFile {
  const alphaText = alpha === 1 ? '1_0' : alpha === 0.75 ? '7_5' : alpha === 0.5 ? '5_0' : '2_5';
  const fileName = `mobilenet_${alphaText}_${rows}_tf${includeTop ? '' : '_no_top'}.h5`;
  return { url: `${BASE_URL}${fileName}` };
}

/**
 * MobileNet: 4,253,864 parameters at alpha 1.0 (3,228,864 without top). Expects
 * `mobilenet.preprocessInput` ('tf' mode) input. The default model name is Keras's,
 * `mobilenet_<alpha>_<rows>`, e.g. `mobilenet_1.00_224`.
 * @example
 * const backbone = await MobileNet({ includeTop: false, inputShape: [160, 160, 3], alpha: 0.5 });
 */
export async function MobileNet(options?: MobileNetOptions): Promise<tf.LayersModel> {
  await initBackend();
  const spec = MOBILENET_SPEC;
  const o = resolveOptions(spec.className, options);
  options ??= {};
  const alpha = checkPositiveNumber('alpha', options.alpha ?? 1.0);
  const depthMultiplier = checkPositiveInteger('depthMultiplier', options.depthMultiplier ?? 1);
  const dropout = checkNumberInRange('dropout', options.dropout ?? 1e-3, 0, 1);

  // Keras takes the default size from a square inputShape of a size it has weights for.
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
    if (depthMultiplier !== 1) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `MobileNet with weights 'imagenet' needs depthMultiplier 1, but received ${depthMultiplier}. Pass weights: null to train another depth multiplier from scratch.`,
        { depthMultiplier },
      );
    }
    if (!WEIGHT_ALPHAS.includes(alpha)) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `MobileNet has ImageNet weights only for alpha 0.25, 0.5, 0.75 or 1.0, but received alpha ${alpha}. Pick one of those, or pass weights: null to train from scratch.`,
        { alpha },
      );
    }
    if (rows !== shape[1] || !WEIGHT_SIZES.includes(rows ?? 0)) {
      rows = 224;
      warn(
        'MobileNet: inputShape is undefined or non-square, or its size is not 128, 160, 192 or 224; the weights for 224x224 are loaded.',
      );
    }
  }
  const weights = await resolveWeights(o, weightFile(alpha, rows ?? 224, o.includeTop));

  const { image, inputs } = imageInput(o, shape);
  let x = convBlock(image, 32, alpha);
  const blocks: Array<[filters: number, stride: number]> = [
    [64, 1],
    [128, 2],
    [128, 1],
    [256, 2],
    [256, 1],
    [512, 2],
    [512, 1],
    [512, 1],
    [512, 1],
    [512, 1],
    [512, 1],
    [1024, 2],
    [1024, 1],
  ];
  blocks.forEach(([filters, stride], i) => {
    x = depthwiseConvBlock(x, filters, alpha, depthMultiplier, i + 1, stride);
  });

  if (o.includeTop) {
    const channels = x.shape[3]!;
    // Keras 3 pools with keepdims=True; tfjs pooling has no keepdims, so a reshape restores the
    // 1x1 map under the name Keras 2 gave that reshape (no weights hang on either).
    x = apply(tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }), x);
    x = apply(tf.layers.reshape({ targetShape: [1, 1, channels], name: 'reshape_1' }), x);
    x = apply(tf.layers.dropout({ rate: dropout, name: 'dropout' }), x);
    x = apply(
      tf.layers.conv2d({
        filters: o.classes,
        kernelSize: [1, 1],
        padding: 'same',
        name: 'conv_preds',
      }),
      x,
    );
    x = apply(tf.layers.reshape({ targetShape: [o.classes], name: 'reshape_2' }), x);
    x = apply(tf.layers.activation({ activation: o.classifierActivation, name: 'predictions' }), x);
  } else {
    x = featurePooling(x, o.pooling);
  }
  // Keras's name, Python formatting included (`None` when the size is open).
  const name = o.name ?? `mobilenet_${alpha.toFixed(2)}_${rows ?? 'None'}`;
  return finishModel(inputs, x, name, weights);
}

export const MOBILENET_SPEC: ApplicationSpec = {
  name: 'mobilenet',
  className: 'MobileNet',
  build: MobileNet,
  preprocessMode: 'tf',
  defaultInputSize: 224,
  minInputSize: 32,
  weightSets: {
    imagenet: { top: weightFile(1.0, 224, true), noTop: weightFile(1.0, 224, false) },
  },
  firstConvLayer: 'conv1',
  featureLayer: 'conv_pw_13_relu',
  classifierLayer: 'predictions',
  parameters: { top: 4_253_864, noTop: 3_228_864 },
};

/** `keras.applications.mobilenet`: its preprocessing ('tf') and ImageNet decoding. */
export const mobilenet = applicationModule(MOBILENET_SPEC);
