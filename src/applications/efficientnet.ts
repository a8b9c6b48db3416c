/**
 * EfficientNetB0 to B7 (Tan and Le, ICML 2019), as Keras's `applications/efficientnet.py` builds
 * them: MobileNetV2-style inverted residual blocks with squeeze-and-excitation and swish, scaled
 * in width, depth and resolution. The preprocessing is inside the model (a `Rescaling` to [0, 1]
 * and a `Normalization` whose ImageNet mean and variance come with the weights), so the models take
 * pixels in [0, 255] and `efficientnet.preprocessInput` passes them through.
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import {
  apply,
  featurePooling,
  finishModel,
  imageInput,
  resolveOptions,
  resolveWeights,
} from './build.js';
import { obtainInputShape } from './input-shape.js';
import { KerasNames } from './keras-layers.js';
import { applicationModule } from './keras-module.js';
import { makeDivisible } from './mobilenet-v2.js';
import { Normalization } from './normalization-layer.js';
import type { ApplicationOptions, ApplicationSpec, WeightSet } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/keras-applications/';
const IMAGENET_STDDEV_RGB = [0.229, 0.224, 0.225];

/**
 * Keras's convolution initializer is variance scaling (scale 2, fan out) with a truncated normal;
 * the same variance drawn uniformly builds several times faster in tfjs, whose truncated normal
 * sampler is slow, and pretrained weights replace it anyway.
 */
export const CONV_KERNEL_INITIALIZER = {
  scale: 2.0,
  mode: 'fanOut',
  distribution: 'uniform',
} as const;
/** Keras's dense initializer, exactly: variance scaling (1/3, fan out, uniform). */
export const DENSE_KERNEL_INITIALIZER = {
  scale: 1.0 / 3.0,
  mode: 'fanOut',
  distribution: 'uniform',
} as const;

export function convInitializer(): ReturnType<typeof tf.initializers.varianceScaling> {
  return tf.initializers.varianceScaling(CONV_KERNEL_INITIALIZER);
}

/** Keras's `imagenet_utils.correct_pad`: the padding a strided 'valid' convolution needs. */
export function correctPad(
  x: tf.SymbolicTensor,
  kernelSize: number,
): [[number, number], [number, number]] {
  const [height, width] = [x.shape[1], x.shape[2]];
  const adjust = height == null || width == null ? [1, 1] : [1 - (height % 2), 1 - (width % 2)];
  const correct = Math.floor(kernelSize / 2);
  return [
    [correct - adjust[0]!, correct],
    [correct - adjust[1]!, correct],
  ];
}

interface BlockArgs {
  kernelSize: number;
  repeats: number;
  filtersIn: number;
  filtersOut: number;
  expandRatio: number;
  strides: number;
}

/** Keras's `DEFAULT_BLOCKS_ARGS` (every block has an identity skip and SE ratio 0.25). */
const DEFAULT_BLOCKS: readonly BlockArgs[] = [
  { kernelSize: 3, repeats: 1, filtersIn: 32, filtersOut: 16, expandRatio: 1, strides: 1 },
  { kernelSize: 3, repeats: 2, filtersIn: 16, filtersOut: 24, expandRatio: 6, strides: 2 },
  { kernelSize: 5, repeats: 2, filtersIn: 24, filtersOut: 40, expandRatio: 6, strides: 2 },
  { kernelSize: 3, repeats: 3, filtersIn: 40, filtersOut: 80, expandRatio: 6, strides: 2 },
  { kernelSize: 5, repeats: 3, filtersIn: 80, filtersOut: 112, expandRatio: 6, strides: 1 },
  { kernelSize: 5, repeats: 4, filtersIn: 112, filtersOut: 192, expandRatio: 6, strides: 2 },
  { kernelSize: 3, repeats: 1, filtersIn: 192, filtersOut: 320, expandRatio: 6, strides: 1 },
];
const SE_RATIO = 0.25;

function conv(filters: number, kernelSize: number, name: string): tf.layers.Layer {
  return tf.layers.conv2d({
    filters,
    kernelSize,
    padding: 'same',
    useBias: false,
    kernelInitializer: convInitializer(),
    name,
  });
}

function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, name });
}

function swish(name: string): tf.layers.Layer {
  return tf.layers.activation({ activation: 'swish', name });
}

/**
 * Keras's squeeze-and-excitation: global average pooling, reshaped to 1x1, reduced and expanded by
 * 1x1 convolutions, then the feature map scaled channel by channel.
 */
