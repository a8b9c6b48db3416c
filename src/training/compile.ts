/**
 * Keras's `model.compile` over tfjs: Keras's loss, metric and optimizer names are mapped to tfjs's,
 * `'accuracy'` is resolved against the loss as Keras does, and tfjs's `model.compile` is called (so
 * tfjs's own `fit` / `evaluate` / `save` keep working). What xfer's loops need — the loss function,
 * each metric's function, Keras name and direction — is recorded beside the model.
 */
import * as tf from '../engine/tf.js';
import { invalidParameterError, unknownNameError, XferError } from '../errors.js';
import { LOSSES, METRIC_NAMES, type MetricDirection, toSnakeCase } from './names.js';
import { optimizerFromName } from './optimizers.js';

/** A loss or metric: per-sample values (or their mean) from targets and predictions. */
export type LossOrMetricFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

export interface CompileOptions {
  /**
   * A Keras name (`'adam'`, `'sgd'`, `'rmsprop'`, `'adagrad'`, `'adadelta'`, `'adamax'`, any case,
   * with Keras's default learning rates) or a tfjs optimizer (`Adam(1e-4)`). Default `'rmsprop'`
   * (Keras's).
   */
  optimizer?: string | tf.Optimizer;
  /**
   * A Keras loss name (`'binary_crossentropy'`, `'categorical_crossentropy'`,
   * `'sparse_categorical_crossentropy'`, `'mse'`, ...), its tfjs spelling
   * (`'binaryCrossentropy'`), or a function `(yTrue, yPred) => tensor`.
   */
  loss: string | LossOrMetricFn;
  /**
   * Metric names (`'accuracy'` / `'acc'`, `'binary_accuracy'`, `'mse'`, ...) or functions. Logs
   * carry each under the name written here, as Keras prints it. Default none.
   */
  metrics?: Array<string | LossOrMetricFn>;
}

export interface CompiledMetric {
  /** The key in logs, e.g. `accuracy` (and `val_accuracy`). */
  name: string;
  fn: LossOrMetricFn;
  /** Keras's `_direction`; undefined for a user function, whose direction only `mode` can say. */
  direction?: MetricDirection;
}

/** What xfer's fit/evaluate read from a compiled model. */
export interface CompiledModel {
  /** The Keras loss name, or the function's name. */
  lossName: string;
  loss: LossOrMetricFn;
  /** Sparse targets (class indices) rather than one-hot or binary ones. */
  sparseTargets: boolean;
  metrics: CompiledMetric[];
  optimizer: tf.Optimizer;
}

interface TfjsCompiled {
  lossFunctions?: LossOrMetricFn[];
  metricsTensors?: Array<[LossOrMetricFn, number]>;
  metricsNames?: string[];
  optimizer?: tf.Optimizer;
}

interface Recorded {
  info: CompiledModel;
  /** tfjs's array at the time; a later tfjs `model.compile` replaces it, and the record is stale. */
  lossFunctions: unknown;
}

const compiled = new WeakMap<tf.LayersModel, Recorded>();

/**
 * Where tfjs keeps the compiled state: a `Sequential` compiles an inner `LayersModel`
 * (`sequential.model`) and mirrors only some fields; `lossFunctions` and
 * `collectedTrainableWeights` live on the inner one.
 */
export function compiledTfjsModel(model: tf.LayersModel): tf.LayersModel {
  const inner = (model as unknown as { model?: unknown }).model;
  return model instanceof tf.Sequential && inner instanceof tf.LayersModel ? inner : model;
}

/** Keras's direction of each metric xfer names: accuracies go up, losses used as metrics down. */
const DIRECTIONS: Readonly<Record<string, MetricDirection>> = {
  accuracy: 'up',
  acc: 'up',
  binary_accuracy: 'up',
  categorical_accuracy: 'up',
  sparse_categorical_accuracy: 'up',
  binary_crossentropy: 'down',
  categorical_crossentropy: 'down',
  sparse_categorical_crossentropy: 'down',
  mean_squared_error: 'down',
  mse: 'down',
  mean_absolute_error: 'down',
  mae: 'down',
  mean_absolute_percentage_error: 'down',
  mape: 'down',
};

/** tfjs's exported accuracy functions, for a user passing `tf.metrics.binaryAccuracy`. */
const ACCURACY_FNS = new Set<unknown>([
  tf.metrics.binaryAccuracy,
  tf.metrics.categoricalAccuracy,
  tf.metrics.sparseCategoricalAccuracy,
]);

