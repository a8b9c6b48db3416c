/**
 * The seed's workflow in one call: a pretrained backbone, frozen, under GlobalAveragePooling2D and
 * a Dense head, trained on `train/` with checkpoint and early stopping, validated on
 * `validation/`, evaluated on `test/`, saved as a run folder. It is a short composition of public
 * calls (applications, ImageDataGenerator, compile, fit, callbacks, evaluate), as fastai's
 * `fine_tune` is; `xfer train` is a thin wrapper over it.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ImageDataGenerator } from '../data/index.js';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { compiledModel } from '../training/compile.js';
import {
  Adam,
  type Callback,
  compile,
  evaluate,
  groupLearningRates,
  predictImage,
  type UnfreezeTarget,
  unfreezeFrom,
} from '../training/index.js';
import { pathExists } from '../util/fs.js';
import { checkPositiveInteger } from '../util/validate.js';
import { loadModel, loadWeights } from '../weights/index.js';
import { applicationBackbone, type BackboneSource } from './backbones.js';
import { preprocessingFunction } from './preprocessing.js';
import { compiledOptimizer, readTrainingState, restoreTrainingState } from './resume.js';
import { RUN_FILES, type RunConfig, readRunFolder, writeJson } from './run-folder.js';
import { finishRun, runTraining } from './run-folder-train.js';

/** The seed's augmentation: rotation 40, shifts 0.2, zoom 0.2, horizontal flip, constant fill. */
export const SEED_AUGMENTATION = {
  rotationRange: 40,
  widthShiftRange: 0.2,
  heightShiftRange: 0.2,
  zoomRange: 0.2,
  horizontalFlip: true,
  fillMode: 'constant',
} as const;

export interface TrainClassifierOptions {
  /** Folder with `train/` and `validation/` (and optionally `test/`), one sub-folder per class. */
  dataDir: string;
  /** A registered backbone name ('vgg16', 'MobileNetV2', ...) or a custom `BackboneSource`. */
  backbone: string | BackboneSource;
  /** 'imagenet' (default), null for random weights, or a weights file path or URL. */
  weights?: string | null;
  /** Default 10 (the seed's N_EPOCH). */
  epochs?: number;
  /** Default 32. The seed uses 100. */
  batchSize?: number;
  /** Square input size. Default: the backbone's default (224 for ImageNet models). */
  imageSize?: number;
  /** Adam's learning rate. Default 0.001. */
  learningRate?: number;
  /** Train with the seed's augmentation (`SEED_AUGMENTATION`). Default false. */
  augment?: boolean;
  /** Freeze the backbone (transfer learning). false trains every layer. Default true. */
  freezeBackbone?: boolean;
  /** EarlyStopping patience on val_loss. Default 10 (the seed's). */
  patience?: number;
  /** Seeds shuffling and augmentation. Default: unseeded. */
  seed?: number;
  /** Run folder to write. Default 'xfer-run'. */
  outDir?: string;
  /** Keras's verbose: 0 silent, 1 progress bar, 2 one line per epoch. Default 1. */
  verbose?: 0 | 1 | 2;
  /** Extra callbacks, e.g. one that prints JSON lines per epoch. */
  callbacks?: Callback[];
  /**
   * Aborting it stops training at the next batch boundary: the epoch in progress is abandoned,
   * the last complete epoch's state stays in `outDir` (resume with `resume: true`), and the call
   * rejects with an `XferError` of code 'INTERRUPTED'. The CLI aborts it on SIGINT / SIGTERM.
   */
  signal?: AbortSignal;
  /**
   * Continue the run in `outDir` from its last complete epoch (`last.ckpt`: weights, optimizer
   * state, callbacks' counters, history), with the data in the same order. Default false.
   */
  resume?: boolean;
  /** Write `report.html` and `plots/` into `outDir`. Default true. */
  report?: boolean;
  /**
   * Keep the frozen backbone's outputs in this directory across runs (fit's `featureCacheDir`;
   * used without augmentation). Default none: cached for this run only.
   */
  featureCacheDir?: string;
  /**
   * After the head-only epochs, unfreeze the backbone from this point (a layer name such as
   * 'block5_conv1', `{ blocks: N }` for the last N blocks, a number of layers with weights, or
   * 'all'; see `unfreezeFrom`) and fine-tune. Default: no fine-tuning.
   */
  fineTune?: UnfreezeTarget;
  /** Fine-tuning epochs, numbered on after the head-only ones. Default 5. */
  fineTuneEpochs?: number;
  /** The head's Adam learning rate while fine-tuning. Default `learningRate / 10`. */
  fineTuneLearningRate?: number;
  /** The backbone's learning rate while fine-tuning. Default `fineTuneLearningRate`. */
  fineTuneBackboneLearningRate?: number;
  /** Let the backbone's BatchNormalization layers train while fine-tuning. Default false. */
  trainBatchNorm?: boolean;
}

