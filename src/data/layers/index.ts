/**
 * Keras 3's image preprocessing layers, for use inside a model. `Rescaling` is tfjs-layers' own
 * (`tf.layers.rescaling`, registered as 'Rescaling'), which already has Keras's semantics and
 * config keys; the others are here. Importing this module registers them for `loadModel`.
 */

export { TF_FILL_MODES, type TfFillMode } from './projective.js';
export {
  type Factor,
  FLIP_MODES,
  type FlipMode,
  RandomBrightness,
  RandomContrast,
  RandomFlip,
  RandomRotation,
  RandomTranslation,
  RandomZoom,
} from './random.js';
export {
  CenterCrop,
  Resizing,
} from './resizing.js';

/**
 * Class names of layers that are the identity outside training: an exporter for inference (ONNX,
 * serving) can drop them, passing their input through. Resizing, CenterCrop and Rescaling are
 * not in the list: they act in inference too.
 */
export const INFERENCE_IDENTITY_LAYERS: readonly string[] = [
  'RandomFlip',
  'RandomRotation',
  'RandomZoom',
  'RandomTranslation',
  'RandomContrast',
  'RandomBrightness',
];
