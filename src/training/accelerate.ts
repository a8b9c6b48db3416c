/**
 * Inference on onnxruntime-node for `predict`, `evaluate` and `predictImage`: the model exported
 * to ONNX once per weights version and image size, run by an ORT session, with tfjs as the
 * fallback (`XFER_ACCELERATE=0`, models without convolutions). A layer the exporter does not know
 * splits the model: the longest exportable prefix ending at a single tensor runs on ORT, the rest
 * on tfjs (said once per model, naming the layer).
 * Results equal tfjs's to float32 rounding (test/training-accelerate.test.ts).
 */

import { descendantLayers } from '../engine/layer-classes.js';
import { exportOnnx, type OnnxExport, OnnxExportError } from '../engine/onnx/export.js';
import { CONVERTERS } from '../engine/onnx/layers.js';
import { OrtModel } from '../engine/ort.js';
import * as tf from '../engine/tf.js';
import type { XferError } from '../errors.js';
import { warnOnce } from '../util/log.js';
import { flattenModel, frozenCut, type Plan } from './frozen-cut.js';

type AnyLayer = any;

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

/**
 * How `predict`, `evaluate` and `predictImage` run a model: all of it on ORT, or, when a layer
 * cannot be exported, the longest exportable prefix that ends at a single tensor on ORT and the
 * rest on tfjs.
 */
export interface AcceleratedRunner {
  /** The ONNX part: the whole model, or its prefix up to `cutLayer`. */
  readonly ort: OrtModel;
  /** The last layer ORT runs when tfjs runs the rest; undefined when ORT runs the whole model. */
  readonly cutLayer: string | undefined;
  /** The model's output on a batch in inference mode; the caller disposes it. */
  run(x: tf.Tensor): Promise<tf.Tensor>;
  release(): Promise<void>;
}

interface CachedRunner {
  key: string;
  runner: Promise<AcceleratedRunner | null>;
}

const runners = new WeakMap<tf.LayersModel, CachedRunner>();

/** The image size to export at: the model's own, else the batch's. */
function sizeKey(model: tf.LayersModel, x: tf.Tensor): [number, number] | undefined {
  if (x.rank !== 4) return undefined;
  const shape = model.inputs[0]?.shape;
  if (shape && typeof shape[1] === 'number' && typeof shape[2] === 'number') return undefined;
  return [x.shape[1]!, x.shape[2]!];
}

function isUnsupported(error: unknown): error is XferError {
  return error instanceof OnnxExportError || (error as { code?: string }).code === 'UNSUPPORTED';
}

/** The export error's reason without its list of supported layers. */
function reason(error: Error): string {
  return error.message.split('. Supported')[0]!;
}

/** Steps `c..` of the flattened graph on tfjs, from the cut's value; inference mode. */
function runSuffix(plan: Plan, c: number, cut: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const values = new Map<string, tf.Tensor>([[plan.steps[c - 1]!.outputs[0]!, cut]]);
    for (const step of plan.steps.slice(c)) {
      const ins = step.inputs.map((k) => values.get(k)!);
      const out = step.layer.apply(ins.length === 1 ? ins[0] : ins, { training: false }) as
        | tf.Tensor
        | tf.Tensor[];
      const outs = Array.isArray(out) ? out : [out];
      step.outputs.forEach((k, i) => {
        values.set(k, outs[i]!);
      });
    }
    return values.get(plan.outputs[0]!)!;
  });
}

/**
 * The prefix of `model` that ORT can run, when the whole model cannot be exported (`whole` says
 * why): the latest single-tensor cut (see `frozen-cut.ts`) before every layer the exporter
 * refuses, with a convolution in it to be worth a session. Null when there is none.
 */
async function partialRunner(
  model: tf.LayersModel,
  imageSize: [number, number] | undefined,
  whole: XferError,
): Promise<AcceleratedRunner | null> {
  const plan = flattenModel(model);
  const fallBack = (why: string) => {
    warnOnce(
      `onnx-fallback:${model.name}`,
      `model '${model.name}' runs on tfjs, not onnxruntime: ${why}.`,
    );
    return null;
  };
  if (plan?.outputs.length !== 1) return fallBack(reason(whole));
  // Layers the exporter refused by name (a known class can still have an unsupported setting).
  const refused = new Set<string>();
  if (whole instanceof OnnxExportError) refused.add(whole.layerName);
  const exportable = (layer: AnyLayer) =>
    CONVERTERS[layer.getClassName() as string] !== undefined && !refused.has(layer.name);
  for (;;) {
    const c = frozenCut(plan, exportable);
    const prefix = plan.steps.slice(0, c);
    if (c === 0 || !prefix.some((s) => CONVOLUTIONS.has(s.layer.getClassName()))) {
      return fallBack(reason(whole));
    }
    const cutLayer = prefix[c - 1]!.layer.name as string;
    let exported: OnnxExport;
    try {
      exported = exportOnnx(model, { upTo: cutLayer, ...(imageSize ? { imageSize } : {}) });
    } catch (error) {
      if (error instanceof OnnxExportError && !refused.has(error.layerName)) {
        refused.add(error.layerName);
        continue;
      }
      if (isUnsupported(error)) return fallBack(reason(error));
      throw error;
    }
    const ort = await OrtModel.fromBytes(exported.bytes, exported);
    const blocker = plan.steps.slice(c).find((s) => !exportable(s.layer))?.layer;
    const from = blocker ? ` from layer '${blocker.name}' (${blocker.getClassName()}) on` : '';
    warnOnce(
      `onnx-fallback:${model.name}`,
      `model '${model.name}' runs on onnxruntime up to layer '${cutLayer}' and on tfjs${from}: ${reason(whole)}.`,
    );
    return {
      ort,
      cutLayer,
      async run(x) {
        const cut = await ort.run(x);
        try {
          return runSuffix(plan, c, cut);
        } finally {
          cut.dispose();
        }
      },
      release: () => ort.release(),
    };
  }
}

async function buildRunner(
  model: tf.LayersModel,
  imageSize: [number, number] | undefined,
): Promise<AcceleratedRunner | null> {
  try {
    const ort = await OrtModel.fromLayersModel(model, imageSize ? { imageSize } : {});
    return { ort, cutLayer: undefined, run: (x) => ort.run(x), release: () => ort.release() };
  } catch (error) {
    if (!isUnsupported(error)) throw error;
    return partialRunner(model, imageSize, error);
  }
}

/**
 * How `model` runs at the size of `x`: on ORT (whole, or a prefix with the rest on tfjs), or null
 * when acceleration is off or nothing worth running on ORT can be exported (tfjs then runs it
 * all). A model that is not run whole on ORT is named in a warning, once.
 */
export async function ortRunnerFor(
  model: tf.LayersModel,
  x: tf.Tensor,
): Promise<AcceleratedRunner | null> {
  if (!accelerationEnabled() || !worthAccelerating(model)) return null;
  const imageSize = sizeKey(model, x);
  const key = `${weightsVersion(model)}|${imageSize ?? ''}`;
  const cached = runners.get(model);
  if (cached?.key === key) return cached.runner;
  if (cached) void cached.runner.then((r) => r?.release()).catch(() => {});
  const runner = buildRunner(model, imageSize);
  runners.set(model, { key, runner });
  return runner;
}

/** The model's output on a batch in inference mode, on ORT when possible; the caller disposes it. */
export async function inferBatch(model: tf.LayersModel, x: tf.Tensor): Promise<tf.Tensor> {
  const runner = await ortRunnerFor(model, x);
  if (runner) return runner.run(x);
  return tf.tidy(() => model.apply(x, { training: false }) as tf.Tensor);
}
