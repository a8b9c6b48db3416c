/**
 * The steps every Keras Application builder shares: checking the common options at the public
 * boundary, the image input, the pooling or top at the end, and the weights. Each family file
 * composes these around its own layers, as Keras's `vgg16.py`, `resnet.py`... do.
 */
import { existsSync } from 'node:fs';
import * as tf from '../engine/tf.js';
import { describeValue, invalidParameterError, XferError } from '../errors.js';
import { warn } from '../util/log.js';
import { checkBoolean, checkPositiveInteger } from '../util/validate.js';
import { getFile, loadWeights } from '../weights/index.js';
import type { InputShape } from './input-shape.js';
import type { ApplicationOptions, WeightFile } from './spec.js';

/** The activations tfjs layers know, by the names tfjs serializes. */
const ACTIVATIONS = [
  'softmax',
  'linear',
  'sigmoid',
  'relu',
  'relu6',
  'elu',
  'selu',
  'tanh',
  'softplus',
  'softsign',
  'hardSigmoid',
  'swish',
  'mish',
  'gelu',
  'gelu_new',
] as const;
type Activation = (typeof ACTIVATIONS)[number];

/** The common options, checked, with Keras's defaults filled in. */
export interface ResolvedOptions {
  includeTop: boolean;
  weights: string | null;
  inputTensor: tf.SymbolicTensor | undefined;
  /** The user's `inputShape`, or the shape of `inputTensor` (without its batch axis). */
  inputShape: InputShape | undefined;
  pooling: 'avg' | 'max' | null;
  classes: number;
  classifierActivation: Activation;
  name: string | undefined;
}

function isUrl(value: string): boolean {
  return /^https?:\/\//i.test(value);
}

function checkWeights(model: string, weights: unknown): string | null {
  if (weights === undefined) return 'imagenet';
  if (weights === null) return null;
  if (typeof weights !== 'string' || weights === '') {
    throw invalidParameterError(
      'weights',
      "'imagenet', null (random initialization), or the path or URL of a weights file",
      weights,
    );
  }
  if (
    weights !== 'imagenet' &&
    !isUrl(weights) &&
    !weights.startsWith('hf:') &&
    !existsSync(weights)
  ) {
    throw new XferError(
      'NOT_FOUND',
      `${model}: the weights file ${describeValue(weights)} does not exist. Pass weights: 'imagenet' (pretrained on ImageNet), null (random initialization), the path or URL of an existing weights file, or hf:<org>/<repo>.`,
      { file: weights },
    );
  }
  return weights;
}

function checkInputShape(value: unknown): InputShape {
  const ok =
    Array.isArray(value) &&
    value.length === 3 &&
    value.every(
      (dim, i) =>
        (i < 2 && dim === null) || (typeof dim === 'number' && Number.isInteger(dim) && dim > 0),
    ) &&
    value[2] !== null;
  if (!ok) {
    throw invalidParameterError(
      'inputShape',
      'an array [height, width, channels] of 3 positive integers (channels last)',
      value,
    );
  }
  return value as InputShape;
}

function tensorShape(
  model: string,
  tensor: unknown,
  inputShape: InputShape | undefined,
): InputShape {
  if (!(tensor instanceof tf.SymbolicTensor)) {
    throw invalidParameterError(
      'inputTensor',
      'a symbolic tensor (the output of tf.input() or of a layer)',
      tensor,
    );
  }
  const shape = tensor.shape;
  if (shape.length !== 4 || shape[3] == null) {
    throw new XferError(
      'SHAPE_MISMATCH',
      `${model}: inputTensor must have shape [batch, height, width, channels] with known channels, but has shape ${describeValue(shape)}. Create it with tf.input({ shape: [height, width, 3] }).`,
      { shape },
    );
  }
  const fromTensor: InputShape = [shape[1] ?? null, shape[2] ?? null, shape[3]];
  if (inputShape?.some((dim, i) => fromTensor[i] !== null && dim !== fromTensor[i])) {
    throw new XferError(
      'SHAPE_MISMATCH',
      `${model}: inputShape ${describeValue(inputShape)} does not match the shape of inputTensor ${describeValue(shape)}. Pass only one of them, or make them agree.`,
      { inputShape, tensorShape: shape },
    );
  }
  return inputShape ?? fromTensor;
}

/**
 * Checks the options every builder shares and fills in Keras's defaults, in Keras's order: the
 * weights, the classes ImageNet weights need, pooling and the classifier activation.
 */
