/**
 * Keras's `load_img`, `img_to_array`, `array_to_img` and `save_img`. Decoding is sharp's (libvips,
 * off the main thread); colour conversion and resizing reproduce PIL's arithmetic, which is what
 * Keras runs, so a batch matches Keras's pixel for pixel (JPEG decodes identically: libjpeg-turbo
 * in both; checked on 500x375 JPEGs against Pillow 9.4).
 *
 * Differences from Keras, on purpose: EXIF orientation is applied (PIL's `load_img` ignores it, so
 * phone photos come out sideways in Keras); 16-bit images are reduced to 8 bits by sharp (the high
 * byte, as PIL does for RGB; PIL keeps 16-bit grayscale as mode I). Images over `limitInputPixels`
 * are refused from their header, before any pixel memory is allocated (decompression bombs).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { describeValue, invalidParameterError, XferError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { checkBoolean, checkOneOf } from '../util/validate.js';
import { decodeBmp, decodePnm, isBmp, isPnm, PixelLimitError, type RawImage } from './decoders.js';
import { aspectCropBox, resizeNearest, resizeSmooth } from './resize.js';

/** A decoded image: interleaved 8-bit pixels, row by row (HWC). */
export interface Img {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}

export const COLOR_MODES = ['rgb', 'grayscale', 'rgba'] as const;
export type ColorMode = (typeof COLOR_MODES)[number];

export const INTERPOLATIONS = [
  'nearest',
  'bilinear',
  'bicubic',
  'lanczos',
  'box',
  'hamming',
] as const;
export type Interpolation = (typeof INTERPOLATIONS)[number];

export interface LoadImgOptions {
  /** `[height, width]` to resize to, as Keras's `target_size`. Default: the image's own size. */
  targetSize?: [number, number];
  /** Channels of the result: 'rgb' (3), 'grayscale' (1, PIL's L), 'rgba' (4). Default 'rgb'. */
  colorMode?: ColorMode;
  /** Resampling filter when resizing, PIL's. Default 'nearest' (Keras's default). */
  interpolation?: Interpolation;
  /** Centre-crop to the target's aspect ratio before resizing instead of stretching. Default false. */
  keepAspectRatio?: boolean;
  /**
   * Refuse images with more pixels than this (width x height), read from the header before any
   * decoding: a guard against decompression bombs. 0 or Infinity for no limit. Default 268402689
   * (sharp's default, 0x3FFF x 0x3FFF).
   */
  limitInputPixels?: number;
}

/** sharp's default `limitInputPixels`. */
export const DEFAULT_PIXEL_LIMIT = 0x3fff * 0x3fff;

export function checkPixelLimitOption(value: unknown): number {
  if (value === undefined) return DEFAULT_PIXEL_LIMIT;
  if (value === 0 || value === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalidParameterError(
      'limitInputPixels',
      'a positive integer (or 0 / Infinity for no limit)',
      value,
    );
  }
  return value;
}

/** Validated options, for callers that load many files with one set. */
export interface ResolvedLoadOptions {
  targetSize: [number, number] | undefined;
  colorMode: ColorMode;
  interpolation: Interpolation;
  keepAspectRatio: boolean;
  limitInputPixels: number;
}

export function checkTargetSize(name: string, value: unknown): [number, number] {
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    !value.every((v) => typeof v === 'number' && Number.isInteger(v) && v > 0)
  ) {
    throw invalidParameterError(name, '[height, width] of two positive integers', value);
  }
  return [value[0], value[1]];
}

export function resolveLoadOptions(options: LoadImgOptions = {}): ResolvedLoadOptions {
  return {
    targetSize:
      options.targetSize === undefined
        ? undefined
        : checkTargetSize('targetSize', options.targetSize),
    colorMode: checkOneOf('colorMode', options.colorMode ?? 'rgb', COLOR_MODES),
    interpolation: checkOneOf('interpolation', options.interpolation ?? 'nearest', INTERPOLATIONS),
    keepAspectRatio: checkBoolean('keepAspectRatio', options.keepAspectRatio ?? false),
    limitInputPixels: checkPixelLimitOption(options.limitInputPixels),
  };
}

/** Reads a file, turning file-system failures into one clear XferError. */
export async function readImageFile(file: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new XferError(
        'NOT_FOUND',
        `image file not found: ${describeValue(file)}. Check the path.`,
        {
          file,
        },
      );
    }
    if (code === 'EISDIR') {
      throw new XferError(
        'INVALID_ARGUMENT',
        `${describeValue(file)} is a directory, not an image file. For a folder of images use flowFromDirectory.`,
        { file },
      );
    }
    throw new XferError(
      'NOT_FOUND',
      `cannot read image file ${describeValue(file)}: ${(error as Error).message}`,
      {
        file,
      },
      { cause: error },
    );
  }
}

