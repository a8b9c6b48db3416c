/**
 * EfficientNetV2B0 to B3 and EfficientNetV2S (Tan and Le, ICML 2021), as Keras's
 * `applications/efficientnet_v2.py` builds them: fused inverted residual blocks (one full
 * convolution instead of expand + depthwise) in the early stages, MBConv blocks with
 * squeeze-and-excitation later, swish throughout. The preprocessing is inside the model
 * (`includePreprocessing`), so the models take pixels in [0, 255] and
 * `efficientnetV2.preprocessInput` passes them through.
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { checkBoolean } from '../util/validate.js';
import {
  apply,
  featurePooling,
  finishModel,
  imageInput,
  resolveOptions,
  resolveWeights,
} from './build.js';
import {
  convInitializer,
  DENSE_KERNEL_INITIALIZER,
  dropPath,
  squeezeExcite,
} from './efficientnet.js';
import { obtainInputShape } from './input-shape.js';
import { KerasNames } from './keras-layers.js';
import { applicationModule } from './keras-module.js';
import { Normalization } from './normalization-layer.js';
import type { ApplicationOptions, ApplicationSpec, WeightSet } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/';
const BN_MOMENTUM = 0.9;

/** EfficientNetV2's options: the common ones plus Keras's `include_preprocessing`. */
export interface EfficientNetV2Options extends ApplicationOptions {
  /**
   * Whether the model preprocesses its [0, 255] input itself: ImageNet mean and std for the B
   * variants, [-1, 1] for S (Keras's `include_preprocessing`). Default true.
   */
  includePreprocessing?: boolean;
}

interface BlockArgs {
  repeats: number;
  filtersIn: number;
  filtersOut: number;
  expandRatio: number;
  seRatio: number;
  strides: number;
  /** Keras's `conv_type`: 1 for FusedMBConv, 0 for MBConv. All kernels are 3x3. */
  fused: boolean;
}

function row(
  repeats: number,
  filtersIn: number,
  filtersOut: number,
  expandRatio: number,
  seRatio: number,
  strides: number,
  fused: boolean,
): BlockArgs {
  return { repeats, filtersIn, filtersOut, expandRatio, seRatio, strides, fused };
}

/** Keras's `DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"]`, shared by B0 to B3. */
const B_BLOCKS: readonly BlockArgs[] = [
  row(1, 32, 16, 1, 0, 1, true),
  row(2, 16, 32, 4, 0, 2, true),
  row(2, 32, 48, 4, 0, 2, true),
  row(3, 48, 96, 4, 0.25, 2, false),
  row(5, 96, 112, 6, 0.25, 1, false),
  row(8, 112, 192, 6, 0.25, 2, false),
];

/** Keras's `DEFAULT_BLOCKS_ARGS["efficientnetv2-s"]`. */
const S_BLOCKS: readonly BlockArgs[] = [
  row(2, 24, 24, 1, 0, 1, true),
  row(4, 24, 48, 4, 0, 2, true),
  row(4, 48, 64, 4, 0, 2, true),
  row(6, 64, 128, 4, 0.25, 2, false),
  row(9, 128, 160, 6, 0.25, 1, false),
  row(15, 160, 256, 6, 0.25, 2, false),
];

function conv(filters: number, kernelSize: number, strides: number, name: string): tf.layers.Layer {
  return tf.layers.conv2d({
    filters,
    kernelSize,
    strides,
    padding: 'same',
    useBias: false,
    kernelInitializer: convInitializer(),
    name,
  });
}

function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, momentum: BN_MOMENTUM, name });
}

function swish(name: string): tf.layers.Layer {
  return tf.layers.activation({ activation: 'swish', name });
}

/** Keras's `MBConvBlock` and `FusedMBConvBlock`, by `args.fused`. */
function block(
  inputs: tf.SymbolicTensor,
  args: Omit<BlockArgs, 'repeats'>,
  dropRate: number,
  name: string,
): tf.SymbolicTensor {
  const { filtersIn, filtersOut, expandRatio, seRatio, strides, fused } = args;
  const filters = filtersIn * expandRatio;
  let x = inputs;
  if (expandRatio !== 1) {
    // The fused block's expansion is the 3x3 (strided) convolution itself.
    x = apply(conv(filters, fused ? 3 : 1, fused ? strides : 1, `${name}expand_conv`), x);
    x = apply(batchNorm(`${name}expand_bn`), x);
    x = apply(swish(`${name}expand_activation`), x);
  }
  if (!fused) {
    const depthwise = tf.layers.depthwiseConv2d({
      kernelSize: 3,
      strides,
      padding: 'same',
      useBias: false,
      depthwiseInitializer: convInitializer(),
      name: `${name}dwconv2`,
    });
    x = apply(depthwise, x);
    x = apply(batchNorm(`${name}bn`), x);
    x = apply(swish(`${name}activation`), x);
  }
  if (seRatio > 0 && seRatio <= 1) {
    x = squeezeExcite(x, Math.max(1, Math.trunc(filtersIn * seRatio)), name, 'swish');
  }
  // A fused block without expansion does its 3x3 (strided) convolution here.
  const projectKernel = fused && expandRatio === 1 ? 3 : 1;
  const projectStrides = fused && expandRatio === 1 ? strides : 1;
  x = apply(conv(filtersOut, projectKernel, projectStrides, `${name}project_conv`), x);
  x = apply(batchNorm(`${name}project_bn`), x);
  if (fused && expandRatio === 1) x = apply(swish(`${name}project_activation`), x);
  if (strides === 1 && filtersIn === filtersOut) {
    if (dropRate) x = apply(dropPath(dropRate, `${name}drop`), x);
    x = apply(tf.layers.add({ name: `${name}add` }), [x, inputs]);
  }
  return x;
}

