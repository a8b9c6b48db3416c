/**
 * The pixel work of Keras's `ImageDataGenerator.apply_transform`, on float32 HWC arrays:
 * `apply_affine_transform` (scipy.ndimage.affine_transform, order 1), `apply_channel_shift`,
 * `flip_axis` and `apply_brightness_shift`. Loops over typed arrays: one inverse-mapped source
 * coordinate per output pixel, shared by its channels.
 */
import { floatsToBytes } from './decode.js';

/**
 * Pixels read through offset tables: channel k of (row r, column c) is `data[rows[r] + cols[c] +
 * k]`. A dense image has rows[r] = r·width·channels and cols[c] = c·channels; a nearest-resized
 * view of a larger image (`nearestSource` in resize.ts) points its tables at the picked rows and
 * columns, so the warp reads the decoded image directly and the resized copy is never made.
 */
export interface PixelSource {
  data: Uint8Array | Float32Array;
  height: number;
  width: number;
  channels: number;
  rows: Int32Array;
  cols: Int32Array;
}

/** A dense HWC image as a `PixelSource`. */
export function denseSource(
  data: Uint8Array | Float32Array,
  height: number,
  width: number,
  channels: number,
): PixelSource {
  const rows = new Int32Array(height);
  const cols = new Int32Array(width);
  for (let r = 0; r < height; r++) rows[r] = r * width * channels;
  for (let c = 0; c < width; c++) cols[c] = c * channels;
  return { data, height, width, channels, rows, cols };
}

export const FILL_MODES = ['constant', 'nearest', 'reflect', 'wrap'] as const;
export type FillMode = (typeof FILL_MODES)[number];

export interface AffineParams {
  theta: number;
  tx: number;
  ty: number;
  shear: number;
  zx: number;
  zy: number;
}

type Matrix3 = [number, number, number, number, number, number, number, number, number];

function multiply(a: Matrix3, b: Matrix3): Matrix3 {
  const out = new Array(9) as Matrix3;
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      out[i * 3 + j] = a[i * 3]! * b[j]! + a[i * 3 + 1]! * b[3 + j]! + a[i * 3 + 2]! * b[6 + j]!;
    }
  }
  return out;
}

// numpy.deg2rad multiplies by the constant pi/180.
const deg2rad = (degrees: number) => degrees * (Math.PI / 180);

/**
 * The matrix scipy receives from Keras for an image of `height` x `width`: row-major
 * [m00, m01, offset0, m10, m11, offset1] mapping an output (row, col) to the input (row, col).
 * Returns null when Keras skips the affine step (all parameters neutral).
 *
 * Keras builds M = rotation · shift · shear · zoom in a frame whose first coordinate it calls x,
 * centres it with `transform_matrix_offset_center(M, h, w)` (o_x = h/2 - 0.5, o_y = w/2 - 0.5),
 * then, since Keras 2.4 / keras-preprocessing 1.1.2+ (`M' = PMP`), swaps rows and columns 0 and 1
 * before calling scipy. So M's first coordinate is the *column*: the input sampled for output
 * (row r, col c) is (col, row)_in = M · (c, r). Consequences, which are Keras's behaviour:
 * - tx moves content along columns: output (r, c) reads input column c + tx, so content shifts
 *   tx pixels to the LEFT; ty reads row r + ty, content shifts ty pixels UP. Keras draws tx from
 *   `height_shift_range` (scaled by the height), so in Keras `height_shift_range` shifts images
 *   horizontally and `width_shift_range` vertically (keras-team/keras#17398, tf-keras#310).
 * - theta > 0 turns content counter-clockwise on screen (rows pointing down).
 * - zx scales columns: zx = 2 samples twice as wide a field, shrinking content horizontally.
 * - The centre uses h for the column axis and w for the row axis, exact for square images.
 */
