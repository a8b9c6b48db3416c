/**
 * Keras's `MonitorCallback`: the shared base of EarlyStopping, ModelCheckpoint and
 * ReduceLROnPlateau. It decides whether a monitored value improved. In `mode: 'auto'` the direction
 * comes from the metric itself, as in Keras: `loss` / `val_loss` are minimized, and a compiled
 * metric is maximized or minimized per its own direction (accuracies up, losses used as metrics
 * down); anything else is an error asking for `mode`, never a guess from the name.
 */
import { invalidParameterError, XferError } from '../errors.js';
import { warn } from '../util/log.js';
import { checkOneOf } from '../util/validate.js';
import { Callback, type Logs } from './callback.js';
import { maybeCompiledModel } from './compile.js';
import { toSnakeCase } from './names.js';

export const MONITOR_MODES = ['auto', 'min', 'max'] as const;
export type MonitorMode = (typeof MONITOR_MODES)[number];

export interface MonitorOptions {
  /**
   * The logs key to watch, as Keras writes it (`'val_loss'`, `'val_accuracy'`, `'loss'`);
   * camelCase (`'valLoss'`) is accepted and mapped. Default `'val_loss'`.
   */
  monitor?: string;
  /**
   * `'min'`, `'max'`, or `'auto'`: minimize losses, maximize accuracies, from the compiled
   * metric's own direction. Default `'auto'`.
   */
  mode?: MonitorMode;
  /** Smallest change that counts as an improvement (absolute value). Default 0. */
  minDelta?: number;
}

export abstract class MonitorCallback extends Callback {
  /** The logs key watched, in Keras's snake_case. */
  readonly monitor: string;
  readonly mode: MonitorMode;
  readonly minDelta: number;
  /** The best value seen so far; undefined before the first one. */
  best: number | undefined;
  private direction: 'min' | 'max' | undefined;
  private warnedMissing = false;

  constructor(options: MonitorOptions, defaults: { minDelta: number }) {
    super();
    const monitor = options.monitor ?? 'val_loss';
    if (typeof monitor !== 'string' || monitor === '') {
      throw invalidParameterError('monitor', "a logs key such as 'val_loss'", monitor);
    }
    this.monitor = toSnakeCase(monitor);
    this.mode = checkOneOf('mode', options.mode ?? 'auto', MONITOR_MODES);
    const minDelta = options.minDelta ?? defaults.minDelta;
    if (typeof minDelta !== 'number' || !Number.isFinite(minDelta)) {
      throw invalidParameterError('minDelta', 'finite number', minDelta);
    }
    // Keras takes abs(min_delta): the direction, not the sign, says which way is better.
    this.minDelta = Math.abs(minDelta);
  }

  /** Whether a larger value is better, resolved from `mode` (or the metric) on first use. */
  protected monitorDirection(): 'min' | 'max' {
    this.direction ??= this.resolveDirection();
    return this.direction;
  }

  private resolveDirection(): 'min' | 'max' {
    if (this.mode !== 'auto') return this.mode;
    const metricName = this.monitor.startsWith('val_') ? this.monitor.slice(4) : this.monitor;
    if (metricName === 'loss') return 'min';
    const compiled = maybeCompiledModel(this.model);
    const metric = compiled?.metrics.find((m) => m.name === metricName);
    if (metric?.direction) return metric.direction === 'up' ? 'max' : 'min';
    const known = compiled ? ['loss', ...compiled.metrics.map((m) => m.name)].join(', ') : 'loss';
    throw new XferError(
      'INVALID_ARGUMENT',
      `${this.constructor.name} received monitor '${this.monitor}', but xfer cannot tell whether it should be maximized or minimized: it is neither a loss nor a compiled metric with a known direction (compiled: ${known}). Pass mode: 'max' to monitor the highest value, or mode: 'min' for the lowest.`,
      { monitor: this.monitor, known },
    );
  }

  /** Keras's `_is_improvement`: better than `reference` by more than `minDelta`. */
  protected isImprovement(value: number, reference: number | undefined): boolean {
    if (reference === undefined) return true;
    return this.monitorDirection() === 'min'
      ? value + this.minDelta < reference
      : value - this.minDelta > reference;
  }

  /** Starts a training run afresh: a new best, a new missing-key warning. */
  protected resetMonitor(best: number | undefined): void {
    this.best = best;
    this.direction = undefined;
    this.warnedMissing = false;
  }

  /** The monitored value from `logs`, or undefined with one warning per run listing the keys. */
  protected monitorValue(logs: Logs | undefined): number | undefined {
    const value = logs?.[this.monitor];
    if (value === undefined && !this.warnedMissing) {
      this.warnedMissing = true;
      const available = Object.keys(logs ?? {});
      const hint = this.monitor.startsWith('val_')
        ? ' Validation metrics appear only when fit gets validationData.'
        : '';
      warn(
        `${this.constructor.name} is conditioned on metric '${this.monitor}', which is not available. Available metrics are: ${available.join(', ') || '(none)'}.${hint}`,
      );
    }
    return value;
  }
}
