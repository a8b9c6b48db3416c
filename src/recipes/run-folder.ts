/**
 * The run folder `xfer train --out <dir>` writes and `xfer predict <dir>` reads:
 *   model/          the trained model, tfjs layers format (model.json + weights.bin)
 *   best.weights.h5 the best checkpoint (Keras .h5 weights)
 *   classes.json    class names in index order
 *   config.json     everything needed to reproduce the run and to preprocess new images
 *   history.csv     per-epoch metrics
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { XferError } from '../errors.js';
import { pathExists, writeFileAtomic } from '../util/fs.js';
import type { Preprocessing } from './preprocessing.js';

export const RUN_FILES = {
  model: 'model',
  checkpoint: 'best.weights.h5',
  classes: 'classes.json',
  config: 'config.json',
  history: 'history.csv',
} as const;

export interface RunConfig {
  xferVersion: string;
  backbone: string;
  weights: string | null;
  imageSize: number;
  colorMode: 'rgb' | 'grayscale';
  preprocessing: Preprocessing;
  classMode: 'binary' | 'categorical';
  epochs: number;
  batchSize: number;
  learningRate: number;
  augment: boolean;
  patience: number;
  seed: number | null;
  dataDir: string;
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function readJson<T>(file: string, what: string): Promise<T> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch (error) {
    throw new XferError('CORRUPT_FILE', `cannot read ${what} ${file}: ${(error as Error).message}`, {
      file,
    });
  }
}

/** Reads and checks a run folder's classes and config; a missing piece is named. */
export async function readRunFolder(
  dir: string,
): Promise<{ config: RunConfig; classNames: string[]; modelDir: string }> {
  if (!(await pathExists(dir))) {
    throw new XferError(
      'NOT_FOUND',
      `model directory ${dir} does not exist; pass the --out folder of \`xfer train\`.`,
      { dir },
    );
  }
  const missing: string[] = [];
  for (const name of [RUN_FILES.config, RUN_FILES.classes, path.join(RUN_FILES.model, 'model.json')]) {
    if (!(await pathExists(path.join(dir, name)))) missing.push(name);
  }
  if (missing.length > 0) {
    throw new XferError(
      'NOT_FOUND',
      `model directory ${dir} is incomplete: missing ${missing.join(', ')}. It should be the --out folder of a finished \`xfer train\`.`,
      { dir, missing },
    );
  }
  const config = await readJson<RunConfig>(path.join(dir, RUN_FILES.config), 'run config');
  const classNames = await readJson<string[]>(path.join(dir, RUN_FILES.classes), 'class list');
  if (!Array.isArray(classNames) || classNames.some((c) => typeof c !== 'string')) {
    throw new XferError('CORRUPT_FILE', `${path.join(dir, RUN_FILES.classes)} is not a list of class names.`);
  }
  return { config, classNames, modelDir: path.join(dir, RUN_FILES.model) };
}
