/**
 * Inference on onnxruntime-node for `predict`, `evaluate` and `predictImage`: the model exported
 * to ONNX once per weights version and image size, run by an ORT session, with tfjs as the
 * fallback (`XFER_ACCELERATE=0`, models without convolutions, or a layer the exporter does not
 * know: said once per model).
 * Results equal tfjs's to float32 rounding (test/training-accelerate.test.ts).
 */

import { descendantLayers } from '../engine/layer-classes.js';
import { OnnxExportError } from '../engine/onnx/export.js';
import { OrtModel } from '../engine/ort.js';
import * as tf from '../engine/tf.js';
import { warnOnce } from '../util/log.js';

/** False when `XFER_ACCELERATE=0`: everything runs on tfjs. */
export function accelerationEnabled(): boolean {
  return process.env.XFER_ACCELERATE !== '0';
}

const dataIds = new WeakMap<object, number>();
let nextDataId = 1;

/**
 * A key that changes whenever any weight of the layer is assigned: tfjs's `Variable.assign` (used
 * by optimizers, `setWeights` and weight loading) gives the variable a new data id.
 */
export function weightsVersion(layer: { weights: tf.LayerVariable[] }): string {
  return layer.weights
    .map((w) => {
      const dataId = (w.read() as unknown as { dataId: object }).dataId;
      let id = dataIds.get(dataId);
      if (id === undefined) {
        id = nextDataId++;
        dataIds.set(dataId, id);
      }
      return id;
    })
    .join(',');
}

const CONVOLUTIONS = new Set(['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D']);
const hasConvolution = new WeakMap<tf.LayersModel, boolean>();

/**
 * ORT pays for its export and session only on convolutional networks (5-25x faster there); a
 * small dense model stays in tfjs, where it takes microseconds and needs no re-export when its
 * weights change.
 */
function worthAccelerating(model: tf.LayersModel): boolean {
  let found = hasConvolution.get(model);
  if (found === undefined) {
    found = [...descendantLayers(model)].some((l) => CONVOLUTIONS.has(l.getClassName()));
    hasConvolution.set(model, found);
  }
  return found;
}

interface CachedRunner {
  key: string;
  runner: Promise<OrtModel | null>;
}

const runners = new WeakMap<tf.LayersModel, CachedRunner>();

/** The image size to export at: the model's own, else the batch's. */
function sizeKey(model: tf.LayersModel, x: tf.Tensor): [number, number] | undefined {
  if (x.rank !== 4) return undefined;
  const shape = model.inputs[0]?.shape;
  if (shape && typeof shape[1] === 'number' && typeof shape[2] === 'number') return undefined;
  return [x.shape[1]!, x.shape[2]!];
}

/**
 * The ORT session for `model` at the size of `x`, or null when acceleration is off or the model
 * cannot be exported (tfjs then runs it; a warning says why, once).
 */
export async function ortRunnerFor(model: tf.LayersModel, x: tf.Tensor): Promise<OrtModel | null> {
  if (!accelerationEnabled() || !worthAccelerating(model)) return null;
  const imageSize = sizeKey(model, x);
  const key = `${weightsVersion(model)}|${imageSize ?? ''}`;
  const cached = runners.get(model);
  if (cached?.key === key) return cached.runner;
  if (cached) void cached.runner.then((r) => r?.release()).catch(() => {});
  const runner = OrtModel.fromLayersModel(model, imageSize ? { imageSize } : {}).catch(
    (error: unknown) => {
      if (error instanceof OnnxExportError || (error as { code?: string }).code === 'UNSUPPORTED') {
        warnOnce(
          `onnx-fallback:${model.name}`,
          `model '${model.name}' runs on tfjs, not onnxruntime: ${(error as Error).message.split('. Supported')[0]}.`,
        );
        return null;
      }
      throw error;
    },
  );
  runners.set(model, { key, runner });
  return runner;
}

/** The model's output on a batch in inference mode, on ORT when possible; the caller disposes it. */
export async function inferBatch(model: tf.LayersModel, x: tf.Tensor): Promise<tf.Tensor> {
  const runner = await ortRunnerFor(model, x);
  if (runner) return runner.run(x);
  return tf.tidy(() => model.apply(x, { training: false }) as tf.Tensor);
}
