/**
 * Keras's `load_img`, `img_to_array`, `array_to_img` and `save_img`. Decoding is sharp's (libvips,
 * off the main thread); colour conversion and resizing reproduce PIL's arithmetic, which is what
 * Keras runs, so a batch matches Keras's pixel for pixel (JPEG decodes identically: libjpeg-turbo
 * in both; checked on 500x375 JPEGs against Pillow 9.4). An embedded ICC colour profile is ignored,
 * as PIL ignores it.
 *
 * Differences from Keras, on purpose: EXIF orientation is applied (PIL's `load_img` ignores it, so
 * phone photos come out sideways in Keras); 16-bit images are reduced to 8 bits by sharp (the high
 * byte, as PIL does for RGB; PIL keeps 16-bit grayscale as mode I). Images over `limitInputPixels`
 * are refused from their header, before any pixel memory is allocated (decompression bombs).
 */
import * as path from 'node:path';
import sharp from 'sharp';
import { initBackend } from '../engine/backend.js';
import * as tf from '../engine/tf.js';
import { invalidParameterError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { checkBoolean, checkOneOf } from '../util/validate.js';
import {
  floatsToBytes,
  type Img,
  type LoadImgOptions,
  loadImageFile,
  resolveLoadOptions,
} from './decode.js';

export {
  COLOR_MODES,
  type ColorMode,
  checkPixelLimitOption,
  checkTargetSize,
  DEFAULT_PIXEL_LIMIT,
  decodeImageBytes,
  finishImage,
  floatsToBytes,
  type Img,
  INTERPOLATIONS,
  type Interpolation,
  type LoadImgOptions,
  loadImageFile,
  type ResolvedLoadOptions,
  readImageFile,
  resolveLoadOptions,
  toColorMode,
} from './decode.js';

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