export function resolveOptions(
  model: string,
  options: ApplicationOptions | undefined,
): ResolvedOptions {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw invalidParameterError('options', 'an options object', options);
  }
  const includeTop = checkBoolean('includeTop', options.includeTop ?? true);
  const weights = checkWeights(model, options.weights);
  const classes = checkPositiveInteger('classes', options.classes ?? 1000);
  if (weights === 'imagenet' && includeTop && classes !== 1000) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `${model} with weights 'imagenet' and includeTop: true has the 1000 ImageNet classes, but received classes: ${classes}. For your own classes, pass includeTop: false and add a new head (e.g. globalAveragePooling2d + dense), or pass weights: null to train the whole network from scratch.`,
      { model, classes },
    );
  }

  const pooling = options.pooling ?? null;
  if (pooling !== null && pooling !== 'avg' && pooling !== 'max') {
    throw invalidParameterError('pooling', "'avg', 'max' or null", pooling);
  }
  if (pooling !== null && includeTop) {
    warn(
      `${model}: pooling '${pooling}' is ignored because includeTop is true; pass includeTop: false to get pooled features.`,
    );
  }

  const activation =
    options.classifierActivation === undefined
      ? 'softmax'
      : (options.classifierActivation ?? 'linear');
  if (!(ACTIVATIONS as readonly unknown[]).includes(activation)) {
    throw invalidParameterError(
      'classifierActivation',
      `null or one of ${ACTIVATIONS.map((a) => `'${a}'`).join(', ')}`,
      options.classifierActivation,
    );
  }
  if (includeTop && weights !== null && activation !== 'softmax' && activation !== 'linear') {
    throw new XferError(
      'INVALID_ARGUMENT',
      `${model} with pretrained weights and includeTop: true allows only classifierActivation 'softmax' or null (logits), but received ${describeValue(options.classifierActivation)}. Apply your activation to the logits, or pass weights: null.`,
      { model, classifierActivation: options.classifierActivation },
    );
  }

  if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
    throw invalidParameterError('name', 'a non-empty string', options.name);
  }

  let inputShape =
    options.inputShape === undefined || options.inputShape === null
      ? undefined
      : checkInputShape(options.inputShape);
  if (options.inputTensor !== undefined && options.inputTensor !== null) {
    inputShape = tensorShape(model, options.inputTensor, inputShape);
  }

  return {
    includeTop,
    weights,
    inputTensor: options.inputTensor ?? undefined,
    inputShape,
    pooling,
    classes,
    classifierActivation: activation as Activation,
    name: options.name,
  };
}

/** A finite number above zero, e.g. a width multiplier. */
export function checkPositiveNumber(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidParameterError(name, 'positive number', value);
  }
  return value;
}

/** Applies a layer to one symbolic tensor (or a list, for merge layers) and returns its output. */
export function apply(
  layer: tf.layers.Layer,
  x: tf.SymbolicTensor | tf.SymbolicTensor[],
): tf.SymbolicTensor {
  return layer.apply(x) as tf.SymbolicTensor;
}

/**
 * The input tensors a model built on `tensor` starts from (Keras's `get_source_inputs`): the
 * tensor itself when it is an input, else the inputs it was computed from.
 */
export function sourceInputs(tensor: tf.SymbolicTensor): tf.SymbolicTensor[] {
  if (tensor.inputs.length === 0) return [tensor];
  const found = new Set<tf.SymbolicTensor>();
  for (const parent of tensor.inputs) for (const source of sourceInputs(parent)) found.add(source);
  return [...found];
}

/** The image input of the network and the model inputs it comes from. */
export function imageInput(
  options: ResolvedOptions,
  shape: InputShape,
): { image: tf.SymbolicTensor; inputs: tf.SymbolicTensor[] } {
  if (options.inputTensor) {
    return { image: options.inputTensor, inputs: sourceInputs(options.inputTensor) };
  }
  const image = tf.input({ shape, name: 'input_layer' });
  return { image, inputs: [image] };
}

/**
 * Global pooling of the feature map when there is no top (Keras's `pooling` argument). Keras names
 * these layers in ResNet (`avg_pool`, `max_pool`) and leaves them unnamed elsewhere; the unnamed
 * ones get the names Keras gives the first layer of their class.
 */
export function featurePooling(
  x: tf.SymbolicTensor,
  pooling: 'avg' | 'max' | null,
  names: { avg: string; max: string } = {
    avg: 'global_average_pooling2d',
    max: 'global_max_pooling2d',
  },
): tf.SymbolicTensor {
  if (pooling === 'avg') return apply(tf.layers.globalAveragePooling2d({ name: names.avg }), x);
  if (pooling === 'max') return apply(tf.layers.globalMaxPooling2d({ name: names.max }), x);
  return x;
}

/** The file name Keras caches a weight file under: the last part of its URL. */
export function weightFileName(file: WeightFile): string {
  return file.url.slice(file.url.lastIndexOf('/') + 1);
}

/**
 * The local weights to load: the ImageNet file `file` (downloaded once into the `models` cache,
 * checked against its hash), the user's path or URL, or nothing for random initialization. Called
 * before the network is built, so a failed download fails fast.
 */
export async function resolveWeights(
  options: ResolvedOptions,
  file: WeightFile,
): Promise<string | undefined> {
  if (options.weights === null) return undefined;
  if (options.weights !== 'imagenet') return options.weights;
  const fileOptions: { fileHash?: string; cacheSubdir: string } = { cacheSubdir: 'models' };
  if (file.fileHash !== undefined) fileOptions.fileHash = file.fileHash;
  return getFile(weightFileName(file), file.url, fileOptions);
}

/** Builds the functional model and loads its weights, if any. */
export async function finishModel(
  inputs: tf.SymbolicTensor[],
  output: tf.SymbolicTensor,
  name: string,
  weightsSource: string | undefined,
): Promise<tf.LayersModel> {
  const model = tf.model({ inputs, outputs: output, name });
  if (weightsSource !== undefined) {
    try {
      await loadWeights(model, weightsSource);
    } catch (error) {
      model.dispose();
      throw error;
    }
  }
  return model;
}
