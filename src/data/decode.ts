/**
 * Decoding and Keras's `load_img` pixel arithmetic, without tfjs: what a worker thread needs to
 * turn a file into the pixels of a batch (it loads this module alone, quickly). `image.ts`
 * re-exports all of it beside the tensor functions.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import sharp from 'sharp';
import { describeValue, invalidParameterError, XferError } from '../errors.js';
import { checkBoolean, checkOneOf } from '../util/validate.js';
import {
  decodeBmp,
  decodePnm,
  isBmp,
  isPnm,
  PixelLimitError,
  type RawImage,
  sniffImageFormat,
} from './decoders.js';
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

/**
 * Reads a file, turning file-system failures into one clear XferError. On the main thread the
 * read is asynchronous; in a worker thread (the image pool's) it is synchronous: the worker has
 * nothing else to do meanwhile, and one call instead of libuv's open/stat/read/close round trips
 * made the pool about 10% faster on 2 cores (bench/data-pipeline.ts).
 */
export async function readImageFile(file: string): Promise<Buffer> {
  try {
    if (!isMainThread) return readFileSync(file);
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
  // The bytes pick the decoder, never the name; anything else never reaches libvips.
  if (sniffImageFormat(bytes) === undefined) {
    throw corrupt(
      file,
      `its bytes are not JPEG, PNG, GIF, WebP, TIFF, AVIF/HEIF, BMP or PNM (it starts with ${describeValue(Buffer.from(bytes.subarray(0, 8)).toString('hex'))}), whatever its name says`,
    );
  }
  try {
    if (isBmp(bytes)) return decodeBmp(bytes, limitInputPixels);
    if (isPnm(bytes)) return decodePnm(bytes, limitInputPixels);
    const limit = Number.isFinite(limitInputPixels) ? limitInputPixels : false;
    // ignoreIcc: PIL (Keras's decoder) never applies an embedded colour profile; sharp would
    // convert through it (up to 12 grey levels apart on a Display P3 JPEG).
    const { data, info } = await sharp(bytes, {
      failOn: 'error',
      limitInputPixels: limit,
      ignoreIcc: true,
    })
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
