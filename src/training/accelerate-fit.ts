/**
 * `fit` split at the frozen boundary (design.md): the longest run of the model's layers, in
 * execution order and inside nested backbones too, that nothing in training changes (no compiled
 * trainable weight, no training-only behaviour such as Dropout, BatchNormalization frozen) and
 * that ends at a single tensor runs on onnxruntime-node; the rest, a head model sharing the
 * remaining layers and their weights, trains in tfjs. The seed's `sequential([frozenVgg16, gap,
 * dense])` trains only `dense` in tfjs; fine-tuning block5 runs block1..block4 on ORT. With
 * deterministic data the prefix outputs are cached.
 */

import { descendantLayers } from '../engine/layer-classes.js';
import { exportOnnx, OnnxExportError } from '../engine/onnx/export.js';
import { TRAINING_DEPENDENT } from '../engine/onnx/layers.js';
import { OrtModel } from '../engine/ort.js';
import type * as tf from '../engine/tf.js';
import { warnOnce } from '../util/log.js';
import { accelerationEnabled, weightsVersion } from './accelerate.js';
import { FeatureCache } from './feature-cache.js';
import { coveredLayers, flattenModel, frozenCut, type Plan, remainderModel } from './frozen-cut.js';

const INFERENCE_MODE = Symbol.for('xfer.engine.batchNormInferenceMode');

type AnyLayer = any;

export interface FrozenSplit {
  /** The trainable suffix as a model on the prefix's output; shares the original layers. */
  head: tf.LayersModel;
  /** How many of the model's layers run on ORT, a nested model counting as one when all of it does. */
  prefixLayers: number;
  /** The layer whose output is the cut: the frozen part's last layer, the head's input. */
  cutLayer: string;
  /**
   * The prefix's output for a batch (cached when the data are deterministic). `keys`: see
   * `FeatureCache.features` (sample keys, null for not cacheable, omitted for pixel hashes).
   */
  features(x: tf.Tensor, keys?: readonly string[] | null): Promise<tf.Tensor>;
  cache: FeatureCache | undefined;
}

function frozenLayer(layer: AnyLayer, trainable: Set<tf.Variable>): boolean {
  if ((layer.weights as tf.LayerVariable[]).some((w) => trainable.has(w.read() as tf.Variable)))
    return false;
  for (const l of [layer, ...descendantLayers(layer)]) {
    const className = l.getClassName() as string;
    if (TRAINING_DEPENDENT.has(className)) return false;
    if (className === 'BatchNormalization' && l.trainable && l[INFERENCE_MODE] !== true)
      return false;
  }
  return true;
}

interface CachedSplit {
  key: string;
  split: Promise<FrozenSplit | null>;
}

const splits = new WeakMap<tf.LayersModel, CachedSplit>();

/**
 * The split for a compiled model and its trainable variables, or null when nothing is gained (no
 * frozen part, a graph the split does not handle, acceleration off, or the frozen part cannot be
 * exported: then tfjs trains the whole model, as a warning says once). The cut may lie inside a
 * nested backbone (`sequential([vgg16 with block5 unfrozen, gap, dense])` runs block1..block4 on
 * ORT), at a tensor that alone separates the frozen part from the rest (see `frozen-cut.ts`).
 */
export async function frozenSplit(
  model: tf.LayersModel,
  variables: tf.Variable[],
  imageShape: number[],
  deterministic: boolean,
): Promise<FrozenSplit | null> {
  if (!accelerationEnabled()) return null;
  const plan = flattenModel(model);
  if (!plan) return null;
  const trainable = new Set(variables);
  const k = frozenCut(plan, (layer) => frozenLayer(layer, trainable));
  if (k === 0) return null;
  const prefixVersion = plan.steps
    .slice(0, k)
    .map((s) => weightsVersion(s.layer))
    .join(';');
  const key = `${k}|${prefixVersion}|${imageShape}|${deterministic}`;
  const cached = splits.get(model);
  if (cached?.key === key) return cached.split;
  const split = buildSplit(model, plan, k, imageShape, deterministic);
  splits.set(model, { key, split });
  return split;
}

async function buildSplit(
  model: tf.LayersModel,
  plan: Plan,
  k: number,
  imageShape: number[],
  deterministic: boolean,
): Promise<FrozenSplit | null> {
  let exported: ReturnType<typeof exportOnnx>;
  try {
    exported = exportOnnx(model, {
      upTo: plan.steps[k - 1]!.layer.name,
      ...(imageShape.length === 3
        ? { imageSize: [imageShape[0]!, imageShape[1]!] as [number, number] }
        : {}),
    });
  } catch (error) {
    if (!(error instanceof OnnxExportError)) throw error;
    warnOnce(
      `onnx-fit-fallback:${model.name}`,
      `the frozen layers of model '${model.name}' train on tfjs, not onnxruntime: ${error.message.split('. Supported')[0]}.`,
    );
    return null;
  }
  const runner = await OrtModel.fromBytes(exported.bytes, exported);
  const head = remainderModel(
    plan,
    k,
    exported.output.shape.slice(1) as number[],
    `${model.name}_head`,
  );
  // The exported bytes (graph, weights, input size) name the cache's version, on disk too.
  const cache = deterministic ? new FeatureCache(runner, exported.bytes) : undefined;
  if (cache) cache.featureShape = exported.output.shape.slice(1) as number[];
  return {
    head,
    prefixLayers: coveredLayers(plan, k, model),
    cutLayer: plan.steps[k - 1]!.layer.name,
    cache,
    features: (batch, keys) => (cache ? cache.features(batch, keys) : runner.run(batch)),
  };
}

/**
 * Whether a batch source gives the same pixels for an image every epoch: tensors, or a directory
 * iterator whose generator does not augment.
 */
export function isDeterministicSource(source: unknown, isTensors: boolean): boolean {
  if (isTensors) return true;
  const generator = (source as { generator?: { augments?: unknown } }).generator;
  return generator !== undefined && generator.augments === false;
}
