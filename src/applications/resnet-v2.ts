/**
 * ResNet50V2, ResNet101V2 and ResNet152V2 (He et al., "Identity Mappings in Deep Residual
 * Networks", ECCV 2016), as Keras's `applications/resnet_v2.py` builds them: Keras's `ResNet()`
 * stem and top (`resnet.ts`) around pre-activation bottleneck blocks (`residual_block_v2`), which
 * downsample in the last block of a stack rather than the first.
 */

import * as tf from '../engine/tf.js';
import { apply } from './build.js';
import { conv2d, KerasNames } from './keras-layers.js';
import { applicationModule } from './keras-module.js';
import { buildResNet, RESNET_COMMON, resnetBatchNorm, resnetWeights } from './resnet.js';
import type { ApplicationOptions, ApplicationSpec } from './spec.js';

/**
 * Keras's `residual_block_v2`: batch norm and relu first, shared by the shortcut projection and the
 * residual branch. Without a projection, a strided block's shortcut is a 1x1 max pooling, which
 * Keras leaves unnamed (`names` numbers it as Keras does).
 */
function residualBlockV2(
  x: tf.SymbolicTensor,
  filters: number,
  name: string,
  names: KerasNames,
  stride = 1,
  convShortcut = false,
): tf.SymbolicTensor {
  let preact = apply(resnetBatchNorm(`${name}_preact_bn`), x);
  preact = apply(tf.layers.activation({ activation: 'relu', name: `${name}_preact_relu` }), preact);

  let shortcut = x;
  if (convShortcut) {
    const projection = conv2d({
      filters: 4 * filters,
      kernelSize: 1,
      strides: stride,
      name: `${name}_0_conv`,
    });
    shortcut = apply(projection, preact);
  } else if (stride > 1) {
    const pool = tf.layers.maxPooling2d({
      poolSize: 1,
      strides: stride,
      name: names.next('max_pooling2d'),
    });
    shortcut = apply(pool, x);
  }

  let y = apply(conv2d({ filters, kernelSize: 1, useBias: false, name: `${name}_1_conv` }), preact);
  y = apply(resnetBatchNorm(`${name}_1_bn`), y);
  y = apply(tf.layers.activation({ activation: 'relu', name: `${name}_1_relu` }), y);
  const pad = tf.layers.zeroPadding2d({
    padding: [
      [1, 1],
      [1, 1],
    ],
    name: `${name}_2_pad`,
  });
  y = apply(pad, y);
  y = apply(
    conv2d({
      filters,
      kernelSize: 3,
      strides: stride,
      useBias: false,
      name: `${name}_2_conv`,
    }),
    y,
  );
  y = apply(resnetBatchNorm(`${name}_2_bn`), y);
  y = apply(tf.layers.activation({ activation: 'relu', name: `${name}_2_relu` }), y);
  y = apply(conv2d({ filters: 4 * filters, kernelSize: 1, name: `${name}_3_conv` }), y);
  return apply(tf.layers.add({ name: `${name}_out` }), [shortcut, y]);
}

/** Keras's `stack_residual_blocks_v2`: a projection block first, the strided block last. */
function stackV2(
  x: tf.SymbolicTensor,
  filters: number,
  blocks: number,
  name: string,
  names: KerasNames,
  stride1 = 2,
): tf.SymbolicTensor {
  x = residualBlockV2(x, filters, `${name}_block1`, names, 1, true);
  for (let i = 2; i < blocks; i++) x = residualBlockV2(x, filters, `${name}_block${i}`, names);
  return residualBlockV2(x, filters, `${name}_block${blocks}`, names, stride1);
}

/** Blocks in the stacks conv2 to conv5 (64, 128, 256 and 512 bottleneck filters). */
function stacksV2([conv2, conv3, conv4, conv5]: readonly [number, number, number, number]): (
  x: tf.SymbolicTensor,
) => tf.SymbolicTensor {
  return (x) => {
    const names = new KerasNames();
    x = stackV2(x, 64, conv2, 'conv2', names);
    x = stackV2(x, 128, conv3, 'conv3', names);
    x = stackV2(x, 256, conv4, 'conv4', names);
    return stackV2(x, 512, conv5, 'conv5', names, 1);
  };
}

/**
 * ResNet50V2: 25,613,800 parameters (23,564,800 without top). Expects `resnetV2.preprocessInput`
 * ('tf' mode: pixels scaled to [-1, 1]) input.
 * @example
 * const backbone = await ResNet50V2({ includeTop: false, pooling: 'avg' });
 */
export async function ResNet50V2(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildResNet(RESNET50_V2_SPEC, options, true, stacksV2([3, 4, 6, 3]));
}

/**
 * ResNet101V2: 44,675,560 parameters (42,626,560 without top). Expects
 * `resnetV2.preprocessInput` ('tf' mode) input.
 * @example
 * const backbone = await ResNet101V2({ includeTop: false, pooling: 'avg' });
 */
export async function ResNet101V2(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildResNet(RESNET101_V2_SPEC, options, true, stacksV2([3, 4, 23, 3]));
}

/**
 * ResNet152V2: 60,380,648 parameters (58,331,648 without top). Expects
 * `resnetV2.preprocessInput` ('tf' mode) input.
 * @example
 * const backbone = await ResNet152V2({ includeTop: false, pooling: 'avg' });
 */
export async function ResNet152V2(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildResNet(RESNET152_V2_SPEC, options, true, stacksV2([3, 8, 36, 3]));
}

export const RESNET50_V2_SPEC: ApplicationSpec = {
  ...RESNET_COMMON,
  name: 'resnet50v2',
  className: 'ResNet50V2',
  build: ResNet50V2,
  preprocessMode: 'tf',
  weightSets: {
    imagenet: resnetWeights(
      'resnet50v2',
      '3ef43a0b657b3be2300d5770ece849e0',
      'fac2f116257151a9d068a22e544a4917',
    ),
  },
  featureLayer: 'post_relu',
  parameters: { top: 25_613_800, noTop: 23_564_800 },
};

export const RESNET101_V2_SPEC: ApplicationSpec = {
  ...RESNET_COMMON,
  name: 'resnet101v2',
  className: 'ResNet101V2',
  build: ResNet101V2,
  preprocessMode: 'tf',
  weightSets: {
    imagenet: resnetWeights(
      'resnet101v2',
      '6343647c601c52e1368623803854d971',
      'c0ed64b8031c3730f411d2eb4eea35b5',
    ),
  },
  featureLayer: 'post_relu',
  parameters: { top: 44_675_560, noTop: 42_626_560 },
};

export const RESNET152_V2_SPEC: ApplicationSpec = {
  ...RESNET_COMMON,
  name: 'resnet152v2',
  className: 'ResNet152V2',
  build: ResNet152V2,
  preprocessMode: 'tf',
  weightSets: {
    imagenet: resnetWeights(
      'resnet152v2',
      'a49b44d1979771252814e80f8ec446f9',
      'ed17cf2e0169df9d443503ef94b23b33',
    ),
  },
  featureLayer: 'post_relu',
  parameters: { top: 60_380_648, noTop: 58_331_648 },
};

/** `keras.applications.resnet_v2`: its preprocessing ('tf') and ImageNet decoding. */
export const resnetV2 = applicationModule(RESNET50_V2_SPEC);

/** The family, in Keras's order, for the registry. */
export const RESNET_V2_SPECS: readonly ApplicationSpec[] = [
  RESNET50_V2_SPEC,
  RESNET101_V2_SPEC,
  RESNET152_V2_SPEC,
];
