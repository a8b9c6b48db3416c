/**
 * Xception (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017),
 * as Keras's `applications/xception.py` builds it: an entry flow of two convolutions and three
 * strided separable-convolution blocks with 1x1 projection shortcuts, a middle flow of eight
 * residual blocks of three separable convolutions, and an exit flow.
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
import type { ApplicationOptions, ApplicationSpec } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/xception/';

// Keras's defaults: epsilon 1e-3, momentum 0.99.
function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: -1, epsilon: 1e-3, momentum: 0.99, name });
}

function relu(name: string): tf.layers.Layer {
  return tf.layers.activation({ activation: 'relu', name });
}

function sepConv(filters: number, name: string): tf.layers.Layer {
  return tf.layers.separableConv2d({
    filters,
    kernelSize: 3,
    padding: 'same',
    useBias: false,
    name,
  });
}

function blockPool(name: string): tf.layers.Layer {
  return tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name });
}

/**
 * The graph under construction. The shortcut projections, their batch norms and the additions are
 * unnamed in Keras: they get the names Keras generates (`conv2d`, `batch_normalization`, `add`...).
 */
class Builder {
  readonly names = new KerasNames();

  /** A strided 1x1 projection of `x` with its batch norm: the shortcut of a downsampling block. */
  projection(x: tf.SymbolicTensor, filters: number): tf.SymbolicTensor {
    const conv = conv2d({
      filters,
      kernelSize: 1,
      strides: 2,
      padding: 'same',
      useBias: false,
      name: this.names.next('conv2d'),
    });
    return apply(batchNorm(this.names.next('batch_normalization')), apply(conv, x));
  }

  add(x: tf.SymbolicTensor, residual: tf.SymbolicTensor): tf.SymbolicTensor {
    return apply(tf.layers.add({ name: this.names.next('add') }), [x, residual]);
  }

  /**
   * Entry-flow blocks 3 and 4 and exit-flow block 13: relu, separable conv, batch norm twice, then a
   * strided max pooling added to the projection of the block's input.
   */
  downsamplingBlock(
    x: tf.SymbolicTensor,
    block: number,
    filters: [number, number],
  ): tf.SymbolicTensor {
    const residual = this.projection(x, filters[1]);
    const prefix = `block${block}`;
    x = apply(relu(`${prefix}_sepconv1_act`), x);
    x = apply(sepConv(filters[0], `${prefix}_sepconv1`), x);
    x = apply(batchNorm(`${prefix}_sepconv1_bn`), x);
    x = apply(relu(`${prefix}_sepconv2_act`), x);
    x = apply(sepConv(filters[1], `${prefix}_sepconv2`), x);
    x = apply(batchNorm(`${prefix}_sepconv2_bn`), x);
    x = apply(blockPool(`${prefix}_pool`), x);
    return this.add(x, residual);
  }
}

function xceptionFeatures(image: tf.SymbolicTensor): tf.SymbolicTensor {
  const b = new Builder();
  // Entry flow.
  let x = apply(
    conv2d({
      filters: 32,
      kernelSize: 3,
      strides: 2,
      useBias: false,
      name: 'block1_conv1',
    }),
    image,
  );
  x = apply(batchNorm('block1_conv1_bn'), x);
  x = apply(relu('block1_conv1_act'), x);
  x = apply(conv2d({ filters: 64, kernelSize: 3, useBias: false, name: 'block1_conv2' }), x);
  x = apply(batchNorm('block1_conv2_bn'), x);
  x = apply(relu('block1_conv2_act'), x);

  // Block 2 has no relu before its first separable convolution (the stem's relu precedes it).
  const residual = b.projection(x, 128);
  x = apply(sepConv(128, 'block2_sepconv1'), x);
  x = apply(batchNorm('block2_sepconv1_bn'), x);
  x = apply(relu('block2_sepconv2_act'), x);
  x = apply(sepConv(128, 'block2_sepconv2'), x);
  x = apply(batchNorm('block2_sepconv2_bn'), x);
  x = apply(blockPool('block2_pool'), x);
  x = b.add(x, residual);

  x = b.downsamplingBlock(x, 3, [256, 256]);
  x = b.downsamplingBlock(x, 4, [728, 728]);

  // Middle flow: eight identity residual blocks.
  for (let block = 5; block <= 12; block++) {
    const shortcut = x;
    for (let i = 1; i <= 3; i++) {
      x = apply(relu(`block${block}_sepconv${i}_act`), x);
      x = apply(sepConv(728, `block${block}_sepconv${i}`), x);
      x = apply(batchNorm(`block${block}_sepconv${i}_bn`), x);
    }
    x = b.add(x, shortcut);
  }

  // Exit flow.
  x = b.downsamplingBlock(x, 13, [728, 1024]);
  x = apply(sepConv(1536, 'block14_sepconv1'), x);
  x = apply(batchNorm('block14_sepconv1_bn'), x);
  x = apply(relu('block14_sepconv1_act'), x);
  x = apply(sepConv(2048, 'block14_sepconv2'), x);
  x = apply(batchNorm('block14_sepconv2_bn'), x);
  return apply(relu('block14_sepconv2_act'), x);
}

/**
 * Xception: 22,910,480 parameters (20,861,480 without top), 299x299 by default, at least 71x71.
 * Expects `xception.preprocessInput` ('tf' mode: pixels scaled to [-1, 1]) input.
 * @example
 * const backbone = await Xception({ includeTop: false, pooling: 'avg' });
 */
export async function Xception(options?: ApplicationOptions): Promise<tf.LayersModel> {
  await initBackend();
  const spec = XCEPTION_SPEC;
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
  let x = xceptionFeatures(image);
  if (o.includeTop) {
    x = classifierTop(x, o);
  } else {
    // Keras leaves these unnamed: the first of their class.
    x = featurePooling(x, o.pooling);
  }
  return finishModel(inputs, x, o.name ?? spec.name, weights);
}

export const XCEPTION_SPEC: ApplicationSpec = {
  name: 'xception',
  className: 'Xception',
  build: Xception,
  preprocessMode: 'tf',
  defaultInputSize: 299,
  minInputSize: 71,
  weightSets: {
    imagenet: {
      top: {
        url: `${BASE_URL}xception_weights_tf_dim_ordering_tf_kernels.h5`,
        fileHash: '0a58e3b7378bc2990ea3b43d5981f1f6',
      },
      noTop: {
        url: `${BASE_URL}xception_weights_tf_dim_ordering_tf_kernels_notop.h5`,
        fileHash: 'b0042744bf5b25fce3cb969f33bebb97',
      },
    },
  },
  firstConvLayer: 'block1_conv1',
  featureLayer: 'block14_sepconv2_act',
  classifierLayer: 'predictions',
  parameters: { top: 22_910_480, noTop: 20_861_480 },
};

/** `keras.applications.xception`: its preprocessing ('tf') and ImageNet decoding. */
export const xception = applicationModule(XCEPTION_SPEC);
