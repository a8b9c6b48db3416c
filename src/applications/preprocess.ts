/**
 * Keras's three ImageNet input conventions (`imagenet_utils.preprocess_input`), for channels-last
 * images with values in [0, 255]. Which one a backbone needs is data on its spec, so xfer can apply
 * it for the user; this function is the same transform, exported for the seed's style.
 */

import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { checkOneOf } from '../util/validate.js';
import { CAFFE_MEAN_BGR, preprocessPixels, TORCH_MEAN, TORCH_STD } from './preprocess-pixels.js';

/**
 * - `caffe`: RGB to BGR, then subtract the ImageNet mean per channel, no scaling (VGG, ResNet).
 * - `tf`: scale to [-1, 1] (MobileNet, MobileNetV2).
 * - `torch`: scale to [0, 1], then normalize each channel by the ImageNet mean and std.
 * - `none`: pixels in [0, 255] as they are, for backbones that preprocess inside the model
 *   (EfficientNet, EfficientNetV2, ConvNeXt, MobileNetV3), whose Keras `preprocess_input` is a
 *   pass-through.
 */
export type PreprocessMode = 'caffe' | 'tf' | 'torch' | 'none';

export const PREPROCESS_MODES: readonly PreprocessMode[] = ['caffe', 'tf', 'torch'];

/**
 * Preprocesses a batch (4-D `[n, h, w, 3]`) or one image (3-D `[h, w, 3]`) with values in [0, 255],
 * exactly as Keras's `preprocess_input` does for channels-last input. Returns a new float32 tensor;
 * the input is left as it is (Keras overwrites NumPy input in place; tensors are immutable here).
 * @example
 * const x = preprocessInput(tf.tensor4d([[[[10, 20, 30]]]]), 'caffe');
 * // [[[[30 - 103.939, 20 - 116.779, 10 - 123.68]]]]
 */
export function preprocessInput(x: tf.Tensor, mode: PreprocessMode): tf.Tensor {
  // Keras's `imagenet_utils` modes; 'none' is the pass-through of in-model preprocessing.
  if (mode !== 'none') checkOneOf('mode', mode, PREPROCESS_MODES);
  if (!(x instanceof tf.Tensor)) {
    throw invalidParameterError('x', 'a tf.Tensor of images', x);
  }
  if (x.rank !== 3 && x.rank !== 4) {
    throw new XferError(
      'SHAPE_MISMATCH',
      `preprocessInput expects one image [height, width, 3] or a batch [n, height, width, 3], but received a tensor of shape [${x.shape.join(', ')}]. Add or remove the batch axis (tf.expandDims / tf.squeeze).`,
      { shape: x.shape },
    );
  }
  if (mode === 'none') return x.dtype === 'float32' ? x.clone() : tf.cast(x, 'float32');
  const channels = x.shape[x.rank - 1];
  if (mode !== 'tf' && channels !== 3) {
    throw new XferError(
      'SHAPE_MISMATCH',
      `preprocessInput in '${mode}' mode needs 3 color channels (RGB, channels last), but received a tensor of shape [${x.shape.join(', ')}]. Convert the images to RGB first.`,
      { shape: x.shape, mode },
    );
  }
  if (tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu') {
    // On the CPU backends plain JS does it with numpy's float32 arithmetic (preprocess-pixels.ts)
    // faster than their kernels: 0.2 ms against 2.5-8 ms for one 224x224 image on wasm.
    // wasm's dataSync reads a fresh copy out of its heap; cpu's is the tensor's own array.
    const data = x.dataSync();
    const values =
      tf.getBackend() === 'wasm' && data instanceof Float32Array ? data : new Float32Array(data);
    preprocessPixels(values, channels, mode);
    return tf.tensor(values, x.shape, 'float32');
  }
  return tf.tidy(() => {
    const input = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    if (mode === 'tf') return tf.sub(tf.div(input, 127.5), 1);
    if (mode === 'torch') {
      const scaled = tf.div(input, 255);
      return tf.div(tf.sub(scaled, tf.tensor1d(TORCH_MEAN)), tf.tensor1d(TORCH_STD));
    }
    return tf.sub(tf.reverse(input, -1), tf.tensor1d(CAFFE_MEAN_BGR));
  });
}