export interface TrainClassifierResult {
  model: tf.LayersModel;
  classNames: string[];
  history: Record<string, number[]>;
  /** Test-set metrics when `test/` exists. */
  test: { loss: number; accuracy: number } | null;
  /** With `fineTune`: the test metrics of the best head-only model, before fine-tuning. */
  headOnlyTest: { loss: number; accuracy: number } | null;
  /** Seconds of each epoch (of this run and the runs it resumed). */
  epochSeconds: number[];
  /** Path of report.html, when written. */
  reportPath: string | null;
  outDir: string;
  config: RunConfig;
}

async function requireSplit(dataDir: string, split: string): Promise<string> {
  const dir = path.join(dataDir, split);
  if (!(await pathExists(dir))) {
    throw new XferError(
      'NOT_FOUND',
      `data directory ${dataDir} has no ${split}/ folder; it must hold train/ and validation/ (and optionally test/), each with one sub-folder per class, like cats_and_dogs_small.`,
      { dataDir, split },
    );
  }
  return dir;
}

const VERSION = '0.1.0';

interface FineTuneSettings {
  target: UnfreezeTarget;
  epochs: number;
  learningRate: number;
  backboneLearningRate: number;
}

function checkPositiveNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidParameterError(name, 'positive number', value);
  }
  return value;
}

function fineTuneSettings(
  options: TrainClassifierOptions,
  learningRate: number,
): FineTuneSettings | undefined {
  if (options.fineTune === undefined) return undefined;
  const lr = checkPositiveNumber(
    'fineTuneLearningRate',
    options.fineTuneLearningRate ?? learningRate / 10,
  );
  return {
    target: options.fineTune,
    epochs: checkPositiveInteger('fineTuneEpochs', options.fineTuneEpochs ?? 5),
    learningRate: lr,
    backboneLearningRate: checkPositiveNumber(
      'fineTuneBackboneLearningRate',
      options.fineTuneBackboneLearningRate ?? lr,
    ),
  };
}

/**
 * Trains the seed's model on a folder of images and writes a run folder.
 * @example
 * const { test } = await trainClassifier({ dataDir: 'data/cats_and_dogs_small', backbone: 'vgg16' });
 */
