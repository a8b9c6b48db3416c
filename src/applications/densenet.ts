/**
 * DenseNet121, DenseNet169 and DenseNet201 (Huang et al., CVPR 2017), as Keras's
 * `applications/densenet.py` builds them: a 7x7 stem, then four dense blocks (each layer's 32 new
 * channels concatenated to all before) joined by transition blocks that halve the channels and the
 * resolution.
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
import { classifierTop, conv2d, KerasNames } from './keras-layers.js';
import { applicationModule } from './keras-module.js';
import type { ApplicationOptions, ApplicationSpec, WeightSet } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/densenet/';
const GROWTH_RATE = 32;

function weightSet(name: string, topHash: string, noTopHash: string): WeightSet {
  const file = `${BASE_URL}${name}_weights_tf_dim_ordering_tf_kernels`;
  return {
    top: { url: `${file}.h5`, fileHash: topHash },
    noTop: { url: `${file}_notop.h5`, fileHash: noTopHash },
  };
}

// Keras's DenseNet batch norms: epsilon 1.001e-5, default momentum.
function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, epsilon: 1.001e-5, momentum: 0.99, name });
}

function relu(name: string): tf.layers.Layer {
  return tf.layers.activation({ activation: 'relu', name });
}

function conv(
  filters: number,
  kernelSize: number,
  name: string,
  options: { strides?: number; padding?: 'same' | 'valid' } = {},
): tf.layers.Layer {
  return conv2d({ filters, kernelSize, useBias: false, name, ...options });
}

/** Keras's `conv_block`: bottleneck 1x1 to 4k channels, 3x3 to k, concatenated to the input. */
function convBlock(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  let x1 = apply(batchNorm(`${name}_0_bn`), x);
  x1 = apply(relu(`${name}_0_relu`), x1);
  x1 = apply(conv(4 * GROWTH_RATE, 1, `${name}_1_conv`), x1);
  x1 = apply(batchNorm(`${name}_1_bn`), x1);
  x1 = apply(relu(`${name}_1_relu`), x1);
  x1 = apply(conv(GROWTH_RATE, 3, `${name}_2_conv`, { padding: 'same' }), x1);
  return apply(tf.layers.concatenate({ axis: 3, name: `${name}_concat` }), [x, x1]);
}

/** Keras's `dense_block`. */
function denseBlock(x: tf.SymbolicTensor, blocks: number, name: string): tf.SymbolicTensor {
  for (let i = 1; i <= blocks; i++) x = convBlock(x, `${name}_block${i}`);
  return x;
}

/** Keras's `transition_block` with reduction 0.5: half the channels, half the resolution. */
function transitionBlock(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  x = apply(batchNorm(`${name}_bn`), x);
  x = apply(relu(`${name}_relu`), x);
  x = apply(conv(Math.trunc(x.shape[3]! * 0.5), 1, `${name}_conv`), x);
  return apply(tf.layers.averagePooling2d({ poolSize: 2, strides: 2, name: `${name}_pool` }), x);
}

/** Keras's `DenseNet(blocks, ...)`: `blocks` are the layers of the four dense blocks. */
async function buildDenseNet(
  spec: ApplicationSpec,
  blocks: readonly [number, number, number, number],
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

  // Keras leaves the two stem paddings unnamed.
  const names = new KerasNames();
  const pad = (size: number): tf.layers.Layer =>
    tf.layers.zeroPadding2d({
      padding: [
        [size, size],
        [size, size],
      ],
      name: names.next('zero_padding2d'),
    });

  const { image, inputs } = imageInput(o, shape);
  let x = apply(pad(3), image);
  x = apply(conv(64, 7, 'conv1_conv', { strides: 2 }), x);
  x = apply(batchNorm('conv1_bn'), x);
  x = apply(relu('conv1_relu'), x);
  x = apply(pad(1), x);
  x = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1' }), x);

  x = denseBlock(x, blocks[0], 'conv2');
  x = transitionBlock(x, 'pool2');
  x = denseBlock(x, blocks[1], 'conv3');
  x = transitionBlock(x, 'pool3');
  x = denseBlock(x, blocks[2], 'conv4');
  x = transitionBlock(x, 'pool4');
  x = denseBlock(x, blocks[3], 'conv5');
  x = apply(batchNorm('bn'), x);
  x = apply(relu('relu'), x);

  if (o.includeTop) {
    x = classifierTop(x, o);
  } else {
    x = featurePooling(x, o.pooling, { avg: 'avg_pool', max: 'max_pool' });
  }
  return finishModel(inputs, x, o.name ?? spec.name, weights);
}

