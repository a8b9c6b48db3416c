/**
 * ResNet50 as torchvision builds it (`torchvision/models/resnet.py`, "ResNet v1.5"), under Keras's
 * layer names so that `.safetensors` state dicts (torchvision's, timm's) load by name through
 * `loadWeights`. It differs from Keras's ResNet50 (v1) in three ways that change the numbers:
 * the stride of a downsampling block sits on its 3x3 convolution, not on the first 1x1; every 3x3
 * convolution pads one pixel on each side (PyTorch's symmetric padding, where TF's 'same' with
 * stride 2 pads only bottom and right); and convolutions have no bias. Its batch norms use
 * PyTorch's epsilon, 1e-5.
 */

import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { apply, featurePooling, finishModel, imageInput, resolveOptions } from './build.js';
import { obtainInputShape } from './input-shape.js';
import { applicationModule } from './keras-module.js';
import type { ApplicationOptions, ApplicationSpec } from './spec.js';

/** torchvision's ImageNet weights (IMAGENET1K_V1), as timm re-publishes them in safetensors. */
const IMAGENET_SOURCE = 'hf:timm/resnet50.tv_in1k';

function batchNorm(name: string): tf.layers.Layer {
  return tf.layers.batchNormalization({ axis: 3, epsilon: 1e-5, momentum: 0.9, name });
}

function conv(filters: number, kernelSize: number, name: string, strides = 1): tf.layers.Layer {
  return tf.layers.conv2d({ filters, kernelSize, strides, padding: 'valid', useBias: false, name });
}

function pad(amount: number, name: string): tf.layers.Layer {
  return tf.layers.zeroPadding2d({
    padding: [
      [amount, amount],
      [amount, amount],
    ],
    name,
  });
}

/** torchvision's `Bottleneck`: 1x1, 3x3 (strided), 1x1, with a projection shortcut when asked. */
function bottleneck(
  x: tf.SymbolicTensor,
  filters: number,
  name: string,
  stride: number,
  convShortcut: boolean,
): tf.SymbolicTensor {
  let shortcut = x;
  if (convShortcut) {
    shortcut = apply(conv(4 * filters, 1, `${name}_0_conv`, stride), x);
    shortcut = apply(batchNorm(`${name}_0_bn`), shortcut);
  }
  x = apply(conv(filters, 1, `${name}_1_conv`), x);
  x = apply(batchNorm(`${name}_1_bn`), x);
  x = apply(tf.layers.activation({ activation: 'relu', name: `${name}_1_relu` }), x);
  x = apply(pad(1, `${name}_2_pad`), x);
  x = apply(conv(filters, 3, `${name}_2_conv`, stride), x);
  x = apply(batchNorm(`${name}_2_bn`), x);
  x = apply(tf.layers.activation({ activation: 'relu', name: `${name}_2_relu` }), x);
  x = apply(conv(4 * filters, 1, `${name}_3_conv`), x);
  x = apply(batchNorm(`${name}_3_bn`), x);
  x = apply(tf.layers.add({ name: `${name}_add` }), [shortcut, x]);
  return apply(tf.layers.activation({ activation: 'relu', name: `${name}_out` }), x);
}

function stack(
  x: tf.SymbolicTensor,
  filters: number,
  blocks: number,
  name: string,
  stride: number,
): tf.SymbolicTensor {
  x = bottleneck(x, filters, `${name}_block1`, stride, true);
  for (let i = 2; i <= blocks; i++) x = bottleneck(x, filters, `${name}_block${i}`, 1, false);
  return x;
}

/**
 * torchvision's ResNet50 (v1.5): 25,610,152 parameters as Keras counts them (PyTorch's 25,557,032 leaves out
 * the batch norm statistics), 23,561,152 without top. Expects
 * 'torch' preprocessing. `weights: 'imagenet'` loads torchvision's IMAGENET1K_V1 weights from the
 * Hugging Face Hub (`hf:timm/resnet50.tv_in1k`); a path to a torchvision or timm `.safetensors`
 * state dict loads that.
 * @example
 * const model = await TorchvisionResNet50({ weights: 'resnet50.safetensors', classifierActivation: null });
 */
export async function TorchvisionResNet50(options?: ApplicationOptions): Promise<tf.LayersModel> {
  await initBackend();
  const spec = TORCHVISION_RESNET50_SPEC;
  const o = resolveOptions(spec.className, options);
  const shape = obtainInputShape({
    model: spec.className,
    inputShape: o.inputShape,
    defaultSize: spec.defaultInputSize,
    minSize: spec.minInputSize,
    requireFlatten: o.includeTop,
    weights: o.weights,
  });
  const { image, inputs } = imageInput(o, shape);
  let x = apply(pad(3, 'conv1_pad'), image);
  x = apply(conv(64, 7, 'conv1_conv', 2), x);
  x = apply(batchNorm('conv1_bn'), x);
  x = apply(tf.layers.activation({ activation: 'relu', name: 'conv1_relu' }), x);
  // PyTorch pads max pooling with -inf; after a ReLU, zeros give the same maxima.
  x = apply(pad(1, 'pool1_pad'), x);
  x = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }), x);
  x = stack(x, 64, 3, 'conv2', 1);
  x = stack(x, 128, 4, 'conv3', 2);
  x = stack(x, 256, 6, 'conv4', 2);
  x = stack(x, 512, 3, 'conv5', 2);
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
  const weights = o.weights === 'imagenet' ? IMAGENET_SOURCE : (o.weights ?? undefined);
  return finishModel(inputs, x, o.name ?? 'resnet50_torchvision', weights);
}

export const TORCHVISION_RESNET50_SPEC: ApplicationSpec = {
  name: 'resnet50_torchvision',
  className: 'TorchvisionResNet50',
  build: TorchvisionResNet50,
  preprocessMode: 'torch',
  defaultInputSize: 224,
  minInputSize: 32,
  weightSets: {
    imagenet: {
      top: { url: 'https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors' },
      noTop: { url: 'https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors' },
    },
  },
  firstConvLayer: 'conv1_conv',
  featureLayer: 'conv5_block3_out',
  classifierLayer: 'predictions',
  parameters: { top: 25_610_152, noTop: 23_561_152 },
};

/** torchvision ResNet50's preprocessing ('torch') and ImageNet decoding. */
export const torchvisionResnet50 = applicationModule(TORCHVISION_RESNET50_SPEC);
