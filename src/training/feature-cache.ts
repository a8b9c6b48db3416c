/**
 * Frozen-backbone outputs kept per input image, so that epochs after the first cost only the head.
 *
 * An image is known by its sample key when its source gives one (`BatchSource.sampleKeys`: the
 * file's path, size and modification time and the settings that make its pixels), and then a
 * batch whose rows are all cached is never loaded: the fit loop asks for its labels alone
 * (`cachedBatches`). Sources without keys (tensors) are known by a hash of their pixels as the
 * backbone sees them, which still needs the batch loaded. Either way a changed file or setting can
 * never hit a stale entry.
 *
 * The cache belongs to one frozen prefix, named by a hash of its exported bytes (architecture,
 * weights and input size): rows of other weights are never served, in memory or on disk. Rows live
 * in a `FeatureStore`: memory up to a bound, then a temp spill folder, or a directory that keeps
 * them across runs (`fit`'s `featureCacheDir`).
 */
import { createHash } from 'node:crypto';
import type { Batch, BatchSource } from '../data/source.js';
import type { OrtModel } from '../engine/ort.js';
import * as tf from '../engine/tf.js';
import { XferError } from '../errors.js';
import { FeatureStore, type FeatureStoreOptions } from './feature-store.js';

export {
  DEFAULT_FEATURE_DISK_BYTES,
  DEFAULT_FEATURE_MEMORY_BYTES as DEFAULT_FEATURE_CACHE_BYTES,
  type FeatureStoreOptions,
} from './feature-store.js';

/** The frozen prefix a cache computes missing rows with. */
type PrefixRunner = Pick<OrtModel, 'run' | 'runData'>;

function pixelKey(row: Float32Array): string {
  return `pixels:${createHash('sha1')
    .update(new Uint8Array(row.buffer, row.byteOffset, row.byteLength))
    .digest('base64')}`;
}

export class FeatureCache {
  /** Rows served from the cache. */
  hits = 0;
  /** Rows computed by the prefix (and then kept). */
  misses = 0;
  /** The per-image feature shape, set by the owner from the export. */
  featureShape: number[] | undefined;
  /** The frozen prefix's version: a SHA-256 of its exported bytes. */
  readonly identity: string;
  private readonly store: FeatureStore;

  /**
   * `prefix` is the exported frozen prefix: its bytes name the cache's version. The store starts
   * with the default bounds, in memory; `configure` sets a directory.
   */
  constructor(
    private readonly runner: PrefixRunner,
    prefix: Uint8Array | string,
  ) {
    this.identity =
      typeof prefix === 'string' ? prefix : createHash('sha256').update(prefix).digest('hex');
    this.store = new FeatureStore(this.identity);
  }

  /** Rows held (memory and disk). */
  get size(): number {
    return this.store.size;
  }

  /** Bytes of rows in memory. */
  get bytesInMemory(): number {
    return this.store.bytesInMemory;
  }

  /** Bytes of the disk tier, 0 while everything fits in memory and there is no directory. */
  get bytesOnDisk(): number {
    return this.store.bytesOnDisk;
  }

  /** Where rows go past the memory bound: the directory, a spill folder, or undefined yet. */
  get diskRoot(): string | undefined {
    return this.store.diskRoot;
  }

  /** Sets the bounds and the directory (`fit` does, from its options). Cheap when unchanged. */
  configure(options: FeatureStoreOptions): Promise<void> {
    return this.store.configure(options);
  }

  /** Removes the spill folder and drops the memory rows now (else at exit). */
  dispose(): void {
    this.store.dispose();
  }

  /**
   * The features of a batch whose every key is cached, or null (nothing counted) when one is not
   * or its file turns out damaged: then the caller loads the batch and calls `features`.
   */
  async lookup(keys: readonly string[]): Promise<tf.Tensor | null> {
    if (keys.length === 0 || this.featureShape === undefined) return null;
    if (!keys.every((key) => this.store.has(key))) return null;
    const rows = await Promise.all(keys.map((key) => this.store.get(key)));
    if (rows.some((row) => row === undefined)) return null;
    const size = rows[0]!.length;
    if (rows.some((row) => row!.length !== size)) return null;
    const out = new Float32Array(keys.length * size);
    rows.forEach((row, i) => {
      out.set(row!, i * size);
    });
    this.hits += keys.length;
    return tf.tensor(out, [keys.length, ...this.featureShape], 'float32');
  }

