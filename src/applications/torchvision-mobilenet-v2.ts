/**
 * MobileNetV2 as torchvision builds it (`torchvision/models/mobilenetv2.py`; timm's
 * `mobilenetv2_100` is the same network), under Keras's layer names so that `.safetensors` state
 * dicts load by name through `loadWeights`. The layers are Keras's; what changes the numbers is
 * the padding of the stride-2 convolutions (PyTorch pads one pixel on every side, where Keras pads
 * only bottom and right for even sizes) and PyTorch's batch norm epsilon, 1e-5.
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import {
  apply,
  checkPositiveNumber,
  featurePooling,
  finishModel,
  imageInput,
  resolveOptions,
} from './build.js';
import { obtainInputShape } from './input-shape.js';
import { applicationModule } from './keras-module.js';
import { type MobileNetV2Options, makeDivisible } from './mobilenet-v2.js';
import type { ApplicationSpec } from './spec.js';

/** timm's MobileNetV2 1.0 ImageNet weights (RandAugment recipe), in safetensors. */
const IMAGENET_SOURCE = 'hf:timm/mobilenetv2_100.ra_in1k';

function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: -1, epsilon: 1e-5, momentum: 0.9, name });
}

function relu6(name: string): tf.layers.Layer {
  return tf.layers.reLU({ maxValue: 6, name });
}

function pointwise(filters: number, name: string): tf.layers.Layer {
  return tf.layers.conv2d({ filters, kernelSize: 1, padding: 'valid', useBias: false, name });
}

function pad1(name: string): tf.layers.Layer {
  return tf.layers.zeroPadding2d({
    padding: [
      [1, 1],
      [1, 1],
    ],
    name,
  });
}

/** torchvision's `InvertedResidual`, with Keras's names (block 0 is `expanded_conv_`). */
function invertedResidual(
  inputs: tf.SymbolicTensor,
  expansion: number,
  stride: number,
  filters: number,
  blockId: number,
): tf.SymbolicTensor {
  const inChannels = inputs.shape[3]!;
  let x = inputs;
  const prefix = blockId ? `block_${blockId}_` : 'expanded_conv_';
  if (blockId) {
    x = apply(pointwise(expansion * inChannels, `${prefix}expand`), x);
    x = apply(batchNorm(`${prefix}expand_BN`), x);
    x = apply(relu6(`${prefix}expand_relu`), x);
  }
  x = apply(pad1(`${prefix}pad`), x);
  x = apply(
    tf.layers.depthwiseConv2d({
      kernelSize: 3,
      strides: stride,
      useBias: false,
      padding: 'valid',
      name: `${prefix}depthwise`,
    }),
    x,
  );
  x = apply(batchNorm(`${prefix}depthwise_BN`), x);
  x = apply(relu6(`${prefix}depthwise_relu`), x);
  x = apply(pointwise(filters, `${prefix}project`), x);
  x = apply(batchNorm(`${prefix}project_BN`), x);
  if (inChannels === filters && stride === 1) {
    return apply(tf.layers.add({ name: `${prefix}add` }), [inputs, x]);
  }
  return x;
}

/** Expansion, output channels, repeats and first stride of each stage (torchvision's table). */
const STAGES: ReadonlyArray<[number, number, number, number]> = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

/**
 * torchvision's MobileNetV2: 3,538,984 parameters at alpha 1.0 as Keras counts them (PyTorch's
 * 3,504,872 leaves out the batch norm statistics), 2,257,984 without top. Expects
 * 'torch' preprocessing. `weights: 'imagenet'` loads timm's `mobilenetv2_100.ra_in1k` from the
 * Hugging Face Hub; a path to a torchvision or timm `.safetensors` state dict loads that.
 * @example
 * const model = await TorchvisionMobileNetV2({ weights: 'mobilenet_v2.safetensors' });
 */
export async function TorchvisionMobileNetV2(
  options?: MobileNetV2Options,
): Promise<tf.LayersModel> {
  await initBackend();
  const spec = TORCHVISION_MOBILENET_V2_SPEC;
  const o = resolveOptions(spec.className, options);
  const alpha = checkPositiveNumber('alpha', options?.alpha ?? 1.0);
  const shape = obtainInputShape({
    model: spec.className,
    inputShape: o.inputShape,
    defaultSize: spec.defaultInputSize,
    minSize: spec.minInputSize,
    requireFlatten: o.includeTop,
    weights: o.weights,
  });
  const { image, inputs } = imageInput(o, shape);
  let x = apply(pad1('Conv1_pad'), image);
  x = apply(
    tf.layers.conv2d({
      filters: makeDivisible(32 * alpha, 8),
      kernelSize: 3,
      strides: 2,
      padding: 'valid',
      useBias: false,
      name: 'Conv1',
    }),
    x,
  );
  x = apply(batchNorm('bn_Conv1'), x);
  x = apply(relu6('Conv1_relu'), x);
  let blockId = 0;
  for (const [expansion, channels, repeats, firstStride] of STAGES) {
    const filters = makeDivisible(channels * alpha, 8);
    for (let i = 0; i < repeats; i++) {
      x = invertedResidual(x, expansion, i === 0 ? firstStride : 1, filters, blockId++);
    }
  }
  x = apply(pointwise(makeDivisible(1280 * Math.max(1.0, alpha), 8), 'Conv_1'), x);
  x = apply(batchNorm('Conv_1_bn'), x);
  x = apply(relu6('out_relu'), x);
  if (o.includeTop) {
    x = apply(tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }), x);
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
  const weights = o.weights === 'imagenet' ? IMAGENET_SOURCE : (o.weights ?? undefined);
  return finishModel(
    inputs,
    x,
    o.name ?? `mobilenetv2_torchvision_${alpha.toFixed(2)}_${shape[0] ?? 'None'}`,
    weights,
  );
}

export const TORCHVISION_MOBILENET_V2_SPEC: ApplicationSpec = {
  name: 'mobilenet_v2_torchvision',
  className: 'TorchvisionMobileNetV2',
  build: TorchvisionMobileNetV2,
  preprocessMode: 'torch',
  defaultInputSize: 224,
  minInputSize: 32,
  weightSets: {
    imagenet: {
      top: {
        url: 'https://huggingface.co/timm/mobilenetv2_100.ra_in1k/resolve/main/model.safetensors',
      },
      noTop: {
        url: 'https://huggingface.co/timm/mobilenetv2_100.ra_in1k/resolve/main/model.safetensors',
      },
    },
  },
  firstConvLayer: 'Conv1',
  featureLayer: 'out_relu',
  classifierLayer: 'predictions',
  parameters: { top: 3_538_984, noTop: 2_257_984 },
};

/** torchvision MobileNetV2's preprocessing ('torch') and ImageNet decoding. */
export const torchvisionMobilenetV2 = applicationModule(TORCHVISION_MOBILENET_V2_SPEC);