/**
 * DenseNet121: 8,062,504 parameters (7,037,504 without top). Expects `densenet.preprocessInput`
 * ('torch' mode: scaled to [0, 1], then normalized with ImageNet's mean and std) input.
 * @example
 * const backbone = await DenseNet121({ includeTop: false, pooling: 'avg' });
 */
export async function DenseNet121(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildDenseNet(DENSENET121_SPEC, [6, 12, 24, 16], options);
}

/**
 * DenseNet169: 14,307,880 parameters (12,642,880 without top). Expects
 * `densenet.preprocessInput` ('torch' mode) input.
 * @example
 * const backbone = await DenseNet169({ includeTop: false, pooling: 'avg' });
 */
export async function DenseNet169(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildDenseNet(DENSENET169_SPEC, [6, 12, 32, 32], options);
}

/**
 * DenseNet201: 20,242,984 parameters (18,321,984 without top). Expects
 * `densenet.preprocessInput` ('torch' mode) input.
 * @example
 * const backbone = await DenseNet201({ includeTop: false, pooling: 'avg' });
 */
export async function DenseNet201(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildDenseNet(DENSENET201_SPEC, [6, 12, 48, 32], options);
}

const COMMON = {
  preprocessMode: 'torch',
  defaultInputSize: 224,
  minInputSize: 32,
  firstConvLayer: 'conv1_conv',
  featureLayer: 'relu',
  classifierLayer: 'predictions',
} as const;

export const DENSENET121_SPEC: ApplicationSpec = {
  ...COMMON,
  name: 'densenet121',
  className: 'DenseNet121',
  build: DenseNet121,
  weightSets: {
    imagenet: weightSet(
      'densenet121',
      '9d60b8095a5708f2dcce2bca79d332c7',
      '30ee3e1110167f948a6b9946edeeb738',
    ),
  },
  parameters: { top: 8_062_504, noTop: 7_037_504 },
};

export const DENSENET169_SPEC: ApplicationSpec = {
  ...COMMON,
  name: 'densenet169',
  className: 'DenseNet169',
  build: DenseNet169,
  weightSets: {
    imagenet: weightSet(
      'densenet169',
      'd699b8f76981ab1b30698df4c175e90b',
      'b8c4d4c20dd625c148057b9ff1c1176b',
    ),
  },
  parameters: { top: 14_307_880, noTop: 12_642_880 },
};

export const DENSENET201_SPEC: ApplicationSpec = {
  ...COMMON,
  name: 'densenet201',
  className: 'DenseNet201',
  build: DenseNet201,
  weightSets: {
    imagenet: weightSet(
      'densenet201',
      '1ceb130c1ea1b78c3bf6114dbdfd8807',
      'c13680b51ded0fb44dff2d8f86ac8bb1',
    ),
  },
  parameters: { top: 20_242_984, noTop: 18_321_984 },
};

/** `keras.applications.densenet`: its preprocessing ('torch') and ImageNet decoding. */
export const densenet = applicationModule(DENSENET121_SPEC);

/** The family, in Keras's order, for the registry. */
export const DENSENET_SPECS: readonly ApplicationSpec[] = [
  DENSENET121_SPEC,
  DENSENET169_SPEC,
  DENSENET201_SPEC,
];