export function kerasAffineMatrix(
  params: AffineParams,
  height: number,
  width: number,
): Float64Array | null {
  let m: Matrix3 | null = null;
  const compose = (next: Matrix3) => {
    m = m === null ? next : multiply(m, next);
  };
  if (params.theta !== 0) {
    const t = deg2rad(params.theta);
    compose([Math.cos(t), -Math.sin(t), 0, Math.sin(t), Math.cos(t), 0, 0, 0, 1]);
  }
  if (params.tx !== 0 || params.ty !== 0) compose([1, 0, params.tx, 0, 1, params.ty, 0, 0, 1]);
  if (params.shear !== 0) {
    const s = deg2rad(params.shear);
    compose([1, -Math.sin(s), 0, 0, Math.cos(s), 0, 0, 0, 1]);
  }
  if (params.zx !== 1 || params.zy !== 1) compose([params.zx, 0, 0, 0, params.zy, 0, 0, 0, 1]);
  if (m === null) return null;
  const ox = height / 2 - 0.5;
  const oy = width / 2 - 0.5;
  const c = multiply(multiply([1, 0, ox, 0, 1, oy, 0, 0, 1], m), [1, 0, -ox, 0, 1, -oy, 0, 0, 1]);
  // M' = P·C·P with P swapping the first two coordinates.
  return Float64Array.of(c[4], c[3], c[5], c[1], c[0], c[2]);
}

/**
 * scipy.ndimage's `map_coordinate` for one axis: where a coordinate outside [0, len - 1] reads
 * from, or -1 for the constant fill. Kept to the letter, including 'wrap' having period len - 1
 * (scipy's 'wrap', not 'grid-wrap') and 'reflect' mirroring about -0.5 and len - 0.5.
 */
function mapCoordinate(x: number, len: number, mode: FillMode): number {
  if (x < 0) {
    switch (mode) {
      case 'reflect': {
        if (len <= 1) return 0;
        const sz2 = 2 * len;
        if (x < -sz2) x = sz2 * Math.trunc(-x / sz2) + x;
        // scipy nudges tiny negatives so that -x - 1 cannot round to -1 (the constant fill).
        return x < -len ? x + sz2 : (x > -1e-15 ? 1e-15 : -x) - 1;
      }
      case 'wrap': {
        if (len <= 1) return 0;
        const sz = len - 1;
        return x + sz * (Math.trunc(-x / sz) + 1);
      }
      case 'nearest':
        return 0;
      default:
        return -1;
    }
  }
  if (x > len - 1) {
    switch (mode) {
      case 'reflect': {
        if (len <= 1) return 0;
        const sz2 = 2 * len;
        x -= sz2 * Math.trunc(x / sz2);
        return x >= len ? sz2 - x - 1 : x;
      }
      case 'wrap': {
        if (len <= 1) return 0;
        const sz = len - 1;
        return x - sz * Math.trunc(x / sz);
      }
      case 'nearest':
        return len - 1;
      default:
        return -1;
    }
  }
  return x;
}

/**
 * Where a filter tap that falls off the edge reads: scipy (>= 1.6) extends the taps with the
 * fill mode itself, except 'constant' and 'wrap', which use mirror extension.
 */
function edgeIndex(i: number, len: number, mode: FillMode): number {
  if (len <= 1) return 0;
  if (mode === 'reflect') return mapCoordinate(i, len, 'reflect');
  if (mode === 'nearest') return i < 0 ? 0 : len - 1;
  const s2 = 2 * len - 2;
  if (i < 0) {
    i = s2 * Math.trunc(-i / s2) + i;
    return i <= 1 - len ? i + s2 : -i;
  }
  i -= s2 * Math.trunc(i / s2);
  return i >= len ? s2 - i : i;
}

/**
 * scipy.ndimage.affine_transform(order=1 or 0, mode, cval) applied to every channel of a float32 HWC
 * image with Keras's matrix. Values are interpolated in double precision and stored as float32,
 * as scipy does for float32 input; the coordinate and weights of a pixel serve all its channels.
 */
export function affineTransform(
  src: Float32Array,
  height: number,
  width: number,
  channels: number,
  matrix: Float64Array,
  fillMode: FillMode,
  cval: number,
  order: 0 | 1 = 1,
): Float32Array {
  const out = new Float32Array(src.length);
  const source = denseSource(src, height, width, channels);
  affineInto(source, matrix, fillMode, cval, order, out, false, false);
  return out;
}

/**
 * `affineTransform` of `src` (bytes or floats: the same numbers either way) written into `dest`,
 * mirrored on the way when a flip follows (Keras flips after the warp; a flip only moves pixels,
 * so writing the warped pixel to its mirrored place is the same result without another pass).
 * Pixels whose four taps lie inside the image take a short path with scipy's arithmetic, in
 * scipy's order; the border takes the general one.
 */
