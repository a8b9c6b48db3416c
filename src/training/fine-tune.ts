/**
 * fastai's `fine_tune` in Keras's vocabulary: train the head on a frozen backbone, then unfreeze
 * (all of it, or its top from a layer or a number of blocks) and train on at lower rates, the
 * backbone lower still, with BatchNormalization kept in inference mode. A short composition of
 * public calls: `freezeBackbone`, `compile`, `fit`, `unfreezeFrom`, `groupLearningRates`, `fit`
 * again with `initialEpoch` so that epochs are numbered on.
 */
import type { BatchSource } from '../data/source.js';
import { initBackend } from '../engine/backend.js';
import { isContainer } from '../engine/layer-classes.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { checkPositiveInteger } from '../util/validate.js';
import { type CompileOptions, compile, compiledModel, maybeCompiledModel } from './compile.js';
import {
  freezeBackbone,
  type UnfreezeResult,
  type UnfreezeTarget,
  unfreezeFrom,
} from './fine-tune-layers.js';
import { type GroupOptimizerName, groupLearningRates } from './fine-tune-optimizer.js';
import { type FitOptions, fit } from './fit.js';
import type { History } from './history.js';
import { METRIC_NAMES } from './names.js';
import { Adam, RMSprop, SGD } from './optimizers.js';

export interface FineTuneOptions
  extends Pick<
    FitOptions,
    | 'validationData'
    | 'validationSteps'
    | 'callbacks'
    | 'verbose'
    | 'stepsPerEpoch'
    | 'batchSize'
    | 'shuffle'
    | 'seed'
  > {
  /** Epochs of head-only training on the frozen backbone (fastai's `freeze_epochs`). Default 1. */
  frozenEpochs?: number;
  /** Epochs of fine-tuning after unfreezing. Default 1. */
  epochs?: number;
  /** The head's learning rate while the backbone is frozen. Default 0.002 (fastai's `base_lr`). */
  baseLearningRate?: number;
  /**
   * The head's learning rate while fine-tuning. Default `baseLearningRate / 2` (fastai's).
   */
  fineTuneLearningRate?: number;
  /**
   * The backbone's learning rate while fine-tuning is `fineTuneLearningRate / backboneRateDivisor`.
   * Default 10. (fastai spreads `base_lr / 100 … base_lr` over its layer groups.)
   */
  backboneRateDivisor?: number;
  /** What to unfreeze (see `UnfreezeTarget`). Default `'all'`. */
  unfreeze?: UnfreezeTarget;
  /** Let BatchNormalization train (batch statistics, moving averages updated). Default false. */
  trainBatchNorm?: boolean;
  /**
   * The backbone inside `model`: a layer or its name. Default: the first nested model among
   * `model.layers` (the `VGG16(...)` of `sequential([VGG16(...), gap, dense])`).
   */
  backbone?: tf.layers.Layer | string;
  /** `'adam'`, `'sgd'` or `'rmsprop'`. Default `'adam'`. */
  optimizer?: GroupOptimizerName;
  /** The loss. Default: the loss the model was compiled with. */
  loss?: CompileOptions['loss'];
  /** Metrics. Default: those the model was compiled with. */
  metrics?: CompileOptions['metrics'];
}

export interface FineTuneResult {
  /** Every epoch's logs per key, the frozen stage's first. */
  history: Record<string, number[]>;
  /** The frozen (head-only) stage's history; null when `frozenEpochs` is 0. */
  frozen: History | null;
  /** The fine-tuning stage's history. */
  fineTuned: History;
  /** What the fine-tuning stage trained. */
  unfrozen: UnfreezeResult;
}

/**
 * The backbone layer of `model`: `option` itself, the layer it names, or the first nested model.
 * @example
 * findBackbone(model); // the VGG16 model inside sequential([VGG16(...), gap, dense])
 */
export function findBackbone(
  model: tf.LayersModel,
  option?: tf.layers.Layer | string,
): tf.layers.Layer {
  if (option instanceof tf.layers.Layer) return option;
  if (typeof option === 'string') return model.getLayer(option);
  if (option !== undefined)
    throw invalidParameterError('backbone', 'a layer or a layer name', option);
  const nested = model.layers.find((l) => isContainer(l));
  if (!nested) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `model '${model.name}' has no nested model to use as the backbone; pass options.backbone (a layer or its name).`,
      { model: model.name },
    );
  }
  return nested;
}

function optimizerOf(kind: GroupOptimizerName, learningRate: number): tf.Optimizer {
  return kind === 'sgd'
    ? SGD(learningRate)
    : kind === 'rmsprop'
      ? RMSprop(learningRate)
      : Adam(learningRate);
}

