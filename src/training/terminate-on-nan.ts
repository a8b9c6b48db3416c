/** Keras's `TerminateOnNaN`: stops training at the first batch whose loss is NaN or infinite. */
import { XferError } from '../errors.js';
import { checkBoolean } from '../util/validate.js';
import { Callback, type Logs } from './callback.js';
import { printLine } from './print.js';

export interface TerminateOnNaNOptions {
  /**
   * Throw at once (an `XferError`), skipping the other callbacks' `onTrainEnd`, instead of
   * stopping gracefully. Default false.
   */
  raiseError?: boolean;
}

/**
 * Stops training when the loss becomes NaN or infinite.
 * @example
 * await fit(model, data, { epochs: 5, callbacks: [new TerminateOnNaN()] });
 */
export class TerminateOnNaN extends Callback {
  readonly raiseError: boolean;

  constructor(options: TerminateOnNaNOptions = {}) {
    super();
    this.raiseError = checkBoolean('raiseError', options.raiseError ?? false);
  }

  override onTrainBatchEnd(batch: number, logs?: Logs): void {
    const loss = logs?.loss;
    if (loss === undefined || Number.isFinite(loss)) return;
    if (this.raiseError) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `NaN or Inf loss encountered at batch ${batch} (loss ${loss}); lower the learning rate or check the data for NaN values.`,
        { batch, loss },
      );
    }
    printLine(`Batch ${batch}: Invalid loss, terminating training`);
    if (this.model) this.model.stopTraining = true;
  }
}
