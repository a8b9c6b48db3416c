/**
 * Keras's `EarlyStopping`, with `restoreBestWeights` working (tfjs's throws on it): the best
 * epoch's weights are copied when it ends and put back when training ends.
 */
import * as tf from '../engine/tf.js';
import { invalidParameterError } from '../errors.js';
import { checkBoolean } from '../util/validate.js';
import type { Logs } from './callback.js';
import { MonitorCallback, type MonitorOptions } from './monitor-callback.js';
import { printLine } from './print.js';

export interface EarlyStoppingOptions extends MonitorOptions {
  /** Epochs with no improvement after which training stops. Default 0. */
  patience?: number;
  /**
   * A value the monitored quantity must beat: until an epoch does, the wait is never reset, so
   * training stops after `patience` epochs. Default none.
   */
  baseline?: number;
  /**
   * Put back the weights of the best epoch when training ends (whether this callback or another
   * stopped it, or the epochs ran out). Default false: the last epoch's weights stay.
   */
  restoreBestWeights?: boolean;
  /** Epochs to wait before monitoring starts (a warm-up). Default 0. */
  startFromEpoch?: number;
  /** 1 prints when it stops and when it restores weights. Default 0. */
  verbose?: number;
}

function checkNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalidParameterError(name, 'non-negative integer', value);
  }
  return value;
}

/**
 * Stops training when the monitored metric has stopped improving.
 * @example
 * await fit(model, trainIter, {
 *   epochs: 50,
 *   validationData: valIter,
 *   callbacks: [new EarlyStopping({ patience: 10, restoreBestWeights: true })],
 * });
 */
export class EarlyStopping extends MonitorCallback {
  readonly patience: number;
  readonly baseline: number | undefined;
  readonly restoreBestWeights: boolean;
  readonly startFromEpoch: number;
  readonly verbose: number;
  /** Epochs since the last improvement. */
  wait = 0;
  /** The epoch (0-based) at which this callback stopped training; 0 when it did not. */
  stoppedEpoch = 0;
  /** The epoch (0-based) of the best value. */
  bestEpoch = 0;
  private bestWeights: tf.Tensor[] | undefined;

  constructor(options: EarlyStoppingOptions = {}) {
    super(options, { minDelta: 0 });
    this.patience = checkNonNegativeInteger('patience', options.patience ?? 0);
    if (options.baseline !== undefined && !Number.isFinite(options.baseline)) {
      throw invalidParameterError('baseline', 'finite number', options.baseline);
    }
    this.baseline = options.baseline;
    this.restoreBestWeights = checkBoolean(
      'restoreBestWeights',
      options.restoreBestWeights ?? false,
    );
    this.startFromEpoch = checkNonNegativeInteger('startFromEpoch', options.startFromEpoch ?? 0);
    this.verbose = options.verbose ?? 0;
  }

  override onTrainBegin(): void {
    // Reusable across fit calls (Keras issue 20256): no state survives from a previous run.
    this.wait = 0;
    this.stoppedEpoch = 0;
    this.bestEpoch = 0;
    this.disposeBestWeights();
    this.resetMonitor(undefined);
  }

  override onEpochEnd(epoch: number, logs?: Logs): void {
    this.monitorDirection();
    const current = this.monitorValue(logs);
    if (current === undefined || epoch < this.startFromEpoch) return;
    if (this.restoreBestWeights && this.bestWeights === undefined) {
      // Until an epoch improves, the first monitored epoch counts as the best one.
      this.bestWeights = this.snapshot();
      this.bestEpoch = epoch;
    }
    this.wait += 1;
    if (this.isImprovement(current, this.best)) {
      this.best = current;
      this.bestEpoch = epoch;
      if (this.restoreBestWeights) {
        this.disposeBestWeights();
        this.bestWeights = this.snapshot();
      }
      // The wait restarts only when the value beats both the previous best and the baseline.
      if (this.baseline === undefined || this.isImprovement(current, this.baseline)) this.wait = 0;
      return;
    }
    if (this.wait >= this.patience && epoch > 0) {
      this.stoppedEpoch = epoch;
      if (this.model) this.model.stopTraining = true;
    }
  }

  override onTrainEnd(): void {
    if (this.stoppedEpoch > 0 && this.verbose > 0) {
      printLine(`Epoch ${this.stoppedEpoch + 1}: early stopping`);
    }
    if (this.restoreBestWeights && this.bestWeights !== undefined && this.model) {
      if (this.verbose > 0) {
        printLine(`Restoring model weights from the end of the best epoch: ${this.bestEpoch + 1}.`);
      }
      this.model.setWeights(this.bestWeights);
    }
    this.disposeBestWeights();
  }

  private snapshot(): tf.Tensor[] | undefined {
    // getWeights returns the live variables; training reassigns them, so keep clones.
    return this.model?.getWeights().map((w) => tf.clone(w));
  }

  private disposeBestWeights(): void {
    if (this.bestWeights) tf.dispose(this.bestWeights);
    this.bestWeights = undefined;
  }
}
