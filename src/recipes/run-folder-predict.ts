/**
 * Prediction at scale with a run folder's model: image arguments expanded (files, folders, `*` /
 * `**` globs), images decoded concurrently a batch ahead of the model, results yielded in input
 * order as each batch finishes, and unreadable files reported in place instead of stopping the run.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { type Img, loadImg } from '../data/index.js';
import { hasImageExtension } from '../data/scan.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { checkPositiveInteger } from '../util/validate.js';
import type { Classifier, Prediction } from './classifier.js';
import { preprocessingFunction } from './preprocessing.js';

/** A class and its probability. */
export interface ClassScore {
  className: string;
  probability: number;
}

export interface FilePrediction extends Prediction {
  /** Probability of `className` (for a sigmoid model, 1 - probability when the class is 0). */
  confidence: number;
  /** The `top` most probable classes, most probable first. */
  top: ClassScore[];
}

/** One input's outcome: a prediction, or why the file could not be classified. */
export type FileResult =
  | { file: string; prediction: FilePrediction; error?: undefined }
  | { file: string; prediction?: undefined; error: XferError };

export interface PredictFilesOptions {
  /** Images per model call. Default 32. */
  batchSize?: number;
  /** Classes listed in `top`. Default 1. */
  top?: number;
}

const GLOB_CHARS = /[*?[]/;

function segmentPattern(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 1);
      if (end < 0) source += '\\[';
      else {
        const body = segment
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\');
        source += `[${body}]`;
        i = end;
      }
    } else source += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

async function entries(dir: string): Promise<{ name: string; dir: boolean; file: boolean }[]> {
  const list = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
  return Promise.all(
    list.map(async (e) => {
      if (!e.isSymbolicLink()) return { name: e.name, dir: e.isDirectory(), file: e.isFile() };
      const stat = await fsp.stat(path.join(dir, e.name)).catch(() => undefined);
      return { name: e.name, dir: Boolean(stat?.isDirectory()), file: Boolean(stat?.isFile()) };
    }),
  );
}

/** Files under `dir` matching the pattern's segments; `**` spans any number of folders. */
async function walk(dir: string, segments: string[], out: Set<string>): Promise<void> {
  const [head, ...rest] = segments;
  if (head === undefined) return;
  if (head === '**') {
    await walk(dir, rest, out);
    for (const e of await entries(dir)) {
      if (e.dir && !e.name.startsWith('.')) await walk(path.join(dir, e.name), segments, out);
    }
    return;
  }
  const pattern = segmentPattern(head);
  for (const e of await entries(dir)) {
    // As in shells, a wildcard does not match a leading dot.
    if (!pattern.test(e.name) || (e.name.startsWith('.') && !head.startsWith('.'))) continue;
    const full = path.join(dir, e.name);
    if (rest.length === 0) {
      if (e.file) out.add(full);
    } else if (e.dir) await walk(full, rest, out);
  }
}

/** Image files under a folder, recursively, sorted. */
async function imagesUnder(dir: string): Promise<string[]> {
  const found = new Set<string>();
  await walk(dir, ['**', '*'], found);
  return [...found].filter(hasImageExtension).sort();
}

/**
 * Expands command-line image arguments: a file as is, a folder to the images in it (recursively),
 * a pattern with `*`, `?`, `[...]` or `**` to the image files it matches (sorted). A pattern
 * matching nothing, or a path that does not exist, is kept so that it is reported as unreadable.
 * @example
 * await expandImageArgs(['photos/**\/*.jpg', 'extra/dog.png', 'more/']);
 */
export async function expandImageArgs(args: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const arg of args) {
    if (!GLOB_CHARS.test(arg)) {
      const stat = await fsp.stat(arg).catch(() => undefined);
      files.push(...(stat?.isDirectory() ? await imagesUnder(arg) : [arg]));
      continue;
    }
    const parts = arg.split('/');
    const firstMagic = parts.findIndex((p) => GLOB_CHARS.test(p));
    const base = parts.slice(0, firstMagic).join('/') || (arg.startsWith('/') ? '/' : '.');
    const found = new Set<string>();
    await walk(base, parts.slice(firstMagic), found);
    const matched = [...found]
      .filter(hasImageExtension)
      .map((f) => (arg.startsWith('./') || path.isAbsolute(arg) ? f : path.relative('.', f) || f))
      .sort();
    files.push(...(matched.length > 0 ? matched : [arg]));
  }
  return files;
}

