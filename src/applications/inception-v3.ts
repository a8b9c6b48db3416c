/**
 * InceptionV3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR
 * 2016), as Keras's `applications/inception_v3.py` builds it: a convolutional stem, then eleven
 * Inception modules (`mixed0` to `mixed10`) of parallel 1x1, factorized 5x5 / 7x7 / 3x3 and pooling
 * branches, concatenated. Every convolution is followed by a batch norm without scale and a relu.
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

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/';

/**
 * The graph under construction. Keras names only the `mixed*` concatenations; every other layer
 * gets Keras's generated name (`conv2d_5`, `batch_normalization_5`, `activation_5`...), numbered in
 * the order Keras creates them, which is the order of the calls below.
 */
class Builder {
  private readonly names = new KerasNames();

  /** Keras's `conv2d_bn`: convolution without bias, batch norm without scale, relu. */
  convBn(
    x: tf.SymbolicTensor,
    filters: number,
    rows: number,
    cols: number,
    padding: 'same' | 'valid' = 'same',
    strides = 1,
  ): tf.SymbolicTensor {
    const conv = conv2d({
      filters,
      kernelSize: [rows, cols],
      strides,
      padding,
      useBias: false,
      name: this.names.next('conv2d'),
    });
    const bn = tf.layers.batchNormalization({
      axis: 3,
      scale: false,
      epsilon: 1e-3,
      momentum: 0.99,
      name: this.names.next('batch_normalization'),
    });
    const relu = tf.layers.activation({ activation: 'relu', name: this.names.next('activation') });
    return apply(relu, apply(bn, apply(conv, x)));
  }

  maxPool(x: tf.SymbolicTensor): tf.SymbolicTensor {
    const pool = tf.layers.maxPooling2d({
      poolSize: 3,
      strides: 2,
      name: this.names.next('max_pooling2d'),
    });
    return apply(pool, x);
  }

  /** The 3x3 average pooling branch, stride 1, 'same' padding. */
  avgPool(x: tf.SymbolicTensor): tf.SymbolicTensor {
    const pool = tf.layers.averagePooling2d({
      poolSize: 3,
      strides: 1,
      padding: 'same',
      name: this.names.next('average_pooling2d'),
    });
    return apply(pool, x);
  }

  concat(branches: tf.SymbolicTensor[], name?: string): tf.SymbolicTensor {
    const layer = tf.layers.concatenate({ axis: 3, name: name ?? this.names.next('concatenate') });
    return apply(layer, branches);
  }
}

