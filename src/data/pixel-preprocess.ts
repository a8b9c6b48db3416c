/**
 * Per-pixel preprocessing an image worker can apply to each image as it is written into the batch,
 * instead of the main thread calling the generator's preprocessingFunction: Keras's
 * `preprocess_input` in a known mode (for the per-family functions such as `vgg16.preprocessInput`,
 * numpy's exact float32 arithmetic), or a colour map v -> A·v + b on each pixel's channel vector,
 * which `ImageDataGenerator` finds by probing a function it is told treats every pixel alike
 * (`preprocessingFunctionOnBatch`). Free of tfjs, so a worker thread can load it.
 */
import { type PixelPreprocessMode, preprocessPixels } from '../applications/preprocess-pixels.js';

/** a: channels x channels, row-major (a[o * channels + k]); b: channels. */
export interface PixelAffine {
  a: Float64Array;
  b: Float64Array;
}

export function applyPixelAffine(
  pixels: Float32Array,
  channels: number,
  { a, b }: PixelAffine,
): void {
  if (channels === 3) {
    // The general loop below with its constants in locals: the same sums in the same order.
    const [a00, a01, a02, a10, a11, a12, a20, a21, a22] = a as unknown as number[];
    const [b0, b1, b2] = b as unknown as number[];
    for (let p = 0; p < pixels.length; p += 3) {
      const v0 = pixels[p]!;
      const v1 = pixels[p + 1]!;
      const v2 = pixels[p + 2]!;
      pixels[p] = b0! + a00! * v0 + a01! * v1 + a02! * v2;
      pixels[p + 1] = b1! + a10! * v0 + a11! * v1 + a12! * v2;
      pixels[p + 2] = b2! + a20! * v0 + a21! * v1 + a22! * v2;
    }
    return;
  }
  const v = new Float64Array(channels);
  for (let p = 0; p < pixels.length; p += channels) {
    for (let k = 0; k < channels; k++) v[k] = pixels[p + k]!;
    for (let o = 0; o < channels; o++) {
      let sum = b[o]!;
      for (let k = 0; k < channels; k++) sum += a[o * channels + k]! * v[k]!;
      pixels[p + o] = sum;
    }
  }
}

/** What a worker applies: a `preprocess_input` mode, or a probed colour map. */
export type PixelPreprocess = PixelPreprocessMode | PixelAffine;

export function applyPixelPreprocess(
  pixels: Float32Array,
  channels: number,
  preprocess: PixelPreprocess,
): void {
  if (typeof preprocess === 'string') preprocessPixels(pixels, channels, preprocess);
  else applyPixelAffine(pixels, channels, preprocess);
}
