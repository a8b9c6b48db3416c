/**
 * Keras's `ModelCheckpoint`: saves the weights (Keras `.h5`) or the whole model (a tfjs model
 * folder) after each epoch, or after every `saveFreq` batches, optionally only when the monitored
 * value improves. The path may hold Keras's format fields: `'ckpt/w.{epoch:02d}-{val_loss:.2f}.h5'`.
 *
 * A process killed at any moment leaves the previous checkpoint loadable: an `.h5` file is written
 * to a temp file, fsynced and renamed over the old one (and the folder fsynced); a model folder
 * gets its weights under a new name (`weights.<random>.bin`) first, and its `model.json` — the one
 * file that says which weights belong to it — is then replaced atomically, so the folder switches
 * from the old complete model to the new complete one in one rename. Temp files of killed runs
 * are removed at the next save (`weights/model-folder.ts` does the model folder).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { invalidParameterError, XferError } from '../errors.js';
import { removeStaleTempsFor } from '../util/fs.js';
import { warn } from '../util/log.js';
import { checkBoolean, checkPositiveInteger } from '../util/validate.js';
import { saveWeights } from '../weights/index.js';
import { replaceModelFolder } from '../weights/model-folder.js';
import type { Logs } from './callback.js';
import { formatPath } from './format.js';
import { MonitorCallback, type MonitorOptions } from './monitor-callback.js';
import { printLine } from './print.js';

export interface ModelCheckpointOptions extends MonitorOptions {
  /**
   * Save only when the monitored value improves on the best so far; with a path that has no
   * `{epoch}` field the file then always holds the best epoch. Default false (save every time).
   */
  saveBestOnly?: boolean;
  /**
   * true: the weights alone, as a Keras `.h5` file (`saveWeights`); false: the whole model as a
   * tfjs model folder at the path (`model.json` and one `weights.<random>.bin`, swapped in
   * atomically; `loadModel` reads it). Default false.
   */
  saveWeightsOnly?: boolean;
  /** `'epoch'`, or save after every this many training batches. Default `'epoch'`. */
  saveFreq?: 'epoch' | number;
  /**
   * An initial best value that a first save must beat (with `saveBestOnly`), e.g. the best of an
   * earlier run. Default none.
   */
  initialValueThreshold?: number;
  /** 1 prints a line on each save decision. Default 0. */
  verbose?: number;
}

/**
 * Saves the model or its weights during training.
 * @example
 * new ModelCheckpoint('best.weights.h5', { saveBestOnly: true, saveWeightsOnly: true });
 * new ModelCheckpoint('ckpt/model.{epoch:02d}-{val_accuracy:.3f}', { monitor: 'val_accuracy' });
 */
export class ModelCheckpoint extends MonitorCallback {
  readonly filepath: string;
  readonly saveBestOnly: boolean;
  readonly saveWeightsOnly: boolean;
  readonly saveFreq: 'epoch' | number;
  readonly verbose: number;
  /** The path of the last file (or model folder) written; undefined before the first save. */
  lastSavedPath: string | undefined;
  private currentEpoch = 0;
  private batchesSinceSave = 0;
  private lastBatchSeen: number | undefined;

  constructor(filepath: string, options: ModelCheckpointOptions = {}) {
    super(options, { minDelta: 0 });
    if (typeof filepath !== 'string' || filepath === '') {
      throw invalidParameterError('filepath', 'non-empty path string', filepath);
    }
    this.filepath = filepath;
    this.saveBestOnly = checkBoolean('saveBestOnly', options.saveBestOnly ?? false);
    this.saveWeightsOnly = checkBoolean('saveWeightsOnly', options.saveWeightsOnly ?? false);
    // Checked here, not at the first epoch's end: a bad path should not cost an epoch.
    const isH5 = /\.(h5|hdf5)$/i.test(filepath);
    if (this.saveWeightsOnly && !isH5) {
      throw invalidParameterError(
        'filepath',
        "a path ending in '.h5' with saveWeightsOnly (Keras HDF5 weights), e.g. 'best.weights.h5'",
        filepath,
      );
    }
    if (!this.saveWeightsOnly && isH5) {
      throw invalidParameterError(
        'filepath',
        "a folder path without '.h5' when saving the whole model (a tfjs model folder); for Keras .h5 weights pass saveWeightsOnly: true",
        filepath,
      );
    }
    const saveFreq = options.saveFreq ?? 'epoch';
    this.saveFreq = saveFreq === 'epoch' ? saveFreq : checkPositiveInteger('saveFreq', saveFreq);
    this.verbose = options.verbose ?? 0;
    if (
      options.initialValueThreshold !== undefined &&
      !Number.isFinite(options.initialValueThreshold)
    ) {
      throw invalidParameterError(
        'initialValueThreshold',
        'finite number',
        options.initialValueThreshold,
      );
    }
    // As in Keras, the best value persists across fit calls: a second run (fine-tuning) only
    // overwrites the checkpoint when it beats the first.
    this.best = options.initialValueThreshold;
  }

