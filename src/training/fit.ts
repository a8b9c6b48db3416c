/**
 * Keras's `model.fit` over a `BatchSource` (or tensors): epochs of optimizer steps, validation at
 * each epoch's end, callbacks around every epoch and batch, and a `History` back.
 */
import type { BatchSource } from '../data/source.js';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { checkPositiveInteger } from '../util/validate.js';
import { inferBatch } from './accelerate.js';
import { type FrozenSplit, frozenSplit, isDeterministicSource } from './accelerate-fit.js';
import { type Cursor, isBatchSource, pumpBatches, toBatchSource } from './batches.js';
import { type Callback, CallbackList, checkCallbacks, type Logs } from './callback.js';
import { checkLayersModel, compiledModel } from './compile.js';
import { evaluateLoop } from './evaluate.js';
import {
  cacheableSource,
  cachedBatches,
  cachedFeaturesOf,
  type FeatureCache,
  sampleKeysOf,
} from './feature-cache.js';
import { History } from './history.js';
import { checkVerbose, ProgbarLogger } from './progbar-logger.js';
import { MeanTracker, trainableVariables, trainStep } from './steps.js';

export interface FitOptions {
  /** Train until this epoch: epochs `initialEpoch` … `epochs - 1` run. Default 1. */
  epochs?: number;
  /** The epoch to start from, to resume a run (logs and checkpoints count from it). Default 0. */
  initialEpoch?: number;
  /**
   * Batches per epoch. Default: the source's length. Fewer continues the next epoch where this
   * one stopped; more cycles the source (Keras's `steps_per_epoch`).
   */
  stepsPerEpoch?: number;
  /**
   * Data to evaluate at the end of each epoch (adds `val_loss`, `val_accuracy`... to logs): a
   * BatchSource, or `[x, y]` tensors. Default none.
   */
  validationData?: BatchSource | [tf.Tensor, tf.Tensor] | { x: tf.Tensor; y: tf.Tensor };
  /** Validation batches per epoch, from the start of the source each time. Default: all. */
  validationSteps?: number;
  /** Callbacks (EarlyStopping, ModelCheckpoint, ...). Default none. */
  callbacks?: Callback[];
  /** 0 silent, 1 a progress bar per epoch, 2 one line per epoch. Default 1. */
  verbose?: 0 | 1 | 2;
  /** Rows per batch when the data are tensors (also for `[x, y]` validation). Default 32. */
  batchSize?: number;
  /** Reshuffle tensor rows every epoch. Tensors only. Default true (Keras's). */
  shuffle?: boolean;
  /** Seed of the tensor shuffle. Tensors only. Default random. */
  seed?: number;
  /**
   * A directory that keeps the frozen backbone's outputs across runs (without augmentation; see
   * `FeatureCache`): a later fit of the same frozen layers on the same files reads them instead
   * of decoding and running the backbone. Default none: the outputs are kept for this process
   * only, in memory up to `featureCacheMaxBytes`, then in a temp folder removed at exit.
   */
  featureCacheDir?: string;
  /** Bytes of cached backbone outputs kept in memory; past it they go to disk. Default 1 GiB. */
  featureCacheMaxBytes?: number;
}

const running = new WeakSet<tf.LayersModel>();

function checkNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalidParameterError(name, 'non-negative integer', value);
  }
  return value;
}

/** A batch of cached features from a frozen prefix that is no longer the model's. */
function staleFeatures(model: tf.LayersModel): XferError {
  return new XferError(
    'UNSUPPORTED',
    `the frozen layers of model '${model.name}' changed during fit (their weights were set, or acceleration was turned off): cached features of the old layers cannot be used. Change frozen weights between fits, not during one.`,
  );
}

function validationSource(
  data: FitOptions['validationData'],
  batchSize: number | undefined,
): BatchSource {
  if (Array.isArray(data)) {
    const [x, y] = data;
    if (data.length !== 2 || !(x instanceof tf.Tensor) || !(y instanceof tf.Tensor)) {
      throw invalidParameterError('validationData', '[x, y] tensors or a BatchSource', data);
    }
    return toBatchSource({ x, y }, 'validationData', { batchSize: batchSize ?? 32 });
  }
  return toBatchSource(
    data,
    'validationData',
    isBatchSource(data) ? {} : { batchSize: batchSize ?? 32 },
  );
}

/**
 * Trains a compiled model.
 * @example
 * compile(model, { optimizer: Adam(1e-3), loss: 'binary_crossentropy', metrics: ['accuracy'] });
 * const history = await fit(model, trainIter, {
 *   epochs: 10,
 *   validationData: valIter,
 *   callbacks: [new ModelCheckpoint('best.weights.h5', { saveBestOnly: true, saveWeightsOnly: true }),
 *               new EarlyStopping({ patience: 10 })],
 * });
 * history.history.val_accuracy; // one value per epoch
 */
