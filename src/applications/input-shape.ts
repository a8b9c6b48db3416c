/**
 * Keras's `imagenet_utils.obtain_input_shape` for channels-last images: the input shape a backbone
 * is built with, and the checks that make ImageNet weights fit it.
 */
import { describeValue, XferError } from '../errors.js';
import { warn } from '../util/log.js';

/** `[height, width, channels]`; height and width are `null` when any size is accepted. */
export type InputShape = [number | null, number | null, number];

export interface InputShapeRules {
  /** The model, for messages: `'VGG16'`. */
  model: string;
  /** The user's shape (already checked to be 3 positive integers or nulls), if any. */
  inputShape: InputShape | undefined;
  defaultSize: number;
  minSize: number;
  /** Whether the top needs a fixed size (Keras's `require_flatten`, i.e. `includeTop`). */
  requireFlatten: boolean;
  weights: string | null;
}

function show(shape: readonly (number | null)[]): string {
  return describeValue(shape);
}

function invalid(message: string, details: Record<string, unknown>): XferError {
  return new XferError('INVALID_ARGUMENT', message, details);
}

/**
 * Resolves and validates the input shape as Keras does: the default shape when none is given, the
 * default shape required for ImageNet weights with the top, 3 channels for ImageNet weights, and a
 * minimum size.
 */
export function obtainInputShape(rules: InputShapeRules): InputShape {
  const { model, inputShape, defaultSize, minSize, requireFlatten, weights } = rules;
  const imagenet = weights === 'imagenet';
  let defaultShape: InputShape = [defaultSize, defaultSize, 3];
  if (!imagenet && inputShape) {
    const channels = inputShape[2];
    if (channels !== 1 && channels !== 3) {
      warn(
        `${model} usually expects 1 or 3 input channels, but inputShape ${show(inputShape)} has ${channels}.`,
      );
    }
    defaultShape = [defaultSize, defaultSize, channels];
  }

  if (imagenet && requireFlatten) {
    if (inputShape && show(inputShape) !== show(defaultShape)) {
      throw invalid(
        `${model} with includeTop: true and weights 'imagenet' needs inputShape ${show(defaultShape)}, the size its ImageNet classifier was trained at, but received ${show(inputShape)}. Omit inputShape (images are then resized to ${defaultSize}x${defaultSize}), or pass includeTop: false to use another size.`,
        { model, inputShape, expected: defaultShape },
      );
    }
    return defaultShape;
  }

  let shape: InputShape;
  if (inputShape) {
    const [height, width, channels] = inputShape;
    if (channels !== 3 && imagenet) {
      throw invalid(
        `${model} with weights 'imagenet' needs 3 input channels (RGB), but inputShape ${show(inputShape)} has ${channels}. Convert the images to RGB, or pass weights: null to train from scratch.`,
        { model, inputShape },
      );
    }
    if ((height !== null && height < minSize) || (width !== null && width < minSize)) {
      throw invalid(
        `${model} needs images of at least ${minSize}x${minSize}, but received inputShape ${show(inputShape)}. Resize the images to at least ${minSize}x${minSize} (the default is ${defaultSize}x${defaultSize}).`,
        { model, inputShape, minSize },
      );
    }
    shape = inputShape;
  } else {
    shape = requireFlatten ? defaultShape : [null, null, 3];
  }

  if (requireFlatten && (shape[0] === null || shape[1] === null)) {
    throw invalid(
      `${model} with includeTop: true needs a fixed height and width, but the input shape is ${show(shape)}. Pass inputShape with both sizes, or includeTop: false.`,
      { model, inputShape: shape },
    );
  }
  return shape;
}
