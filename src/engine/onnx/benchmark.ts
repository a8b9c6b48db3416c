/**
 * Forward throughput of a model, as `xfer benchmark` and `bench/` measure it: images per second
 * over timed batches after one warm-up batch, on onnxruntime-node (the path `predict` takes) or on
 * tfjs.
 */
import { backendName, initBackend } from '../backend.js';
import { OrtModel } from '../ort.js';
import * as tf from '../tf.js';

export interface ForwardBenchmarkOptions {
  /** Images per batch. Default 32. */
  batchSize?: number;
  /** Images to time (rounded up to whole batches). Default 128. */
  images?: number;
  /** `'onnxruntime'` or `'tfjs'`. Default `'onnxruntime'`. */
  engine?: 'onnxruntime' | 'tfjs';
  /**
   * Called with (0, total) before the model is prepared for the engine, then after each batch,
   * the warm-up batch included (so `total` is the timed batches + 1): for a progress bar.
   */
  onProgress?: (done: number, total: number) => void;
}

export interface ForwardBenchmark {
  imagesPerSecond: number;
  /** The tfjs backend in use (wasm, cpu, tensorflow). */
  backend: string;
  engine: 'onnxruntime' | 'tfjs';
  batchSize: number;
  imageSize: [number, number];
  images: number;
  seconds: number;
}

/**
 * Times the forward pass of an image model (inputs [b, h, w, c]).
 * @example
 * const result = await benchmarkForward(await MobileNetV2({ includeTop: false, weights: null }), [224, 224]);
 * result.imagesPerSecond; // e.g. 150 on 2 cores
 */
export async function benchmarkForward(
  model: tf.LayersModel,
  imageSize: [number, number],
  options: ForwardBenchmarkOptions = {},
): Promise<ForwardBenchmark> {
  await initBackend();
  const batchSize = options.batchSize ?? 32;
  const engine = options.engine ?? 'onnxruntime';
  const batches = Math.max(1, Math.ceil((options.images ?? 128) / batchSize));
  const progress = (done: number) => options.onProgress?.(done, batches + 1);
  progress(0);
  const channels = (model.inputs[0]!.shape[3] as number | null) ?? 3;
  const shape = [batchSize, imageSize[0], imageSize[1], channels];
  const data = Float32Array.from(
    { length: shape.reduce((a, b) => a * b, 1) },
    (_, i) => ((i * 7919) % 255) / 127.5 - 1,
  );
  let run: () => Promise<void>;
  let release = async () => {};
  if (engine === 'onnxruntime') {
    const runner = await OrtModel.fromLayersModel(model, { imageSize });
    run = async () => (await runner.runData(data, shape)).dispose();
    release = () => runner.release();
  } else {
    const x = tf.tensor(data, shape);
    run = async () => {
      const y = tf.tidy(() => model.apply(x, { training: false }) as tf.Tensor);
      await y.data();
      y.dispose();
    };
    release = async () => x.dispose();
  }
  try {
    await run(); // warm-up: allocations, ORT's first-run planning, wasm kernels
    progress(1);
    const start = process.hrtime.bigint();
    for (let i = 0; i < batches; i++) {
      await run();
      progress(i + 2);
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return {
      imagesPerSecond: (batches * batchSize) / seconds,
      backend: backendName(),
      engine,
      batchSize,
      imageSize,
      images: batches * batchSize,
      seconds,
    };
  } finally {
    await release();
  }
}
