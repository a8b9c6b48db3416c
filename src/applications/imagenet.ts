/**
 * ImageNet class names for the 1000-way classifiers (Keras's `decode_predictions`). The index is
 * Keras's own `imagenet_class_index.json` (md5 c2c37ea517e94d9795004a39431a14cb, the hash Keras
 * records), shipped in the package so it works offline.
 */
import { readFileSync } from 'node:fs';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { checkPositiveInteger } from '../util/validate.js';

/** One guess of an ImageNet classifier. */
export interface ImagenetPrediction {
  /** WordNet id of the class, e.g. `'n01440764'`. */
  wnid: string;
  /** Keras's class name, e.g. `'tench'`, `'toilet_tissue'`. */
  className: string;
  /** The model's score for the class. */
  probability: number;
}

const NUM_CLASSES = 1000;

// Both src/applications/ and dist/applications/ sit two levels below the package root.
const CLASS_INDEX_URL = new URL('../../assets/imagenet_class_index.json', import.meta.url);

let classIndex: Array<[string, string]> | undefined;

/** The 1000 `[wnid, className]` pairs, by class index. Read once, on first use. */
export function imagenetClassIndex(): ReadonlyArray<readonly [string, string]> {
  if (classIndex) return classIndex;
  let raw: Record<string, [string, string]>;
  try {
    raw = JSON.parse(readFileSync(CLASS_INDEX_URL, 'utf8'));
  } catch (error) {
    throw new XferError(
      'CORRUPT_FILE',
      `could not read the ImageNet class index at ${CLASS_INDEX_URL.pathname} (${(error as Error).message}); the xfer package is incomplete, reinstall it.`,
      { file: CLASS_INDEX_URL.pathname },
      { cause: error },
    );
  }
  classIndex = Array.from({ length: NUM_CLASSES }, (_, i) => raw[String(i)]!);
  return classIndex;
}

function toRows(preds: tf.Tensor | number[][]): number[][] {
  if (preds instanceof tf.Tensor) {
    if (preds.rank !== 2 || preds.shape[1] !== NUM_CLASSES) throw shapeError(preds.shape);
    return preds.arraySync() as number[][];
  }
  if (!Array.isArray(preds) || !preds.every((row) => Array.isArray(row))) {
    throw invalidParameterError('preds', 'a tf.Tensor or number[][] of shape [n, 1000]', preds);
  }
  const bad = preds.find((row) => row.length !== NUM_CLASSES);
  if (bad) throw shapeError([preds.length, bad.length]);
  return preds;
}

function shapeError(shape: readonly (number | null)[]): XferError {
  return new XferError(
    'SHAPE_MISMATCH',
    `decodePredictions expects a batch of predictions of shape [samples, 1000], but received shape [${shape.join(', ')}]. Pass the output of an ImageNet classifier (includeTop: true, 1000 classes), with the batch axis.`,
    { shape },
  );
}

/**
 * Decodes ImageNet predictions into the `top` most likely classes of each sample, best first
 * (Keras's `decode_predictions`). Throws unless `preds` has shape `[n, 1000]`.
 * @example
 * const model = await VGG16();
 * const preds = model.predict(vgg16.preprocessInput(images)) as tf.Tensor;
 * decodePredictions(preds, 3)[0]; // [{ wnid: 'n02123045', className: 'tabby', probability: 0.61 }, ...]
 */
export function decodePredictions(
  preds: tf.Tensor | number[][],
  top = 5,
): Array<Array<ImagenetPrediction>> {
  checkPositiveInteger('top', top);
  const rows = toRows(preds);
  const index = imagenetClassIndex();
  return rows.map((row) => {
    // Ties go to the higher class index, as Keras's reversed argsort gives for a stable sort.
    const order = row.map((_, i) => i).sort((a, b) => row[b]! - row[a]! || b - a);
    return order.slice(0, top).map((i) => {
      const [wnid, className] = index[i]!;
      return { wnid, className, probability: row[i]! };
    });
  });
}
