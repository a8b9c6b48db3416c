/**
 * The pixel work of one image of a batch, written into its place (`dest`, a view of the batch):
 * what a pool worker runs per message and what the main thread runs without workers, so a batch
 * is the same either way. Free of tfjs, so a worker thread starts quickly.
 */
import { isMainThread } from 'node:worker_threads';
import {
  copyFlipped,
  denseSource,
  type PixelSource,
  type PixelTransform,
  type TransformSettings,
  transformInto,
} from './affine.js';
import { type DatasetLoadSettings, datasetPixels } from './dataset-image.js';
import {
  decodeImageBytes,
  finishImage,
  type ResolvedLoadOptions,
  readImageFile,
} from './decode.js';
import type { RawImage } from './decoders.js';
import { decodePlainJpeg, jpegCodec } from './jpeg-wasm.js';
import { applyPixelPreprocess, type PixelPreprocess } from './pixel-preprocess.js';
import { aspectCropBox, nearestSource } from './resize.js';

/**
 * 'keras': `load_img`'s pixels and the transform drawn for them (or null), for flowFromDirectory;
 * 'dataset': Keras 3's `load_image` float pixels, for imageDatasetFromDirectory; 'array': the
 * transform of one image of `flow`'s in-memory array. `preprocess`: the generator's
 * preprocessingFunction as a per-pixel map (`pixelPreprocess`), applied once the pixels are in.
 */
export type ImageTask =
  | {
      kind: 'keras';
      file: string;
      options: ResolvedLoadOptions;
      transform: { params: PixelTransform; settings: TransformSettings } | null;
      preprocess: PixelPreprocess | null;
      dest: Float32Array;
    }
  | { kind: 'dataset'; file: string; settings: DatasetLoadSettings; dest: Float32Array }
  | {
      kind: 'array';
      pixels: Float32Array;
      shape: readonly [number, number, number];
      transform: { params: PixelTransform; settings: TransformSettings };
      preprocess: PixelPreprocess | null;
      dest: Float32Array;
    };

/** Does `task`: its image's pixels land in `task.dest`. */
export async function runImageTask(task: ImageTask): Promise<void> {
  if (task.kind === 'array') {
    const [height, width, channels] = task.shape;
    writeImage(denseSource(task.pixels, height, width, channels), task);
    return;
  }
  const bytes = await readImageFile(task.file);
  const limit =
    task.kind === 'dataset' ? task.settings.limitInputPixels : task.options.limitInputPixels;
  // A worker decodes a plain JPEG itself (jpeg-wasm.ts) into the codec's reused memory: from the
  // decode to the last write below nothing may await, or another task could decode over it.
  const codec = isMainThread ? null : await jpegCodec();
  const raw =
    (codec && decodePlainJpeg(codec, bytes, limit)) ??
    (await decodeImageBytes(bytes, task.file, limit));
  if (task.kind === 'dataset') task.dest.set(datasetPixels(raw, task.settings));
  else writeImage(finishImageSource(raw, task.options), task);
}

/** `source`, transformed and preprocessed as `task` says, into `task.dest`. */
function writeImage(
  source: PixelSource,
  task: Extract<ImageTask, { kind: 'keras' | 'array' }>,
): void {
  if (task.transform === null) copyFlipped(source, task.dest, false, false);
  else transformInto(source, task.transform.params, task.transform.settings, task.dest);
  if (task.preprocess !== null) applyPixelPreprocess(task.dest, source.channels, task.preprocess);
}

/**
 * What `finishImage` returns, as a `PixelSource` for the batch writers: for a nearest resize with
 * no colour conversion (the usual case: RGB photos, Keras's default interpolation) a view of
 * `raw` that picks PIL's pixels as it is read, so the resized copy is never made.
 */
function finishImageSource(raw: RawImage, options: ResolvedLoadOptions): PixelSource {
  const target = options.targetSize;
  const channels = options.colorMode === 'grayscale' ? 1 : options.colorMode === 'rgb' ? 3 : 4;
  if (target !== undefined && options.interpolation === 'nearest' && raw.channels === channels) {
    const [outHeight, outWidth] = target;
    const box = options.keepAspectRatio
      ? aspectCropBox(raw.width, raw.height, outWidth, outHeight)
      : { left: 0, top: 0, width: raw.width, height: raw.height };
    return nearestSource(raw.data, raw.width, channels, box, outWidth, outHeight);
  }
  const img = finishImage(raw, options);
  return denseSource(img.data, img.height, img.width, img.channels);
}
