/** Keras's `History`: what `fit` returns, each epoch's logs gathered per key. */
import { Callback, type Logs } from './callback.js';

/**
 * The record of a `fit` run.
 * @example
 * const history = await fit(model, data, { epochs: 3 });
 * history.history.loss; // [0.69, 0.52, 0.41]
 * history.epoch; // [0, 1, 2]
 */
export class History extends Callback {
  /** Each logs key's values, one per epoch run (`loss`, `accuracy`, `val_loss`...). */
  history: Record<string, number[]> = {};
  /** The epoch indices run (0-based; they start at `initialEpoch`). */
  epoch: number[] = [];

  override onTrainBegin(): void {
    this.epoch = [];
  }

  override onEpochEnd(epoch: number, logs: Logs = {}): void {
    this.epoch.push(epoch);
    for (const [key, value] of Object.entries(logs)) {
      this.history[key] ??= [];
      this.history[key].push(value);
    }
  }
}
