/**
 * NASNetMobile (Zoph et al., CVPR 2018), as Keras's `applications/nasnet.py` builds it: a strided
 * stem, two stem reduction cells, then three stacks of four normal cells separated by reduction
 * cells, the cells found by neural architecture search (separable convolutions and poolings
 * summed in pairs, concatenated).
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import {
  apply,
  featurePooling,
  finishModel,
  imageInput,
  resolveOptions,
  resolveWeights,
} from './build.js';
import { correctPad } from './efficientnet.js';
import { obtainInputShape } from './input-shape.js';
import { KerasNames } from './keras-layers.js';
import { applicationModule } from './keras-module.js';
import type { ApplicationOptions, ApplicationSpec } from './spec.js';

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/nasnet/';

// Keras's NASNet batch norms: momentum 0.9997, epsilon 1e-3.
function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: -1, momentum: 0.9997, epsilon: 1e-3, name });
}

/** Keras's 1x1 projections here use he_normal. */
function conv1x1(filters: number, name: string): tf.layers.Layer {
  return tf.layers.conv2d({
    filters,
    kernelSize: 1,
    padding: 'same',
    useBias: false,
    kernelInitializer: 'heNormal',
    name,
  });
}

/** The cells' shared state: Keras's generated names, in Keras's creation order. */
class Cells {
  readonly names = new KerasNames();

  relu(x: tf.SymbolicTensor, name?: string): tf.SymbolicTensor {
    const layer = tf.layers.activation({
      activation: 'relu',
      name: name ?? this.names.next('activation'),
    });
    return apply(layer, x);
  }

  /** Keras's `_separable_conv_block`: (relu, separable conv, batch norm) twice. */
  separableConvBlock(
    ip: tf.SymbolicTensor,
    filters: number,
    kernelSize: number,
    strides: number,
    blockId: string,
  ): tf.SymbolicTensor {
    let x = this.relu(ip);
    if (strides === 2) {
      const pad = correctPad(x, kernelSize);
      x = apply(
        tf.layers.zeroPadding2d({ padding: pad, name: `separable_conv_1_pad_${blockId}` }),
        x,
      );
    }
    const separable = (name: string, s: number, padding: 'same' | 'valid'): tf.layers.Layer =>
      tf.layers.separableConv2d({
        filters,
        kernelSize,
        strides: s,
        padding,
        useBias: false,
        depthwiseInitializer: 'glorotUniform',
        pointwiseInitializer: 'glorotUniform',
        name,
      });
    x = apply(
      separable(`separable_conv_1_${blockId}`, strides, strides === 2 ? 'valid' : 'same'),
      x,
    );
    x = apply(batchNorm(`separable_conv_1_bn_${blockId}`), x);
    x = this.relu(x);
    x = apply(separable(`separable_conv_2_${blockId}`, 1, 'same'), x);
    return apply(batchNorm(`separable_conv_2_bn_${blockId}`), x);
  }

  /** Keras's `_adjust_block`: brings the previous cell's output to this cell's size and width. */
  adjustBlock(
    p: tf.SymbolicTensor | null,
    ip: tf.SymbolicTensor,
    filters: number,
    blockId: string,
  ): tf.SymbolicTensor {
    if (p === null) return ip;
    if (p.shape[2] !== ip.shape[2]) {
      p = this.relu(p, `adjust_relu_1_${blockId}`);
      const pool = (name: string): tf.layers.Layer =>
        tf.layers.averagePooling2d({ poolSize: 1, strides: 2, padding: 'valid', name });
      let p1 = apply(pool(`adjust_avg_pool_1_${blockId}`), p);
      p1 = apply(conv1x1(Math.floor(filters / 2), `adjust_conv_1_${blockId}`), p1);
      // The second path sees the map shifted by one pixel.
      const padding = tf.layers.zeroPadding2d({
        padding: [
          [0, 1],
          [0, 1],
        ],
        name: this.names.next('zero_padding2d'),
      });
      let p2 = apply(padding, p);
      const crop = tf.layers.cropping2D({
        cropping: [
          [1, 0],
          [1, 0],
        ],
        name: this.names.next('cropping2d'),
      });
      p2 = apply(crop, p2);
      p2 = apply(pool(`adjust_avg_pool_2_${blockId}`), p2);
      p2 = apply(conv1x1(Math.floor(filters / 2), `adjust_conv_2_${blockId}`), p2);
      const concat = tf.layers.concatenate({ axis: -1, name: this.names.next('concatenate') });
      p = apply(concat, [p1, p2]);
      return apply(batchNorm(`adjust_bn_${blockId}`), p);
    }
    if (p.shape[3] !== filters) {
      p = this.relu(p);
      p = apply(conv1x1(filters, `adjust_conv_projection_${blockId}`), p);
      return apply(batchNorm(`adjust_bn_${blockId}`), p);
    }
    return p;
  }

