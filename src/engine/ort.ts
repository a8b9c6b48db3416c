/**
 * onnxruntime-node sessions that look like tfjs functions: a tf tensor in tfjs's layout in, a tf
 * tensor out. Used for frozen backbones and for `predict`; see design.md for why (5-25x faster
 * than tfjs-wasm on CNN forward passes).
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { invalidParameterError, XferError } from '../errors.js';
import { type ExportOnnxOptions, exportOnnx, type OnnxExport } from './onnx/export.js';
import { assertSelfContainedOnnx } from './onnx/safety.js';
import * as tf from './tf.js';

export interface OrtModelOptions {
  /** Threads for one op (ORT's intra-op pool). Default: `XFER_ORT_THREADS`, else the CPU count (at most 8). */
  threads?: number;
  /**
   * Larger batches run as consecutive chunks of at most this many images. Default 8: on our
   * 2-core machine VGG16 at 224x224 ran 81 ms/image in chunks of 8 against 112 at 32, with peak
   * RSS 985 MB against 2,230 (MobileNetV2 and ResNet50 alike): activations stay in cache and
   * memory no longer grows with the batch size (the seed trains with batches of 100).
   */
  maxBatch?: number;
}

/** Default chunk size of `OrtModel.runData` (see `OrtModelOptions.maxBatch`). */
export const DEFAULT_ORT_MAX_BATCH = 8;

function defaultThreads(): number {
  const fromEnv = Number(process.env.XFER_ORT_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return Math.max(1, Math.min(8, availableParallelism()));
}

/**
 * An ONNX model ready to run, NHWC float32 tensors in and out.
 * @example
 * const backbone = await OrtModel.fromLayersModel(model, { upTo: 'block5_pool', imageSize: [224, 224] });
 * const features = await backbone.run(images); // a tf.Tensor
 */
export class OrtModel {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly exported: Pick<OnnxExport, 'input' | 'output'>,
    private readonly maxBatch: number,
  ) {}

  /** A session over ONNX bytes (e.g. `exportOnnx(...).bytes`). */
  static async fromBytes(
    bytes: Uint8Array,
    io: Pick<OnnxExport, 'input' | 'output'>,
    options: OrtModelOptions = {},
  ): Promise<OrtModel> {
    assertSelfContainedOnnx(bytes);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: options.threads ?? defaultThreads(),
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        executionProviders: ['cpu'],
        logSeverityLevel: 3,
        // ORT 1.30's Pad_Fusion folds a zero Pad into the MaxPool after it, whose pads count as
        // -inf: wrong wherever a window sees only negative values and padding (ResNetV2's pool1).
        extra: { optimization: { disable_specified_optimizers: 'Pad_Fusion' } },
      });
    } catch (error) {
      // A damaged or hostile ONNX file: onnxruntime's own message, as a typed error.
      throw new XferError(
        'CORRUPT_FILE',
        `onnxruntime cannot load this ONNX model: ${(error as Error).message.split('\n')[0]}`,
        {},
        { cause: error },
      );
    }
    const maxBatch = options.maxBatch ?? DEFAULT_ORT_MAX_BATCH;
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw invalidParameterError('maxBatch', 'a positive integer', maxBatch);
    return new OrtModel(session, io, maxBatch);
  }

  /** Exports `model` (or a prefix of it) and opens a session on it. */
  static async fromLayersModel(
    model: tf.LayersModel,
    options: ExportOnnxOptions & OrtModelOptions = {},
  ): Promise<OrtModel> {
    const exported = exportOnnx(model, options);
    return OrtModel.fromBytes(exported.bytes, exported, options);
  }

  /** Runs the model on a batch `[n, ...inputShape]`; resolves to a new tensor the caller owns. */
  async run(x: tf.Tensor): Promise<tf.Tensor> {
    const data = (
      x.dtype === 'float32' ? await x.data() : await tf.cast(x, 'float32').data()
    ) as Float32Array;
    return this.runData(data, x.shape);
  }

  /** As `run`, from raw NHWC float32 values. */
  async runData(data: Float32Array, shape: number[]): Promise<tf.Tensor> {
    const n = shape[0]!;
    if (n <= this.maxBatch) {
      const { values, dims } = await this.runChunk(data, shape);
      return tf.tensor(values, dims, 'float32');
    }
    const inRow = data.length / n;
    let output: Float32Array | undefined;
    let outDims: number[] = [];
    for (let start = 0; start < n; start += this.maxBatch) {
      const count = Math.min(this.maxBatch, n - start);
      const { values, dims } = await this.runChunk(
        data.subarray(start * inRow, (start + count) * inRow),
        [count, ...shape.slice(1)],
      );
      const outRow = values.length / count;
      if (!output) {
        output = new Float32Array(n * outRow);
        outDims = [n, ...dims.slice(1)];
      }
      output.set(values, start * outRow);
    }
    return tf.tensor(output!, outDims, 'float32');
  }

  private async runChunk(
    data: Float32Array,
    shape: number[],
  ): Promise<{ values: Float32Array; dims: number[] }> {
    const input = new ort.Tensor('float32', data, shape);
    const results = await this.session.run({ [this.exported.input.name]: input });
    const out = results[this.exported.output.name]!;
    const values = out.data as Float32Array;
    const dims = out.dims as number[];
    out.dispose();
    return { values, dims: [...dims] };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Runs a tfjs model once on ONNX Runtime: export, session, run, release. For repeated calls keep
 * an `OrtModel`.
 * @example
 * const y = await runOnnx(model, x);
 */
export async function runOnnx(
  model: tf.LayersModel,
  x: tf.Tensor,
  options: ExportOnnxOptions & OrtModelOptions = {},
): Promise<tf.Tensor> {
  const imageSize = x.rank === 4 ? ([x.shape[1], x.shape[2]] as [number, number]) : undefined;
  const runner = await OrtModel.fromLayersModel(model, {
    ...(imageSize ? { imageSize } : {}),
    ...options,
  });
  try {
    return await runner.run(x);
  } finally {
    await runner.release();
  }
}
