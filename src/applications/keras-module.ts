/**
 * Per-family namespaces mirroring Keras's modules (`from keras.applications.vgg16 import
 * preprocess_input`): the family's preprocessing, read from its spec, and ImageNet decoding.
 */
import type * as tf from '../engine/tf.js';
import { decodePredictions } from './imagenet.js';
import { preprocessInput } from './preprocess.js';
import { declarePreprocessMode } from './preprocess-pixels.js';
import type { ApplicationSpec } from './spec.js';

export interface ApplicationModule {
  /** `preprocessInput` in the mode the family's pretrained weights expect. */
  preprocessInput(x: tf.Tensor): tf.Tensor;
  /** ImageNet decoding, the same for every family. */
  decodePredictions: typeof decodePredictions;
}

export function applicationModule(
  spec: Pick<ApplicationSpec, 'preprocessMode'>,
): ApplicationModule {
  const mode = spec.preprocessMode;
  const preprocess = (x: tf.Tensor) => preprocessInput(x, mode);
  // Known to image pipelines as a pixel map, which they can apply off the main thread.
  if (mode !== 'none') declarePreprocessMode(preprocess, mode);
  return { preprocessInput: preprocess, decodePredictions };
}
