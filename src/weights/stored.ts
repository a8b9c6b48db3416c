/**
 * The one shape every weight source is read into (a Keras `.h5` file, a tfjs `model.json`), so that
 * matching weights to a model is written once.
 */

/** Weight values as read from a file: floats as float32, integers as int32. */
export type WeightValues = Float32Array | Int32Array;

export interface StoredWeight {
  /** The name as stored, e.g. `block1_conv1/kernel:0` (Keras 2), `dense/kernel` (tfjs). */
  readonly name: string;
  readonly shape: readonly number[];
  /** Reads the values; a source may read lazily, so this can throw `CORRUPT_FILE`. */
  read(): WeightValues;
}

export interface StoredLayer {
  /** The layer's name in the file (a group of a Keras file, a name prefix in model.json). */
  readonly name: string;
  /** In the file's order, which for Keras files is the order `load_weights` assigns them in. */
  readonly weights: readonly StoredWeight[];
}

/** `block1_conv1/kernel:0` -> `['block1_conv1', 'kernel']`: the path without TF's `:N` suffix. */
export function weightPath(name: string): string[] {
  return name
    .replace(/:\d+$/, '')
    .split('/')
    .filter((part) => part !== '');
}

/** The last path component without `:N`: `kernel`, `moving_mean`. */
export function shortWeightName(name: string): string {
  const parts = weightPath(name);
  return parts[parts.length - 1] ?? name;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
