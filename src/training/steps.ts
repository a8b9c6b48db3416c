/**
 * One training or test step on one batch, and the running means that turn batch results into
 * Keras's epoch logs.
 *
 * The train step is tfjs's own (`LayersModel.makeTrainFunction`: forward in training mode, loss
 * plus regularization penalties, gradients of the compiled trainable weights,
 * `optimizer.applyGradients`) with two changes: the metrics are computed outside the gradient tape
 * from the kept predictions, and the loss and metrics come back in one read instead of one per
 * value.
 */
import * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import { warnOnce } from '../util/log.js';
import type { Logs } from './callback.js';
import { type CompiledModel, compiledTfjsModel } from './compile.js';

/**
 * Targets as the loss expects them, as Keras 3 squeezes or expands: float32, and a label vector
 * `[b]` against a `[b, 1]` output becomes `[b, 1]` (without this tfjs would broadcast `[b]`
 * against `[b, 1]` into a `[b, b]` loss).
 */
export function alignTargets(y: tf.Tensor, pred: tf.Tensor, sparse: boolean): tf.Tensor {
  let target = y.dtype === 'float32' ? y : tf.cast(y, 'float32');
  if (sparse) {
    const ok =
      target.rank === pred.rank - 1 ||
      (target.rank === pred.rank && target.shape[target.rank - 1] === 1);
    if (!ok || target.shape[0] !== pred.shape[0]) {
      throw new XferError(
        'SHAPE_MISMATCH',
        `sparse_categorical_crossentropy expects class indices of shape [${pred.shape[0]}] for an output of shape [${pred.shape}], but the targets have shape [${y.shape}]. For one-hot targets use categorical_crossentropy.`,
        { targets: y.shape, output: pred.shape },
      );
    }
    return target;
  }
  if (target.rank === pred.rank - 1) target = tf.expandDims(target, -1);
  if (target.rank !== pred.rank || target.shape.some((d, i) => d !== pred.shape[i])) {
    throw new XferError(
      'SHAPE_MISMATCH',
      `targets of shape [${y.shape}] do not match the model's output of shape [${pred.shape}]. Binary labels need one sigmoid unit; one-hot labels need as many softmax units as classes; class indices need sparse_categorical_crossentropy.`,
      { targets: y.shape, output: pred.shape },
    );
  }
  return target;
}

interface LayerVariableLike {
  read(): tf.Tensor;
}

/**
 * The variables a train step updates: the trainable weights collected when the model was compiled.
 * As in Keras (and src/engine/freezing.ts), a change of `trainable` takes effect at the next
 * compile; a warning says so when the model's trainable weights no longer match.
 */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  const collected = (
    compiledTfjsModel(model) as unknown as { collectedTrainableWeights?: LayerVariableLike[] }
  ).collectedTrainableWeights;
  const compiledVars = (collected ?? model.trainableWeights).map((w) => w.read() as tf.Variable);
  const current = new Set(model.trainableWeights.map((w) => w.read() as tf.Variable));
  if (compiledVars.length !== current.size || compiledVars.some((v) => !current.has(v))) {
    warnOnce(
      `trainable-changed:${model.name}:${compiledVars.length}:${current.size}`,
      `model '${model.name}' had ${compiledVars.length} trainable weights when compiled and has ${current.size} now: fit trains the compiled ones. Call compile again after changing trainable.`,
    );
  }
  // tfjs-core refuses gradients for a variable created non-trainable; never ask for one.
  const variables = compiledVars.filter((v) => v.trainable);
  if (variables.length === 0) {
    warnOnce(
      `no-trainable:${model.name}`,
      `model '${model.name}' has no trainable weights: fit will compute the loss but change nothing. Set trainable = true on the layers to train and compile again.`,
    );
  }
  return variables;
}

function computeLoss(
  model: tf.LayersModel,
  info: CompiledModel,
  y: tf.Tensor,
  pred: tf.Tensor,
): tf.Scalar {
  let loss = tf.mean(info.loss(alignTargets(y, pred, info.sparseTargets), pred)) as tf.Scalar;
  for (const penalty of model.calculateLosses()) loss = tf.add(loss, penalty);
  return loss;
}

function metricValues(info: CompiledModel, y: tf.Tensor, pred: tf.Tensor): tf.Scalar[] {
  return info.metrics.map(
    (m) => tf.mean(m.fn(alignTargets(y, pred, info.sparseTargets), pred)) as tf.Scalar,
  );
}

async function readScalars(scalars: tf.Scalar[]): Promise<number[]> {
  const stacked = tf.stack(scalars);
  try {
    return Array.from(await stacked.data());
  } finally {
    tf.dispose([stacked, ...scalars]);
  }
}

/** One optimizer step on a batch; resolves to `[loss, ...metrics]` for that batch. */
export async function trainStep(
  model: tf.LayersModel,
  info: CompiledModel,
  variables: tf.Variable[],
  x: tf.Tensor,
  y: tf.Tensor,
): Promise<number[]> {
  let pred: tf.Tensor | undefined;
  const lossFunction = (): tf.Scalar => {
    const output = model.apply(x, { training: true }) as tf.Tensor;
    // The predictions outlive the tape for the metrics; the tape keeps its own clones.
    pred = tf.keep(output);
    return computeLoss(model, info, y, output);
  };
  try {
    let loss: tf.Scalar;
    if (variables.length > 0) {
      const { value, grads } = tf.variableGrads(lossFunction, variables);
      info.optimizer.applyGradients(grads);
      tf.dispose(Object.values(grads));
      loss = value;
    } else {
      loss = tf.tidy(lossFunction);
    }
    const output = pred!;
    const metrics = tf.tidy(() => metricValues(info, y, output));
    return await readScalars([loss, ...metrics]);
  } finally {
    pred?.dispose();
  }
}

/**
 * Loss and metrics of a batch in inference mode; resolves to `[loss, ...metrics]`. `infer` computes
 * the predictions (e.g. on onnxruntime); default the model in tfjs.
 */
export async function testStep(
  model: tf.LayersModel,
  info: CompiledModel,
  x: tf.Tensor,
  y: tf.Tensor,
  infer?: (x: tf.Tensor) => Promise<tf.Tensor>,
): Promise<number[]> {
  const predicted = infer ? await infer(x) : undefined;
  try {
    const values = tf.tidy(() => {
      const pred = predicted ?? (model.apply(x, { training: false }) as tf.Tensor);
      return [computeLoss(model, info, y, pred), ...metricValues(info, y, pred)];
    });
    return await readScalars(values);
  } finally {
    predicted?.dispose();
  }
}

/**
 * Keras's running means: each batch's value weighted by its number of samples, so an epoch's
 * `loss` is the mean over its samples even when the last batch is short.
 */
export class MeanTracker {
  private readonly sums: number[];
  private count = 0;

  constructor(readonly names: readonly string[]) {
    this.sums = names.map(() => 0);
  }

  update(values: readonly number[], samples: number): void {
    for (let i = 0; i < this.sums.length; i++) this.sums[i]! += values[i]! * samples;
    this.count += samples;
  }

  result(prefix = ''): Logs {
    const logs: Logs = {};
    this.names.forEach((name, i) => {
      logs[prefix + name] = this.count > 0 ? this.sums[i]! / this.count : Number.NaN;
    });
    return logs;
  }
}