export function affineInto(
  src: PixelSource,
  matrix: Float64Array,
  fillMode: FillMode,
  cval: number,
  order: 0 | 1,
  dest: Float32Array,
  flipHorizontal: boolean,
  flipVertical: boolean,
): void {
  const { data, height, width, channels, rows, cols } = src;
  const m00 = matrix[0]!;
  const m01 = matrix[1]!;
  const o0 = matrix[2]!;
  const m10 = matrix[3]!;
  const m11 = matrix[4]!;
  const o1 = matrix[5]!;
  const fill = Math.fround(cval);
  const lastRow = height - 1;
  const lastCol = width - 1;
  const step = flipHorizontal ? -channels : channels;
  for (let r = 0; r < height; r++) {
    const rowY = r * m00;
    const rowX = r * m10;
    const outRow = flipVertical ? lastRow - r : r;
    let o = (outRow * width + (flipHorizontal ? lastCol : 0)) * channels;
    for (let c = 0; c < width; c++, o += step) {
      // scipy accumulates the row term, then the column term, then the offset.
      const y = rowY + c * m01 + o0;
      const x = rowX + c * m11 + o1;
      if (order === 1 && y >= 0 && y < lastRow && x >= 0 && x < lastCol) {
        const r0 = y | 0;
        const c0 = x | 0;
        const wr0 = 1 - (y - r0);
        const wr1 = 1 - wr0;
        const wc0 = 1 - (x - c0);
        const wc1 = 1 - wc0;
        const top = rows[r0]!;
        const bottom = rows[r0 + 1]!;
        const left = cols[c0]!;
        const right = cols[c0 + 1]!;
        const p00 = top + left;
        const p01 = top + right;
        const p10 = bottom + left;
        const p11 = bottom + right;
        // `bilinear` written out for three channels: a call per channel costs ~10% here.
        if (channels === 3) {
          dest[o] =
            data[p00]! * wr0 * wc0 +
            data[p01]! * wr0 * wc1 +
            data[p10]! * wr1 * wc0 +
            data[p11]! * wr1 * wc1;
          dest[o + 1] =
            data[p00 + 1]! * wr0 * wc0 +
            data[p01 + 1]! * wr0 * wc1 +
            data[p10 + 1]! * wr1 * wc0 +
            data[p11 + 1]! * wr1 * wc1;
          dest[o + 2] =
            data[p00 + 2]! * wr0 * wc0 +
            data[p01 + 2]! * wr0 * wc1 +
            data[p10 + 2]! * wr1 * wc0 +
            data[p11 + 2]! * wr1 * wc1;
        } else {
          for (let k = 0; k < channels; k++) {
            dest[o + k] = bilinear(data, k, p00, p01, p10, p11, wr0, wr1, wc0, wc1);
          }
        }
        continue;
      }
      borderPixel(src, y, x, fillMode, fill, order, dest, o);
    }
  }
}

/** One output pixel of `affineInto` in general: any coordinate, any fill mode, order 0 or 1. */
function borderPixel(
  src: PixelSource,
  yIn: number,
  xIn: number,
  fillMode: FillMode,
  fill: number,
  order: 0 | 1,
  dest: Float32Array,
  o: number,
): void {
  const { data, height, width, channels, rows, cols } = src;
  const lastRow = height - 1;
  const lastCol = width - 1;
  let y = yIn;
  let x = xIn;
  if (y < 0 || y > lastRow) y = mapCoordinate(y, height, fillMode);
  if (x < 0 || x > lastCol) x = mapCoordinate(x, width, fillMode);
  if (!(y > -1) || !(x > -1)) {
    for (let k = 0; k < channels; k++) dest[o + k] = fill;
    return;
  }
  if (order === 0) {
    // scipy's order 0 takes floor(coordinate + 0.5), within [0, len - 1] once mapped.
    const p = rows[Math.floor(y + 0.5)]! + cols[Math.floor(x + 0.5)]!;
    for (let k = 0; k < channels; k++) dest[o + k] = data[p + k]!;
    return;
  }
  let r0 = Math.floor(y);
  const wr0 = 1 - (y - r0);
  const wr1 = 1 - wr0;
  let r1 = r0 + 1;
  if (r0 < 0 || r1 > lastRow) {
    r1 = edgeIndex(r1, height, fillMode);
    r0 = edgeIndex(r0, height, fillMode);
  }
  let c0 = Math.floor(x);
  const wc0 = 1 - (x - c0);
  const wc1 = 1 - wc0;
  let c1 = c0 + 1;
  if (c0 < 0 || c1 > lastCol) {
    c1 = edgeIndex(c1, width, fillMode);
    c0 = edgeIndex(c0, width, fillMode);
  }
  const p00 = rows[r0]! + cols[c0]!;
  const p01 = rows[r0]! + cols[c1]!;
  const p10 = rows[r1]! + cols[c0]!;
  const p11 = rows[r1]! + cols[c1]!;
  for (let k = 0; k < channels; k++) {
    dest[o + k] = bilinear(data, k, p00, p01, p10, p11, wr0, wr1, wc0, wc1);
  }
}

