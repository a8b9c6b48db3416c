/**
 * Resumable training: at the end of every epoch the whole training state — the model's weights,
 * the optimizer's state (Adam's moments and step count), the callbacks' state and the history so
 * far — is written to one file (`last.ckpt`) with a temp file and a rename, so a process killed at
 * any moment leaves the previous epoch's state whole. `trainClassifier({ resume: true })` reads
 * it back and continues at the next epoch, with the data in the order the uninterrupted run would
 * have used (the directory iterator's order and augmentation depend only on (seed, epoch)).
 *
 * File layout: the 8 bytes `XFERCKPT`, a little-endian uint32 header length, the header (JSON:
 * the state and a tfjs weights manifest), then the weight bytes as tfjs's `encodeWeights` lays
 * them out.
 */
import { promises as fsp } from 'node:fs';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';

type NamedTensor = { name: string; tensor: tf.Tensor };

import { XferError } from '../errors.js';
import { compiledModel } from '../training/compile.js';
import {
  Callback,
  type EarlyStopping,
  type Logs,
  type ModelCheckpoint,
} from '../training/index.js';
import { removeStaleTempsFor, writeFileAtomic } from '../util/fs.js';

const MAGIC = 'XFERCKPT';
const FORMAT = 1;

/** What a run had done when its last complete epoch ended. */
export interface TrainingState {
  /** Epochs completed; a resumed run starts at this (0-based) epoch index. */
  epochsDone: number;
  /** Training ended on its own (epochs ran out or early stopping): nothing is left to train. */
  finished: boolean;
  /** Every completed epoch's logs per key (`loss`, `val_accuracy`...), across resumptions. */
  history: Record<string, number[]>;
  /** Wall-clock seconds of each completed epoch, validation included. */
  epochSeconds: number[];
  /** ModelCheckpoint's best monitored value so far. */
  checkpointBest: number | null;
  /** EarlyStopping's counters. */
  earlyStopping: { wait: number; best: number | null; bestEpoch: number; stoppedEpoch: number };
  /** The data seed (order and augmentation) of the run. */
  seed: number;
  /**
   * The (0-based) epoch at which fine-tuning started, once the run is fine-tuning; absent in the
   * head-only stage. A run resumed with it set skips the head-only stage and restores the
   * fine-tuning optimizer's state.
   */
  fineTuneFrom?: number;
}

interface Header {
  format: number;
  state: TrainingState;
  model: { name: string; shape: number[] }[];
  optimizer: { name: string; shape: number[] }[];
  specs: tf.io.WeightsManifestEntry[];
  dataBytes: number;
}

/** A state file read back: the tensors belong to the caller until `restoreTrainingState`. */
export interface LoadedTrainingState {
  state: TrainingState;
  modelWeights: tf.Tensor[];
  optimizerWeights: NamedTensor[];
}

/** Writes the state file atomically. */
export async function writeTrainingState(
  file: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  state: TrainingState,
): Promise<void> {
  const modelWeights = model.weights.map((w, i) => ({
    name: w.originalName ?? w.name,
    tensor: w.read(),
    key: `model/${i}`,
  }));
  const optimizerWeights = await optimizer.getWeights();
  const named: NamedTensor[] = [
    ...modelWeights.map((w) => ({ name: w.key, tensor: w.tensor })),
    ...optimizerWeights.map((w, i) => ({ name: `optimizer/${i}`, tensor: w.tensor })),
  ];
  const { data, specs } = await tf.io.encodeWeights(named);
  const bytes = new Uint8Array(data as ArrayBuffer);
  const header: Header = {
    format: FORMAT,
    state,
    model: modelWeights.map((w) => ({ name: w.name, shape: w.tensor.shape })),
    optimizer: optimizerWeights.map((w) => ({ name: w.name, shape: w.tensor.shape })),
    specs,
    dataBytes: bytes.byteLength,
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.byteLength);
  // Temp files of a run killed mid-write would otherwise pile up beside the state.
  await removeStaleTempsFor(file);
  await writeFileAtomic(
    file,
    Buffer.concat([Buffer.from(MAGIC, 'ascii'), length, headerBytes, bytes]),
  );
}

function corrupt(file: string, why: string): XferError {
  return new XferError(
    'CORRUPT_FILE',
    `${file} is not a readable xfer training state (${why}); it is written by \`xfer train\` at each epoch's end. Start the run again without --resume.`,
    { file },
  );
}

/**
 * Reads a state file written by `writeTrainingState`.
 * @example
 * const { state } = await readTrainingState('xfer-run/last.ckpt');
 * state.epochsDone; // e.g. 3
 */
