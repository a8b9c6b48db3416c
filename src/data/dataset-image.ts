/**
 * One file of `imageDatasetFromDirectory` as Keras 3's `load_image` makes it: decoded, converted
 * to the colour mode and resized by TensorFlow's arithmetic. Free of tfjs, so a worker thread
 * (`pool.ts`) can run it.
 */
import type { ColorMode } from './decode.js';
import { decodeImageBytes, readImageFile, toColorMode } from './decode.js';
import type { RawImage } from './decoders.js';
import { aspectCropBox } from './resize.js';
import { type TfInterpolation, tfResize, tfResizeWithPad } from './tf-resize.js';

/** How `imageDatasetFromDirectory` turns a file into pixels. */
export interface DatasetLoadSettings {
  imageSize: [number, number];
  colorMode: ColorMode;
  interpolation: TfInterpolation;
  cropToAspectRatio: boolean;
  padToAspectRatio: boolean;
  limitInputPixels: number;
}

/** One file decoded, converted and resized the way Keras 3's `load_image` does. */
export async function loadDatasetImage(
  file: string,
  settings: DatasetLoadSettings,
): Promise<Float32Array> {
  const bytes = await readImageFile(file);
  return datasetPixels(await decodeImageBytes(bytes, file, settings.limitInputPixels), settings);
}

/** Decoded pixels converted and resized the way Keras 3's `load_image` does. */
export function datasetPixels(raw: RawImage, settings: DatasetLoadSettings): Float32Array {
  const img = toColorMode(
    raw.data,
    raw.width * raw.height,
    raw.channels,
    settings.colorMode,
    raw.width,
    raw.height,
  );
  const [outHeight, outWidth] = settings.imageSize;
  if (settings.padToAspectRatio) {
    return tfResizeWithPad(
      img.data,
      img.width,
      img.height,
      img.channels,
      outWidth,
      outHeight,
      settings.interpolation,
    );
  }
  const box = settings.cropToAspectRatio
    ? aspectCropBox(img.width, img.height, outWidth, outHeight)
    : { left: 0, top: 0, width: img.width, height: img.height };
  return tfResize(
    img.data,
    img.width,
    img.channels,
    box,
    outWidth,
    outHeight,
    settings.interpolation,
  );
}