export async function trainClassifier(
  options: TrainClassifierOptions,
): Promise<TrainClassifierResult> {
  await initBackend();
  const source =
    typeof options.backbone === 'string' ? applicationBackbone(options.backbone) : options.backbone;
  const epochs = checkPositiveInteger('epochs', options.epochs ?? 10);
  const batchSize = checkPositiveInteger('batchSize', options.batchSize ?? 32);
  const imageSize = checkPositiveInteger('imageSize', options.imageSize ?? source.defaultImageSize);
  const learningRate = options.learningRate ?? 0.001;
  const patience = options.patience ?? 10;
  const outDir = options.outDir ?? 'xfer-run';
  const weights = options.weights === undefined ? 'imagenet' : options.weights;
  // A run records the seed it used, drawn when none is given, so it can be resumed and repeated.
  const fineTuning = fineTuneSettings(options, learningRate);
  const resumed = options.resume
    ? await readTrainingState(path.join(outDir, RUN_FILES.lastCheckpoint))
    : undefined;
  // A run interrupted while fine-tuning resumes there: the head-only stage is done.
  const fineTuneFrom = resumed?.state.fineTuneFrom;
  if (fineTuneFrom !== undefined && !fineTuning) {
    tf.dispose(resumed!.modelWeights);
    tf.dispose(resumed!.optimizerWeights.map((w) => w.tensor));
    throw new XferError(
      'INVALID_ARGUMENT',
      `the run in ${outDir} was fine-tuning (from epoch ${fineTuneFrom + 1}) when it stopped; resume it with its fine-tuning settings (xfer train --resume ${outDir} reads them from config.json).`,
      { outDir, fineTuneFrom },
    );
  }
  const seed = options.seed ?? resumed?.state.seed ?? Math.floor(Math.random() * 2 ** 32);

  if (!(await pathExists(options.dataDir))) {
    throw new XferError('NOT_FOUND', `data directory ${options.dataDir} does not exist.`, {
      dataDir: options.dataDir,
    });
  }
  const trainDir = await requireSplit(options.dataDir, 'train');
  const validationDir = await requireSplit(options.dataDir, 'validation');
  const testDir = path.join(options.dataDir, 'test');
  const hasTest = await pathExists(testDir);

  const preprocess = preprocessingFunction(source.preprocessing);
  const flowOptions = {
    targetSize: [imageSize, imageSize] as [number, number],
    colorMode: source.colorMode,
    batchSize,
    seed,
  };
  const trainGen = new ImageDataGenerator({
    preprocessingFunction: preprocess as (x: tf.Tensor3D) => tf.Tensor3D,
    // Every Preprocessing is a per-pixel affine map: applied to the whole batch in JS, not per
    // image through tfjs kernels (several ms per image on the main thread).
    preprocessingFunctionOnBatch: true,
    ...(options.augment ? SEED_AUGMENTATION : {}),
  });
  const evalGen = new ImageDataGenerator({
    preprocessingFunction: preprocess as (x: tf.Tensor3D) => tf.Tensor3D,
    // Every Preprocessing is a per-pixel affine map: applied to the whole batch in JS, not per
    // image through tfjs kernels (several ms per image on the main thread).
    preprocessingFunctionOnBatch: true,
  });
  // Class mode from the class folders: two classes is the seed's binary task.
  const probe = await evalGen.flowFromDirectory(trainDir, {
    ...flowOptions,
    classMode: null,
    shuffle: false,
  });
  const classNames = Object.keys(probe.classIndices).sort(
    (a, b) => probe.classIndices[a]! - probe.classIndices[b]!,
  );
  if (classNames.length < 2) {
    throw new XferError(
      'NO_DATA',
      `${trainDir} has ${classNames.length} class folder(s); a classifier needs at least two (e.g. cats/ and dogs/).`,
      { trainDir, classNames },
    );
  }
  const classMode = classNames.length === 2 ? 'binary' : 'categorical';
  const trainIter = await trainGen.flowFromDirectory(trainDir, {
    ...flowOptions,
    classMode,
    classes: classNames,
    shuffle: true,
  });
  // A resumed run sees epoch e's order and augmentation as the uninterrupted run would have.
  const initialEpoch = resumed?.state.epochsDone ?? 0;
  for (let e = 0; e < initialEpoch; e++) trainIter.onEpochEnd();
  const valIter = await evalGen.flowFromDirectory(validationDir, {
    ...flowOptions,
    classMode,
    classes: classNames,
    shuffle: false,
  });

  const channels = source.colorMode === 'grayscale' ? 1 : 3;
  const backbone = await source.build({ inputShape: [imageSize, imageSize, channels], weights });
  backbone.trainable = !(options.freezeBackbone ?? true);
  const model = tf.sequential({
    name: 'xfer_classifier',
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }),
      // The head's initial weights come from the run's seed, so a seeded run is reproducible.
      tf.layers.dense({
        units: classMode === 'binary' ? 1 : classNames.length,
        activation: classMode === 'binary' ? 'sigmoid' : 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
        name: 'output_layer',
      }),
    ],
  });
  compile(model, {
    optimizer: Adam(learningRate),
    loss: classMode === 'binary' ? 'binary_crossentropy' : 'categorical_crossentropy',
    metrics: ['accuracy'],
  });

  await fsp.mkdir(outDir, { recursive: true });
  const config: RunConfig = {
    xferVersion: VERSION,
    backbone: source.name,
    weights,
    imageSize,
    colorMode: source.colorMode,
    preprocessing: source.preprocessing,
    classMode,
    epochs,
    batchSize,
    learningRate,
    augment: options.augment ?? false,
    freezeBackbone: options.freezeBackbone ?? true,
    patience,
    seed: trainIter.seed,
    dataDir: options.dataDir,
    ...(fineTuning
      ? {
          fineTune: fineTuning.target,
          fineTuneEpochs: fineTuning.epochs,
          fineTuneLearningRate: fineTuning.learningRate,
          fineTuneBackboneLearningRate: fineTuning.backboneLearningRate,
          trainBatchNorm: options.trainBatchNorm ?? false,
        }
      : {}),
  };
  await writeJson(path.join(outDir, RUN_FILES.config), config);
  await writeJson(path.join(outDir, RUN_FILES.classes), classNames);

  const checkpointPath = path.join(outDir, RUN_FILES.checkpoint);
  const verbose = options.verbose ?? 1;
  const optimizer = compiledOptimizer(model);
  if (resumed && fineTuneFrom === undefined)
    await restoreTrainingState(
      model,
      optimizer,
      resumed,
      path.join(outDir, RUN_FILES.lastCheckpoint),
    );
  const stage = {
    outDir,
    patience,
    verbose,
    seed: trainIter.seed,
    callbacks: options.callbacks ?? [],
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.featureCacheDir !== undefined ? { featureCacheDir: options.featureCacheDir } : {}),
  };
  let training =
    fineTuneFrom !== undefined
      ? resumed!.state
      : await runTraining(model, optimizer, trainIter, valIter, {
          ...stage,
          epochs,
          initialEpoch,
          ...(resumed ? { resumeFrom: resumed.state } : {}),
        });
  let headOnlyTest: { loss: number; accuracy: number } | null = null;
  if (fineTuning) {
    // Fine-tune from the best head (Keras's recipe), numbering epochs on; the checkpoint keeps
    // the best epoch of both stages, early stopping starts afresh at the lower rate.
    if (fineTuneFrom === undefined && (await pathExists(checkpointPath)))
      await loadWeights(model, checkpointPath);
    // (A run resumed while fine-tuning no longer has its head-only model to score.)
    if (hasTest && fineTuneFrom === undefined) {
      // The head-only model's test metrics, to show what fine-tuning added.
      const headIter = await evalGen.flowFromDirectory(testDir, {
        ...flowOptions,
        classMode,
        classes: classNames,
        shuffle: false,
      });
      const logs = await evaluate(model, headIter, { verbose: 0 });
      headOnlyTest = { loss: logs.loss!, accuracy: logs.accuracy! };
    }
    unfreezeFrom(model, fineTuning.target, { trainBatchNorm: options.trainBatchNorm ?? false });
    const groups = groupLearningRates(backbone, {
      learningRate: fineTuning.learningRate,
      backboneLearningRate: fineTuning.backboneLearningRate,
    });
    compile(model, {
      optimizer: groups,
      loss: compiledModel(model).lossName,
      metrics: ['accuracy'],
    });
    if (fineTuneFrom !== undefined) {
      await restoreTrainingState(
        model,
        groups,
        resumed!,
        path.join(outDir, RUN_FILES.lastCheckpoint),
      );
    }
    const start = fineTuneFrom ?? training.epochsDone;
    training = await runTraining(model, groups, trainIter, valIter, {
      ...stage,
      epochs: start + fineTuning.epochs,
      initialEpoch: training.epochsDone,
      resumeFrom:
        fineTuneFrom !== undefined
          ? training
          : {
              ...training,
              fineTuneFrom: start,
              finished: false,
              earlyStopping: { wait: 0, best: null, bestEpoch: 0, stoppedEpoch: 0 },
            },
    });
  }
  // The run keeps the best epoch, not the last: evaluate and save what the checkpoint holds.
  if (await pathExists(checkpointPath)) await loadWeights(model, checkpointPath);

  const testIter = hasTest
    ? await evalGen.flowFromDirectory(testDir, {
        ...flowOptions,
        classMode,
        classes: classNames,
        shuffle: false,
      })
    : null;
  const finished = await finishRun(model, {
    outDir,
    config,
    classNames,
    backbone: source.name,
    iterators: { train: trainIter, validation: valIter, ...(testIter ? { test: testIter } : {}) },
    state: training,
    report: options.report ?? true,
    ...(options.signal ? { signal: options.signal } : {}),
    progress: verbose > 0,
  });
  return {
    model,
    classNames,
    history: training.history,
    test: finished.test,
    headOnlyTest,
    epochSeconds: training.epochSeconds,
    reportPath: finished.reportPath,
    outDir,
    config,
  };
}

export interface Prediction {
  file: string;
  className: string;
  classIndex: number;
  probability: number;
}

/** A trained run folder, ready to predict images with the preprocessing it was trained with. */
export interface Classifier {
  model: tf.LayersModel;
  classNames: string[];
  config: RunConfig;
  predictFile(file: string): Promise<Prediction>;
}

/**
 * Loads a run folder written by `trainClassifier` / `xfer train`.
 * @example
 * const classifier = await loadClassifier('xfer-run');
 * console.log(await classifier.predictFile('dog.jpg'));
 */
export async function loadClassifier(dir: string): Promise<Classifier> {
  await initBackend();
  const { config, classNames, modelDir } = await readRunFolder(dir);
  const model = await loadModel(modelDir);
  const preprocess = preprocessingFunction(config.preprocessing);
  return {
    model,
    classNames,
    config,
    async predictFile(file) {
      const result = await predictImage(file, model, preprocess, {
        classNames,
        targetSize: [config.imageSize, config.imageSize],
        colorMode: config.colorMode,
      });
      return { file, ...result };
    },
  };
}
