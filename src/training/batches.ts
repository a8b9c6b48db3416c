/**
 * Walking a `BatchSource` for the loops: one batch prefetched ahead (its decoding overlaps the
 * current batch's compute), each batch's tensors disposed after use, the source's `onEpochEnd`
 * called after its last batch has been fetched (so a reshuffle never changes a batch in flight),
 * and a cursor that cycles the source when a run asks for more steps than it has.
 */
import type { Batch, BatchSource } from '../data/source.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { arrayBatches } from './array-batches.js';

export function isBatchSource(value: unknown): value is BatchSource {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as BatchSource).getBatch === 'function' &&
    typeof (value as BatchSource).length === 'number'
  );
}

/** Where the next batch comes from; it persists across the epochs of one `fit`. */
export interface Cursor {
  position: number;
}

function checkBatch(batch: unknown, index: number, needTargets: boolean): Batch {
  const b = batch as Batch | undefined;
  if (!b || !(b.x instanceof tf.Tensor)) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `the batch source returned ${b === undefined ? 'nothing' : 'a batch without an x tensor'} for batch ${index}; getBatch must resolve to { x: tf.Tensor, y: tf.Tensor | null }.`,
      { index },
    );
  }
  if (needTargets && !(b.y instanceof tf.Tensor)) {
    tf.dispose(b.x);
    throw new XferError(
      'INVALID_ARGUMENT',
      `batch ${index} has no targets (y is ${b.y === null ? 'null' : typeof b.y}), but training and evaluation need them. A directory iterator gives labels unless classMode is null.`,
      { index },
    );
  }
  return b;
}

/**
 * Runs `body` on `steps` batches from `cursor.position` on, prefetching the next batch while
 * `body` runs. `body` returns false to stop early; the prefetched batch is then disposed.
 */
export async function pumpBatches(
  source: BatchSource,
  cursor: Cursor,
  steps: number,
  needTargets: boolean,
  body: (batch: Batch, step: number) => Promise<boolean>,
): Promise<void> {
  const fetch = (): Promise<{ batch: Batch; index: number }> => {
    const index = cursor.position;
    cursor.position = (index + 1) % source.length;
    const pending = source
      .getBatch(index)
      .then((batch) => ({ batch: checkBatch(batch, index, needTargets), index }));
    // It may fail while body runs, before it is awaited: not an unhandled rejection.
    pending.catch(() => {});
    return pending;
  };
  let pending = steps > 0 ? fetch() : undefined;
  try {
    for (let step = 0; step < steps; step++) {
      const { batch, index } = await pending!;
      pending = undefined;
      if (index === source.length - 1) source.onEpochEnd?.();
      if (step + 1 < steps) pending = fetch();
      let goOn: boolean;
      try {
        goOn = await body(batch, step);
      } finally {
        tf.dispose(batch.y ? [batch.x, batch.y] : [batch.x]);
      }
      if (!goOn) break;
    }
  } finally {
    if (pending) {
      const left = await pending.catch(() => undefined);
      if (left) tf.dispose(left.batch.y ? [left.batch.x, left.batch.y] : [left.batch.x]);
    }
  }
}

/** Tensors `{ x, y }` or a `BatchSource`, as `fit` / `evaluate` take them, as a `BatchSource`. */
export function toBatchSource(
  data: unknown,
  name: string,
  tensorOptions: { batchSize?: number; shuffle?: boolean; seed?: number },
): BatchSource {
  if (isBatchSource(data)) {
    const given = Object.entries(tensorOptions)
      .filter(([, value]) => value !== undefined)
      .map(([key]) => key);
    if (given.length > 0) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `${given.join(', ')} ${given.length === 1 ? 'applies' : 'apply'} to tensor data only; a BatchSource sets its own batch size and order (e.g. flowFromDirectory's batchSize and shuffle). Received ${given.join(', ')} with a BatchSource for ${name}.`,
        { options: given },
      );
    }
    if (!Number.isInteger(data.length) || data.length <= 0) {
      throw new XferError(
        'NO_DATA',
        `${name} has ${data.length} batches; there is nothing to run on. Check that the data folder holds images in its class sub-folders.`,
        { length: data.length },
      );
    }
    return data;
  }
  const pair = data as { x?: unknown; y?: unknown } | null;
  if (pair && typeof pair === 'object' && pair.x instanceof tf.Tensor) {
    return arrayBatches(pair.x, (pair.y as tf.Tensor | undefined) ?? null, {
      ...(tensorOptions.batchSize !== undefined ? { batchSize: tensorOptions.batchSize } : {}),
      ...(tensorOptions.shuffle !== undefined ? { shuffle: tensorOptions.shuffle } : {}),
      ...(tensorOptions.seed !== undefined ? { seed: tensorOptions.seed } : {}),
    });
  }
  throw invalidParameterError(
    name,
    'a BatchSource (e.g. flowFromDirectory) or { x: tf.Tensor, y: tf.Tensor }',
    data,
  );
}
