/**
 * What `fit`, `evaluate` and `predict` consume: a finite, indexable sequence of batches, like a
 * Keras `Sequence` (and `flowFromDirectory`'s iterator). Batches are produced on demand, so a data
 * set never has to fit in memory; the consumer disposes each batch's tensors when done.
 */
import type * as tf from '../engine/tf.js';
import { invalidParameterError } from '../errors.js';

export interface Batch {
  /** Inputs, e.g. [batch, height, width, channels] float32. */
  x: tf.Tensor;
  /** Targets, shaped per the class mode; null when the source has no labels. */
  y: tf.Tensor | null;
}

export interface BatchSource {
  /** Batches per epoch (Keras's `len(iterator)`). */
  readonly length: number;
  /** The batch at `index` in [0, length). */
  getBatch(index: number): Promise<Batch>;
  /** Called after each epoch, e.g. to reshuffle. */
  onEpochEnd?(): void;
  /**
   * Optional: one key per sample of batch `index` (in its order), naming everything that decides
   * the sample's x row (e.g. a file's path, size and modification time, and the resizing and
   * standardization settings), so that a consumer may reuse what it computed from that row before
   * (the frozen-backbone feature cache). Resolves to null when the rows are not reproducible
   * (augmentation) or a key cannot be made (a file gone): the consumer then loads the batch.
   */
  sampleKeys?(index: number): Promise<string[] | null>;
  /**
   * Optional, with `sampleKeys`: batch `index`'s targets alone (what `getBatch(index).y` would
   * be), without loading or decoding its inputs. The caller disposes the tensor.
   */
  getLabels?(index: number): Promise<tf.Tensor | null>;
}

/**
 * The sample indices of batch `index` in an epoch's `order` (the last batch may be short); a
 * clear error for an index outside [0, batches). `owner` names the source in that message.
 */
export function batchIndices(
  order: Int32Array,
  index: number,
  batchSize: number,
  owner: 'the iterator' | 'the data set',
): Int32Array {
  const batches = Math.ceil(order.length / batchSize);
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= batches) {
    throw invalidParameterError(
      'index',
      `integer batch index in [0, ${batches}) (${owner} has ${batches} batches)`,
      index,
    );
  }
  return order.subarray(index * batchSize, Math.min((index + 1) * batchSize, order.length));
}