export async function readTrainingState(file: string): Promise<LoadedTrainingState> {
  await initBackend();
  let buffer: Buffer;
  try {
    buffer = await fsp.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new XferError(
        'NOT_FOUND',
        `there is no training state to resume at ${file}: the run did not complete an epoch, or the folder is not a run folder. Start the run again without --resume.`,
        { file },
      );
    }
    throw error;
  }
  if (buffer.byteLength < 12 || buffer.subarray(0, 8).toString('ascii') !== MAGIC) {
    throw corrupt(file, 'no XFERCKPT signature');
  }
  const headerLength = buffer.readUInt32LE(8);
  let header: Header;
  try {
    header = JSON.parse(buffer.subarray(12, 12 + headerLength).toString('utf8')) as Header;
  } catch {
    throw corrupt(file, 'the header is not JSON');
  }
  if (header.format !== FORMAT) throw corrupt(file, `format ${header.format}, expected ${FORMAT}`);
  const start = 12 + headerLength;
  if (buffer.byteLength - start !== header.dataBytes) {
    throw corrupt(
      file,
      `${buffer.byteLength - start} weight bytes, the header says ${header.dataBytes}`,
    );
  }
  const data = (buffer.buffer as ArrayBuffer).slice(
    buffer.byteOffset + start,
    buffer.byteOffset + buffer.byteLength,
  );
  const map = tf.io.decodeWeights(data, header.specs);
  return {
    state: header.state,
    modelWeights: header.model.map((_, i) => map[`model/${i}`]!),
    optimizerWeights: header.optimizer.map((w, i) => ({
      name: w.name,
      tensor: map[`optimizer/${i}`]!,
    })),
  };
}

/**
 * Puts a loaded state's weights into `model` and its moments into `optimizer`. The model must be
 * the same architecture, built and frozen the same way; a difference is named.
 */
export async function restoreTrainingState(
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  loaded: LoadedTrainingState,
  file: string,
): Promise<void> {
  const weights = model.weights;
  const mismatch =
    weights.length !== loaded.modelWeights.length
      ? `the model has ${weights.length} weights, the state ${loaded.modelWeights.length}`
      : weights
          .map((w, i) => ({ w, saved: loaded.modelWeights[i]! }))
          .filter(({ w, saved }) => w.shape.join('x') !== saved.shape.join('x'))
          .map(
            ({ w, saved }) =>
              `${w.originalName ?? w.name} is [${w.shape}] in the model, [${saved.shape}] in the state`,
          )[0];
  if (mismatch) {
    tf.dispose(loaded.modelWeights);
    throw new XferError(
      'WEIGHTS_MISMATCH',
      `${file} does not fit this model: ${mismatch}. Resume with the run's own config.json (do not change the backbone, image size or freezing).`,
      { file },
    );
  }
  model.setWeights(loaded.modelWeights);
  tf.dispose(loaded.modelWeights);
  // The optimizer keeps these tensors as its variables.
  await optimizer.setWeights(loaded.optimizerWeights);
}

export interface TrainingStateCallbackOptions {
  optimizer: tf.Optimizer;
  seed: number;
  /** The callbacks whose counters the state carries. */
  checkpoint?: ModelCheckpoint;
  earlyStopping?: EarlyStopping;
  /** The state a resumed run starts from; its history and counters carry on. */
  resumeFrom?: TrainingState;
}

/**
 * Writes the training state at each epoch's end, and on a resumed run puts the checkpoint's and
 * early stopping's counters back at train begin. It must come after ModelCheckpoint and
 * EarlyStopping in the callback list, so that it sees their state after the epoch.
 */
export class TrainingStateCallback extends Callback {
  readonly file: string;
  private readonly options: TrainingStateCallbackOptions;
  private state: TrainingState;
  private epochStarted = 0;

  constructor(file: string, options: TrainingStateCallbackOptions) {
    super();
    this.file = file;
    this.options = options;
    this.state = options.resumeFrom
      ? structuredClone(options.resumeFrom)
      : {
          epochsDone: 0,
          finished: false,
          history: {},
          epochSeconds: [],
          checkpointBest: null,
          earlyStopping: { wait: 0, best: null, bestEpoch: 0, stoppedEpoch: 0 },
          seed: options.seed,
        };
  }

  /** The state after the last completed epoch. */
  get current(): TrainingState {
    return this.state;
  }

  override onTrainBegin(): void {
    const from = this.options.resumeFrom;
    if (!from) return;
    const { checkpoint, earlyStopping } = this.options;
    if (checkpoint && from.checkpointBest !== null) checkpoint.best = from.checkpointBest;
    if (earlyStopping) {
      earlyStopping.wait = from.earlyStopping.wait;
      earlyStopping.best = from.earlyStopping.best ?? undefined;
      earlyStopping.bestEpoch = from.earlyStopping.bestEpoch;
      earlyStopping.stoppedEpoch = from.earlyStopping.stoppedEpoch;
    }
  }

  override onEpochBegin(): void {
    this.epochStarted = performance.now();
  }

  override async onEpochEnd(epoch: number, logs: Logs = {}): Promise<void> {
    const seconds = (performance.now() - this.epochStarted) / 1000;
    const history = this.state.history;
    for (const [key, value] of Object.entries(logs)) {
      history[key] ??= [];
      history[key].push(value);
    }
    const es = this.options.earlyStopping;
    this.state = {
      ...this.state,
      epochsDone: epoch + 1,
      finished: Boolean(this.model?.stopTraining) || epoch + 1 >= (this.params.epochs ?? 0),
      history,
      epochSeconds: [...this.state.epochSeconds, Number(seconds.toFixed(3))],
      checkpointBest: this.options.checkpoint?.best ?? null,
      earlyStopping: es
        ? {
            wait: es.wait,
            best: es.best ?? null,
            bestEpoch: es.bestEpoch,
            stoppedEpoch: es.stoppedEpoch,
          }
        : this.state.earlyStopping,
    };
    if (this.model)
      await writeTrainingState(this.file, this.model, this.options.optimizer, this.state);
  }
}

/** The optimizer `compile` gave the model, whose state a checkpoint carries. */
export function compiledOptimizer(model: tf.LayersModel): tf.Optimizer {
  return compiledModel(model).optimizer;
}
