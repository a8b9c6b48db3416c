/**
 * VGG16 and VGG19 (Simonyan & Zisserman, ICLR 2015), as Keras's `applications/vgg16.py` and
 * `vgg19.py` build them: five blocks of 3x3 convolutions and 2x2 max pooling, then three dense
 * layers. The two differ only in convolutions per block.
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

const BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/';

interface VggVariant {
  className: string;
  defaultName: string;
  /** Convolutions in each of the five blocks. */
  convsPerBlock: readonly number[];
}

const BLOCK_FILTERS = [64, 128, 256, 512, 512];

async function buildVgg(
  spec: ApplicationSpec,
  variant: VggVariant,
  options: ApplicationOptions | undefined,
): Promise<tf.LayersModel> {
  await initBackend();
  const o = resolveOptions(variant.className, options);
  const shape = obtainInputShape({
    model: variant.className,
    inputShape: o.inputShape,
    defaultSize: spec.defaultInputSize,
    minSize: spec.minInputSize,
    requireFlatten: o.includeTop,
    weights: o.weights,
  });
  const weightsSet = spec.weightSets.imagenet;
  const weights = await resolveWeights(o, o.includeTop ? weightsSet.top : weightsSet.noTop);

  const { image, inputs } = imageInput(o, shape);
  let x = image;
  variant.convsPerBlock.forEach((convs, b) => {
    for (let c = 1; c <= convs; c++) {
      const conv = tf.layers.conv2d({
        filters: BLOCK_FILTERS[b]!,
        kernelSize: [3, 3],
        activation: 'relu',
        padding: 'same',
        name: `block${b + 1}_conv${c}`,
      });
      x = apply(conv, x);
    }
    x = apply(
      tf.layers.maxPooling2d({ poolSize: [2, 2], strides: [2, 2], name: `block${b + 1}_pool` }),
      x,
    );
  });

  if (o.includeTop) {
    x = apply(tf.layers.flatten({ name: 'flatten' }), x);
    x = apply(tf.layers.dense({ units: 4096, activation: 'relu', name: 'fc1' }), x);
    x = apply(tf.layers.dense({ units: 4096, activation: 'relu', name: 'fc2' }), x);
    x = apply(
      tf.layers.dense({
        units: o.classes,
        activation: o.classifierActivation,
        name: 'predictions',
      }),
      x,
    );
  } else {
    x = featurePooling(x, o.pooling);
  }
  return finishModel(inputs, x, o.name ?? variant.defaultName, weights);
}

/**
 * VGG16: 13 convolutions and 3 dense layers, 138,357,544 parameters (14,714,688 without top).
 * Expects `vgg16.preprocessInput` ('caffe' mode) input.
 * @example
 * const backbone = await VGG16({ includeTop: false, inputShape: [224, 224, 3] });
 */
export function VGG16(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildVgg(
    VGG16_SPEC,
    { className: 'VGG16', defaultName: 'vgg16', convsPerBlock: [2, 2, 3, 3, 3] },
    options,
  );
}

/**
 * VGG19: 16 convolutions and 3 dense layers, 143,667,240 parameters (20,024,384 without top).
 * Expects `vgg19.preprocessInput` ('caffe' mode) input.
 * @example
 * const backbone = await VGG19({ includeTop: false, weights: null, pooling: 'avg' });
 */
export function VGG19(options?: ApplicationOptions): Promise<tf.LayersModel> {
  return buildVgg(
    VGG19_SPEC,
    { className: 'VGG19', defaultName: 'vgg19', convsPerBlock: [2, 2, 4, 4, 4] },
    options,
  );
}

export const VGG16_SPEC: ApplicationSpec = {
  name: 'vgg16',
  className: 'VGG16',
  build: VGG16,
  preprocessMode: 'caffe',
  defaultInputSize: 224,
  minInputSize: 32,
  weightSets: {
    imagenet: {
      top: {
        url: `${BASE_URL}vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5`,
        fileHash: '64373286793e3c8b2b4e3219cbf3544b',
      },
      noTop: {
        url: `${BASE_URL}vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`,
        fileHash: '6d6bbae143d832006294945121d1f1fc',
      },
    },
  },
  firstConvLayer: 'block1_conv1',
  featureLayer: 'block5_pool',
  classifierLayer: 'predictions',
  parameters: { top: 138_357_544, noTop: 14_714_688 },
};

export const VGG19_SPEC: ApplicationSpec = {
  name: 'vgg19',
  className: 'VGG19',
  build: VGG19,
  preprocessMode: 'caffe',
  defaultInputSize: 224,
  minInputSize: 32,
  weightSets: {
    imagenet: {
      top: {
        url: `${BASE_URL}vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5`,
        fileHash: 'cbe5617147190e668d6c5d5026f83318',
      },
      noTop: {
        url: `${BASE_URL}vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`,
        fileHash: '253f8cb515780f3b799900260a226db6',
      },
    },
  },
  firstConvLayer: 'block1_conv1',
  featureLayer: 'block5_pool',
  classifierLayer: 'predictions',
  parameters: { top: 143_667_240, noTop: 20_024_384 },
};

/** `keras.applications.vgg16`: its preprocessing ('caffe') and ImageNet decoding. */
export const vgg16 = applicationModule(VGG16_SPEC);

/** `keras.applications.vgg19`: its preprocessing ('caffe') and ImageNet decoding. */
export const vgg19 = applicationModule(VGG19_SPEC);