  private avgPool(strides: number, padding: 'same' | 'valid', name: string): tf.layers.Layer {
    return tf.layers.averagePooling2d({ poolSize: 3, strides, padding, name });
  }

  private add(inputs: tf.SymbolicTensor[], name: string): tf.SymbolicTensor {
    return apply(tf.layers.add({ name }), inputs);
  }

  /** Keras's `_normal_a_cell`; returns the cell's output and its input (the next `p`). */
  normalCell(
    ip: tf.SymbolicTensor,
    pIn: tf.SymbolicTensor | null,
    filters: number,
    id: string,
  ): [tf.SymbolicTensor, tf.SymbolicTensor] {
    const p = this.adjustBlock(pIn, ip, filters, id);
    let h = this.relu(ip);
    h = apply(conv1x1(filters, `normal_conv_1_${id}`), h);
    h = apply(batchNorm(`normal_bn_1_${id}`), h);
    const x1 = this.add(
      [
        this.separableConvBlock(h, filters, 5, 1, `normal_left1_${id}`),
        this.separableConvBlock(p, filters, 3, 1, `normal_right1_${id}`),
      ],
      `normal_add_1_${id}`,
    );
    const x2 = this.add(
      [
        this.separableConvBlock(p, filters, 5, 1, `normal_left2_${id}`),
        this.separableConvBlock(p, filters, 3, 1, `normal_right2_${id}`),
      ],
      `normal_add_2_${id}`,
    );
    const x3 = this.add(
      [apply(this.avgPool(1, 'same', `normal_left3_${id}`), h), p],
      `normal_add_3_${id}`,
    );
    const x4 = this.add(
      [
        apply(this.avgPool(1, 'same', `normal_left4_${id}`), p),
        apply(this.avgPool(1, 'same', `normal_right4_${id}`), p),
      ],
      `normal_add_4_${id}`,
    );
    const x5 = this.add(
      [this.separableConvBlock(h, filters, 3, 1, `normal_left5_${id}`), h],
      `normal_add_5_${id}`,
    );
    const concat = tf.layers.concatenate({ axis: -1, name: `normal_concat_${id}` });
    return [apply(concat, [p, x1, x2, x3, x4, x5]), ip];
  }

  /** Keras's `_reduction_a_cell` (its layer names included, `reduction_add3_` and all). */
  reductionCell(
    ip: tf.SymbolicTensor,
    pIn: tf.SymbolicTensor | null,
    filters: number,
    id: string,
  ): [tf.SymbolicTensor, tf.SymbolicTensor] {
    const p = this.adjustBlock(pIn, ip, filters, id);
    let h = this.relu(ip);
    h = apply(conv1x1(filters, `reduction_conv_1_${id}`), h);
    h = apply(batchNorm(`reduction_bn_1_${id}`), h);
    const h3 = apply(
      tf.layers.zeroPadding2d({ padding: correctPad(h, 3), name: `reduction_pad_1_${id}` }),
      h,
    );
    const x1 = this.add(
      [
        this.separableConvBlock(h, filters, 5, 2, `reduction_left1_${id}`),
        this.separableConvBlock(p, filters, 7, 2, `reduction_right1_${id}`),
      ],
      `reduction_add_1_${id}`,
    );
    const maxPool = (name: string): tf.layers.Layer =>
      tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name });
    const x2 = this.add(
      [
        apply(maxPool(`reduction_left2_${id}`), h3),
        this.separableConvBlock(p, filters, 7, 2, `reduction_right2_${id}`),
      ],
      `reduction_add_2_${id}`,
    );
    const x3 = this.add(
      [
        apply(this.avgPool(2, 'valid', `reduction_left3_${id}`), h3),
        this.separableConvBlock(p, filters, 5, 2, `reduction_right3_${id}`),
      ],
      `reduction_add3_${id}`,
    );
    const x4 = this.add(
      [x2, apply(this.avgPool(1, 'same', `reduction_left4_${id}`), x1)],
      this.names.next('add'),
    );
    const x5 = this.add(
      [
        this.separableConvBlock(x1, filters, 3, 1, `reduction_left4_${id}`),
        apply(maxPool(`reduction_right5_${id}`), h3),
      ],
      `reduction_add4_${id}`,
    );
    const concat = tf.layers.concatenate({ axis: -1, name: `reduction_concat_${id}` });
    return [apply(concat, [x2, x3, x4, x5]), ip];
  }
}

