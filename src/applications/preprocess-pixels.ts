/**
 * Keras's `preprocess_input` arithmetic on raw float32 pixels, free of tfjs: numpy's
 * `_preprocess_numpy_input` for channels-last data, each step rounded to float32 and each constant
 * a float32, as numpy computes on a float32 array. `preprocessInput` runs it on the CPU backends
 * (0.2 ms for one 224x224 image, where tfjs-wasm's kernels took 2.5-8 ms), and the image workers
 * run it on each image as it lands in the batch.
 */

/** The modes that change pixels ('none' leaves them as they are). */
export type PixelPreprocessMode = 'caffe' | 'tf' | 'torch';

// In BGR order: caffe-mode means are subtracted after the channel flip.
export const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68];
export const TORCH_MEAN = [0.485, 0.456, 0.406];
export const TORCH_STD = [0.229, 0.224, 0.225];

const f32 = (values: number[]) => Float32Array.from(values);
const CAFFE_MEAN_BGR_32 = f32(CAFFE_MEAN_BGR);
const TORCH_MEAN_32 = f32(TORCH_MEAN);
const TORCH_STD_32 = f32(TORCH_STD);

/**
 * `preprocess_input` of `values` (channels last, `channels` per pixel), in place. 'caffe' and
 * 'torch' need three channels; the caller checks.
 */
export function preprocessPixels(
  values: Float32Array,
  channels: number,
  mode: PixelPreprocessMode,
): void {
  const n = values.length;
  if (mode === 'tf') {
    // x /= 127.5; x -= 1. (a Float32Array store rounds each step to float32)
    for (let i = 0; i < n; i++) values[i] = Math.fround(values[i]! / 127.5) - 1;
    return;
  }
  if (mode === 'torch') {
    // x /= 255.; then per channel x -= mean; x /= std.
    for (let i = 0; i < n; i += channels) {
      for (let c = 0; c < 3; c++) {
        const scaled = Math.fround(values[i + c]! / 255);
        values[i + c] = Math.fround(scaled - TORCH_MEAN_32[c]!) / TORCH_STD_32[c]!;
      }
    }
    return;
  }
  // caffe: x = x[..., ::-1]; then per channel x -= mean (BGR).
  for (let i = 0; i < n; i += channels) {
    const red = values[i]!;
    values[i] = values[i + 2]! - CAFFE_MEAN_BGR_32[0]!;
    values[i + 1] = values[i + 1]! - CAFFE_MEAN_BGR_32[1]!;
    values[i + 2] = red - CAFFE_MEAN_BGR_32[2]!;
  }
}

const MODES = new WeakMap<object, PixelPreprocessMode>();

/**
 * Records that `fn` is Keras's `preprocess_input` in `mode` (the per-family functions such as
 * `vgg16.preprocessInput` are), so an image pipeline given it can run `preprocessPixels` instead
 * of calling it: the same numbers, off the main thread.
 */
export function declarePreprocessMode<F extends object>(fn: F, mode: PixelPreprocessMode): F {
  MODES.set(fn, mode);
  return fn;
}

/** The mode `declarePreprocessMode` recorded for `fn`, if any. */
export function preprocessModeOf(fn: unknown): PixelPreprocessMode | undefined {
  return typeof fn === 'function' ? MODES.get(fn) : undefined;
}