function corrupt(file: string, reason: string, cause?: unknown): XferError {
  return new XferError(
    'CORRUPT_FILE',
    `cannot decode image ${describeValue(file)}: ${reason}. The file is damaged or not an image; remove or replace it.`,
    { file, reason },
    { cause },
  );
}

/**
 * Decodes the bytes of an image file to 8-bit pixels. sharp decodes JPEG, PNG, WebP, GIF (first
 * frame), TIFF, AVIF/HEIF; BMP and Netpbm, which Keras accepts and sharp's libvips lacks, have small
 * decoders here. `failOn: 'error'` aborts on truncated or broken data as PIL does, but accepts
 * what libjpeg only warns about (e.g. "extraneous bytes before marker"), which PIL also accepts.
 */
export async function decodeImageBytes(
  bytes: Uint8Array,
  file: string,
  limitInputPixels = DEFAULT_PIXEL_LIMIT,
): Promise<RawImage> {
  if (bytes.length === 0) throw corrupt(file, 'the file is empty (0 bytes)');
  try {
    if (isBmp(bytes)) return decodeBmp(bytes, limitInputPixels);
    if (isPnm(bytes)) return decodePnm(bytes, limitInputPixels);
    const limit = Number.isFinite(limitInputPixels) ? limitInputPixels : false;
    const { data, info } = await sharp(bytes, { failOn: 'error', limitInputPixels: limit })
      .autoOrient()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
      channels: info.channels,
    };
  } catch (error) {
    if (error instanceof XferError) throw error;
    if (/pixel limit/i.test((error as Error).message)) {
      // sharp refused from the header; name the size in the message.
      const { width = 0, height = 0 } = await sharp(bytes, { limitInputPixels: false })
        .metadata()
        .catch(() => ({ width: 0, height: 0 }));
      throw corrupt(file, new PixelLimitError(width, height, limitInputPixels).message, error);
    }
    throw corrupt(file, (error as Error).message, error);
  }
}

/**
 * PIL's `convert` to L, RGB or RGBA. L is ITU-R 601-2 luma in PIL's fixed point,
 * (R*19595 + G*38470 + B*7471 + 0x8000) >> 16; alpha is dropped, not composited, as PIL does.
 */
export function toColorMode(
  data: Uint8Array,
  pixels: number,
  from: number,
  mode: ColorMode,
  width: number,
  height: number,
): Img {
  const to = mode === 'grayscale' ? 1 : mode === 'rgb' ? 3 : 4;
  if (from === to) return { data, width, height, channels: to };
  const out = new Uint8Array(pixels * to);
  const gray = from <= 2;
  for (let p = 0, i = 0, o = 0; p < pixels; p++, i += from, o += to) {
    if (to === 1) {
      out[o] = gray
        ? data[i]!
        : (data[i]! * 19595 + data[i + 1]! * 38470 + data[i + 2]! * 7471 + 0x8000) >>> 16;
      continue;
    }
    const r = data[i]!;
    out[o] = r;
    out[o + 1] = gray ? r : data[i + 1]!;
    out[o + 2] = gray ? r : data[i + 2]!;
    if (to === 4) out[o + 3] = from === 2 ? data[i + 1]! : from === 4 ? data[i + 3]! : 255;
  }
  return { data: out, width, height, channels: to };
}

/** Decoded pixels to what Keras's `load_img` returns for these options. */
export function finishImage(raw: RawImage, options: ResolvedLoadOptions): Img {
  const { data, width, height, channels } = raw;
  const target = options.targetSize;
  if (target === undefined || (target[0] === height && target[1] === width)) {
    return toColorMode(data, width * height, channels, options.colorMode, width, height);
  }
  const [outHeight, outWidth] = target;
  const box = options.keepAspectRatio
    ? aspectCropBox(width, height, outWidth, outHeight)
    : { left: 0, top: 0, width, height };
  if (options.interpolation === 'nearest') {
    // Picking pixels commutes with colour conversion, so resize first and convert fewer pixels.
    const picked = resizeNearest(data, width, channels, box, outWidth, outHeight);
    return toColorMode(
      picked,
      outWidth * outHeight,
      channels,
      options.colorMode,
      outWidth,
      outHeight,
    );
  }
  // PIL converts first, then resizes (RGBA premultiplied), which the smooth filters can tell apart.
  const converted = toColorMode(data, width * height, channels, options.colorMode, width, height);
  return {
    data: resizeSmooth(
      converted.data,
      width,
      height,
      converted.channels,
      box,
      outWidth,
      outHeight,
      options.interpolation,
    ),
    width: outWidth,
    height: outHeight,
    channels: converted.channels,
  };
}

/** `loadImg` without argument checks, for loaders that checked their options once. */
export async function loadImageFile(file: string, options: ResolvedLoadOptions): Promise<Img> {
  const bytes = await readImageFile(file);
  return finishImage(await decodeImageBytes(bytes, file, options.limitInputPixels), options);
}

