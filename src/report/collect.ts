/** What a report needs from a model and a labelled folder: every image's outputs, in file order. */
import type { DirectoryIterator } from '../data/index.js';
import type * as tf from '../engine/tf.js';
import { type Callback, predict } from '../training/index.js';
import type { LabelledOutputs } from './metrics.js';

/**
 * Runs `model` over an unshuffled directory iterator and pairs each output row with its label.
 * @example
 * const outputs = await labelledOutputs(model, testIter, classNames);
 */
export async function labelledOutputs(
  model: tf.LayersModel,
  iterator: DirectoryIterator,
  classNames: string[],
  options: { callbacks?: Callback[]; verbose?: 0 | 1 } = {},
): Promise<LabelledOutputs> {
  const output = await predict(model, iterator, {
    verbose: options.verbose ?? 0,
    ...(options.callbacks ? { callbacks: options.callbacks } : {}),
  });
  try {
    const width = output.shape[1] ?? 1;
    const values = await output.data();
    const outputs: number[][] = [];
    for (let i = 0; i < iterator.samples; i++) {
      outputs.push(Array.from(values.subarray(i * width, (i + 1) * width)));
    }
    return { classNames, outputs, labels: Array.from(iterator.classes), files: iterator.filepaths };
  } finally {
    output.dispose();
  }
}

/** Images per class of an iterator, in class order. */
export function imagesPerClass(iterator: DirectoryIterator, classNames: string[]): number[] {
  const counts = classNames.map(() => 0);
  for (const c of iterator.classes) counts[c]! += 1;
  return counts;
}
