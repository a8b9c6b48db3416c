/**
 * Keras's `ProgbarLogger`, the output of `verbose`: with 1, `Epoch 3/10`, a progress bar over the
 * epoch's steps with the running `loss` / `accuracy`, then the epoch's line with the validation
 * metrics and the time; with 2, only the epoch lines. When the stream is not a terminal (a log
 * file, CI) verbose 1 prints the plain lines of verbose 2, never a redrawn bar.
 */
import { invalidParameterError } from '../errors.js';
import { createProgress, type Progress } from '../util/progress.js';
import { Callback, type CallbackParams, type Logs } from './callback.js';
import { pythonExponential, pythonFixed } from './format.js';
import { printLine } from './print.js';

export interface ProgbarLoggerOptions {
  /** Where to print. Default process.stdout (Keras prints there). */
  stream?: NodeJS.WriteStream;
}

export function checkVerbose(value: unknown): 0 | 1 | 2 {
  if (value !== 0 && value !== 1 && value !== 2)
    throw invalidParameterError('verbose', '0, 1 or 2', value);
  return value;
}

/** Keras's number format in the bar: 4 decimals, exponent notation for tiny values. */
export function formatMetric(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  return Math.abs(value) > 1e-3 ? pythonFixed(value, 4) : pythonExponential(value, 4);
}

function formatLogs(logs: Logs | undefined): string {
  return Object.entries(logs ?? {})
    .map(([key, value]) => ` - ${key}: ${formatMetric(value)}`)
    .join('');
}

function formatStepTime(seconds: number): string {
  if (seconds >= 1 || seconds === 0) return `${seconds.toFixed(0)}s/step`;
  if (seconds >= 1e-3) return `${(seconds * 1000).toFixed(0)}ms/step`;
  return `${(seconds * 1e6).toFixed(0)}us/step`;
}

/**
 * Prints Keras-like progress; `fit`, `evaluate` and `predict` add one when `verbose` > 0.
 * @example
 * await fit(model, data, { epochs: 10, verbose: 2 }); // one line per epoch
 */
export class ProgbarLogger extends Callback {
  private readonly stream: NodeJS.WriteStream;
  private verbose = 1;
  private epochs = 1;
  private target: number | undefined;
  private calledInFit = false;
  private seen = 0;
  private started = 0;
  private bar: Progress | undefined;

  constructor(options: ProgbarLoggerOptions = {}) {
    super();
    this.stream = options.stream ?? process.stdout;
  }

  override setParams(params: CallbackParams): void {
    super.setParams(params);
    this.verbose = params.verbose ?? 1;
    this.epochs = params.epochs ?? 1;
    this.target = params.steps;
  }

  override onTrainBegin(): void {
    this.calledInFit = true;
  }

  override onTrainEnd(): void {
    this.stopBar();
    this.calledInFit = false;
  }

  override onEpochBegin(epoch: number): void {
    if (this.verbose > 0 && this.epochs > 1)
      printLine(`Epoch ${epoch + 1}/${this.epochs}`, this.stream);
    this.start();
  }

  override onTrainBatchEnd(batch: number, logs?: Logs): void {
    this.update(batch, logs);
  }

  override onEpochEnd(_epoch: number, logs?: Logs): void {
    this.finish(logs);
  }

  override onTestBegin(): void {
    if (!this.calledInFit) this.start();
  }

  override onTestBatchEnd(batch: number, logs?: Logs): void {
    if (!this.calledInFit) this.update(batch, logs);
  }

  override onTestEnd(logs?: Logs): void {
    if (!this.calledInFit) this.finish(logs);
  }

  override onPredictBegin(): void {
    this.start();
  }

  override onPredictBatchEnd(batch: number): void {
    this.update(batch, undefined);
  }

  override onPredictEnd(): void {
    this.finish(undefined);
  }

  private start(): void {
    this.stopBar();
    this.seen = 0;
    this.started = performance.now();
    if (this.verbose === 1 && this.stream.isTTY && this.target !== undefined) {
      this.bar = createProgress({
        total: this.target,
        label: '',
        suffix: '{metrics}',
        stream: this.stream,
      });
      // Without a first payload cli-progress shows the placeholder '{metrics}' itself.
      this.bar.update(0, { metrics: '' });
    }
  }

  private update(batch: number, logs: Logs | undefined): void {
    this.seen = batch + 1;
    this.bar?.update(this.seen, { metrics: formatLogs(logs) });
  }