/**
 * Channel k interpolated from its four taps, in scipy's arithmetic: each value times its row
 * weight, then its column weight, summed in tap order.
 */
function bilinear(
  data: Uint8Array | Float32Array,
  k: number,
  p00: number,
  p01: number,
  p10: number,
  p11: number,
  wr0: number,
  wr1: number,
  wc0: number,
  wc1: number,
): number {
  return (
    data[p00 + k]! * wr0 * wc0 +
    data[p01 + k]! * wr0 * wc1 +
    data[p10 + k]! * wr1 * wc0 +
    data[p11 + k]! * wr1 * wc1
  );
}

/** Keras's `apply_channel_shift`: every channel + intensity, clipped to the image's min and max. */
export function channelShift(x: Float32Array, intensity: number): Float32Array {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const shift = Math.fround(intensity); // numpy adds a Python float to float32 in float32
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = Math.fround(x[i]! + shift);
    out[i] = Math.min(max, Math.max(min, v));
  }
  return out;
}

/** Keras's `flip_axis` along columns (horizontal) or rows (vertical). */
export function flip(
  x: Float32Array,
  height: number,
  width: number,
  channels: number,
  horizontal: boolean,
): Float32Array {
  const out = new Float32Array(x.length);
  copyFlipped(denseSource(x, height, width, channels), out, horizontal, !horizontal);
  return out;
}

/** `src`'s pixels written into `dest` (float32, dense), mirrored along columns and/or rows. */
export function copyFlipped(
  src: PixelSource,
  dest: Float32Array,
  flipHorizontal: boolean,
  flipVertical: boolean,
): void {
  const { data, height, width, channels, rows, cols } = src;
  const step = flipHorizontal ? -channels : channels;
  for (let r = 0; r < height; r++) {
    const row = rows[r]!;
    const outRow = flipVertical ? height - 1 - r : r;
    let o = (outRow * width + (flipHorizontal ? width - 1 : 0)) * channels;
    if (channels === 3) {
      for (let c = 0; c < width; c++, o += step) {
        const p = row + cols[c]!;
        dest[o] = data[p]!;
        dest[o + 1] = data[p + 1]!;
        dest[o + 2] = data[p + 2]!;
      }
      continue;
    }
    for (let c = 0; c < width; c++, o += step) {
      const p = row + cols[c]!;
      for (let k = 0; k < channels; k++) dest[o + k] = data[p + k]!;
    }
  }
}

/** `flip` that swaps pixels within `x` itself; returns `x`. */
export function flipInPlace(
  x: Float32Array,
  height: number,
  width: number,
  channels: number,
  horizontal: boolean,
): Float32Array {
  const rowLength = width * channels;
  if (horizontal) {
    for (let r = 0; r < height; r++) {
      const row = r * rowLength;
      for (let c = 0; c < width >> 1; c++) {
        const s = row + c * channels;
        const t = row + (width - 1 - c) * channels;
        for (let k = 0; k < channels; k++) {
          const v = x[s + k]!;
          x[s + k] = x[t + k]!;
          x[t + k] = v;
        }
      }
    }
    return x;
  }
  const tmp = new Float32Array(rowLength);
  for (let r = 0; r < height >> 1; r++) {
    const top = x.subarray(r * rowLength, (r + 1) * rowLength);
    const bottom = x.subarray((height - 1 - r) * rowLength, (height - r) * rowLength);
    tmp.set(top);
    top.set(bottom);
    bottom.set(tmp);
  }
  return x;
}

