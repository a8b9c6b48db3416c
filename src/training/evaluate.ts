/**
 * Keras's `model.evaluate`: loss and metrics in inference mode over a batch source, each the mean
 * over all samples seen (batches weighted by their size).
 */
import type { BatchSource } from '../data/source.js';
import { initBackend } from '../engine/backend.js';
import type * as tf from '../engine/tf.js';
import { checkPositiveInteger } from '../util/validate.js';
import { inferBatch } from './accelerate.js';
import { pumpBatches, toBatchSource } from './batches.js';
import { type Callback, CallbackList, checkCallbacks, type Logs } from './callback.js';
import { type CompiledModel, checkLayersModel, compiledModel } from './compile.js';
import { checkVerbose, ProgbarLogger } from './progbar-logger.js';
import { MeanTracker, testStep } from './steps.js';

export interface EvaluateOptions {
  /** Batches to evaluate; the source is cycled if it has fewer. Default: all of it, once. */
  steps?: number;
  /** Rows per batch when the data are tensors. Default 32. */
  batchSize?: number;
  /** 0 silent, 1 a progress bar and a result line. Default 1 (Keras's). */
  verbose?: 0 | 1 | 2;
  /** Callbacks; their `onTest*` hooks run. Default none. */
  callbacks?: Callback[];
}

/**
 * The evaluation loop shared by `evaluate` and `fit`'s validation; the model runs on
 * onnxruntime-node when it can be exported (`XFER_ACCELERATE=0`: tfjs).
 */
export async function evaluateLoop(
  model: tf.LayersModel,
  info: CompiledModel,
  source: BatchSource,
  steps: number,
  callbacks: CallbackList,
  prefix = '',
  infer: (x: tf.Tensor) => Promise<tf.Tensor> = (x) => inferBatch(model, x),
): Promise<Logs> {
  const tracker = new MeanTracker(['loss', ...info.metrics.map((m) => m.name)]);
  await callbacks.call('onTestBegin');
  await pumpBatches(source, { position: 0 }, steps, true, async (batch, step) => {
    await callbacks.call('onTestBatchBegin', step);
    tracker.update(await testStep(model, info, batch.x, batch.y!, infer), batch.x.shape[0]!);
    await callbacks.call('onTestBatchEnd', step, tracker.result());
    return true;
  });
  const logs = tracker.result();
  await callbacks.call('onTestEnd', logs);
  return prefix ? tracker.result(prefix) : logs;
}

/**
 * Evaluates a compiled model; resolves to `{ loss, accuracy, ... }` under the compiled names.
 * @example
 * const { loss, accuracy } = await evaluate(model, testIter);
 * const metrics = await evaluate(model, { x: xs, y: ys }, { batchSize: 64, verbose: 0 });
 */
export async function evaluate(
  model: tf.LayersModel,
  data: BatchSource | { x: tf.Tensor; y: tf.Tensor },
  options: EvaluateOptions = {},
): Promise<Record<string, number>> {
  await initBackend();
  checkLayersModel(model);
  const info = compiledModel(model);
  const source = toBatchSource(data, 'data', {
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
  });
  const steps =
    options.steps === undefined ? source.length : checkPositiveInteger('steps', options.steps);
  const verbose = checkVerbose(options.verbose ?? 1);
  const callbacks = [...checkCallbacks(options.callbacks)];
  if (verbose > 0 && !callbacks.some((c) => c instanceof ProgbarLogger))
    callbacks.push(new ProgbarLogger());
  const list = new CallbackList(callbacks);
  list.setModel(model);
  list.setParams({ steps, verbose });
  return evaluateLoop(model, info, source, steps, list);
}
