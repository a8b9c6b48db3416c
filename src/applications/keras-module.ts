/**
 * Per-family namespaces mirroring Keras's modules (`from keras.applications.vgg16 import
 * preprocess_input`): the family's preprocessing, read from its spec, and ImageNet decoding.
 */
import type * as tf from '../engine/tf.js';
import { decodePredictions } from './imagenet.js';
import { preprocessInput } from './preprocess.js';
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
  return { preprocessInput: (x) => preprocessInput(x, mode), decodePredictions };
}
