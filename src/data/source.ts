/**
 * What `fit`, `evaluate` and `predict` consume: a finite, indexable sequence of batches, like a
 * Keras `Sequence` (and `flowFromDirectory`'s iterator). Batches are produced on demand, so a data
 * set never has to fit in memory; the consumer disposes each batch's tensors when done.
 */
import type * as tf from '../engine/tf.js';

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
}