export async function fit(
  model: tf.LayersModel,
  data: BatchSource | { x: tf.Tensor; y: tf.Tensor },
  options: FitOptions = {},
): Promise<History> {
  await initBackend();
  checkLayersModel(model);
  const info = compiledModel(model);
  const epochs = checkPositiveInteger('epochs', options.epochs ?? 1);
  const initialEpoch = checkNonNegativeInteger('initialEpoch', options.initialEpoch ?? 0);
  const verbose = checkVerbose(options.verbose ?? 1);
  if (
    options.featureCacheDir !== undefined &&
    (typeof options.featureCacheDir !== 'string' || options.featureCacheDir === '')
  ) {
    throw invalidParameterError('featureCacheDir', 'a directory path', options.featureCacheDir);
  }
  if (options.featureCacheMaxBytes !== undefined)
    checkNonNegativeInteger('featureCacheMaxBytes', options.featureCacheMaxBytes);
  const source = toBatchSource(data, 'data', {
    batchSize: options.batchSize,
    shuffle: options.shuffle,
    seed: options.seed,
  });
  const isTensors = !isBatchSource(data);
  const steps =
    options.stepsPerEpoch === undefined
      ? source.length
      : checkPositiveInteger('stepsPerEpoch', options.stepsPerEpoch);
  const validation =
    options.validationData === undefined
      ? undefined
      : validationSource(options.validationData, isTensors ? options.batchSize : undefined);
  const validationSteps =
    options.validationSteps === undefined
      ? validation?.length
      : checkPositiveInteger('validationSteps', options.validationSteps);

  const history = new History();
  const callbacks = [...checkCallbacks(options.callbacks), history];
  if (verbose > 0 && !callbacks.some((c) => c instanceof ProgbarLogger))
    callbacks.push(new ProgbarLogger());
  const list = new CallbackList(callbacks);
  list.setModel(model);
  list.setParams({ epochs, steps, verbose });

  if (running.has(model)) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `fit is already running on model '${model.name}'; await the first fit before starting another.`,
    );
  }
  running.add(model);
  try {
    const variables = trainableVariables(model);
    const names = ['loss', ...info.metrics.map((m) => m.name)];
    const cursor: Cursor = { position: 0 };
    // The frozen prefix runs on onnxruntime (cached without augmentation), the rest in tfjs.
    // Batches whose every image is cached arrive as features, without being loaded.
    const deterministic = cacheableSource(source, isDeterministicSource(source, isTensors));
    let split: FrozenSplit | null = null;
    let imageShape: number[] | undefined;
    const configured = new WeakSet<FeatureCache>();
    const currentCache = () => (split as FrozenSplit | null)?.cache;
    const trainSource = cachedBatches(source, currentCache);
    const validationBatches = validation && cachedBatches(validation, currentCache);
    const splitFor = async (x?: tf.Tensor): Promise<FrozenSplit | null> => {
      const served = x && cachedFeaturesOf(x);
      if (x && !served) imageShape = x.shape.slice(1);
      split = await frozenSplit(model, variables, imageShape!, deterministic);
      const cache = split?.cache;
      if (cache && !configured.has(cache)) {
        configured.add(cache);
        await cache.configure({
          ...(options.featureCacheDir !== undefined ? { directory: options.featureCacheDir } : {}),
          ...(options.featureCacheMaxBytes !== undefined
            ? { maxMemoryBytes: options.featureCacheMaxBytes }
            : {}),
        });
      }
      if (served && cache !== served) throw staleFeatures(model);
      return split;
    };
    const trainOn = async (x: tf.Tensor, y: tf.Tensor): Promise<number[]> => {
      const current = await splitFor(x);
      if (!current) return trainStep(model, info, variables, x, y);
      if (cachedFeaturesOf(x)) return trainStep(current.head, info, variables, x, y);
      const features = await current.features(x, sampleKeysOf(x));
      try {
        return await trainStep(current.head, info, variables, features, y);
      } finally {
        features.dispose();
      }
    };
    const validationInfer = async (x: tf.Tensor): Promise<tf.Tensor> => {
      const current = split as FrozenSplit | null;
      if (!current) return inferBatch(model, x);
      const served = cachedFeaturesOf(x);
      if (served) {
        if (served !== current.cache) throw staleFeatures(model);
        return tf.tidy(() => current.head.apply(x, { training: false }) as tf.Tensor);
      }
      const features = await current.features(x, sampleKeysOf(x));
      try {
        return tf.tidy(() => current.head.apply(features, { training: false }) as tf.Tensor);
      } finally {
        features.dispose();
      }
    };
    // A source that names its image shape (flowFromDirectory, imageDatasetFromDirectory) gets
    // its split now, so that even the first batches are served from a cache kept on disk.
    const declared = (source as { imageShape?: unknown }).imageShape;
    if (
      deterministic &&
      Array.isArray(declared) &&
      declared.every((d) => Number.isInteger(d) && d > 0)
    ) {
      imageShape = declared as number[];
      await splitFor();
    }
    model.stopTraining = false;
    await list.call('onTrainBegin');
    let epochLogs: Logs = {};
    for (let epoch = initialEpoch; epoch < epochs; epoch++) {
      await list.call('onEpochBegin', epoch);
      const tracker = new MeanTracker(names);
      await pumpBatches(trainSource, cursor, steps, true, async (batch, step) => {
        await list.call('onTrainBatchBegin', step);
        tracker.update(await trainOn(batch.x, batch.y!), batch.x.shape[0]!);
        await list.call('onTrainBatchEnd', step, tracker.result());
        // Keras stops mid-epoch too (TerminateOnNaN); the epoch still ends normally.
        return !model.stopTraining;
      });
      epochLogs = tracker.result();
      if (validation) {
        Object.assign(
          epochLogs,
          await evaluateLoop(
            model,
            info,
            validationBatches!,
            validationSteps!,
            list,
            'val_',
            validationInfer,
          ),
        );
      }
      await list.call('onEpochEnd', epoch, epochLogs);
      if (model.stopTraining) break;
    }
    await list.call('onTrainEnd', epochLogs);
    return history;
  } finally {
    running.delete(model);
  }
}
