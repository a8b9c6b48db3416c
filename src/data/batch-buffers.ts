/**
 * Memory for batches, reused. A batch is assembled in a SharedArrayBuffer that the image workers
 * (`pool.ts`) write into directly, each image at its place: nothing is copied back or transferred.
 * Once tfjs has copied the batch into a tensor the buffer serves the next batch, because fresh
 * memory is slow where it matters: each new 4 KiB page costs a fault, and on the 2-core VMs xfer
 * is measured on a fresh 224x224x3 float image costs 0.1-1.6 ms to allocate and fill, against
 * 0.01 ms to refill a used one (bench/data-pipeline.ts's figures are with this reuse).
 */
import * as tf from '../engine/tf.js';

export class BatchBuffers {
  private readonly free: Float32Array[] = [];

  /** `keep`: how many idle buffers to hold (a batch in use, one prefetched, one spare). */
  constructor(private readonly keep = 3) {}

  /** A float32 array of `length` on shared memory; its old contents are to be overwritten. */
  take(length: number): Float32Array {
    const i = this.free.findIndex((b) => b.length === length);
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
  }

  /**
   * Hands `batch` back once a tensor was made from `data` (what standardizing `batch` returned):
   * kept for reuse only when that tensor does not hold `batch` itself. The wasm backend copies a
   * typed array into its heap when the tensor is made; the cpu and GPU backends keep a reference.
   */
  give(batch: Float32Array, data: Float32Array): void {
    if (data === batch && tf.getBackend() !== 'wasm') return;
    this.free.push(batch);
    if (this.free.length > this.keep) this.free.shift();
  }
}
