/**
 * BatchNormalization as Keras runs it, applied on import by patching tfjs-layers'
 * `BatchNormalization.call` (`src/engine/tf.ts` imports this module for its side effect).
 *
 * Keras (keras/src/layers/normalization/batch_normalization.py) normalizes with the batch's
 * statistics and updates the moving mean and variance only when `training and self.trainable`:
 * a frozen BN layer (its own flag false, set on it or through a frozen parent model) runs in
 * inference mode during `fit`. tfjs-layers ignores `trainable` there, so a frozen backbone's BN
 * statistics drift with every batch and its outputs differ from what the backbone was trained to
 * produce. Here the frozen layer runs tfjs's own inference branch: moving statistics, no updates,
 * bit-identical to `predict`.
 *
 * Fine-tuning keeps BN in inference mode even once the backbone is unfrozen (Keras ≥ 2.0: call
 * the backbone with `training=False`). A tfjs `Sequential` cannot pass `training` to one layer,
 * so `setBatchNormInferenceMode` marks the BN layers of a model instead.
 */
import type { layers } from '@tensorflow/tfjs-layers';
import { invalidParameterError } from '../errors.js';
import { checkBoolean } from '../util/validate.js';
import { descendantLayers, isLayer, registeredLayerClass } from './layer-classes.js';

type Layer = layers.Layer;

const BatchNormalization = registeredLayerClass('BatchNormalization');
const INFERENCE_MODE = Symbol.for('xfer.engine.batchNormInferenceMode');
const PATCHED = Symbol.for('xfer.engine.batchNormFrozen');

function patchBatchNormCall(): void {
  const proto = BatchNormalization.prototype as Record<symbol, unknown>;
  if (proto[PATCHED] === true) return;
  proto[PATCHED] = true;
  const call = BatchNormalization.prototype.call as (inputs: unknown, kwargs: unknown) => unknown;
  BatchNormalization.prototype.call = function (
    this: any,
    inputs: unknown,
    kwargs: Record<string, unknown> | undefined,
  ) {
    if (kwargs?.training === true && (this[INFERENCE_MODE] === true || !this.trainable)) {
      return call.call(this, inputs, { ...kwargs, training: false });
    }
    return call.call(this, inputs, kwargs ?? {});
  };
}

patchBatchNormCall();

/**
 * Forces every BatchNormalization layer of `model` (nested models included; `model` itself if it
 * is one) to run in inference mode during training: moving mean and variance normalize each
 * batch and are never updated, while gamma and beta still train if the layer is trainable.
 * This is Keras's fine-tuning recipe (calling the backbone with `training=False`) for models
 * where `training` cannot be passed to one part. `enabled: false` returns the layers to Keras's
 * default: batch statistics in training unless the layer is frozen. Frozen BN layers run in
 * inference mode either way. Not saved with the model.
 * @returns the number of BatchNormalization layers found.
 * @example
 * backbone.trainable = true; // fine-tune the whole backbone...
 * setBatchNormInferenceMode(backbone, true); // ...but keep its ImageNet BN statistics
 * model.compile({ optimizer: tf.train.adam(1e-5), loss: 'binaryCrossentropy' });
 */
export function setBatchNormInferenceMode(model: Layer, enabled: boolean): number {
  if (!isLayer(model)) {
    throw invalidParameterError('model', 'a tfjs-layers model or layer', model);
  }
  checkBoolean('enabled', enabled);
  let count = 0;
  for (const layer of [model, ...descendantLayers(model)]) {
    if (layer instanceof (BatchNormalization as unknown as new () => unknown)) {
      (layer as Record<symbol, unknown>)[INFERENCE_MODE] = enabled;
      count++;
    }
  }
  return count;
}
