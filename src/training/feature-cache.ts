/**
 * Frozen-backbone outputs kept per input image, so that epochs after the first cost only the head.
 * An image is known by a hash of its pixels as the backbone sees them (after loading, resizing and
 * preprocessing): the same pixels give the same features whatever file or order they came from,
 * and a changed file can never hit a stale entry. The cache belongs to one frozen-weights version
 * (see `accelerate-fit.ts`). Memory is bounded: past `maxBytes` new features are computed but not
 * kept.
 */
import { createHash } from 'node:crypto';
import type { OrtModel } from '../engine/ort.js';
import * as tf from '../engine/tf.js';

/** Default bound of a feature cache: 1 GiB (VGG16 + GAP features of 500k images). */
export const DEFAULT_FEATURE_CACHE_BYTES = 1024 ** 3;

export class FeatureCache {
  private readonly entries = new Map<string, Float32Array>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    private readonly runner: OrtModel,
    private readonly maxBytes = DEFAULT_FEATURE_CACHE_BYTES,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The backbone's output for a batch `[n, ...]`: cached rows reused, the others computed once. */
  async features(x: tf.Tensor): Promise<tf.Tensor> {
    const n = x.shape[0]!;
    const data = (await x.data()) as Float32Array;
    const rowSize = data.length / n;
    const keys: string[] = [];
    const missing: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = data.subarray(i * rowSize, (i + 1) * rowSize);
      const key = createHash('sha1')
        .update(new Uint8Array(row.buffer, row.byteOffset, row.byteLength))
        .digest('base64');
      keys.push(key);
      if (!this.entries.has(key)) missing.push(i);
    }
    this.hits += n - missing.length;
    this.misses += missing.length;
    let computed: Float32Array | undefined;
    let outShape: number[] | undefined;
    if (missing.length > 0) {
      const input = missing.length === n ? data : new Float32Array(missing.length * rowSize);
      if (input !== data) {
        missing.forEach((row, k) => {
          input.set(data.subarray(row * rowSize, (row + 1) * rowSize), k * rowSize);
        });
      }
      const out = await this.runner.runData(input, [missing.length, ...x.shape.slice(1)]);
      outShape = out.shape;
      computed = (await out.data()) as Float32Array;
      out.dispose();
      const featureSize = computed.length / missing.length;
      missing.forEach((row, k) => {
        if (this.bytes + featureSize * 4 > this.maxBytes || this.entries.has(keys[row]!)) return;
        this.entries.set(keys[row]!, computed!.slice(k * featureSize, (k + 1) * featureSize));
        this.bytes += featureSize * 4;
      });
      if (missing.length === n) return tf.tensor(computed, outShape, 'float32');
    }
    const first =
      this.entries.get(keys[0]!) ?? computed!.subarray(0, computed!.length / missing.length);
    const featureSize = first.length;
    const shape = outShape ? [n, ...outShape.slice(1)] : [n, ...this.featureShape!];
    const result = new Float32Array(n * featureSize);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const cached = this.entries.get(keys[i]!);
      if (missing[k] === i) {
        result.set(computed!.subarray(k * featureSize, (k + 1) * featureSize), i * featureSize);
        k++;
      } else {
        result.set(cached!, i * featureSize);
      }
    }
    return tf.tensor(result, shape, 'float32');
  }

  /** The per-image feature shape, set by the owner from the export. */
  featureShape: number[] | undefined;
}
