/**
 * Evaluating a run folder's model on any labelled folder (one sub-folder per class, or a data set
 * with a test/ split): the report's metrics, and the same report.html as training writes.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ImageDataGenerator } from '../data/index.js';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import {
  type ClassificationMetrics,
  classificationMetrics,
  imagesPerClass,
  labelledOutputs,
  writeReport,
} from '../report/index.js';
import type { Callback } from '../training/index.js';
import { pathExists } from '../util/fs.js';
import { checkPositiveInteger } from '../util/validate.js';
import { loadClassifier } from './classifier.js';
import { preprocessingFunction } from './preprocessing.js';
import { readTrainingState } from './resume.js';
import { RUN_FILES } from './run-folder.js';

export interface EvaluateRunOptions {
  /** Where report.html and plots/ go. Default `<modelDir>/eval-<data folder name>`. */
  outDir?: string;
  /** Write the report. Default true. */
  report?: boolean;
  /** Images per batch. Default 32. */
  batchSize?: number;
  /** Callbacks for the pass over the images (their `onPredict*` hooks), e.g. a `StepProgress`. Default none. */
  callbacks?: Callback[];
}

export interface EvaluateRunResult {
  /** The folder of class sub-folders that was evaluated. */
  dataDir: string;
  metrics: ClassificationMetrics;
  reportPath: string | null;
}

/** `dir` itself when it holds a folder per class; else its test/ split. */
async function labelledFolder(dir: string, classNames: string[]): Promise<string> {
  if (!(await pathExists(dir))) {
    throw new XferError('NOT_FOUND', `data directory ${dir} does not exist.`, { dataDir: dir });
  }
  const has = async (d: string) => {
    const names = new Set(
      (await fsp.readdir(d, { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name),
    );
    return classNames.filter((c) => names.has(c));
  };
  const direct = await has(dir);
  if (direct.length > 0) return dir;
  const test = path.join(dir, 'test');
  if ((await pathExists(test)) && (await has(test)).length > 0) return test;
  throw new XferError(
    'NO_DATA',
    `${dir} has no class folders named like the model's classes (${classNames.join(', ')}), and no test/ folder with them. Pass a folder with one sub-folder per class.`,
    { dataDir: dir, classNames },
  );
}

/**
 * Evaluates a trained run on a labelled folder and writes its report.
 * @example
 * const { metrics } = await evaluateRun('xfer-run', 'data/cats_and_dogs_small/test');
 * metrics.accuracy; metrics.confusion;
 */
export async function evaluateRun(
  modelDir: string,
  dataDir: string,
  options: EvaluateRunOptions = {},
): Promise<EvaluateRunResult> {
  await initBackend();
  const batchSize = checkPositiveInteger('batchSize', options.batchSize ?? 32);
  const classifier = await loadClassifier(modelDir);
  const { config, classNames, model } = classifier;
  const folder = await labelledFolder(dataDir, classNames);
  const preprocess = preprocessingFunction(config.preprocessing);
  const generator = new ImageDataGenerator({
    preprocessingFunction: preprocess as (x: tf.Tensor3D) => tf.Tensor3D,
    // Every Preprocessing is a per-pixel affine map: applied to the whole batch in JS, not per
    // image through tfjs kernels (several ms per image on the main thread).
    preprocessingFunctionOnBatch: true,
  });
  const iterator = await generator.flowFromDirectory(folder, {
    targetSize: [config.imageSize, config.imageSize],
    colorMode: config.colorMode,
    classes: classNames,
    classMode: null,
    batchSize,
    shuffle: false,
  });
  const outputs = await labelledOutputs(
    model,
    iterator,
    classNames,
    options.callbacks ? { callbacks: options.callbacks } : {},
  );
  let history: Record<string, number[]> | undefined;
  let epochSeconds: number[] | undefined;
  const stateFile = path.join(modelDir, RUN_FILES.lastCheckpoint);
  if (await pathExists(stateFile)) {
    const loaded = await readTrainingState(stateFile);
    tf.dispose([...loaded.modelWeights, ...loaded.optimizerWeights.map((w) => w.tensor)]);
    history = loaded.state.history;
    epochSeconds = loaded.state.epochSeconds;
  }
  const split = path.basename(path.resolve(folder));
  const outDir = options.outDir ?? path.join(modelDir, `eval-${split}`);
  if (options.report === false) {
    return { dataDir: folder, metrics: classificationMetrics(outputs), reportPath: null };
  }
  const result = await writeReport(outDir, {
    title: `${config.backbone}: evaluation on ${split}`,
    subtitle: `model ${modelDir}, data ${folder}, written ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    model,
    backbone: config.backbone,
    outputs,
    evaluatedSplit: split,
    counts: [{ split, perClass: imagesPerClass(iterator, classNames) }],
    ...(history ? { history } : {}),
    ...(epochSeconds ? { epochSeconds } : {}),
    config: config as unknown as Record<string, unknown>,
  });
  return { dataDir: folder, metrics: result.metrics, reportPath: result.reportPath };
}