/** The loss and metrics to compile with: the options', or those the model was compiled with. */
function lossAndMetrics(
  model: tf.LayersModel,
  options: FineTuneOptions,
): Pick<CompileOptions, 'loss' | 'metrics'> {
  const info = options.loss === undefined ? compiledModel(model) : maybeCompiledModel(model);
  const loss = options.loss ?? info!.lossName;
  const metrics =
    options.metrics ??
    (info?.metrics ?? []).map((m) =>
      (METRIC_NAMES as readonly string[]).includes(m.name) ? m.name : m.fn,
    );
  return { loss, metrics };
}

function mergeHistories(histories: History[]): Record<string, number[]> {
  const merged: Record<string, number[]> = {};
  for (const h of histories) {
    for (const [key, values] of Object.entries(h.history)) {
      merged[key] = [...(merged[key] ?? []), ...values];
    }
  }
  return merged;
}

/**
 * Trains the head on the frozen backbone for `frozenEpochs`, then unfreezes and fine-tunes for
 * `epochs` more at lower rates. Epochs are numbered on across both stages (logs, checkpoints).
 * @example
 * const model = tf.sequential({ layers: [VGG16({ includeTop: false, inputShape: [224, 224, 3] }),
 *   tf.layers.globalAveragePooling2d({}), tf.layers.dense({ units: 1, activation: 'sigmoid' })] });
 * compile(model, { loss: 'binary_crossentropy', metrics: ['accuracy'] });
 * const { history } = await fineTune(model, trainIter, {
 *   frozenEpochs: 3, epochs: 5, baseLearningRate: 1e-3, unfreeze: 'block5_conv1', validationData: valIter,
 * });
 */
export async function fineTune(
  model: tf.LayersModel,
  data: BatchSource | { x: tf.Tensor; y: tf.Tensor },
  options: FineTuneOptions = {},
): Promise<FineTuneResult> {
  await initBackend();
  const frozenEpochs = options.frozenEpochs ?? 1;
  if (!Number.isInteger(frozenEpochs) || frozenEpochs < 0) {
    throw invalidParameterError('frozenEpochs', 'non-negative integer', frozenEpochs);
  }
  const epochs = checkPositiveInteger('epochs', options.epochs ?? 1);
  const baseLr = options.baseLearningRate ?? 0.002;
  const fineLr = options.fineTuneLearningRate ?? baseLr / 2;
  const divisor = options.backboneRateDivisor ?? 10;
  if (typeof divisor !== 'number' || !(divisor > 0)) {
    throw invalidParameterError('backboneRateDivisor', 'positive number', divisor);
  }
  const kind = options.optimizer ?? 'adam';
  const backbone = findBackbone(model, options.backbone);
  const { loss, metrics } = lossAndMetrics(model, options);
  const fitOptions: FitOptions = {
    ...(options.validationData !== undefined ? { validationData: options.validationData } : {}),
    ...(options.validationSteps !== undefined ? { validationSteps: options.validationSteps } : {}),
    ...(options.callbacks !== undefined ? { callbacks: options.callbacks } : {}),
    ...(options.verbose !== undefined ? { verbose: options.verbose } : {}),
    ...(options.stepsPerEpoch !== undefined ? { stepsPerEpoch: options.stepsPerEpoch } : {}),
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    ...(options.shuffle !== undefined ? { shuffle: options.shuffle } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
  };

  let frozen: History | null = null;
  if (frozenEpochs > 0) {
    freezeBackbone(model, backbone);
    compile(model, { optimizer: optimizerOf(kind, baseLr), loss, ...(metrics ? { metrics } : {}) });
    frozen = await fit(model, data, { ...fitOptions, epochs: frozenEpochs });
  }
  const unfrozen = unfreezeFrom(model, options.unfreeze ?? 'all', {
    trainBatchNorm: options.trainBatchNorm ?? false,
  });
  const optimizer = groupLearningRates(backbone, {
    optimizer: kind,
    learningRate: fineLr,
    backboneLearningRate: fineLr / divisor,
  });
  compile(model, { optimizer, loss, ...(metrics ? { metrics } : {}) });
  const fineTuned = await fit(model, data, {
    ...fitOptions,
    epochs: frozenEpochs + epochs,
    initialEpoch: frozenEpochs,
  });
  return {
    history: mergeHistories(frozen ? [frozen, fineTuned] : [fineTuned]),
    frozen,
    fineTuned,
    unfrozen,
  };
}
