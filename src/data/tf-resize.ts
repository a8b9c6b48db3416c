/**
 * TensorFlow's `tf.image.resize` as Keras 3's `image_dataset_from_directory` runs it: bilinear
 * and nearest with half-pixel centres, no antialiasing, float32 arithmetic and float32 output (no
 * rounding back to bytes). Also Keras's `smart_resize` crop and `tf.image.resize_with_pad`.
 */
import type { CropBox } from './resize.js';

export const TF_INTERPOLATIONS = ['bilinear', 'nearest'] as const;
export type TfInterpolation = (typeof TF_INTERPOLATIONS)[number];

const f = Math.fround;

interface AxisWeights {
  lower: Int32Array;
  upper: Int32Array;
  lerp: Float32Array;
}

/** TF's `compute_interpolation_weights` with the half-pixel scaler, in float32. */
function bilinearWeights(outSize: number, inSize: number): AxisWeights {
  const scale = f(inSize / outSize);
  const lower = new Int32Array(outSize);
  const upper = new Int32Array(outSize);
  const lerp = new Float32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const position = f(f(f(i + 0.5) * scale) - 0.5);
    const floor = Math.floor(position);
    lower[i] = Math.max(floor, 0);
    upper[i] = Math.min(Math.ceil(position), inSize - 1);
    lerp[i] = f(position - floor);
  }
  return { lower, upper, lerp };
}

/** TF's nearest index with half-pixel centres: min(floor((i + 0.5) * scale), size - 1). */
function nearestIndices(outSize: number, inSize: number): Int32Array {
  const scale = f(inSize / outSize);
  return Int32Array.from({ length: outSize }, (_, i) =>
    Math.max(0, Math.min(Math.floor(f(f(i + 0.5) * scale)), inSize - 1)),
  );
}

/**
 * Resizes the `box` region of interleaved HWC pixels (`width` wide) to outWidth x outHeight, as
 * `tf.image.resize(image[box], [outHeight, outWidth], method)`.
 */
export function tfResize(
  data: ArrayLike<number>,
  width: number,
  channels: number,
  box: CropBox,
  outWidth: number,
  outHeight: number,
  method: TfInterpolation,
): Float32Array {
  const out = new Float32Array(outWidth * outHeight * channels);
  const at = (row: number, col: number) => ((box.top + row) * width + box.left + col) * channels;
  if (method === 'nearest') {
    const rows = nearestIndices(outHeight, box.height);
    const cols = nearestIndices(outWidth, box.width);
    let o = 0;
    for (let y = 0; y < outHeight; y++) {
      for (let x = 0; x < outWidth; x++) {
        const p = at(rows[y]!, cols[x]!);
        for (let k = 0; k < channels; k++) out[o++] = data[p + k]!;
      }
    }
    return out;
  }
  const ys = bilinearWeights(outHeight, box.height);
  const xs = bilinearWeights(outWidth, box.width);
  let o = 0;
  for (let y = 0; y < outHeight; y++) {
    const top = ys.lower[y]!;
    const bottom = ys.upper[y]!;
    const yLerp = ys.lerp[y]!;
    for (let x = 0; x < outWidth; x++) {
      const left = xs.lower[x]!;
      const right = xs.upper[x]!;
      const xLerp = xs.lerp[x]!;
      const tl = at(top, left);
      const tr = at(top, right);
      const bl = at(bottom, left);
      const br = at(bottom, right);
      for (let k = 0; k < channels; k++) {
        const t = f(data[tl + k]! + f(f(data[tr + k]! - data[tl + k]!) * xLerp));
        const b = f(data[bl + k]! + f(f(data[br + k]! - data[bl + k]!) * xLerp));
        out[o++] = f(t + f(f(b - t) * yLerp));
      }
    }
  }
  return out;
}

/**
 * `tf.image.resize_with_pad`: scale to fit inside the target keeping the aspect ratio, then pad
 * with zeros, centred (TF's float arithmetic for the sizes and offsets).
 */
export function tfResizeWithPad(
  data: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
  method: TfInterpolation,
): Float32Array {
  const ratio = Math.max(f(width / outWidth), f(height / outHeight));
  const resizedHeightFloat = f(height / ratio);
  const resizedWidthFloat = f(width / ratio);
  const resizedHeight = Math.floor(resizedHeightFloat);
  const resizedWidth = Math.floor(resizedWidthFloat);
  const padTop = Math.max(0, Math.floor(f(f(outHeight - resizedHeightFloat) / 2)));
  const padLeft = Math.max(0, Math.floor(f(f(outWidth - resizedWidthFloat) / 2)));
  const resized = tfResize(
    data,
    width,
    channels,
    { left: 0, top: 0, width, height },
    resizedWidth,
    resizedHeight,
    method,
  );
  const out = new Float32Array(outWidth * outHeight * channels);
  const rowLength = resizedWidth * channels;
  for (let y = 0; y < resizedHeight; y++) {
    out.set(
      resized.subarray(y * rowLength, (y + 1) * rowLength),
      ((padTop + y) * outWidth + padLeft) * channels,
    );
  }
  return out;
}