  /** The best monitored value seen (Keras's `best`). */
  get bestValue(): number | undefined {
    return this.best;
  }

  override onEpochBegin(epoch: number): void {
    this.currentEpoch = epoch;
  }

  override async onTrainBatchEnd(batch: number, logs?: Logs): Promise<void> {
    if (this.saveFreq === 'epoch') return;
    // A batch index that did not grow means a new epoch began.
    const added =
      this.lastBatchSeen === undefined || batch <= this.lastBatchSeen
        ? batch + 1
        : batch - this.lastBatchSeen;
    this.batchesSinceSave += added;
    this.lastBatchSeen = batch;
    if (this.batchesSinceSave >= this.saveFreq) {
      this.batchesSinceSave = 0;
      await this.save(this.currentEpoch, batch, logs ?? {});
    }
  }

  override async onEpochEnd(epoch: number, logs?: Logs): Promise<void> {
    this.monitorDirection();
    if (this.saveFreq === 'epoch') await this.save(epoch, undefined, logs ?? {});
  }

  private shouldSave(epoch: number, logs: Logs, filepath: string): boolean {
    if (!this.saveBestOnly) {
      if (this.verbose > 0) printLine(`Epoch ${epoch + 1}: saving model to ${filepath}`);
      return true;
    }
    const current = logs[this.monitor];
    if (current === undefined) {
      // Keras saves anyway: a missing key must not silently lose every checkpoint.
      warn(
        `ModelCheckpoint can save the best model only with '${this.monitor}' available; saving anyway. Available metrics are: ${Object.keys(logs).join(', ') || '(none)'}.`,
      );
      return true;
    }
    const bestText =
      this.best === undefined
        ? this.monitorDirection() === 'min'
          ? 'inf'
          : '-inf'
        : this.best.toFixed(5);
    if (this.isImprovement(current, this.best)) {
      if (this.verbose > 0) {
        printLine(
          `Epoch ${epoch + 1}: ${this.monitor} improved from ${bestText} to ${current.toFixed(5)}, saving model to ${filepath}`,
        );
      }
      this.best = current;
      return true;
    }
    if (this.verbose > 0)
      printLine(`Epoch ${epoch + 1}: ${this.monitor} did not improve from ${bestText}`);
    return false;
  }

  private async save(epoch: number, batch: number | undefined, logs: Logs): Promise<void> {
    const model = this.model;
    if (!model) {
      throw new XferError(
        'INVALID_ARGUMENT',
        'ModelCheckpoint has no model: fit sets it with setModel.',
      );
    }
    const values: Record<string, number> = { ...logs, epoch: epoch + 1 };
    if (batch !== undefined && logs.batch === undefined) values.batch = batch + 1;
    const filepath = formatPath(this.filepath, values);
    if (!this.shouldSave(epoch, logs, filepath)) return;
    if (this.saveWeightsOnly) {
      const stat = await fsp.stat(filepath).catch(() => undefined);
      if (stat?.isDirectory()) {
        throw new XferError(
          'INVALID_ARGUMENT',
          `ModelCheckpoint with saveWeightsOnly needs a file path, but '${filepath}' is an existing directory. Give a file name such as '${path.join(filepath, 'best.weights.h5')}'.`,
          { filepath },
        );
      }
      await fsp.mkdir(path.dirname(path.resolve(filepath)), { recursive: true });
      await removeStaleTempsFor(filepath);
      await saveWeights(model, filepath);
    } else {
      if ((await fsp.stat(filepath).catch(() => undefined))?.isFile()) {
        throw new XferError(
          'INVALID_ARGUMENT',
          `ModelCheckpoint saves the whole model as a folder, but '${filepath}' is a file. Give a folder path, or saveWeightsOnly: true with an '.h5' path.`,
          { filepath },
        );
      }
      await replaceModelFolder(model, filepath);
    }
    this.lastSavedPath = filepath;
  }
}
