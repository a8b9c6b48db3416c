/**
 * The run folder `xfer train --out <dir>` writes and `xfer predict <dir>` reads:
 *   model/          the trained model (best epoch), tfjs layers format (model.json + weights.bin)
 *   best.weights.h5 the best checkpoint (Keras .h5 weights)
 *   last.ckpt       the last complete epoch: weights, optimizer state, callbacks' state (resume)
 *   classes.json    class names in index order
 *   config.json     everything needed to reproduce the run and to preprocess new images
 *   history.csv     per-epoch metrics
 *   report.html     the report people look at; plots/*.png beside it
 * Every file appears whole or not at all (temp file + rename), so a killed process never leaves
 * a file that cannot be read.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { XferError } from '../errors.js';
import { pathExists, writeFileAtomic } from '../util/fs.js';
import type { Preprocessing } from './preprocessing.js';

export const RUN_FILES = {
  model: 'model',
  checkpoint: 'best.weights.h5',
  lastCheckpoint: 'last.ckpt',
  classes: 'classes.json',
  config: 'config.json',
  history: 'history.csv',
  report: 'report.html',
  plots: 'plots',
} as const;

/** config.json: the full configuration of a run; `xfer train --config` takes it back. */
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
  /** Absent in run folders written before it was recorded: read as true. */
  freezeBackbone?: boolean;
  patience: number;
  /** The seed in use: the one given, or the one drawn when none was, so a run can be repeated. */
  seed: number | null;
  dataDir: string;
}

export async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

export async function readJson<T>(file: string, what: string): Promise<T> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new XferError(
      missing ? 'NOT_FOUND' : 'CORRUPT_FILE',
      `cannot read ${what} ${file}: ${(error as Error).message}`,
      { file },
    );
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
  for (const name of [
    RUN_FILES.config,
    RUN_FILES.classes,
    path.join(RUN_FILES.model, 'model.json'),
  ]) {
    if (!(await pathExists(path.join(dir, name)))) missing.push(name);
  }
  if (missing.length > 0) {
    const resumable = await pathExists(path.join(dir, RUN_FILES.lastCheckpoint));
    throw new XferError(
      'NOT_FOUND',
      `model directory ${dir} is incomplete: missing ${missing.join(', ')}. It should be the --out folder of a finished \`xfer train\`${resumable ? `; this one was interrupted: finish it with \`xfer train --resume ${dir}\`` : ''}.`,
      { dir, missing },
    );
  }
  const config = await readJson<RunConfig>(path.join(dir, RUN_FILES.config), 'run config');
  const classNames = await readJson<string[]>(path.join(dir, RUN_FILES.classes), 'class list');
  if (!Array.isArray(classNames) || classNames.some((c) => typeof c !== 'string')) {
    throw new XferError(
      'CORRUPT_FILE',
      `${path.join(dir, RUN_FILES.classes)} is not a list of class names.`,
    );
  }
  return { config, classNames, modelDir: path.join(dir, RUN_FILES.model) };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files and folders a killed process left in a run folder (`tempPathFor`'s
 * `.<name>.<pid>.<hex>.tmp`), keeping those of processes still running.
 */
export async function removeStaleTempFiles(dir: string): Promise<void> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || processAlive(Number(pid))) continue;
    await fsp.rm(path.join(dir, name), { recursive: true, force: true });
  }
}
