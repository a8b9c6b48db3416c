/**
 * The seed's `predict_func(image_path, model, preprocess_input)`: load one image at the model's
 * input size, add a batch axis, preprocess, predict, and name the class.
 */
import { imgToArray, type LoadImgOptions, loadImg } from '../data/index.js';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError, XferError } from '../errors.js';
import { checkNumberInRange } from '../util/validate.js';
import { inferBatch } from './accelerate.js';
import { checkLayersModel } from './compile.js';

export interface PredictImageOptions {
  /**
   * Class names by index, e.g. `['cat', 'dog']` (the seed's). Default: the index as a string.
   */
  classNames?: readonly string[];
  /** `[height, width]` to load the image at. Default: the model's input size. */
  targetSize?: [number, number];
  /**
   * Channels to load: 'rgb', 'grayscale' or 'rgba'. Default: from the model's input channels
   * (1 grayscale, 4 rgba, else rgb).
   */
  colorMode?: LoadImgOptions['colorMode'];
  /** Resampling filter, as `loadImg`'s. Default 'nearest' (Keras's `load_img`). */
  interpolation?: LoadImgOptions['interpolation'];
  /** A single sigmoid output is class 1 when at least this. Default 0.5 (the seed's). */
  threshold?: number;
}

export interface ImagePrediction {
  /**
   * One sigmoid output: that output, the probability of class 1 (the seed's `pred[0, 0]`, also
   * when the class is 0). Several outputs: the probability of the chosen class.
   */
  probability: number;
  /** 0/1 by the threshold for one output; the argmax for several. */
  classIndex: number;
  /** `classNames[classIndex]`, or the index as a string. */
  className: string;
}

/** A preprocessing function such as an application's `preprocessInput`, applied to [1, h, w, c]. */
export type PreprocessFn = (x: tf.Tensor) => tf.Tensor | Promise<tf.Tensor>;

function inputSize(model: tf.LayersModel): { targetSize?: [number, number]; channels?: number } {
  const shape = model.inputs[0]?.shape ?? [];
  const [, height, width, channels] = shape;
  return {
    ...(shape.length === 4 && typeof height === 'number' && typeof width === 'number'
      ? { targetSize: [height, width] as [number, number] }
      : {}),
    ...(typeof channels === 'number' ? { channels } : {}),
  };
}

/**
 * Classifies one image file.
 * @example
 * const { probability, classIndex, className } = await predictImage('dog.jpg', model, preprocessInput, {
 *   classNames: ['cat', 'dog'],
 * }); // e.g. 0.93, 1, 'dog'
 */
export async function predictImage(
  path: string,
  model: tf.LayersModel,
  preprocessInput: PreprocessFn | null,
  options: PredictImageOptions = {},
): Promise<ImagePrediction> {
  await initBackend();
  checkLayersModel(model);
  if (preprocessInput !== null && typeof preprocessInput !== 'function') {
    throw invalidParameterError(
      'preprocessInput',
      'a function (x) => tensor, or null for none',
      preprocessInput,
    );
  }
  const threshold = checkNumberInRange('threshold', options.threshold ?? 0.5, 0, 1);
  const fromModel = inputSize(model);
  const targetSize = options.targetSize ?? fromModel.targetSize;
  if (!targetSize) {
    throw new XferError(
      'INVALID_ARGUMENT',
      `the model's input shape [${model.inputs[0]?.shape}] does not fix an image size; pass targetSize: [height, width].`,
      { inputShape: model.inputs[0]?.shape },
    );
  }
  const colorMode =
    options.colorMode ??
    (fromModel.channels === 1 ? 'grayscale' : fromModel.channels === 4 ? 'rgba' : 'rgb');
  const img = await loadImg(path, {
    targetSize,
    colorMode,
    ...(options.interpolation ? { interpolation: options.interpolation } : {}),
  });

  const array = imgToArray(img);
  const batch = tf.expandDims(array, 0);
  array.dispose();
  let input: tf.Tensor = batch;
  let output: tf.Tensor | undefined;
  try {
    if (preprocessInput) input = await preprocessInput(batch);
    output = await inferBatch(model, input);
    const values = Array.from(await output.data());
    return classify(values, threshold, options.classNames);
  } finally {
    tf.dispose([batch, input, ...(output ? [output] : [])]);
  }
}

function classify(
  values: number[],
  threshold: number,
  classNames: readonly string[] | undefined,
): ImagePrediction {
  const binary = values.length === 1;
  const classCount = binary ? 2 : values.length;
  if (classNames !== undefined && classNames.length !== classCount) {
    throw new XferError(
      'SHAPE_MISMATCH',
      `classNames has ${classNames.length} names but the model ${binary ? 'has one sigmoid output (2 classes)' : `outputs ${classCount} classes`}.`,
      { classNames, classes: classCount },
    );
  }
  let classIndex: number;
  let probability: number;
  if (binary) {
    probability = values[0]!;
    classIndex = probability >= threshold ? 1 : 0;
  } else {
    classIndex = 0;
    for (let i = 1; i < values.length; i++) if (values[i]! > values[classIndex]!) classIndex = i;
    probability = values[classIndex]!;
  }
  return { probability, classIndex, className: classNames?.[classIndex] ?? String(classIndex) };
}
