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
import { XferError } from '../errors.js';
import {
  Adam,
  type Callback,
  CSVLogger,
  compile,
  EarlyStopping,
  evaluate,
  fit,
  ModelCheckpoint,
  predictImage,
} from '../training/index.js';
import { loadModel, loadWeights, saveModel } from '../weights/index.js';
import { pathExists } from '../util/fs.js';
import { checkPositiveInteger } from '../util/validate.js';
import { applicationBackbone, type BackboneSource } from './backbones.js';
import { preprocessingFunction } from './preprocessing.js';
import { RUN_FILES, type RunConfig, readRunFolder, writeJson } from './run-folder.js';

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
}

export interface TrainClassifierResult {
  model: tf.LayersModel;
  classNames: string[];
  history: Record<string, number[]>;
  /** Test-set metrics when `test/` exists. */
  test: { loss: number; accuracy: number } | null;
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

/**
 * Trains the seed's model on a folder of images and writes a run folder.
 * @example
 * const { test } = await trainClassifier({ dataDir: 'data/cats_and_dogs_small', backbone: 'vgg16' });
 */
export async function trainClassifier(options: TrainClassifierOptions): Promise<TrainClassifierResult> {
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
  const seed = options.seed;

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
    ...(options.augment ? SEED_AUGMENTATION : {}),
  });
  const evalGen = new ImageDataGenerator({
    preprocessingFunction: preprocess as (x: tf.Tensor3D) => tf.Tensor3D,
  });
  // Class mode from the class folders: two classes is the seed's binary task.
  const probe = await evalGen.flowFromDirectory(trainDir, { ...flowOptions, classMode: null, shuffle: false });
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
  const valIter = await evalGen.flowFromDirectory(validationDir, {
    ...flowOptions,
    classMode,
    classes: classNames,
    shuffle: false,
  });

  const channels = source.colorMode === 'grayscale' ? 1 : 3;
  const backbone = await source.build({ inputShape: [imageSize, imageSize, channels], weights });
  backbone.trainable = options.freezeBackbone ?? true ? false : true;
  const model = tf.sequential({
    name: 'xfer_classifier',
    layers: [
      backbone,
      tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }),
      classMode === 'binary'
        ? tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'output_layer' })
        : tf.layers.dense({ units: classNames.length, activation: 'softmax', name: 'output_layer' }),
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
    patience,
    seed: seed ?? null,
    dataDir: options.dataDir,
  };
  await writeJson(path.join(outDir, RUN_FILES.config), config);
  await writeJson(path.join(outDir, RUN_FILES.classes), classNames);

  const checkpointPath = path.join(outDir, RUN_FILES.checkpoint);
  const verbose = options.verbose ?? 1;
  const history = await fit(model, trainIter, {
    epochs,
    stepsPerEpoch: trainIter.length,
    validationData: valIter,
    validationSteps: valIter.length,
    verbose,
    callbacks: [
      new ModelCheckpoint(checkpointPath, { saveBestOnly: true, saveWeightsOnly: true }),
      new EarlyStopping({ patience }),
      new CSVLogger(path.join(outDir, RUN_FILES.history)),
      ...(options.callbacks ?? []),
    ],
  });
  // The run keeps the best epoch, not the last: evaluate and save what the checkpoint holds.
  if (await pathExists(checkpointPath)) await loadWeights(model, checkpointPath);

  let test: TrainClassifierResult['test'] = null;
  if (hasTest) {
    const testIter = await evalGen.flowFromDirectory(testDir, {
      ...flowOptions,
      classMode,
      classes: classNames,
      shuffle: false,
    });
    const metrics = await evaluate(model, testIter, { verbose: 0 });
    test = { loss: metrics.loss!, accuracy: metrics.accuracy! };
  }
  await saveModel(model, path.join(outDir, RUN_FILES.model));
  return { model, classNames, history: history.history, test, outDir, config };
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
