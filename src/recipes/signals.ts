/**
 * Stopping training cleanly on Ctrl+C or `kill`: the first SIGINT / SIGTERM aborts an
 * `AbortSignal` that training watches at every batch boundary (the current batch finishes, the
 * epoch in progress is abandoned, the last complete epoch's state stays on disk); a second signal
 * exits at once. Files are written atomically, so even that leaves every checkpoint loadable.
 */
import { XferError } from '../errors.js';
import { Callback } from '../training/index.js';

export interface InterruptTrap {
  /** Aborted by the first SIGINT or SIGTERM; its `reason` names the signal. */
  readonly signal: AbortSignal;
  /** Removes the handlers (call when training is over). */
  dispose(): void;
}

export interface InterruptTrapOptions {
  /** Signals to trap. Default ['SIGINT', 'SIGTERM']. */
  signals?: NodeJS.Signals[];
  /** Said on the first signal, e.g. on stderr. Default: nothing. */
  onInterrupt?: (signal: NodeJS.Signals) => void;
  /** Exit status after a second signal. Default 130 (128 + SIGINT). */
  forceExitCode?: number;
}

/**
 * Installs SIGINT / SIGTERM handlers that turn the first signal into an abort.
 * @example
 * const trap = trapInterrupts({ onInterrupt: (s) => process.stderr.write(`${s}: stopping\n`) });
 * try { await trainClassifier({ ..., signal: trap.signal }); } finally { trap.dispose(); }
 */
export function trapInterrupts(options: InterruptTrapOptions = {}): InterruptTrap {
  const controller = new AbortController();
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  const handler = (name: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      // A second Ctrl+C means now: atomic writes keep every file on disk whole.
      process.exit(options.forceExitCode ?? 130);
    }
    controller.abort(name);
    options.onInterrupt?.(name);
  };
  for (const name of signals) process.on(name, handler);
  return {
    signal: controller.signal,
    dispose() {
      for (const name of signals) process.off(name, handler);
    },
  };
}

/** The error an aborted training stops with; `trainClassifier` replaces it with a fuller one. */
export function interruptedError(signal: AbortSignal): XferError {
  const reason = typeof signal.reason === 'string' ? signal.reason : 'an abort';
  return new XferError('INTERRUPTED', `training interrupted by ${reason}.`, { reason });
}

/**
 * Throws `interruptedError` at the first hook after `signal` is aborted. Put it first in the
 * callback list: an epoch cut short then never reaches the checkpoint, the CSV log or the
 * training state, which keep the last complete epoch.
 */
export class InterruptGuard extends Callback {
  constructor(readonly signal: AbortSignal) {
    super();
  }

  private check(): void {
    if (this.signal.aborted) {
      if (this.model) this.model.stopTraining = true;
      throw interruptedError(this.signal);
    }
  }

  override onTrainBegin(): void {
    this.check();
  }
  override onEpochBegin(): void {
    this.check();
  }
  override onEpochEnd(): void {
    this.check();
  }
  override onTrainBatchBegin(): void {
    this.check();
  }
  override onTrainBatchEnd(): void {
    this.check();
  }
  override onTestBatchEnd(): void {
    this.check();
  }
  override onPredictBatchEnd(): void {
    this.check();
  }
}