function scores(row: number[], classNames: string[]): ClassScore[] {
  const probabilities = row.length === 1 ? [1 - row[0]!, row[0]!] : row;
  return probabilities
    .map((probability, i) => ({ className: classNames[i] ?? String(i), probability }))
    .sort((a, b) => b.probability - a.probability);
}

/**
 * Classifies many files in batches, yielding one result per input file, in order.
 * @example
 * for await (const r of predictFiles(classifier, await expandImageArgs(['photos/']), { top: 3 })) {
 *   if (r.error) console.warn(r.error.message); else console.log(r.file, r.prediction.className);
 * }
 */
export async function* predictFiles(
  classifier: Classifier,
  files: string[],
  options: PredictFilesOptions = {},
): AsyncGenerator<FileResult> {
  const batchSize = checkPositiveInteger('batchSize', options.batchSize ?? 32);
  const top = checkPositiveInteger('top', options.top ?? 1);
  const { config, classNames, model } = classifier;
  if (!Array.isArray(files)) throw invalidParameterError('files', 'an array of paths', files);
  const preprocess = preprocessingFunction(config.preprocessing);
  const size = config.imageSize;
  const load = (batch: string[]) =>
    Promise.allSettled(
      batch.map((file) => loadImg(file, { targetSize: [size, size], colorMode: config.colorMode })),
    );
  const batches: string[][] = [];
  for (let i = 0; i < files.length; i += batchSize) batches.push(files.slice(i, i + batchSize));
  let next = batches.length > 0 ? load(batches[0]!) : undefined;
  for (const [b, batch] of batches.entries()) {
    const loaded = await next!;
    // Decode the next batch on sharp's threads while the model runs on this one.
    next = b + 1 < batches.length ? load(batches[b + 1]!) : undefined;
    const images = loaded.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const rows = images.length > 0 ? await runModel(model, images, preprocess) : [];
    let k = 0;
    for (const [i, file] of batch.entries()) {
      const r = loaded[i]!;
      if (r.status === 'rejected') {
        const error =
          r.reason instanceof XferError
            ? r.reason
            : new XferError(
                'CORRUPT_FILE',
                `cannot read ${file}: ${(r.reason as Error)?.message ?? r.reason}`,
              );
        yield { file, error };
        continue;
      }
      const row = rows[k++]!;
      const ranked = scores(row, classNames);
      const best = ranked[0]!;
      const classIndex = classNames.indexOf(best.className);
      yield {
        file,
        prediction: {
          file,
          className: best.className,
          classIndex,
          // The seed's convention: a sigmoid model's output, the probability of class 1.
          probability: row.length === 1 ? row[0]! : best.probability,
          confidence: best.probability,
          top: ranked.slice(0, top),
        },
      };
    }
  }
}

async function runModel(
  model: tf.LayersModel,
  images: Img[],
  preprocess: (x: tf.Tensor) => tf.Tensor,
): Promise<number[][]> {
  const { height, width, channels } = images[0]!;
  const size = height * width * channels;
  const pixels = new Float32Array(images.length * size);
  for (const [i, img] of images.entries()) pixels.set(img.data, i * size);
  const output = tf.tidy(() => {
    const x = preprocess(tf.tensor4d(pixels, [images.length, height, width, channels]));
    return model.apply(x, { training: false }) as tf.Tensor;
  });
  try {
    const values = await output.data();
    const width1 = output.shape[1] ?? 1;
    return images.map((_, i) => Array.from(values.subarray(i * width1, (i + 1) * width1)));
  } finally {
    output.dispose();
  }
}
