/**
 * The two halves of `trainClassifier` that fill the run folder: training with the checkpoint,
 * early stopping, CSV history, per-epoch resumable state and clean interruption; then the final
 * model, the test metrics and the report.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { DirectoryIterator } from '../data/index.js';
import type * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import { imagesPerClass, labelledOutputs, writeReport } from '../report/index.js';
import { classificationMetrics } from '../report/metrics.js';
import {
  type Callback,
  CSVLogger,
  EarlyStopping,
  fit,
  ModelCheckpoint,
  StepProgress,
  TerminateOnNaN,
} from '../training/index.js';
import { pathExists, writeFileAtomic } from '../util/fs.js';
import { info } from '../util/log.js';
import { replaceModelFolder } from '../weights/model-folder.js';
import { type TrainingState, TrainingStateCallback } from './resume.js';
import { RUN_FILES, type RunConfig, removeStaleTempFiles } from './run-folder.js';
import { InterruptGuard } from './signals.js';

export interface RunTrainingOptions {
  outDir: string;
  epochs: number;
  initialEpoch: number;
  patience: number;
  verbose: 0 | 1 | 2;
  seed: number;
  callbacks: Callback[];
  resumeFrom?: TrainingState;
  signal?: AbortSignal;
  /** fit's `featureCacheDir`: the frozen backbone's outputs kept across runs. */
  featureCacheDir?: string;
}

/** Keeps the header and the rows of the first `epochs` epochs (a crash may have left one more). */
async function truncateHistory(file: string, epochs: number): Promise<void> {
  const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const [header, ...rows] = text.split('\n').filter((line) => line !== '');
  const kept = rows.filter((row) => Number(row.split(',')[0]) < epochs);
  await writeFileAtomic(file, [header, ...kept].map((line) => `${line}\n`).join(''));
}

function resumeHint(outDir: string, done: number): string {
  return done > 0
    ? `${outDir} keeps the state after epoch ${done}; continue with: xfer train --resume ${outDir}`
    : `no epoch had completed, so there is nothing to resume; start again with: xfer train --config ${path.join(outDir, RUN_FILES.config)}`;
}

/**
 * Trains from `initialEpoch` to `epochs`, writing best.weights.h5, history.csv and last.ckpt in
 * `outDir`. Resolves to the state after the last epoch (history from epoch 0 on a resumed run).
 */
export async function runTraining(
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  trainIter: DirectoryIterator,
  valIter: DirectoryIterator,
  options: RunTrainingOptions,
): Promise<TrainingState> {
  const { outDir, resumeFrom } = options;
  await removeStaleTempFiles(outDir);
  const checkpoint = new ModelCheckpoint(path.join(outDir, RUN_FILES.checkpoint), {
    saveBestOnly: true,
    saveWeightsOnly: true,
  });
  const earlyStopping = new EarlyStopping({ patience: options.patience });
  const state = new TrainingStateCallback(path.join(outDir, RUN_FILES.lastCheckpoint), {
    optimizer,
    seed: options.seed,
    checkpoint,
    earlyStopping,
    ...(resumeFrom ? { resumeFrom } : {}),
  });
  if (resumeFrom) {
    const stoppedEarly = resumeFrom.finished && resumeFrom.earlyStopping.stoppedEpoch > 0;
    if (stoppedEarly || resumeFrom.epochsDone >= options.epochs) {
      info(
        `${outDir}: training had already finished after ${resumeFrom.epochsDone} epoch(s)${stoppedEarly ? ' (early stopping)' : ''}; writing the model and report.`,
      );
      return resumeFrom;
    }
    await truncateHistory(path.join(outDir, RUN_FILES.history), resumeFrom.epochsDone);
  }
  const callbacks = [
    // First, so that an epoch cut short reaches none of the callbacks that record epochs.
    ...(options.signal ? [new InterruptGuard(options.signal)] : []),
    // Checks the loss and, after every batch, the trainable weights (a NaN can hide in the loss).
    new TerminateOnNaN({ raiseError: true }),
    checkpoint,
    earlyStopping,
    new CSVLogger(path.join(outDir, RUN_FILES.history), { append: Boolean(resumeFrom) }),
    // After the checkpoint and early stopping, whose counters it records.
    state,
    // The first epoch runs the frozen backbone over every image (later ones reuse its cached
    // features): when stdout is not a terminal, where the epoch bar is not drawn, it gets
    // progress lines on stderr.
    ...(options.verbose > 0 && !process.stdout.isTTY
      ? [
          new StepProgress({
            label: `epoch ${options.initialEpoch + 1}`,
            phase: 'firstEpoch',
            validationSteps: valIter.length,
          }),
        ]
      : []),
    ...options.callbacks,
  ];
  try {
    await fit(model, trainIter, {
      epochs: options.epochs,
      initialEpoch: options.initialEpoch,
      stepsPerEpoch: trainIter.length,
      validationData: valIter,
      validationSteps: valIter.length,
      verbose: options.verbose,
      callbacks,
      ...(options.featureCacheDir !== undefined
        ? { featureCacheDir: options.featureCacheDir }
        : {}),
    });
  } catch (error) {
    const done = state.current.epochsDone;
    if (error instanceof XferError && error.code === 'INTERRUPTED') {
      throw new XferError(
        'INTERRUPTED',
        `training interrupted by ${error.details.reason ?? 'a signal'} during epoch ${done + 1} of ${options.epochs}; ${resumeHint(outDir, done)}`,
        { ...error.details, outDir, epochsDone: done },
      );
    }
    if (error instanceof XferError && ('loss' in error.details || 'diverged' in error.details)) {
      const what =
        'loss' in error.details
          ? `the loss became ${error.details.loss} at batch ${error.details.batch}`
          : `weight ${error.details.weight} became NaN or infinite at batch ${error.details.batch}`;
      throw new XferError(
        'INVALID_ARGUMENT',
        `training stopped in epoch ${done + 1}: ${what}. Lower the learning rate (--learning-rate) or check the images for damage; ${resumeHint(outDir, done)}${done > 0 ? ' --learning-rate <smaller>' : ''}`,
        { ...error.details, outDir, epochsDone: done },
      );
    }
    throw error;
  }
  return state.current;
}

