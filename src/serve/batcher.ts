/**
 * Micro-batching: concurrent requests are gathered (up to a batch size) and run through one
 * forward pass (onnxruntime where the model exports, else tfjs), so throughput grows with load
 * instead of each request paying a whole forward pass's fixed cost.
 *
 * When to run: at once when the batch is full, or when no admitted request is still being read or
 * decoded (nobody else is coming, so waiting only adds latency); otherwise wait at most
 * `batchWaitMs` for those requests to join.
 */
import type { Img } from '../data/index.js';
import * as tf from '../engine/tf.js';
import { inferBatch } from '../training/accelerate.js';

interface Job {
  img: Img;
  resolve: (values: Float32Array) => void;
  reject: (error: unknown) => void;
  /** Set when the request gave up (timeout, client gone): the batch skips it. */
  cancelled: boolean;
}

export interface BatcherOptions {
  maxBatchSize: number;
  batchWaitMs: number;
  /** [n, h, w, c] pixels 0..255 to model input, e.g. the run's preprocessing. */
  preprocess: (x: tf.Tensor) => tf.Tensor;
}

/** A handle to cancel a job that has not run yet. */
export interface Pending {
  promise: Promise<Float32Array>;
  cancel(): void;
}

export class PredictionBatcher {
  private readonly waiting: Job[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Requests admitted (`expect`) whose image has not been submitted or given up yet. */
  private expected = 0;
  /** Batches run so far and the images in them, for logs and tests. */
  readonly stats = { batches: 0, images: 0, largestBatch: 0 };

  constructor(
    private readonly model: tf.LayersModel,
    private readonly options: BatcherOptions,
  ) {}

  /** Announces a request that will `submit` an image (or `abandon`) once it is read and decoded. */
  expect(): void {
    this.expected++;
  }

  /** An announced request failed before submitting (bad image, timeout, client gone). */
  abandon(): void {
    this.expected--;
    if (this.waiting.length > 0) this.schedule();
  }

  /**
   * Queues one image (already at the model's size and colour mode) of an announced request;
   * resolves to the model's outputs for it.
   */
  submit(img: Img): Pending {
    this.expected--;
    let job!: Job;
    const promise = new Promise<Float32Array>((resolve, reject) => {
      job = { img, resolve, reject, cancelled: false };
    });
    this.waiting.push(job);
    this.schedule();
    return {
      promise,
      cancel: () => {
        job.cancelled = true;
      },
    };
  }

  private schedule(): void {
    if (this.running) return; // the running batch reschedules when it ends
    if (this.waiting.length >= this.options.maxBatchSize || this.expected <= 0) {
      this.flushSoon(0);
    } else if (this.timer === null) {
      this.flushSoon(this.options.batchWaitMs);
    }
  }

  private flushSoon(ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runBatch();
    }, ms);
  }

  private async runBatch(): Promise<void> {
    const jobs = this.waiting.splice(0, this.options.maxBatchSize).filter((job) => !job.cancelled);
    if (jobs.length === 0) {
      if (this.waiting.length > 0) this.schedule();
      return;
    }
    this.running = true;
    try {
      const outputs = await this.predict(jobs.map((j) => j.img));
      this.stats.batches++;
      this.stats.images += jobs.length;
      this.stats.largestBatch = Math.max(this.stats.largestBatch, jobs.length);
      for (const [i, job] of jobs.entries()) job.resolve(outputs[i]!);
    } catch (error) {
      for (const job of jobs) job.reject(error);
    } finally {
      this.running = false;
      // Requests that arrived during the forward pass form the next batch.
      if (this.waiting.length > 0) this.schedule();
    }
  }

  private async predict(imgs: Img[]): Promise<Float32Array[]> {
    const { width, height, channels } = imgs[0]!;
    const size = width * height * channels;
    const pixels = new Float32Array(size * imgs.length);
    for (const [i, img] of imgs.entries()) pixels.set(img.data, i * size);
    const input = tf.tidy(() =>
      this.options.preprocess(
        tf.tensor4d(pixels, [imgs.length, height, width, channels], 'float32'),
      ),
    );
    // The same engine as `predict`: the whole model on onnxruntime where it exports.
    let output: tf.Tensor;
    try {
      output = await inferBatch(this.model, input);
    } finally {
      input.dispose();
    }
    try {
      const values = (await output.data()) as Float32Array;
      const per = values.length / imgs.length;
      return imgs.map((_, i) => values.slice(i * per, (i + 1) * per));
    } finally {
      output.dispose();
    }
  }
}