/**
 * NASNetMobile: 5,326,716 parameters (4,269,716 without top). Expects `nasnet.preprocessInput`
 * ('tf' mode) input at 224x224 (also without top, unless `inputShape` says otherwise).
 * @example
 * const backbone = await NASNetMobile({ includeTop: false, pooling: 'avg' });
 */
export async function NASNetMobile(options?: ApplicationOptions): Promise<tf.LayersModel> {
  await initBackend();
  const spec = NASNET_MOBILE_SPEC;
  const o = resolveOptions(spec.className, options);
  const given = o.inputShape ?? (o.includeTop ? undefined : ([224, 224, 3] as const));
  if (given && (given[0] === null || given[1] === null) && o.weights === 'imagenet') {
    throw new XferError(
      'INVALID_ARGUMENT',
      `NASNetMobile with weights 'imagenet' needs a fixed height and width, but received inputShape [${given.join(', ')}]. Pass both sizes, or weights: null.`,
      { inputShape: given },
    );
  }
  const shape = obtainInputShape({
    model: spec.className,
    inputShape: given ? [given[0], given[1], given[2]] : undefined,
    defaultSize: spec.defaultInputSize,
    minSize: spec.minInputSize,
    requireFlatten: o.includeTop,
    weights: o.weights,
  });
  const set = spec.weightSets.imagenet;
  const weights = await resolveWeights(o, o.includeTop ? set.top : set.noTop);

  // NASNetMobile: penultimate filters 1056, 4 blocks per stack, 32 stem filters, multiplier 2.
  const filters = 1056 / 24;
  const multiplier = 2;
  const blocks = 4;
  const cells = new Cells();
  const { image, inputs } = imageInput(o, shape);
  const stem = tf.layers.conv2d({
    filters: 32,
    kernelSize: 3,
    strides: 2,
    padding: 'valid',
    useBias: false,
    kernelInitializer: 'heNormal',
    name: 'stem_conv1',
  });
  let x = apply(stem, image);
  x = apply(batchNorm('stem_bn1'), x);
  let p: tf.SymbolicTensor | null = null;
  [x, p] = cells.reductionCell(x, p, filters / multiplier ** 2, 'stem_1');
  [x, p] = cells.reductionCell(x, p, filters / multiplier, 'stem_2');
  for (let i = 0; i < blocks; i++) [x, p] = cells.normalCell(x, p, filters, `${i}`);
  // Without skip_reduction (NASNetMobile), the reduction cell's input becomes the next p.
  [x, p] = cells.reductionCell(x, p, filters * multiplier, `reduce_${blocks}`);
  for (let i = 0; i < blocks; i++) {
    [x, p] = cells.normalCell(x, p, filters * multiplier, `${blocks + i + 1}`);
  }
  [x, p] = cells.reductionCell(x, p, filters * multiplier ** 2, `reduce_${2 * blocks}`);
  for (let i = 0; i < blocks; i++) {
    [x, p] = cells.normalCell(x, p, filters * multiplier ** 2, `${2 * blocks + i + 1}`);
  }
  x = cells.relu(x);

  if (o.includeTop) {
    const pool = tf.layers.globalAveragePooling2d({
      name: cells.names.next('global_average_pooling2d'),
    });
    x = apply(pool, x);
    const dense = tf.layers.dense({
      units: o.classes,
      activation: o.classifierActivation,
      kernelInitializer: 'glorotUniform',
      name: 'predictions',
    });
    x = apply(dense, x);
  } else {
    x = featurePooling(x, o.pooling, {
      avg: cells.names.next('global_average_pooling2d'),
      max: cells.names.next('global_max_pooling2d'),
    });
  }
  return finishModel(inputs, x, o.name ?? spec.name, weights);
}

export const NASNET_MOBILE_SPEC: ApplicationSpec = {
  name: 'nasnet_mobile',
  className: 'NASNetMobile',
  build: NASNetMobile,
  preprocessMode: 'tf',
  defaultInputSize: 224,
  minInputSize: 32,
  weightSets: {
    imagenet: {
      top: { url: `${BASE_URL}NASNet-mobile.h5`, fileHash: '020fb642bf7360b370c678b08e0adf61' },
      noTop: {
        url: `${BASE_URL}NASNet-mobile-no-top.h5`,
        fileHash: '1ed92395b5b598bdda52abe5c0dbfd63',
      },
    },
  },
  firstConvLayer: 'stem_conv1',
  // The relu after the last normal cell: Keras's 188th unnamed Activation.
  featureLayer: 'activation_187',
  classifierLayer: 'predictions',
  parameters: { top: 5_326_716, noTop: 4_269_716 },
};

/** `keras.applications.nasnet`: its preprocessing ('tf') and ImageNet decoding. */
export const nasnet = applicationModule(NASNET_MOBILE_SPEC);
