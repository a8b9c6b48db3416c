/**
 * Keras's `ReduceLROnPlateau`: multiplies the optimizer's learning rate by `factor` after
 * `patience` epochs without improvement, then waits `cooldown` epochs, never going below `minLr`.
 * It adds `learning_rate` to each epoch's logs (so History and CSVLogger record it).
 */
import { invalidParameterError, XferError } from '../errors.js';
import { checkNonNegativeNumber } from '../util/validate.js';
import type { Logs } from './callback.js';
import { MonitorCallback, type MonitorOptions } from './monitor-callback.js';
import { getLearningRate, setLearningRate } from './optimizers.js';
import { printLine } from './print.js';

export interface ReduceLROnPlateauOptions extends MonitorOptions {
  /** New rate = rate × factor; must be below 1. Default 0.1. */
  factor?: number;
  /** Epochs without improvement before the rate is reduced. Default 10. */
  patience?: number;
  /** Epochs to wait after a reduction before counting again. Default 0. */
  cooldown?: number;
  /** Lower bound on the learning rate. Default 0. */
  minLr?: number;
  /** 1 prints each reduction. Default 0. */
  verbose?: number;
}

function checkNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalidParameterError(name, 'non-negative integer', value);
  }
  return value;
}

/**
 * Reduces the learning rate when a metric has stopped improving.
 * @example
 * new ReduceLROnPlateau({ monitor: 'val_loss', factor: 0.2, patience: 5, minLr: 1e-6 });
 */
export class ReduceLROnPlateau extends MonitorCallback {
  readonly factor: number;
  readonly patience: number;
  readonly cooldown: number;
  readonly minLr: number;
  readonly verbose: number;
  /** Epochs since the last improvement (not counted during cooldown). */
  wait = 0;
  /** Epochs of cooldown left. */
  cooldownCounter = 0;

  constructor(options: ReduceLROnPlateauOptions = {}) {
    super(options, { minDelta: 1e-4 });
    const factor = options.factor ?? 0.1;
    if (typeof factor !== 'number' || !(factor > 0 && factor < 1)) {
      throw invalidParameterError('factor', 'number between 0 and 1 (exclusive)', factor);
    }
    this.factor = factor;
    this.patience = checkNonNegativeInteger('patience', options.patience ?? 10);
    this.cooldown = checkNonNegativeInteger('cooldown', options.cooldown ?? 0);
    this.minLr = checkNonNegativeNumber('minLr', options.minLr ?? 0);
    this.verbose = options.verbose ?? 0;
  }

  override onTrainBegin(): void {
    this.wait = 0;
    this.cooldownCounter = 0;
    this.resetMonitor(undefined);
  }

  private optimizer() {
    const optimizer = this.model?.optimizer;
    const lr = optimizer ? getLearningRate(optimizer) : undefined;
    if (!optimizer || lr === undefined) {
      throw new XferError(
        'INVALID_ARGUMENT',
        'ReduceLROnPlateau needs a compiled model whose optimizer has a learningRate (Adam, SGD, RMSprop...).',
      );
    }
    return { optimizer, lr };
  }

  override onEpochEnd(epoch: number, logs?: Logs): void {
    this.monitorDirection();
    const { optimizer, lr } = this.optimizer();
    if (logs) logs.learning_rate = lr;
    const current = this.monitorValue(logs);
    if (current === undefined) return;
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.wait = 0;
    }
    if (this.isImprovement(current, this.best)) {
      this.best = current;
      this.wait = 0;
      return;
    }
    if (this.cooldownCounter > 0) return;
    this.wait += 1;
    // Keras compares float32 values (its rate is a float32 variable): a rate at minLr stays.
    if (this.wait >= this.patience && Math.fround(lr) > Math.fround(this.minLr)) {
      const newLr = Math.max(lr * this.factor, this.minLr);
      setLearningRate(optimizer, newLr);
      if (this.verbose > 0)
        printLine(`Epoch ${epoch + 1}: ReduceLROnPlateau reducing learning rate to ${newLr}.`);
      this.cooldownCounter = this.cooldown;
      this.wait = 0;
    }
  }
}