export interface FinishRunOptions {
  outDir: string;
  config: RunConfig;
  classNames: string[];
  backbone: string;
  iterators: { train: DirectoryIterator; validation: DirectoryIterator; test?: DirectoryIterator };
  state: TrainingState;
  report: boolean;
  signal?: AbortSignal;
  /** A progress bar (stderr) over the evaluation pass. Default false. */
  progress?: boolean;
}

/**
 * Evaluates on `test/` (or on `validation/` for the report when there is no test split), saves the
 * model folder and writes the report.
 */
export async function finishRun(
  model: tf.LayersModel,
  options: FinishRunOptions,
): Promise<{ test: { loss: number; accuracy: number } | null; reportPath: string | null }> {
  const { iterators, classNames, outDir } = options;
  const evaluated = iterators.test ?? (options.report ? iterators.validation : undefined);
  let test: { loss: number; accuracy: number } | null = null;
  let reportPath: string | null = null;
  const outputs = evaluated
    ? await labelledOutputs(model, evaluated, classNames, {
        callbacks: [
          ...(options.signal ? [new InterruptGuard(options.signal)] : []),
          ...(options.progress
            ? [new StepProgress({ label: iterators.test ? 'test' : 'validation (report)' })]
            : []),
        ],
      }).catch((error: unknown) => {
        if (error instanceof XferError && error.code === 'INTERRUPTED') {
          throw new XferError(
            'INTERRUPTED',
            `interrupted by ${error.details.reason ?? 'a signal'} while evaluating, after training ended; write the model and report with: xfer train --resume ${outDir}`,
            { ...error.details, outDir },
          );
        }
        throw error;
      })
    : undefined;
  if (outputs && iterators.test) {
    const metrics = classificationMetrics(outputs, 0);
    test = { loss: metrics.loss, accuracy: metrics.accuracy };
  }
  await replaceModelFolder(model, path.join(outDir, RUN_FILES.model));
  if (options.report && outputs && evaluated) {
    const counts = Object.entries(iterators)
      .filter((entry): entry is [string, DirectoryIterator] => entry[1] !== undefined)
      .map(([split, iterator]) => ({ split, perClass: imagesPerClass(iterator, classNames) }));
    const result = await writeReport(outDir, {
      title: `${options.backbone} transfer learning: ${classNames.join(' / ')}`,
      subtitle: `data ${options.config.dataDir}, written ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
      model,
      backbone: options.backbone,
      outputs,
      evaluatedSplit: iterators.test ? 'test' : 'validation',
      counts,
      history: options.state.history,
      epochSeconds: options.state.epochSeconds,
      config: options.config as unknown as Record<string, unknown>,
    });
    reportPath = result.reportPath;
  }
  if (!(await pathExists(path.join(outDir, RUN_FILES.model, 'model.json')))) {
    throw new XferError('CORRUPT_FILE', `the model folder was not written to ${outDir}.`);
  }
  return { test, reportPath };
}
