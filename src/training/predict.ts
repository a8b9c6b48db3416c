/**
 * Keras's `model.predict` over a batch source or a tensor: the model in inference mode on each
 * batch, the outputs concatenated in order. Labels a source carries are ignored (and disposed).
 * The model runs on onnxruntime-node when it can be exported (`XFER_ACCELERATE=0`: tfjs).
 */
import type { BatchSource } from '../data/source.js';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError } from '../errors.js';
import { checkPositiveInteger } from '../util/validate.js';
import { inferBatch } from './accelerate.js';
import { arrayBatches } from './array-batches.js';
import { isBatchSource, pumpBatches } from './batches.js';
import { type Callback, CallbackList, checkCallbacks } from './callback.js';
import { checkLayersModel } from './compile.js';
import { checkVerbose, ProgbarLogger } from './progbar-logger.js';

export interface PredictOptions {
  /** Batches to predict; the source is cycled if it has fewer. Default: all of it, once. */
  steps?: number;
  /** Rows per batch when the input is a tensor. Default 32. */
  batchSize?: number;
  /**
   * 0 silent, 1 a progress bar. Default 0 (Keras prints a bar on every predict, even of one
   * image; xfer does not unless asked).
   */
  verbose?: 0 | 1 | 2;
  /** Callbacks; their `onPredict*` hooks run. Default none. */
  callbacks?: Callback[];
}

/**
 * Runs the model on every batch; resolves to one tensor of all outputs, rows in source order (the
 * caller disposes it).
 * @example
 * const probs = await predict(model, testIter); // [n, 1] for a sigmoid head
 * const out = await predict(model, xs, { batchSize: 64 });
 */
export async function predict(
  model: tf.LayersModel,
  data: BatchSource | tf.Tensor,
  options: PredictOptions = {},
): Promise<tf.Tensor> {
  await initBackend();
  checkLayersModel(model);
  let source: BatchSource;
  if (data instanceof tf.Tensor) {
    source = arrayBatches(data, null, { batchSize: options.batchSize ?? 32 });
  } else if (isBatchSource(data)) {
    if (options.batchSize !== undefined) {
      throw invalidParameterError(
        'batchSize',
        'nothing with a BatchSource (it sets its own)',
        options.batchSize,
      );
    }
    source = data;
  } else {
    throw invalidParameterError('data', 'a tf.Tensor or a BatchSource', data);
  }
  const steps =
    options.steps === undefined ? source.length : checkPositiveInteger('steps', options.steps);
  const verbose = checkVerbose(options.verbose ?? 0);
  const callbacks = [...checkCallbacks(options.callbacks)];
  if (verbose > 0 && !callbacks.some((c) => c instanceof ProgbarLogger))
    callbacks.push(new ProgbarLogger());
  const list = new CallbackList(callbacks);
  list.setModel(model);
  list.setParams({ steps, verbose });

  const outputs: tf.Tensor[] = [];
  try {
    await list.call('onPredictBegin');
    await pumpBatches(source, { position: 0 }, steps, false, async (batch, step) => {
      await list.call('onPredictBatchBegin', step);
      outputs.push(await inferBatch(model, batch.x));
      await list.call('onPredictBatchEnd', step);
      return true;
    });
    await list.call('onPredictEnd');
    return outputs.length === 1 ? outputs.pop()! : tf.concat(outputs, 0);
  } finally {
    tf.dispose(outputs);
  }
}
