/**
 * ResNet50, ResNet101 and ResNet152 (He et al., CVPR 2015), as Keras's `applications/resnet.py`
 * builds them: a 7x7 stem, then four stacks of bottleneck residual blocks (`residual_block_v1`)
 * with 1x1-3x3-1x1 convolutions. The stem and top are Keras's `ResNet()`, shared with ResNetV2
 * (`resnet-v2.ts`), which differs only in its blocks and in pre-activation.
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
import { classifierTop, conv2d } from './keras-layers.js';
import { applicationModule } from './keras-module.js';
import type { ApplicationOptions, ApplicationSpec, WeightSet } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/resnet/';

/**
 * Keras's ResNet weight files for `weightsName` (`resnet50`, `resnet101v2`...), with the hashes of
 * its `WEIGHTS_HASHES` table (top, then no top).
 */
export function resnetWeights(weightsName: string, topHash: string, noTopHash: string): WeightSet {
  const file = `${BASE_URL}${weightsName}_weights_tf_dim_ordering_tf_kernels`;
  return {
    top: { url: `${file}.h5`, fileHash: topHash },
    noTop: { url: `${file}_notop.h5`, fileHash: noTopHash },
  };
}

// Keras's ResNet batch norms: epsilon 1.001e-5 (the original Caffe models'), default momentum.
export function resnetBatchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, epsilon: 1.001e-5, momentum: 0.99, name });
}

function conv(
  filters: number,
  kernelSize: number,
  name: string,
  strides = 1,
  padding: 'valid' | 'same' = 'valid',
): tf.layers.Layer {
  return conv2d({ filters, kernelSize, strides, padding, useBias: true, name });
}

function relu(name: string): tf.layers.Layer {
  return tf.layers.activation({ activation: 'relu', name });
}

function zeroPadding(size: number, name: string): tf.layers.Layer {
  return tf.layers.zeroPadding2d({
    padding: [
      [size, size],
      [size, size],
    ],
    name,
  });
}

/**
 * Keras's `ResNet()`: checks, stem, the family's stacks, and the top. `preact` is ResNetV2's
 * pre-activation: no batch norm after the stem convolution, one (`post_bn`) after the last stack.
 */
export async function buildResNet(
  spec: ApplicationSpec,
  options: ApplicationOptions | undefined,
  preact: boolean,
  stacks: (x: tf.SymbolicTensor) => tf.SymbolicTensor,
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

  const { image, inputs } = imageInput(o, shape);
  let x = apply(zeroPadding(3, 'conv1_pad'), image);
  x = apply(conv(64, 7, 'conv1_conv', 2), x);
  if (!preact) {
    x = apply(resnetBatchNorm('conv1_bn'), x);
    x = apply(relu('conv1_relu'), x);
  }
  x = apply(zeroPadding(1, 'pool1_pad'), x);
  x = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }), x);

  x = stacks(x);

  if (preact) {
    x = apply(resnetBatchNorm('post_bn'), x);
    x = apply(relu('post_relu'), x);
  }
  if (o.includeTop) {
    x = classifierTop(x, o);
  } else {
    x = featurePooling(x, o.pooling, { avg: 'avg_pool', max: 'max_pool' });
  }
  return finishModel(inputs, x, o.name ?? spec.name, weights);
}

/** Keras's `residual_block_v1`: a bottleneck block, with a projection shortcut when asked. */
function residualBlockV1(
  x: tf.SymbolicTensor,
  filters: number,
  name: string,
  stride = 1,
  convShortcut = true,
): tf.SymbolicTensor {
  let shortcut = x;
  if (convShortcut) {
    shortcut = apply(conv(4 * filters, 1, `${name}_0_conv`, stride), x);
    shortcut = apply(resnetBatchNorm(`${name}_0_bn`), shortcut);
  }
  x = apply(conv(filters, 1, `${name}_1_conv`, stride), x);
  x = apply(resnetBatchNorm(`${name}_1_bn`), x);
  x = apply(relu(`${name}_1_relu`), x);
  x = apply(conv(filters, 3, `${name}_2_conv`, 1, 'same'), x);
  x = apply(resnetBatchNorm(`${name}_2_bn`), x);
  x = apply(relu(`${name}_2_relu`), x);
  x = apply(conv(4 * filters, 1, `${name}_3_conv`), x);
  x = apply(resnetBatchNorm(`${name}_3_bn`), x);
  x = apply(tf.layers.add({ name: `${name}_add` }), [shortcut, x]);
  return apply(relu(`${name}_out`), x);
}