/**
 * Loads an image file as Keras's `load_img` does: decode, convert to the colour mode, resize to
 * `targetSize` ([height, width]) with PIL's filter. Throws NOT_FOUND for a missing file and
 * CORRUPT_FILE, naming the file, for one that cannot be decoded (empty, truncated, not an image).
 * @example
 * const img = await loadImg('dog.jpg', { targetSize: [224, 224] });
 * const x = imgToArray(img); // float32 [224, 224, 3]
 */
export async function loadImg(file: string, options: LoadImgOptions = {}): Promise<Img> {
  if (typeof file !== 'string' || file === '') {
    throw invalidParameterError('path', 'non-empty string', file);
  }
  const resolved = resolveLoadOptions(options);
  await initBackend();
  return loadImageFile(file, resolved);
}

/**
 * Keras's `img_to_array`: the pixels as a float32 [height, width, channels] tensor, values 0..255.
 * @example
 * const x = imgToArray(await loadImg('cat.png')); // x.shape = [h, w, 3]
 */
export function imgToArray(img: Img): tf.Tensor3D {
  checkImg(img);
  const values = new Float32Array(img.data.length);
  values.set(img.data);
  return tf.tensor3d(values, [img.height, img.width, img.channels], 'float32');
}

function checkImg(img: Img): void {
  if (
    img === null ||
    typeof img !== 'object' ||
    !(img.data instanceof Uint8Array) ||
    ![1, 3, 4].includes(img.channels) ||
    img.data.length !== img.width * img.height * img.channels
  ) {
    throw invalidParameterError(
      'img',
      'an Img { data: Uint8Array, width, height, channels: 1 | 3 | 4 }',
      img,
    );
  }
}

/**
 * Keras's `array_to_img`: a [height, width, 1|3|4] tensor to 8-bit pixels. With `scale` (default
 * true, as Keras) values are stretched so the minimum maps to 0 and the maximum to 255; without,
 * they are clipped to 0..255. Fractions are truncated, as numpy's `astype('uint8')`.
 * @example
 * const img = arrayToImg(augmented, { scale: false });
 */
export function arrayToImg(x: tf.Tensor3D, options: { scale?: boolean } = {}): Img {
  if (!(x instanceof tf.Tensor) || x.rank !== 3 || ![1, 3, 4].includes(x.shape[2])) {
    throw invalidParameterError(
      'x',
      'a rank-3 tensor [height, width, 1|3|4]',
      x instanceof tf.Tensor ? `tensor of shape [${x.shape}]` : x,
    );
  }
  const scale = checkBoolean('scale', options.scale ?? true);
  const [height, width, channels] = x.shape as [number, number, 1 | 3 | 4];
  return { data: floatsToBytes(x.dataSync() as Float32Array, scale), width, height, channels };
}

/** Keras's `array_to_img` arithmetic on raw floats (float32 steps, as numpy does on float32). */
export function floatsToBytes(values: ArrayLike<number>, scale: boolean): Uint8Array {
  const out = new Uint8Array(values.length);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  if (scale) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    max = Math.fround(max - min);
  }
  for (let i = 0; i < values.length; i++) {
    let v = values[i]!;
    if (scale) {
      v = Math.fround(v - min);
      if (max !== 0) v = Math.fround(v / max);
      v = Math.fround(v * 255);
    }
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return out;
}

const SAVE_FORMATS = ['png', 'jpeg', 'jpg', 'webp', 'tiff', 'tif', 'gif'] as const;

/**
 * Keras's `save_img`: writes a tensor (through `arrayToImg`) or an Img to `file`, in the format of
 * its extension (png, jpg/jpeg, webp, tiff, gif). The file appears whole or not at all.
 * @example
 * await saveImg('augmented.png', x, { scale: false });
 */
export async function saveImg(
  file: string,
  x: tf.Tensor3D | Img,
  options: { scale?: boolean } = {},
): Promise<void> {
  if (typeof file !== 'string' || file === '') {
    throw invalidParameterError('path', 'non-empty string', file);
  }
  const ext = path.extname(file).slice(1).toLowerCase();
  const format = checkOneOf('file extension', ext, SAVE_FORMATS);
  await initBackend();
  const img = x instanceof tf.Tensor ? arrayToImg(x, options) : x;
  checkImg(img);
  let pipeline = sharp(img.data, {
    raw: { width: img.width, height: img.height, channels: img.channels },
  });
  if (img.channels === 1) pipeline = pipeline.toColourspace('b-w');
  // JPEG has no alpha channel; Keras's save_img converts RGBA to RGB too.
  if (format === 'jpeg' || format === 'jpg') pipeline = pipeline.removeAlpha();
  const normalized = format === 'jpg' ? 'jpeg' : format === 'tif' ? 'tiff' : format;
  const buffer = await pipeline.toFormat(normalized).toBuffer();
  await writeFileAtomic(file, buffer);
}