export function squeezeExcite(
  x: tf.SymbolicTensor,
  filtersSe: number,
  name: string,
  activation: string,
): tf.SymbolicTensor {
  const filters = x.shape[3]!;
  let se = apply(tf.layers.globalAveragePooling2d({ name: `${name}se_squeeze` }), x);
  se = apply(tf.layers.reshape({ targetShape: [1, 1, filters], name: `${name}se_reshape` }), se);
  const reduce = tf.layers.conv2d({
    filters: filtersSe,
    kernelSize: 1,
    padding: 'same',
    activation: activation as 'swish',
    kernelInitializer: convInitializer(),
    name: `${name}se_reduce`,
  });
  se = apply(reduce, se);
  const expand = tf.layers.conv2d({
    filters,
    kernelSize: 1,
    padding: 'same',
    activation: 'sigmoid',
    kernelInitializer: convInitializer(),
    name: `${name}se_expand`,
  });
  se = apply(expand, se);
  return apply(tf.layers.multiply({ name: `${name}se_excite` }), [x, se]);
}

/**
 * Keras's stochastic depth: a dropout of whole samples (`noise_shape (None, 1, 1, 1)`) before the
 * residual addition, the identity at inference.
 */
export function dropPath(rate: number, name: string): tf.layers.Layer {
  // tfjs takes null entries in noiseShape as the input's size, as Keras does with None.
  const noiseShape = [null, 1, 1, 1] as unknown as number[];
  return tf.layers.dropout({ rate, noiseShape, name });
}

/** Keras's `block`: an inverted residual block with squeeze-and-excitation. */
function block(
  inputs: tf.SymbolicTensor,
  dropRate: number,
  name: string,
  args: Omit<BlockArgs, 'repeats'>,
): tf.SymbolicTensor {
  const { kernelSize, filtersIn, filtersOut, expandRatio, strides } = args;
  const filters = filtersIn * expandRatio;
  let x = inputs;
  if (expandRatio !== 1) {
    x = apply(conv(filters, 1, `${name}expand_conv`), x);
    x = apply(batchNorm(`${name}expand_bn`), x);
    x = apply(swish(`${name}expand_activation`), x);
  }
  if (strides === 2) {
    const pad = correctPad(x, kernelSize);
    x = apply(tf.layers.zeroPadding2d({ padding: pad, name: `${name}dwconv_pad` }), x);
  }
  const depthwise = tf.layers.depthwiseConv2d({
    kernelSize,
    strides,
    padding: strides === 2 ? 'valid' : 'same',
    useBias: false,
    depthwiseInitializer: convInitializer(),
    name: `${name}dwconv`,
  });
  x = apply(depthwise, x);
  x = apply(batchNorm(`${name}bn`), x);
  x = apply(swish(`${name}activation`), x);
  x = squeezeExcite(x, Math.max(1, Math.trunc(filtersIn * SE_RATIO)), name, 'swish');

  x = apply(conv(filtersOut, 1, `${name}project_conv`), x);
  x = apply(batchNorm(`${name}project_bn`), x);
  if (strides === 1 && filtersIn === filtersOut) {
    if (dropRate > 0) x = apply(dropPath(dropRate, `${name}drop`), x);
    x = apply(tf.layers.add({ name: `${name}add` }), [x, inputs]);
  }
  return x;
}

interface Scaling {
  width: number;
  depth: number;
  dropout: number;
}