/** The stem and the eleven Inception modules, as in Keras's `InceptionV3`. */
function inceptionV3Features(b: Builder, image: tf.SymbolicTensor): tf.SymbolicTensor {
  let x = b.convBn(image, 32, 3, 3, 'valid', 2);
  x = b.convBn(x, 32, 3, 3, 'valid');
  x = b.convBn(x, 64, 3, 3);
  x = b.maxPool(x);
  x = b.convBn(x, 80, 1, 1, 'valid');
  x = b.convBn(x, 192, 3, 3, 'valid');
  x = b.maxPool(x);

  // mixed0, 1, 2: 35 x 35 x 256, 288, 288 at 299x299.
  [32, 64, 64].forEach((poolFilters, i) => {
    const branch1x1 = b.convBn(x, 64, 1, 1);
    let branch5x5 = b.convBn(x, 48, 1, 1);
    branch5x5 = b.convBn(branch5x5, 64, 5, 5);
    let branch3x3dbl = b.convBn(x, 64, 1, 1);
    branch3x3dbl = b.convBn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = b.convBn(branch3x3dbl, 96, 3, 3);
    const branchPool = b.convBn(b.avgPool(x), poolFilters, 1, 1);
    x = b.concat([branch1x1, branch5x5, branch3x3dbl, branchPool], `mixed${i}`);
  });

  // mixed3: 17 x 17 x 768.
  {
    const branch3x3 = b.convBn(x, 384, 3, 3, 'valid', 2);
    let branch3x3dbl = b.convBn(x, 64, 1, 1);
    branch3x3dbl = b.convBn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = b.convBn(branch3x3dbl, 96, 3, 3, 'valid', 2);
    const branchPool = b.maxPool(x);
    x = b.concat([branch3x3, branch3x3dbl, branchPool], 'mixed3');
  }

  // mixed4 to 7: 17 x 17 x 768, with 7x7 convolutions factorized into 1x7 and 7x1.
  [128, 160, 160, 192].forEach((width, i) => {
    const branch1x1 = b.convBn(x, 192, 1, 1);
    let branch7x7 = b.convBn(x, width, 1, 1);
    branch7x7 = b.convBn(branch7x7, width, 1, 7);
    branch7x7 = b.convBn(branch7x7, 192, 7, 1);
    let branch7x7dbl = b.convBn(x, width, 1, 1);
    branch7x7dbl = b.convBn(branch7x7dbl, width, 7, 1);
    branch7x7dbl = b.convBn(branch7x7dbl, width, 1, 7);
    branch7x7dbl = b.convBn(branch7x7dbl, width, 7, 1);
    branch7x7dbl = b.convBn(branch7x7dbl, 192, 1, 7);
    const branchPool = b.convBn(b.avgPool(x), 192, 1, 1);
    x = b.concat([branch1x1, branch7x7, branch7x7dbl, branchPool], `mixed${4 + i}`);
  });

  // mixed8: 8 x 8 x 1280.
  {
    let branch3x3 = b.convBn(x, 192, 1, 1);
    branch3x3 = b.convBn(branch3x3, 320, 3, 3, 'valid', 2);
    let branch7x7x3 = b.convBn(x, 192, 1, 1);
    branch7x7x3 = b.convBn(branch7x7x3, 192, 1, 7);
    branch7x7x3 = b.convBn(branch7x7x3, 192, 7, 1);
    branch7x7x3 = b.convBn(branch7x7x3, 192, 3, 3, 'valid', 2);
    const branchPool = b.maxPool(x);
    x = b.concat([branch3x3, branch7x7x3, branchPool], 'mixed8');
  }

  // mixed9, 10: 8 x 8 x 2048.
  for (let i = 0; i < 2; i++) {
    const branch1x1 = b.convBn(x, 320, 1, 1);
    const branch3x3In = b.convBn(x, 384, 1, 1);
    const branch3x3 = b.concat(
      [b.convBn(branch3x3In, 384, 1, 3), b.convBn(branch3x3In, 384, 3, 1)],
      `mixed9_${i}`,
    );
    let branch3x3dblIn = b.convBn(x, 448, 1, 1);
    branch3x3dblIn = b.convBn(branch3x3dblIn, 384, 3, 3);
    const branch3x3dbl = b.concat([
      b.convBn(branch3x3dblIn, 384, 1, 3),
      b.convBn(branch3x3dblIn, 384, 3, 1),
    ]);
    const branchPool = b.convBn(b.avgPool(x), 192, 1, 1);
    x = b.concat([branch1x1, branch3x3, branch3x3dbl, branchPool], `mixed${9 + i}`);
  }
  return x;
}

/**
 * InceptionV3: 23,851,784 parameters (21,802,784 without top), 299x299 by default, at least 75x75.
 * Expects `inceptionV3.preprocessInput` ('tf' mode: pixels scaled to [-1, 1]) input.
 * @example
 * const backbone = await InceptionV3({ includeTop: false, pooling: 'avg' });
 */
export async function InceptionV3(options?: ApplicationOptions): Promise<tf.LayersModel> {
  await initBackend();
  const spec = INCEPTION_V3_SPEC;
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
  let x = inceptionV3Features(new Builder(), image);
  if (o.includeTop) {
    x = classifierTop(x, o);
  } else {
    // Keras leaves these unnamed: the first of their class.
    x = featurePooling(x, o.pooling);
  }
  return finishModel(inputs, x, o.name ?? spec.name, weights);
}

export const INCEPTION_V3_SPEC: ApplicationSpec = {
  name: 'inception_v3',
  className: 'InceptionV3',
  build: InceptionV3,
  preprocessMode: 'tf',
  defaultInputSize: 299,
  minInputSize: 75,
  weightSets: {
    imagenet: {
      top: {
        url: `${BASE_URL}inception_v3_weights_tf_dim_ordering_tf_kernels.h5`,
        fileHash: '9a0d58056eeedaa3f26cb7ebd46da564',
      },
      noTop: {
        url: `${BASE_URL}inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`,
        fileHash: 'bcbd6486424b2319ff4ef7d526e38f63',
      },
    },
  },
  // The stem convolution and the last concatenation, under the names Keras generates.
  firstConvLayer: 'conv2d',
  featureLayer: 'mixed10',
  classifierLayer: 'predictions',
  parameters: { top: 23_851_784, noTop: 21_802_784 },
};

/** `keras.applications.inception_v3`: its preprocessing ('tf') and ImageNet decoding. */
export const inceptionV3 = applicationModule(INCEPTION_V3_SPEC);