interface Variant {
  width: number;
  depth: number;
  blocks: readonly BlockArgs[];
}

/** Keras's `EfficientNetV2(width_coefficient, depth_coefficient, default_size, ...)`. */
async function buildEfficientNetV2(
  spec: ApplicationSpec,
  variant: Variant,
  options: EfficientNetV2Options | undefined,
): Promise<tf.LayersModel> {
  await initBackend();
  const o = resolveOptions(spec.className, options);
  const includePreprocessing = checkBoolean(
    'includePreprocessing',
    options?.includePreprocessing ?? true,
  );
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

  // Keras's round_filters here has a minimum depth of 8 and no 10% rule.
  const roundFilters = (filters: number): number =>
    Math.max(8, Math.floor(Math.trunc(filters * variant.width + 4) / 8) * 8);
  const roundRepeats = (repeats: number): number => Math.ceil(variant.depth * repeats);

  const names = new KerasNames();
  const { image, inputs } = imageInput(o, shape);
  let x = image;
  if (includePreprocessing) {
    if (spec.name.startsWith('efficientnetv2-b') && shape[2] === 3) {
      x = apply(tf.layers.rescaling({ scale: 1.0 / 255, name: names.next('rescaling') }), x);
      const normalization = new Normalization({
        axis: 3,
        mean: [0.485, 0.456, 0.406],
        variance: [0.229 ** 2, 0.224 ** 2, 0.225 ** 2],
        name: names.next('normalization'),
      });
      x = apply(normalization, x);
    } else {
      const rescale = tf.layers.rescaling({
        scale: 1.0 / 128.0,
        offset: -1,
        name: names.next('rescaling'),
      });
      x = apply(rescale, x);
    }
  }
  x = apply(conv(roundFilters(variant.blocks[0]!.filtersIn), 3, 2, 'stem_conv'), x);
  x = apply(batchNorm('stem_bn'), x);
  x = apply(swish('stem_activation'), x);

  const dropConnectRate = 0.2;
  // Keras divides by the unscaled number of blocks here.
  const total = variant.blocks.reduce((sum, args) => sum + args.repeats, 0);
  let b = 0;
  variant.blocks.forEach((args, i) => {
    const filtersOut = roundFilters(args.filtersOut);
    let filtersIn = roundFilters(args.filtersIn);
    let strides = args.strides;
    for (let j = 0; j < roundRepeats(args.repeats); j++) {
      if (j > 0) {
        strides = 1;
        filtersIn = filtersOut;
      }
      const name = `block${i + 1}${String.fromCharCode(j + 97)}_`;
      x = block(
        x,
        { ...args, filtersIn, filtersOut, strides },
        (dropConnectRate * b) / total,
        name,
      );
      b += 1;
    }
  });

  x = apply(conv(roundFilters(1280), 1, 1, 'top_conv'), x);
  x = apply(batchNorm('top_bn'), x);
  x = apply(swish('top_activation'), x);
  if (o.includeTop) {
    x = apply(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), x);
    x = apply(tf.layers.dropout({ rate: 0.2, name: 'top_dropout' }), x);
    const dense = tf.layers.dense({
      units: o.classes,
      activation: o.classifierActivation,
      kernelInitializer: tf.initializers.varianceScaling(DENSE_KERNEL_INITIALIZER),
      biasInitializer: 'zeros',
      name: 'predictions',
    });
    x = apply(dense, x);
  } else {
    x = featurePooling(x, o.pooling, { avg: 'avg_pool', max: 'max_pool' });
  }
  return finishModel(inputs, x, o.name ?? spec.name, weights);
}

function weightSet(name: string, topHash: string, noTopHash: string): WeightSet {
  return {
    top: { url: `${BASE_URL}${name}.h5`, fileHash: topHash },
    noTop: { url: `${BASE_URL}${name}_notop.h5`, fileHash: noTopHash },
  };
}