/** Keras's `EfficientNet(width_coefficient, depth_coefficient, default_size, dropout_rate, ...)`. */
async function buildEfficientNet(
  spec: ApplicationSpec,
  scaling: Scaling,
  options: ApplicationOptions | undefined,
): Promise<tf.LayersModel> {
  await initBackend();
  const o = resolveOptions(spec.className, options);
  const shape = obtainInputShape({
    model: spec.className,
    inputShape: o.inputShape,
    defaultSize: spec.defaultInputSize,
    minSize: spec.minInputSize,
    requireFlatten: o.includeTop,
    weights: o.weights,
  });
  const set = spec.weightSets.imagenet;
  const weights = await resolveWeights(o, o.includeTop ? set.top : set.noTop);

  const roundFilters = (filters: number): number => makeDivisible(filters * scaling.width, 8);
  const roundRepeats = (repeats: number): number => Math.ceil(scaling.depth * repeats);

  const names = new KerasNames();
  const { image, inputs } = imageInput(o, shape);
  let x = apply(tf.layers.rescaling({ scale: 1.0 / 255.0, name: names.next('rescaling') }), image);
  x = apply(new Normalization({ axis: 3, name: 'normalization' }), x);
  if (o.weights === 'imagenet') {
    // Keras's weights hold the squared std as variance; its reference divided by the variance,
    // hence one more division by the square root of the std (keras#49930).
    const scale = IMAGENET_STDDEV_RGB.map((std) => 1.0 / Math.sqrt(std)) as unknown as number;
    x = apply(tf.layers.rescaling({ scale, name: names.next('rescaling') }), x);
  }
  x = apply(tf.layers.zeroPadding2d({ padding: correctPad(x, 3), name: 'stem_conv_pad' }), x);
  const stem = tf.layers.conv2d({
    filters: roundFilters(32),
    kernelSize: 3,
    strides: 2,
    padding: 'valid',
    useBias: false,
    kernelInitializer: convInitializer(),
    name: 'stem_conv',
  });
  x = apply(stem, x);
  x = apply(batchNorm('stem_bn'), x);
  x = apply(swish('stem_activation'), x);

  const dropConnectRate = 0.2;
  const total = DEFAULT_BLOCKS.reduce((sum, args) => sum + roundRepeats(args.repeats), 0);
  let b = 0;
  DEFAULT_BLOCKS.forEach((args, i) => {
    const filtersOut = roundFilters(args.filtersOut);
    let filtersIn = roundFilters(args.filtersIn);
    let strides = args.strides;
    for (let j = 0; j < roundRepeats(args.repeats); j++) {
      // Only the first block of a stage changes the stride and the width.
      if (j > 0) {
        strides = 1;
        filtersIn = filtersOut;
      }
      const name = `block${i + 1}${String.fromCharCode(j + 97)}_`;
      x = block(x, (dropConnectRate * b) / total, name, {
        kernelSize: args.kernelSize,
        filtersIn,
        filtersOut,
        expandRatio: args.expandRatio,
        strides,
      });
      b += 1;
    }
  });

  x = apply(conv(roundFilters(1280), 1, 'top_conv'), x);
  x = apply(batchNorm('top_bn'), x);
  x = apply(swish('top_activation'), x);
  if (o.includeTop) {
    x = apply(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), x);
    x = apply(tf.layers.dropout({ rate: scaling.dropout, name: 'top_dropout' }), x);
    const dense = tf.layers.dense({
      units: o.classes,
      activation: o.classifierActivation,
      kernelInitializer: tf.initializers.varianceScaling(DENSE_KERNEL_INITIALIZER),
      name: 'predictions',
    });
    x = apply(dense, x);
  } else {
    x = featurePooling(x, o.pooling, { avg: 'avg_pool', max: 'max_pool' });
  }
  return finishModel(inputs, x, o.name ?? spec.name, weights);
}

function weightSet(model: string, topHash: string, noTopHash: string): WeightSet {
  return {
    top: { url: `${BASE_URL}${model}.h5`, fileHash: topHash },
    noTop: { url: `${BASE_URL}${model}_notop.h5`, fileHash: noTopHash },
  };
}

const COMMON = {
  preprocessMode: 'none',
  minInputSize: 32,
  firstConvLayer: 'stem_conv',
  featureLayer: 'top_activation',
  classifierLayer: 'predictions',
} as const;

/** One member of the family: Keras's scaling, default size, weight hashes and counts. */
function member(
  variant: string,
  scaling: Scaling,
  defaultInputSize: number,
  hashes: [string, string],
  parameters: { top: number; noTop: number },
): ApplicationSpec {
  const name = `efficientnet${variant.toLowerCase()}`;
  const spec: ApplicationSpec = {
    ...COMMON,
    name,
    className: `EfficientNet${variant}`,
    build: (options) => buildEfficientNet(spec, scaling, options),
    defaultInputSize,
    weightSets: { imagenet: weightSet(name, ...hashes) },
    parameters,
  };
  return spec;
}