interface ResolvedMetric {
  name: string;
  /** What tfjs's compile gets: a name it knows, or a function. */
  tfjs: string | LossOrMetricFn;
  direction?: MetricDirection;
}

export function checkLayersModel(model: unknown, name = 'model'): tf.LayersModel {
  if (!(model instanceof tf.LayersModel)) {
    throw invalidParameterError(name, 'a tfjs LayersModel (tf.sequential / tf.model)', model);
  }
  if (model.outputs.length !== 1) {
    throw new XferError(
      'UNSUPPORTED',
      `xfer trains models with one output; this model has ${model.outputs.length} (${model.outputNames.join(', ')}). Use tfjs's model.fit for multi-output models.`,
      { outputs: model.outputNames },
    );
  }
  return model;
}

function resolveAccuracy(
  lossKey: string | undefined,
  outputUnits: number | null,
): string | LossOrMetricFn {
  // Keras's rule (and tfjs's): binary for binary_crossentropy or a single output unit, sparse for
  // sparse_categorical_crossentropy, categorical otherwise.
  if (lossKey === 'binary_crossentropy' || outputUnits === 1) return 'binaryAccuracy';
  if (lossKey === 'sparse_categorical_crossentropy') return tf.metrics.sparseCategoricalAccuracy;
  return 'categoricalAccuracy';
}

function resolveMetric(
  metric: string | LossOrMetricFn,
  lossKey: string | undefined,
  outputUnits: number | null,
): ResolvedMetric {
  if (typeof metric === 'function') {
    return {
      name: toSnakeCase(metric.name || 'metric'),
      tfjs: metric,
      ...(ACCURACY_FNS.has(metric) ? { direction: 'up' as const } : {}),
    };
  }
  if (typeof metric !== 'string') {
    throw invalidParameterError('metrics[]', 'metric name or function', metric);
  }
  const key = toSnakeCase(metric);
  switch (key) {
    case 'accuracy':
    case 'acc':
      return { name: key, tfjs: resolveAccuracy(lossKey, outputUnits), direction: 'up' };
    case 'binary_accuracy':
      return { name: key, tfjs: 'binaryAccuracy', direction: 'up' };
    case 'categorical_accuracy':
      return { name: key, tfjs: 'categoricalAccuracy', direction: 'up' };
    case 'sparse_categorical_accuracy':
      return { name: key, tfjs: tf.metrics.sparseCategoricalAccuracy, direction: 'up' };
    case 'binary_crossentropy':
      return { name: key, tfjs: 'binaryCrossentropy', direction: 'down' };
    case 'categorical_crossentropy':
      return { name: key, tfjs: 'categoricalCrossentropy', direction: 'down' };
    case 'sparse_categorical_crossentropy':
      return { name: key, tfjs: 'sparseCategoricalCrossentropy', direction: 'down' };
    case 'mean_squared_error':
    case 'mse':
      return { name: key, tfjs: 'mse', direction: 'down' };
    case 'mean_absolute_error':
    case 'mae':
      return { name: key, tfjs: 'mae', direction: 'down' };
    case 'mean_absolute_percentage_error':
    case 'mape':
      return { name: key, tfjs: 'mape', direction: 'down' };
    default:
      throw unknownNameError('metric', metric, METRIC_NAMES);
  }
}

/**
 * Compiles `model` for training, Keras-style, and returns it.
 * @example
 * compile(model, { optimizer: Adam(1e-4), loss: 'binary_crossentropy', metrics: ['accuracy'] });
 * // logs: loss, accuracy (binary accuracy, threshold 0.5), val_loss, val_accuracy
 */