function member(
  variant: string,
  scaling: Variant,
  defaultInputSize: number,
  hashes: [string, string],
  parameters: { top: number; noTop: number },
): ApplicationSpec {
  const name = `efficientnetv2-${variant.toLowerCase()}`;
  const spec: ApplicationSpec = {
    name,
    className: `EfficientNetV2${variant}`,
    build: (options) => buildEfficientNetV2(spec, scaling, options),
    preprocessMode: 'none',
    defaultInputSize,
    minInputSize: 32,
    weightSets: { imagenet: weightSet(name, ...hashes) },
    firstConvLayer: 'stem_conv',
    featureLayer: 'top_activation',
    classifierLayer: 'predictions',
    parameters,
  };
  return spec;
}

export const EFFICIENTNET_V2_B0_SPEC = member(
  'B0',
  { width: 1.0, depth: 1.0, blocks: B_BLOCKS },
  224,
  ['21ecbf6da12460d5c40bb2f29ceb2188', '893217f2bb855e2983157299931e43ff'],
  { top: 7_200_312, noTop: 5_919_312 },
);
export const EFFICIENTNET_V2_B1_SPEC = member(
  'B1',
  { width: 1.0, depth: 1.1, blocks: B_BLOCKS },
  240,
  ['069f0534ff22adf035c89e2d9547a9dc', '0e80663031ca32d657f9caa404b6ec37'],
  { top: 8_212_124, noTop: 6_931_124 },
);
export const EFFICIENTNET_V2_B2_SPEC = member(
  'B2',
  { width: 1.1, depth: 1.2, blocks: B_BLOCKS },
  260,
  ['424e49f28180edbde1e94797771950a7', '1dfe2e7a5d45b6632553a8961ea609eb'],
  { top: 10_178_374, noTop: 8_769_374 },
);
export const EFFICIENTNET_V2_B3_SPEC = member(
  'B3',
  { width: 1.2, depth: 1.4, blocks: B_BLOCKS },
  300,
  ['1f1fc43bd98a6e4fd8fdfd551e02c7a0', 'f6abf7b5849ac99a89b50dd3fd532856'],
  { top: 14_467_622, noTop: 12_930_622 },
);
export const EFFICIENTNET_V2_S_SPEC = member(
  'S',
  { width: 1.0, depth: 1.0, blocks: S_BLOCKS },
  384,
  ['e1d88a8495beba45748fedd0cecbe016', 'af0682fb74e8c54910f2d4393339c070'],
  { top: 21_612_360, noTop: 20_331_360 },
);

/**
 * EfficientNetV2B0: 7,200,312 parameters (5,919,312 without top), 224x224. Takes pixels in
 * [0, 255]: the preprocessing is inside the model.
 * @example
 * const backbone = await EfficientNetV2B0({ includeTop: false, pooling: 'avg' });
 */
export const EfficientNetV2B0: (options?: EfficientNetV2Options) => Promise<tf.LayersModel> =
  EFFICIENTNET_V2_B0_SPEC.build;
/** EfficientNetV2B1: 8,212,124 parameters, 240x240, pixels in [0, 255]. */
export const EfficientNetV2B1: (options?: EfficientNetV2Options) => Promise<tf.LayersModel> =
  EFFICIENTNET_V2_B1_SPEC.build;
/** EfficientNetV2B2: 10,178,374 parameters, 260x260, pixels in [0, 255]. */
export const EfficientNetV2B2: (options?: EfficientNetV2Options) => Promise<tf.LayersModel> =
  EFFICIENTNET_V2_B2_SPEC.build;
/** EfficientNetV2B3: 14,467,622 parameters, 300x300, pixels in [0, 255]. */
export const EfficientNetV2B3: (options?: EfficientNetV2Options) => Promise<tf.LayersModel> =
  EFFICIENTNET_V2_B3_SPEC.build;
/** EfficientNetV2S: 21,612,360 parameters, 384x384, pixels in [0, 255] (scaled to [-1, 1]). */
export const EfficientNetV2S: (options?: EfficientNetV2Options) => Promise<tf.LayersModel> =
  EFFICIENTNET_V2_S_SPEC.build;

/** `keras.applications.efficientnet_v2`: a pass-through `preprocessInput` and ImageNet decoding. */
export const efficientnetV2 = applicationModule(EFFICIENTNET_V2_B0_SPEC);

/** The family, in Keras's order, for the registry. */
export const EFFICIENTNET_V2_SPECS: readonly ApplicationSpec[] = [
  EFFICIENTNET_V2_B0_SPEC,
  EFFICIENTNET_V2_B1_SPEC,
  EFFICIENTNET_V2_B2_SPEC,
  EFFICIENTNET_V2_B3_SPEC,
  EFFICIENTNET_V2_S_SPEC,
];