export const EFFICIENTNET_B0_SPEC = member(
  'B0',
  { width: 1.0, depth: 1.0, dropout: 0.2 },
  224,
  ['902e53a9f72be733fc0bcb005b3ebbac', '50bc09e76180e00e4465e1a485ddc09d'],
  { top: 5_330_571, noTop: 4_049_571 },
);
export const EFFICIENTNET_B1_SPEC = member(
  'B1',
  { width: 1.0, depth: 1.1, dropout: 0.2 },
  240,
  ['1d254153d4ab51201f1646940f018540', '74c4e6b3e1f6a1eea24c589628592432'],
  { top: 7_856_239, noTop: 6_575_239 },
);
export const EFFICIENTNET_B2_SPEC = member(
  'B2',
  { width: 1.1, depth: 1.2, dropout: 0.3 },
  260,
  ['b15cce36ff4dcbd00b6dd88e7857a6ad', '111f8e2ac8aa800a7a99e3239f7bfb39'],
  { top: 9_177_569, noTop: 7_768_569 },
);
export const EFFICIENTNET_B3_SPEC = member(
  'B3',
  { width: 1.2, depth: 1.4, dropout: 0.3 },
  300,
  ['ffd1fdc53d0ce67064dc6a9c7960ede0', 'af6d107764bb5b1abb91932881670226'],
  { top: 12_320_535, noTop: 10_783_535 },
);
export const EFFICIENTNET_B4_SPEC = member(
  'B4',
  { width: 1.4, depth: 1.8, dropout: 0.4 },
  380,
  ['18c95ad55216b8f92d7e70b3a046e2fc', 'ebc24e6d6c33eaebbd558eafbeedf1ba'],
  { top: 19_466_823, noTop: 17_673_823 },
);
export const EFFICIENTNET_B5_SPEC = member(
  'B5',
  { width: 1.6, depth: 2.2, dropout: 0.4 },
  456,
  ['ace28f2a6363774853a83a0b21b9421a', '38879255a25d3c92d5e44e04ae6cec6f'],
  { top: 30_562_527, noTop: 28_513_527 },
);
export const EFFICIENTNET_B6_SPEC = member(
  'B6',
  { width: 1.8, depth: 2.6, dropout: 0.5 },
  528,
  ['165f6e37dce68623721b423839de8be5', '9ecce42647a20130c1f39a5d4cb75743'],
  { top: 43_265_143, noTop: 40_960_143 },
);
export const EFFICIENTNET_B7_SPEC = member(
  'B7',
  { width: 2.0, depth: 3.1, dropout: 0.5 },
  600,
  ['8c03f828fec3ef71311cd463b6759d99', 'cbcfe4450ddf6f3ad90b1b398090fe4a'],
  { top: 66_658_687, noTop: 64_097_687 },
);

/**
 * EfficientNetB0: 5,330,571 parameters (4,049,571 without top), 224x224. Takes pixels in
 * [0, 255]: the preprocessing is inside the model.
 * @example
 * const backbone = await EfficientNetB0({ includeTop: false, pooling: 'avg' });
 */
export const EfficientNetB0 = EFFICIENTNET_B0_SPEC.build;
/** EfficientNetB1: 7,856,239 parameters, 240x240, pixels in [0, 255]. */
export const EfficientNetB1 = EFFICIENTNET_B1_SPEC.build;
/** EfficientNetB2: 9,177,569 parameters, 260x260, pixels in [0, 255]. */
export const EfficientNetB2 = EFFICIENTNET_B2_SPEC.build;
/** EfficientNetB3: 12,320,535 parameters, 300x300, pixels in [0, 255]. */
export const EfficientNetB3 = EFFICIENTNET_B3_SPEC.build;
/** EfficientNetB4: 19,466,823 parameters, 380x380, pixels in [0, 255]. */
export const EfficientNetB4 = EFFICIENTNET_B4_SPEC.build;
/** EfficientNetB5: 30,562,527 parameters, 456x456, pixels in [0, 255]. */
export const EfficientNetB5 = EFFICIENTNET_B5_SPEC.build;
/** EfficientNetB6: 43,265,143 parameters, 528x528, pixels in [0, 255]. */
export const EfficientNetB6 = EFFICIENTNET_B6_SPEC.build;
/** EfficientNetB7: 66,658,687 parameters, 600x600, pixels in [0, 255]. */
export const EfficientNetB7 = EFFICIENTNET_B7_SPEC.build;

/** `keras.applications.efficientnet`: a pass-through `preprocessInput` and ImageNet decoding. */
export const efficientnet = applicationModule(EFFICIENTNET_B0_SPEC);

/** The family, in Keras's order, for the registry. */
export const EFFICIENTNET_SPECS: readonly ApplicationSpec[] = [
  EFFICIENTNET_B0_SPEC,
  EFFICIENTNET_B1_SPEC,
  EFFICIENTNET_B2_SPEC,
  EFFICIENTNET_B3_SPEC,
  EFFICIENTNET_B4_SPEC,
  EFFICIENTNET_B5_SPEC,
  EFFICIENTNET_B6_SPEC,
  EFFICIENTNET_B7_SPEC,
];
