/**
 * `fit` split at the frozen boundary (design.md): the longest prefix of a `Sequential`'s layers
 * that nothing in training changes (no compiled trainable weight, no training-only behaviour such
 * as Dropout, BatchNormalization frozen) runs on onnxruntime-node; the rest, a head model sharing
 * the suffix layers and their weights, trains in tfjs. The seed's `sequential([frozenVgg16, gap,
 * dense])` trains only `dense` in tfjs. With deterministic data the prefix outputs are cached.
 */

import { descendantLayers, isSequential } from '../engine/layer-classes.js';
import { exportOnnx, OnnxExportError } from '../engine/onnx/export.js';
import { TRAINING_DEPENDENT } from '../engine/onnx/layers.js';
import { OrtModel } from '../engine/ort.js';
import * as tf from '../engine/tf.js';
import { warnOnce } from '../util/log.js';
import { accelerationEnabled, weightsVersion } from './accelerate.js';
import { FeatureCache } from './feature-cache.js';

const INFERENCE_MODE = Symbol.for('xfer.engine.batchNormInferenceMode');

type AnyLayer = any;

export interface FrozenSplit {
  /** The trainable suffix as a model on the prefix's output; shares the original layers. */
  head: tf.LayersModel;
  /** How many of the model's layers run on ORT. */
  prefixLayers: number;
  /** The prefix's output for a batch (cached when the data are deterministic). */
  features(x: tf.Tensor): Promise<tf.Tensor>;
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
 * frozen prefix, not a Sequential, acceleration off, or the prefix cannot be exported: then tfjs
 * trains the whole model, as a warning says once).
 */
export async function frozenSplit(
  model: tf.LayersModel,
  variables: tf.Variable[],
  imageShape: number[],
  deterministic: boolean,
): Promise<FrozenSplit | null> {
  if (!accelerationEnabled() || !isSequential(model)) return null;
  const trainable = new Set(variables);
  const layers = model.layers as AnyLayer[];
  let k = 0;
  while (k < layers.length && frozenLayer(layers[k], trainable)) k++;
  if (k === 0 || k === layers.length) return null;
  const prefixVersion = layers
    .slice(0, k)
    .map((l) => weightsVersion(l))
    .join(';');
  const key = `${k}|${prefixVersion}|${imageShape}|${deterministic}`;
  const cached = splits.get(model);
  if (cached?.key === key) return cached.split;
  const split = buildSplit(model, layers, k, imageShape, deterministic);
  splits.set(model, { key, split });
  return split;
}

async function buildSplit(
  model: tf.LayersModel,
  layers: AnyLayer[],
  k: number,
  imageShape: number[],
  deterministic: boolean,
): Promise<FrozenSplit | null> {
  let exported: ReturnType<typeof exportOnnx>;
  try {
    exported = exportOnnx(model, {
      upTo: layers[k - 1].name,
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
  const input = tf.input({ shape: exported.output.shape.slice(1) as number[] });
  let x: tf.SymbolicTensor = input;
  for (const layer of layers.slice(k)) x = layer.apply(x) as tf.SymbolicTensor;
  const head = tf.model({ inputs: input, outputs: x, name: `${model.name}_head` });
  const cache = deterministic ? new FeatureCache(runner) : undefined;
  if (cache) cache.featureShape = exported.output.shape.slice(1) as number[];
  return {
    head,
    prefixLayers: k,
    cache,
    features: (batch) => (cache ? cache.features(batch) : runner.run(batch)),
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