  /**
   * The backbone's output for a batch `[n, ...]`: cached rows reused, the others computed once and
   * kept. `keys`: one per row from the source (see `BatchSource.sampleKeys`); omitted, rows are
   * known by their pixels; null, the rows are not reproducible and nothing is cached.
   */
  async features(x: tf.Tensor, keys?: readonly string[] | null): Promise<tf.Tensor> {
    if (keys === null) return this.runner.run(x);
    const n = x.shape[0]!;
    const data = (await x.data()) as Float32Array;
    const rowSize = data.length / n;
    if (keys !== undefined && keys.length !== n) {
      throw new XferError(
        'INVALID_ARGUMENT',
        `the batch source gave ${keys.length} sample keys for a batch of ${n} rows; sampleKeys(i) must give one key per row of getBatch(i).`,
        { keys: keys.length, rows: n },
      );
    }
    const rowKeys =
      keys ??
      Array.from({ length: n }, (_, i) => pixelKey(data.subarray(i * rowSize, (i + 1) * rowSize)));
    const cached: (Float32Array | undefined)[] = await Promise.all(
      rowKeys.map((key) => (this.store.has(key) ? this.store.get(key) : undefined)),
    );
    const missing: number[] = [];
    cached.forEach((row, i) => {
      if (row === undefined) missing.push(i);
    });
    this.hits += n - missing.length;
    this.misses += missing.length;
    if (missing.length === 0) {
      const featureSize = cached[0]!.length;
      const result = new Float32Array(n * featureSize);
      cached.forEach((row, i) => {
        result.set(row!, i * featureSize);
      });
      return tf.tensor(result, [n, ...this.shapeOf(featureSize)], 'float32');
    }
    const input = missing.length === n ? data : new Float32Array(missing.length * rowSize);
    if (input !== data) {
      missing.forEach((row, k) => {
        input.set(data.subarray(row * rowSize, (row + 1) * rowSize), k * rowSize);
      });
    }
    const out = await this.runner.runData(input, [missing.length, ...x.shape.slice(1)]);
    const outShape = out.shape.slice(1);
    const computed = (await out.data()) as Float32Array;
    out.dispose();
    this.featureShape ??= outShape;
    const featureSize = computed.length / missing.length;
    await Promise.all(
      missing.map((row, k) =>
        this.store.put(rowKeys[row]!, computed.slice(k * featureSize, (k + 1) * featureSize)),
      ),
    );
    if (missing.length === n) return tf.tensor(computed, [n, ...outShape], 'float32');
    const result = new Float32Array(n * featureSize);
    let k = 0;
    for (let i = 0; i < n; i++) {
      if (missing[k] === i) {
        result.set(computed.subarray(k * featureSize, (k + 1) * featureSize), i * featureSize);
        k++;
      } else {
        result.set(cached[i]!, i * featureSize);
      }
    }
    return tf.tensor(result, [n, ...outShape], 'float32');
  }

  private shapeOf(featureSize: number): number[] {
    const shape = this.featureShape;
    if (!shape || shape.reduce((a, b) => a * b, 1) !== featureSize) return [featureSize];
    return shape;
  }
}

/** Feature tensors that `cachedBatches` gave as a batch's x, with the cache they came from. */
const featureBatches = new WeakMap<tf.Tensor, FeatureCache>();
/** The sample keys of loaded batches' x, for `FeatureCache.features`. */
const batchKeys = new WeakMap<tf.Tensor, string[] | null>();

/**
 * When `x` came from `cachedBatches` as cached features (the prefix's output, not images): the
 * cache that served it; else undefined.
 */
export function cachedFeaturesOf(x: tf.Tensor): FeatureCache | undefined {
  return featureBatches.get(x);
}

/**
 * The keys to give `FeatureCache.features` for a loaded batch's x: its sample keys, null when its
 * source has keys but not for this batch (augmented, a file gone), undefined for sources without
 * keys (rows known by pixels).
 */
export function sampleKeysOf(x: tf.Tensor): string[] | null | undefined {
  return batchKeys.get(x);
}

/**
 * `source` as the fit loop walks it: a batch whose every sample is in the current cache comes back
 * as `{ x: its features, y: its labels }` without its images being loaded (see
 * `cachedFeaturesOf`); any other batch is loaded as usual, with its keys noted for `features`.
 * A source without `sampleKeys` is returned as it is.
 */
export function cachedBatches(
  source: BatchSource,
  currentCache: () => FeatureCache | undefined,
): BatchSource {
  const sampleKeys = source.sampleKeys?.bind(source);
  if (!sampleKeys) return source;
  const getLabels = source.getLabels?.bind(source);
  return {
    get length() {
      return source.length;
    },
    onEpochEnd: () => source.onEpochEnd?.(),
    getBatch: async (index: number): Promise<Batch> => {
      const keys = await sampleKeys(index);
      const cache = currentCache();
      if (keys && cache && getLabels) {
        const x = await cache.lookup(keys);
        if (x) {
          let y: tf.Tensor | null;
          try {
            y = await getLabels(index);
          } catch (error) {
            x.dispose();
            throw error;
          }
          featureBatches.set(x, cache);
          return { x, y };
        }
      }
      const batch = await source.getBatch(index);
      if (batch?.x instanceof tf.Tensor) batchKeys.set(batch.x, keys);
      return batch;
    },
  };
}

/**
 * Whether `fit` should build a feature cache for a source: deterministic data (tensors, a
 * directory iterator that does not augment) or a source without a generator that gives sample
 * keys (`imageDatasetFromDirectory`); an augmenting iterator gives no keys and is never cached.
 */
export function cacheableSource(source: BatchSource, deterministic: boolean): boolean {
  if (deterministic) return true;
  const hasGenerator = (source as { generator?: unknown }).generator !== undefined;
  return typeof source.sampleKeys === 'function' && !hasGenerator;
}
