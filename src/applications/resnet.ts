/**
 * ResNet50 (He et al., CVPR 2015), as Keras's `applications/resnet.py` builds it: a 7x7 stem, then
 * four stacks of bottleneck residual blocks (`residual_block_v1`) with 1x1-3x3-1x1 convolutions.
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
import { applicationModule } from './keras-module.js';
import type { ApplicationOptions, ApplicationSpec } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/resnet/';

// Keras's ResNet batch norms: epsilon 1.001e-5 (the original Caffe models'), default momentum.
function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, epsilon: 1.001e-5, momentum: 0.99, name });
}

function conv(
  filters: number,
  kernelSize: number,
  name: string,
  strides = 1,
  padding: 'valid' | 'same' = 'valid',
): tf.layers.Layer {
  return tf.layers.conv2d({ filters, kernelSize, strides, padding, useBias: true, name });
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
    shortcut = apply(batchNorm(`${name}_0_bn`), shortcut);
  }
  x = apply(conv(filters, 1, `${name}_1_conv`, stride), x);
  x = apply(batchNorm(`${name}_1_bn`), x);
  x = apply(tf.layers.activation({ activation: 'relu', name: `${name}_1_relu` }), x);
  x = apply(conv(filters, 3, `${name}_2_conv`, 1, 'same'), x);
  x = apply(batchNorm(`${name}_2_bn`), x);
  x = apply(tf.layers.activation({ activation: 'relu', name: `${name}_2_relu` }), x);
  x = apply(conv(4 * filters, 1, `${name}_3_conv`), x);
  x = apply(batchNorm(`${name}_3_bn`), x);
  x = apply(tf.layers.add({ name: `${name}_add` }), [shortcut, x]);
  return apply(tf.layers.activation({ activation: 'relu', name: `${name}_out` }), x);
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

/**
 * ResNet50: 25,636,712 parameters (23,587,712 without top). Expects `resnet50.preprocessInput`
 * ('caffe' mode) input.
 * @example
 * const backbone = await ResNet50({ includeTop: false, pooling: 'avg' });
 */
export async function ResNet50(options?: ApplicationOptions): Promise<tf.LayersModel> {
  await initBackend();
  const spec = RESNET50_SPEC;
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
  let x = apply(
    tf.layers.zeroPadding2d({
      padding: [
        [3, 3],
        [3, 3],
      ],
      name: 'conv1_pad',
    }),
    image,
  );
  x = apply(conv(64, 7, 'conv1_conv', 2), x);
  x = apply(batchNorm('conv1_bn'), x);
  x = apply(tf.layers.activation({ activation: 'relu', name: 'conv1_relu' }), x);
  x = apply(
    tf.layers.zeroPadding2d({
      padding: [
        [1, 1],
        [1, 1],
      ],
      name: 'pool1_pad',
    }),
    x,
  );
  x = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }), x);

  x = stackV1(x, 64, 3, 'conv2', 1);
  x = stackV1(x, 128, 4, 'conv3');
  x = stackV1(x, 256, 6, 'conv4');
  x = stackV1(x, 512, 3, 'conv5');

  if (o.includeTop) {
    x = apply(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), x);
    x = apply(
      tf.layers.dense({
        units: o.classes,
        activation: o.classifierActivation,
        name: 'predictions',
      }),
      x,
    );
  } else {
    x = featurePooling(x, o.pooling, { avg: 'avg_pool', max: 'max_pool' });
  }
  return finishModel(inputs, x, o.name ?? 'resnet50', weights);
}

export const RESNET50_SPEC: ApplicationSpec = {
  name: 'resnet50',
  className: 'ResNet50',
  build: ResNet50,
  preprocessMode: 'caffe',
  defaultInputSize: 224,
  minInputSize: 32,
  weightSets: {
    imagenet: {
      top: {
        url: `${BASE_URL}resnet50_weights_tf_dim_ordering_tf_kernels.h5`,
        fileHash: '2cb95161c43110f7111970584f804107',
      },
      noTop: {
        url: `${BASE_URL}resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`,
        fileHash: '4d473c1dd8becc155b73f8504c6f6626',
      },
    },
  },
  firstConvLayer: 'conv1_conv',
  featureLayer: 'conv5_block3_out',
  classifierLayer: 'predictions',
};

/** `keras.applications.resnet50`: its preprocessing ('caffe') and ImageNet decoding. */
export const resnet50 = applicationModule(RESNET50_SPEC);