  private stopBar(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private finish(logs: Logs | undefined): void {
    this.stopBar();
    if (this.verbose === 0) return;
    const target = this.target ?? this.seen;
    const seconds = (performance.now() - this.started) / 1000;
    const digits = String(target).length;
    const count = `${String(this.seen).padStart(digits)}/${target}`;
    const perStep = formatStepTime(this.seen > 0 ? seconds / this.seen : 0);
    printLine(`${count} - ${seconds.toFixed(0)}s - ${perStep}${formatLogs(logs)}`, this.stream);
  }
}

/** Which loop a `StepProgress` follows. */
export type ProgressPhase = 'predict' | 'test' | 'firstEpoch';

export interface StepProgressOptions {
  /** Shown before the bar, e.g. 'evaluate'. */
  label: string;
  /**
   * The loop to follow: `predict` (predict, and the report's pass over a folder), `test`
   * (evaluate), or `firstEpoch` (fit's first epoch, the one that runs the frozen backbone over
   * every image when its features are cached). Default `'predict'`.
   */
  phase?: ProgressPhase;
  /** Unit after the count. Default 'batches'. */
  unit?: string;
  /** Where to draw. Default process.stderr, so that results on stdout stay clean. */
  stream?: NodeJS.WriteStream;
  /**
   * With `firstEpoch`: the validation batches per epoch, to follow the first validation pass too
   * (it computes the validation images' backbone features). Default: the validation pass is not
   * followed.
   */
  validationSteps?: number;
}

/**
 * A labelled progress bar (`src/util/progress.ts`: a bar on a terminal, a start and an end line
 * otherwise, nothing under `--quiet`) over one loop's batches. Unlike `ProgbarLogger` it draws on
 * stderr and prints no metrics: it is for the long steps of commands whose results go to stdout.
 * @example
 * const probs = await predict(model, testIter, {
 *   callbacks: [new StepProgress({ label: 'evaluate' })],
 * });
 */
export class StepProgress extends Callback {
  readonly label: string;
  readonly phase: ProgressPhase;
  private readonly unit: string;
  private readonly stream: NodeJS.WriteStream;
  private bar: Progress | undefined;
  private firstEpoch = true;
  private readonly validationSteps: number | undefined;

  constructor(options: StepProgressOptions) {
    super();
    this.label = options.label;
    this.phase = options.phase ?? 'predict';
    this.unit = options.unit ?? 'batches';
    this.stream = options.stream ?? process.stderr;
    this.validationSteps = options.validationSteps;
  }

  private begin(total = this.params.steps, label = this.label): void {
    this.end();
    if (total === undefined) return;
    this.bar = createProgress({
      total,
      label,
      unit: this.unit,
      stream: this.stream,
    });
  }

  private step(batch: number): void {
    this.bar?.update(batch + 1);
  }

  private end(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  override onPredictBegin(): void {
    if (this.phase === 'predict') this.begin();
  }
  override onPredictBatchEnd(batch: number): void {
    if (this.phase === 'predict') this.step(batch);
  }
  override onPredictEnd(): void {
    if (this.phase === 'predict') this.end();
  }
  /** In fit's first epoch, its validation pass (when `validationSteps` is given). */
  private firstValidation(): boolean {
    return this.phase === 'firstEpoch' && this.firstEpoch && this.validationSteps !== undefined;
  }
  override onTestBegin(): void {
    if (this.phase === 'test') this.begin();
    else if (this.firstValidation()) this.begin(this.validationSteps, `${this.label} validation`);
  }
  override onTestBatchEnd(batch: number): void {
    if (this.phase === 'test' || this.firstValidation()) this.step(batch);
  }
  override onTestEnd(): void {
    if (this.phase === 'test' || this.firstValidation()) this.end();
  }
  override onTrainBegin(): void {
    this.firstEpoch = true;
  }
  override onEpochBegin(): void {
    if (this.phase === 'firstEpoch' && this.firstEpoch) this.begin();
  }
  override onTrainBatchEnd(batch: number): void {
    if (this.phase === 'firstEpoch' && this.firstEpoch) this.step(batch);
  }
  override onEpochEnd(): void {
    if (this.phase === 'firstEpoch' && this.firstEpoch) this.end();
    this.firstEpoch = false;
  }
  override onTrainEnd(): void {
    // An interrupted or stopped first epoch leaves no bar drawn.
    this.end();
  }
}