/** Keras's `stack_residual_blocks_v1`: a projection block, then identity blocks. */
function stackV1(
  x: tf.SymbolicTensor,
  filters: number,
  blocks: number,
  name: string,
  stride1 = 2,
): tf.SymbolicTensor {
  x = residualBlockV1(x, filters, `${name}_block1`, stride1);
  for (let i = 2; i <= blocks; i++) x = residualBlockV1(x, filters, `${name}_block${i}`, 1, false);
  return x;
}

/** Blocks in the stacks conv2 to conv5 (64, 128, 256 and 512 bottleneck filters). */
type Depths = readonly [number, number, number, number];

function stacksV1([conv2, conv3, conv4, conv5]: Depths): (
  x: tf.SymbolicTensor,
) => tf.SymbolicTensor {
  return (x) => {
    x = stackV1(x, 64, conv2, 'conv2', 1);
    x = stackV1(x, 128, conv3, 'conv3');
    x = stackV1(x, 256, conv4, 'conv4');
    return stackV1(x, 512, conv5, 'conv5');
  };
}

/**
 * ResNet50: 25,636,712 parameters (23,587,712 without top). Expects `resnet50.preprocessInput`
 * ('caffe' mode) input.
 * @example
 * const backbone = await ResNet50({ includeTop: false, pooling: 'avg' });
 */
export async function ResNet50(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildResNet(RESNET50_SPEC, options, false, stacksV1([3, 4, 6, 3]));
}

/**
 * ResNet101: 44,707,176 parameters (42,658,176 without top). Expects `resnet.preprocessInput`
 * ('caffe' mode) input.
 * @example
 * const backbone = await ResNet101({ includeTop: false, pooling: 'avg' });
 */
export async function ResNet101(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildResNet(RESNET101_SPEC, options, false, stacksV1([3, 4, 23, 3]));
}

/**
 * ResNet152: 60,419,944 parameters (58,370,944 without top). Expects `resnet.preprocessInput`
 * ('caffe' mode) input.
 * @example
 * const backbone = await ResNet152({ includeTop: false, pooling: 'avg' });
 */
export async function ResNet152(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildResNet(RESNET152_SPEC, options, false, stacksV1([3, 8, 36, 3]));
}

/** The spec fields ResNet and ResNetV2 share. */
export const RESNET_COMMON = {
  defaultInputSize: 224,
  minInputSize: 32,
  firstConvLayer: 'conv1_conv',
  classifierLayer: 'predictions',
} as const;

export const RESNET50_SPEC: ApplicationSpec = {
  ...RESNET_COMMON,
  name: 'resnet50',
  className: 'ResNet50',
  build: ResNet50,
  preprocessMode: 'caffe',
  weightSets: {
    imagenet: resnetWeights(
      'resnet50',
      '2cb95161c43110f7111970584f804107',
      '4d473c1dd8becc155b73f8504c6f6626',
    ),
  },
  featureLayer: 'conv5_block3_out',
  parameters: { top: 25_636_712, noTop: 23_587_712 },
};

export const RESNET101_SPEC: ApplicationSpec = {
  ...RESNET_COMMON,
  name: 'resnet101',
  className: 'ResNet101',
  build: ResNet101,
  preprocessMode: 'caffe',
  weightSets: {
    imagenet: resnetWeights(
      'resnet101',
      'f1aeb4b969a6efcfb50fad2f0c20cfc5',
      '88cf7a10940856eca736dc7b7e228a21',
    ),
  },
  featureLayer: 'conv5_block3_out',
  parameters: { top: 44_707_176, noTop: 42_658_176 },
};

export const RESNET152_SPEC: ApplicationSpec = {
  ...RESNET_COMMON,
  name: 'resnet152',
  className: 'ResNet152',
  build: ResNet152,
  preprocessMode: 'caffe',
  weightSets: {
    imagenet: resnetWeights(
      'resnet152',
      '100835be76be38e30d865e96f2aaae62',
      'ee4c566cf9a93f14d82f913c2dc6dd0c',
    ),
  },
  featureLayer: 'conv5_block3_out',
  parameters: { top: 60_419_944, noTop: 58_370_944 },
};

/** `keras.applications.resnet50`: its preprocessing ('caffe') and ImageNet decoding. */
export const resnet50 = applicationModule(RESNET50_SPEC);

/** `keras.applications.resnet` (ResNet50, 101, 152): preprocessing ('caffe') and decoding. */
export const resnet = applicationModule(RESNET101_SPEC);

/** The family, in Keras's order, for the registry. */
export const RESNET_SPECS: readonly ApplicationSpec[] = [
  RESNET50_SPEC,
  RESNET101_SPEC,
  RESNET152_SPEC,
];