/**
 * Keras's `apply_brightness_shift(x, brightness, scale=False)`: through an 8-bit PIL image and
 * `ImageEnhance.Brightness`. Values go to bytes (truncated; stretched to 0..255 only when outside
 * it), each colour byte becomes trunc(float32(factor) * byte) clipped to 0..255 (PIL's `blend`
 * with black, in C floats), alpha is kept, and out-of-range input is mapped back to its range.
 */
export function brightnessShift(
  x: Float32Array,
  channels: number,
  brightness: number,
): Float32Array {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const outside = min < 0 || max > 255;
  const bytes = floatsToBytes(x, outside);
  const factor = Math.fround(brightness);
  const out = new Float32Array(x.length);
  for (let i = 0; i < bytes.length; i++) {
    let v: number;
    if (channels === 4 && i % 4 === 3) {
      v = bytes[i]!;
    } else {
      const t = Math.fround(factor * bytes[i]!);
      v = t <= 0 ? 0 : t >= 255 ? 255 : Math.trunc(t);
    }
    out[i] = outside
      ? Math.fround(Math.fround(Math.fround(v / 255) * Math.fround(max - min)) + min)
      : v;
  }
  return out;
}

/** The generator settings the pixel transforms read. */
export interface TransformSettings {
  fillMode: FillMode;
  cval: number;
  interpolationOrder: 0 | 1;
}

/** The parameters of one transform (the generator's `TransformParams`); missing keys are neutral. */
export interface PixelTransform {
  theta?: number;
  tx?: number;
  ty?: number;
  shear?: number;
  zx?: number;
  zy?: number;
  flipHorizontal?: boolean;
  flipVertical?: boolean;
  channelShiftIntensity?: number | null;
  brightness?: number | null;
}

function affineParams(params: PixelTransform): AffineParams {
  return {
    theta: params.theta ?? 0,
    tx: params.tx ?? 0,
    ty: params.ty ?? 0,
    shear: params.shear ?? 0,
    zx: params.zx ?? 1,
    zy: params.zy ?? 1,
  };
}

/**
 * Keras's `apply_transform` on raw float32 HWC pixels, in Keras's order: affine warp, channel
 * shift, flips, brightness. Returns the input itself when nothing applies. A plain function of
 * its arguments, so a worker thread computes exactly what the main thread would.
 */
export function transformPixels(
  pixels: Float32Array,
  height: number,
  width: number,
  channels: number,
  params: PixelTransform,
  settings: TransformSettings,
): Float32Array {
  let x = pixels;
  const matrix = kerasAffineMatrix(affineParams(params), height, width);
  if (matrix) {
    x = affineTransform(
      x,
      height,
      width,
      channels,
      matrix,
      settings.fillMode,
      settings.cval,
      settings.interpolationOrder,
    );
  }
  if (params.channelShiftIntensity != null) x = channelShift(x, params.channelShiftIntensity);
  // A fresh array from the steps above can be flipped in place, saving an image-sized copy.
  if (params.flipHorizontal) {
    x =
      x === pixels
        ? flip(x, height, width, channels, true)
        : flipInPlace(x, height, width, channels, true);
  }
  if (params.flipVertical) {
    x =
      x === pixels
        ? flip(x, height, width, channels, false)
        : flipInPlace(x, height, width, channels, false);
  }
  if (params.brightness != null) x = brightnessShift(x, channels, params.brightness);
  return x;
}

/**
 * `transformPixels` of `src` written into `dest` (an image's place in a batch). The warp and the
 * flips, the whole of the usual augmentation, are one pass straight from the source's bytes;
 * with a channel shift or brightness the steps run one by one on a float copy.
 */
export function transformInto(
  src: PixelSource,
  params: PixelTransform,
  settings: TransformSettings,
  dest: Float32Array,
): void {
  const { height, width, channels } = src;
  const flipHorizontal = params.flipHorizontal === true;
  const flipVertical = params.flipVertical === true;
  if (params.channelShiftIntensity == null && params.brightness == null) {
    const matrix = kerasAffineMatrix(affineParams(params), height, width);
    if (matrix === null) {
      copyFlipped(src, dest, flipHorizontal, flipVertical);
    } else {
      const { fillMode, cval, interpolationOrder } = settings;
      affineInto(
        src,
        matrix,
        fillMode,
        cval,
        interpolationOrder,
        dest,
        flipHorizontal,
        flipVertical,
      );
    }
    return;
  }
  copyFlipped(src, dest, false, false);
  dest.set(transformPixels(dest, height, width, channels, params, settings));
}
