/**
 * Keras's `Callback`: hooks that `fit`, `evaluate` and `predict` call around epochs and batches.
 * Every hook may be async; the loops await each one in order. `logs` carry Keras's snake_case
 * keys (`loss`, `accuracy`, `val_loss`, `val_accuracy`) and the same object is passed to every
 * callback, so a callback that adds a key (ReduceLROnPlateau's `learning_rate`) is seen by the
 * ones after it.
 */
import type * as tf from '../engine/tf.js';
import { invalidParameterError } from '../errors.js';

/** Scalar results keyed as Keras prints them. */
export type Logs = Record<string, number>;

/** What `fit` / `evaluate` / `predict` tell callbacks through `setParams` (Keras's `params`). */
export interface CallbackParams {
  /** Epochs `fit` runs to (Keras's `epochs`). */
  epochs?: number;
  /** Batches per epoch, or per evaluate / predict run. */
  steps?: number;
  /** 0 silent, 1 progress bar, 2 one line per epoch. */
  verbose?: number;
  [key: string]: unknown;
}

export class Callback {
  /** The model being trained, set by `fit` before `onTrainBegin`. */
  model?: tf.LayersModel;
  params: CallbackParams = {};

  setModel(model: tf.LayersModel): void {
    this.model = model;
  }

  setParams(params: CallbackParams): void {
    this.params = params;
  }

  onTrainBegin(_logs?: Logs): void | Promise<void> {}
  onTrainEnd(_logs?: Logs): void | Promise<void> {}
  onEpochBegin(_epoch: number, _logs?: Logs): void | Promise<void> {}
  onEpochEnd(_epoch: number, _logs?: Logs): void | Promise<void> {}
  onTrainBatchBegin(_batch: number, _logs?: Logs): void | Promise<void> {}
  onTrainBatchEnd(_batch: number, _logs?: Logs): void | Promise<void> {}
  onTestBegin(_logs?: Logs): void | Promise<void> {}
  onTestEnd(_logs?: Logs): void | Promise<void> {}
  onTestBatchBegin(_batch: number, _logs?: Logs): void | Promise<void> {}
  onTestBatchEnd(_batch: number, _logs?: Logs): void | Promise<void> {}
  onPredictBegin(_logs?: Logs): void | Promise<void> {}
  onPredictEnd(_logs?: Logs): void | Promise<void> {}
  onPredictBatchBegin(_batch: number, _logs?: Logs): void | Promise<void> {}
  onPredictBatchEnd(_batch: number, _logs?: Logs): void | Promise<void> {}
}

type Hook = Exclude<keyof Callback, 'model' | 'params' | 'setModel' | 'setParams'>;

/** Runs one hook over callbacks in order, awaiting each (Keras's `CallbackList`). */
export class CallbackList {
  constructor(readonly callbacks: Callback[]) {}

  setModel(model: tf.LayersModel): void {
    for (const callback of this.callbacks) callback.setModel(model);
  }

  setParams(params: CallbackParams): void {
    for (const callback of this.callbacks) callback.setParams(params);
  }

  async call(hook: Hook, ...args: [Logs?] | [number, Logs?]): Promise<void> {
    for (const callback of this.callbacks) {
      await (callback[hook] as (...a: unknown[]) => void | Promise<void>).apply(callback, args);
    }
  }
}

export function checkCallbacks(callbacks: unknown): Callback[] {
  if (callbacks === undefined) return [];
  if (!Array.isArray(callbacks) || !callbacks.every((c) => c instanceof Callback)) {
    // tfjs's own callbacks (tf.callbacks.earlyStopping) have other hook names: say which to use.
    throw invalidParameterError(
      'callbacks',
      'an array of xfer Callback instances (new EarlyStopping(...), not tf.callbacks.earlyStopping)',
      callbacks,
    );
  }
  return callbacks;
}
