/**
 * Keras's `TerminateOnNaN`: stops training at the first batch whose loss is NaN or infinite, and
 * (xfer's addition) at the first batch after which a trainable weight is NaN or infinite. The
 * weight check matters on tfjs: the cross-entropy losses clip predictions, and on the wasm backend
 * the clip maps a NaN prediction to the bound, so a diverged model can report a finite loss while
 * every weight is NaN.
 */
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { checkBoolean } from '../util/validate.js';
import { Callback, type Logs } from './callback.js';
import { printLine } from './print.js';

/** When the trainable weights are checked for NaN / Inf. */
export type WeightCheck = 'batch' | 'epoch' | 'none';

export interface TerminateOnNaNOptions {
  /**
   * Throw at once (an `XferError`), skipping the other callbacks' `onTrainEnd`, instead of
   * stopping gracefully. Default false.
   */
  raiseError?: boolean;
  /**
   * Check the trainable weights too: after every batch (`'batch'`), at each epoch's end
   * (`'epoch'`), or never (`'none'`, Keras's behaviour). The check is one fused reduction and
   * one number read back per check. Default `'batch'`.
   */
  checkWeights?: WeightCheck;
}

const WEIGHT_CHECKS: readonly WeightCheck[] = ['batch', 'epoch', 'none'];

/**
 * The first trainable weight of `model` that holds a NaN or infinite value, or null. One sum over
 * all weights is read back; only when it is not finite are the weights looked at one by one (a
 * sum can overflow to Inf while every weight is finite: then nothing is reported).
 */
export function nonFiniteWeight(model: tf.LayersModel): tf.LayerVariable | null {
  const weights = model.trainableWeights;
  if (weights.length === 0) return null;
  const total = tf.tidy(() => tf.addN(weights.map((w) => tf.sum(w.read()))));
  const sum = total.dataSync()[0]!;
  total.dispose();
  if (Number.isFinite(sum)) return null;
  for (const weight of weights) {
    const finite = tf.tidy(() => tf.all(tf.isFinite(weight.read())));
    const ok = finite.dataSync()[0] === 1;
    finite.dispose();
    if (!ok) return weight;
  }
  return null;
}

/**
 * Stops training when the loss, or a trainable weight, becomes NaN or infinite.
 * @example
 * await fit(model, data, { epochs: 5, callbacks: [new TerminateOnNaN()] });
 * // Throw instead, checking the weights once per epoch only:
 * new TerminateOnNaN({ raiseError: true, checkWeights: 'epoch' });
 */
export class TerminateOnNaN extends Callback {
  readonly raiseError: boolean;
  readonly checkWeights: WeightCheck;

  constructor(options: TerminateOnNaNOptions = {}) {
    super();
    this.raiseError = checkBoolean('raiseError', options.raiseError ?? false);
    const check = options.checkWeights ?? 'batch';
    if (!WEIGHT_CHECKS.includes(check)) {
      throw invalidParameterError('checkWeights', "'batch', 'epoch' or 'none'", check);
    }
    this.checkWeights = check;
  }

  override onTrainBatchEnd(batch: number, logs?: Logs): void {
    const loss = logs?.loss;
    if (loss !== undefined && !Number.isFinite(loss)) {
      if (this.raiseError) {
        throw new XferError(
          'INVALID_ARGUMENT',
          `NaN or Inf loss encountered at batch ${batch} (loss ${loss}); lower the learning rate or check the data for NaN values.`,
          { batch, loss },
        );
      }
      printLine(`Batch ${batch}: Invalid loss, terminating training`);
      if (this.model) this.model.stopTraining = true;
      return;
    }
    if (this.checkWeights === 'batch') this.checkModelWeights(`batch ${batch}`, { batch });
  }

  override onEpochEnd(epoch: number): void {
    if (this.checkWeights === 'epoch') this.checkModelWeights(`epoch ${epoch + 1}`, { epoch });
  }

  private checkModelWeights(where: string, details: Record<string, number>): void {
    if (!this.model || this.model.stopTraining) return;
    const bad = nonFiniteWeight(this.model);
    if (!bad) return;
    const name = bad.originalName ?? bad.name;
    if (this.raiseError) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `weight ${name} became NaN or infinite at ${where}; lower the learning rate or check the data for NaN values.`,
        { ...details, diverged: true, weight: name },
      );
    }
    printLine(
      `${where[0]!.toUpperCase()}${where.slice(1)}: Invalid weights (${name} is NaN or Inf), terminating training`,
    );
    this.model.stopTraining = true;
  }
}
