/**
 * Exports of a run folder (`xfer train --out`) for use elsewhere:
 * - `tfjs`: a tfjs layers model folder (model.json + weights.bin) that `tf.loadLayersModel` loads
 *   in a browser, with `xfer.json` beside it saying how to feed it (class names, image size, colour
 *   mode and the preprocessing as a per-pixel affine map, so no xfer code is needed there).
 * - `keras-h5`: the weights in Keras's HDF5 layout (`model.save_weights`), for `load_weights` on
 *   the same architecture in Keras.
 */
import * as path from 'node:path';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError } from '../errors.js';
import { pathExists, writeFileAtomic } from '../util/fs.js';
import { saveWeights } from '../weights/load.js';
import { saveModel } from '../weights/tfjs-format.js';
import { loadClassifier } from './classifier.js';
import { type Preprocessing, preprocessingFunction } from './preprocessing.js';
import { RUN_FILES, type RunConfig } from './run-folder.js';

/** What `xfer.json` in a tfjs export holds. */
export interface TfjsExportMetadata {
  format: 'xfer-tfjs-export';
  classNames: string[];
  /** One sigmoid output (probability of class 1) or one softmax output per class. */
  classMode: RunConfig['classMode'];
  /** Square input size in pixels: resize images to imageSize x imageSize. */
  imageSize: number;
  colorMode: RunConfig['colorMode'];
  /** As recorded in the run. */
  preprocessing: Preprocessing;
  /**
   * The same preprocessing as arithmetic any language can apply to a pixel `x` of 0..255 values:
   * `y[o] = sum_i weights[o][i] * x[i] + bias[o]` (the caffe mode's RGB to BGR flip is in the
   * weights). Absent if the preprocessing is not affine.
   */
  affine?: { weights: number[][]; bias: number[] };
}

const round = (v: number) => Number(v.toPrecision(7));

/**
 * Reads the preprocessing off its own function: f(0) is the bias, f(255 e_i) - f(0) the i-th
 * column (255 keeps float32 rounding small); a check at a mid-grey pixel confirms it is affine.
 */
function affineOf(p: Preprocessing, channels: number): TfjsExportMetadata['affine'] {
  const fn = preprocessingFunction(p);
  const probes: number[] = [];
  for (let k = 0; k <= channels + 1; k++) {
    for (let i = 0; i < channels; i++) {
      probes.push(k === 0 ? 0 : k <= channels ? (i === k - 1 ? 255 : 0) : 37 + 71 * i);
    }
  }
  const out = tf.tidy(() => fn(tf.tensor4d(probes, [channels + 2, 1, 1, channels])).dataSync());
  const bias = Array.from(out.slice(0, channels));
  const weights = Array.from({ length: channels }, (_, o) =>
    Array.from({ length: channels }, (_, i) => (out[(i + 1) * channels + o]! - bias[o]!) / 255),
  );
  const check = probes.slice((channels + 1) * channels);
  for (let o = 0; o < channels; o++) {
    const expected = bias[o]! + weights[o]!.reduce((s, w, i) => s + w * check[i]!, 0);
    if (
      Math.abs(expected - out[(channels + 1) * channels + o]!) >
      1e-3 * (1 + Math.abs(expected))
    ) {
      return undefined;
    }
  }
  return { weights: weights.map((row) => row.map(round)), bias: bias.map(round) };
}

/**
 * The run folder to export: `dir` itself, or its parent when `dir` is the run's `model/` folder
 * (what `xfer export <model-dir>` names), so both spellings work.
 */
async function runFolderOf(dir: string): Promise<string> {
  const parent = path.dirname(path.resolve(dir));
  const isModelFolder =
    (await pathExists(path.join(dir, 'model.json'))) &&
    (await pathExists(path.join(parent, RUN_FILES.config))) &&
    (await pathExists(path.join(parent, RUN_FILES.classes)));
  return isModelFolder ? parent : dir;
}

function checkOut(out: unknown, what: string): string {
  if (typeof out !== 'string' || out === '') throw invalidParameterError('out', what, out);
  return out;
}

/**
 * Writes a run folder's model as a tfjs layers model folder `out` (model.json, weights.bin,
 * xfer.json) for `tf.loadLayersModel` in a browser or in Node. `modelDir` is the run folder or
 * the `model/` folder inside it.
 * @example
 * await exportTfjs('xfer-run', 'web/model');
 * // in the page: const model = await tf.loadLayersModel('model/model.json');
 */
export async function exportTfjs(modelDir: string, out: string): Promise<TfjsExportMetadata> {
  checkOut(out, 'a folder path to write the tfjs model into');
  await initBackend();
  const { model, classNames, config } = await loadClassifier(await runFolderOf(modelDir));
  try {
    const affine = affineOf(config.preprocessing, config.colorMode === 'grayscale' ? 1 : 3);
    const metadata: TfjsExportMetadata = {
      format: 'xfer-tfjs-export',
      classNames,
      classMode: config.classMode,
      imageSize: config.imageSize,
      colorMode: config.colorMode,
      preprocessing: config.preprocessing,
      ...(affine ? { affine } : {}),
    };
    // Also inside model.json, so `model.getUserDefinedMetadata()` has it after loading.
    model.setUserDefinedMetadata({ xfer: metadata } as unknown as object);
    await saveModel(model, out);
    await writeFileAtomic(path.join(out, 'xfer.json'), `${JSON.stringify(metadata, null, 2)}\n`);
    return metadata;
  } finally {
    model.dispose();
  }
}

/**
 * Writes a run folder's (or its `model/` folder's) weights as a Keras HDF5 weights file (`.h5`), the layout of Keras's
 * `model.save_weights`: build the same model in Keras (the run's backbone, GlobalAveragePooling2D,
 * Dense) and call `model.load_weights(out)`.
 * @example
 * await exportKerasH5('xfer-run', 'classifier.weights.h5');
 */
export async function exportKerasH5(modelDir: string, out: string): Promise<void> {
  const what = "a file path ending in '.h5' or '.hdf5'";
  if (!/\.(h5|hdf5)$/i.test(checkOut(out, what))) throw invalidParameterError('out', what, out);
  await initBackend();
  const { model } = await loadClassifier(await runFolderOf(modelDir));
  try {
    await saveWeights(model, out);
  } finally {
    model.dispose();
  }
}