export function compile<M extends tf.LayersModel>(model: M, options: CompileOptions): M {
  checkLayersModel(model);
  if (options === null || typeof options !== 'object') {
    throw invalidParameterError('options', 'an object { optimizer, loss, metrics }', options);
  }
  const { loss } = options;
  let lossKey: string | undefined;
  let lossName: string;
  let tfjsLoss: string | LossOrMetricFn;
  if (typeof loss === 'string') {
    lossKey = toSnakeCase(loss);
    const spec = LOSSES[lossKey];
    if (!spec) throw unknownNameError('loss', loss, Object.keys(LOSSES));
    lossName = lossKey;
    tfjsLoss = spec.tfjsName;
  } else if (typeof loss === 'function') {
    lossName = toSnakeCase(loss.name || 'loss');
    tfjsLoss = loss;
  } else {
    throw invalidParameterError('loss', 'loss name or function', loss);
  }

  const optimizerOption = options.optimizer ?? 'rmsprop';
  let optimizer: tf.Optimizer;
  if (typeof optimizerOption === 'string') optimizer = optimizerFromName(optimizerOption);
  else if (optimizerOption instanceof tf.Optimizer) optimizer = optimizerOption;
  else
    throw invalidParameterError(
      'optimizer',
      "optimizer name (e.g. 'adam') or a tf.Optimizer",
      optimizerOption,
    );

  const metricsOption = options.metrics ?? [];
  if (!Array.isArray(metricsOption)) {
    throw invalidParameterError('metrics', 'array of metric names or functions', metricsOption);
  }
  const outputShape = model.outputs[0]!.shape;
  const outputUnits = outputShape[outputShape.length - 1] ?? null;
  const metrics = metricsOption.map((m) => resolveMetric(m, lossKey, outputUnits));
  const names = new Set<string>();
  for (const m of metrics) {
    if (m.name === 'loss' || names.has(m.name)) {
      throw invalidParameterError(
        'metrics',
        `distinct metric names other than 'loss'`,
        metricsOption,
      );
    }
    names.add(m.name);
  }

  model.compile({
    optimizer,
    loss: tfjsLoss as string,
    metrics: metrics.map((m) => m.tfjs) as string[],
  });
  const tfjs = compiledTfjsModel(model) as unknown as TfjsCompiled;
  const info: CompiledModel = {
    lossName,
    loss: tfjs.lossFunctions![0]!,
    sparseTargets: lossKey === 'sparse_categorical_crossentropy',
    metrics: metrics.map((m, i) => ({
      name: m.name,
      fn: tfjs.metricsTensors![i]![0],
      ...(m.direction ? { direction: m.direction } : {}),
    })),
    optimizer,
  };
  compiled.set(model, { info, lossFunctions: tfjs.lossFunctions });
  return model;
}

/** For a model compiled with tfjs's own `model.compile`: tfjs's names, in Keras's spelling. */
function fromTfjsCompile(model: tf.LayersModel): CompiledModel | undefined {
  const tfjs = compiledTfjsModel(model) as unknown as TfjsCompiled;
  if (!tfjs.lossFunctions?.length || !tfjs.optimizer) return undefined;
  const loss = tfjs.lossFunctions[0]!;
  const lossName =
    typeof model.loss === 'string' ? toSnakeCase(model.loss) : toSnakeCase(loss.name);
  const names = tfjs.metricsNames ?? ['loss'];
  return {
    lossName,
    loss,
    sparseTargets: lossName === 'sparse_categorical_crossentropy',
    metrics: (tfjs.metricsTensors ?? []).map(([fn], i) => {
      const tfjsName = names[i + 1] ?? fn.name;
      // tfjs names 'accuracy' and 'acc' both 'acc'; Keras users monitor 'val_accuracy'.
      const name = tfjsName === 'acc' ? 'accuracy' : toSnakeCase(tfjsName);
      const direction = DIRECTIONS[name] ?? (ACCURACY_FNS.has(fn) ? 'up' : undefined);
      return { name, fn, ...(direction ? { direction } : {}) };
    }),
    optimizer: tfjs.optimizer,
  };
}

/**
 * The compiled loss, metrics and optimizer of `model`, whether `compile` or tfjs's
 * `model.compile` compiled it; a clear error when it was never compiled.
 */
export function compiledModel(model: tf.LayersModel): CompiledModel {
  const recorded = compiled.get(model);
  const tfjs = compiledTfjsModel(model) as unknown as TfjsCompiled;
  if (recorded && recorded.lossFunctions === tfjs.lossFunctions) return recorded.info;
  const info = fromTfjsCompile(model);
  if (!info) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `model '${model.name}' is not compiled. Call compile(model, { optimizer: 'adam', loss: 'binary_crossentropy', metrics: ['accuracy'] }) before fit or evaluate.`,
      { model: model.name },
    );
  }
  return info;
}

/** Like `compiledModel`, or undefined for a model that is not compiled. */
export function maybeCompiledModel(model: tf.LayersModel | undefined): CompiledModel | undefined {
  if (!model) return undefined;
  try {
    return compiledModel(model);
  } catch {
    return undefined;
  }
}
