/**
 * In-memory tensors as a `BatchSource`, as Keras slices `fit(x, y, batch_size=...)`: batches of
 * `batchSize` rows in order (the last one shorter), or in a seeded shuffled order redrawn after
 * each epoch.
 */
import type { Batch, BatchSource } from '../data/source.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { Random } from '../util/random.js';
import { checkBoolean, checkPositiveInteger } from '../util/validate.js';

export interface ArrayBatchesOptions {
  /** Rows per batch; the last batch holds the remainder. Default 32. */
  batchSize?: number;
  /** Draw a new order of rows at the start and after each epoch (`onEpochEnd`). Default false. */
  shuffle?: boolean;
  /** Seed of the shuffle order, for reproducible runs. Default: a random one. */
  seed?: number;
}

class ArrayBatches implements BatchSource {
  readonly length: number;
  private order: Int32Array | undefined;
  private readonly random: Random;

  constructor(
    private readonly x: tf.Tensor,
    private readonly y: tf.Tensor | null,
    private readonly batchSize: number,
    shuffle: boolean,
    seed: number | undefined,
  ) {
    const rows = x.shape[0]!;
    this.length = Math.ceil(rows / batchSize);
    this.random = new Random(seed);
    if (shuffle) this.reshuffle();
  }

  private reshuffle(): void {
    const indices = Array.from({ length: this.x.shape[0]! }, (_, i) => i);
    this.order = Int32Array.from(this.random.shuffle(indices));
  }

  async getBatch(index: number): Promise<Batch> {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `batch index ${index} is out of range: this source has ${this.length} batches (0 to ${this.length - 1}).`,
        { index, length: this.length },
      );
    }
    const start = index * this.batchSize;
    const size = Math.min(this.batchSize, this.x.shape[0]! - start);
    const order = this.order;
    if (!order) {
      return {
        x: tf.slice(this.x, start, size),
        y: this.y ? tf.slice(this.y, start, size) : null,
      };
    }
    const rows = tf.tensor1d(order.subarray(start, start + size), 'int32');
    try {
      return { x: tf.gather(this.x, rows), y: this.y ? tf.gather(this.y, rows) : null };
    } finally {
      rows.dispose();
    }
  }

  onEpochEnd(): void {
    if (this.order) this.reshuffle();
  }
}

/**
 * A `BatchSource` over tensors already in memory; `fit(model, { x, y })` uses one.
 * @example
 * const source = arrayBatches(xs, ys, { batchSize: 16, shuffle: true, seed: 1 });
 * await fit(model, source, { epochs: 5 });
 */
export function arrayBatches(
  x: tf.Tensor,
  y: tf.Tensor | null,
  options: ArrayBatchesOptions = {},
): BatchSource {
  if (!(x instanceof tf.Tensor)) throw invalidParameterError('x', 'tf.Tensor', x);
  if (x.rank === 0 || x.shape[0] === 0) {
    throw invalidParameterError('x', 'tensor with at least one row (shape [n, ...])', x.shape);
  }
  if (y !== null) {
    if (!(y instanceof tf.Tensor)) throw invalidParameterError('y', 'tf.Tensor or null', y);
    if (y.rank === 0 || y.shape[0] !== x.shape[0]) {
      throw new XferError(
        'SHAPE_MISMATCH',
        `x and y must have the same number of rows, but x has shape [${x.shape}] and y [${y.shape}].`,
        { x: x.shape, y: y.shape },
      );
    }
  }
  const batchSize = checkPositiveInteger('batchSize', options.batchSize ?? 32);
  const shuffle = checkBoolean('shuffle', options.shuffle ?? false);
  return new ArrayBatches(x, y, batchSize, shuffle, options.seed);
}
