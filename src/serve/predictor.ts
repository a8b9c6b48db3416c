/**
 * From uploaded bytes to ranked classes: decode as `loadImg` does at the run's image size and
 * colour mode, batch, apply the run's preprocessing, predict, rank.
 */
import { PixelLimitError } from '../data/decoders.js';
import { decodeImageBytes, finishImage, type Img, resolveLoadOptions } from '../data/image.js';
import { isXferError, type XferError } from '../errors.js';
import type { Classifier } from '../recipes/classifier.js';
import { preprocessingFunction } from '../recipes/preprocessing.js';
import { PredictionBatcher } from './batcher.js';
import { HttpError } from './body.js';

export interface ClassProbability {
  className: string;
  probability: number;
}

/**
 * The `top` most probable classes, most probable first. One sigmoid output is the probability of
 * class 1, so both classes are listed: class 1 with p, class 0 with 1 - p.
 */
export function rankClasses(
  values: ArrayLike<number>,
  classNames: readonly string[],
  top: number,
): ClassProbability[] {
  const ranked =
    values.length === 1
      ? [
          { className: classNames[1] ?? '1', probability: values[0]! },
          { className: classNames[0] ?? '0', probability: 1 - values[0]! },
        ]
      : Array.from(values, (probability, i) => ({
          className: classNames[i] ?? String(i),
          probability,
        }));
  // A stable sort keeps index order among ties, so answers do not flicker between runs.
  return ranked.sort((a, b) => b.probability - a.probability).slice(0, top);
}

export interface PredictorOptions {
  maxBatchSize: number;
  batchWaitMs: number;
  maxPixels: number;
}

export class ImagePredictor {
  readonly batcher: PredictionBatcher;
  private readonly load;

  constructor(
    readonly classifier: Classifier,
    options: PredictorOptions,
  ) {
    const { config, model } = classifier;
    this.load = resolveLoadOptions({
      targetSize: [config.imageSize, config.imageSize],
      colorMode: config.colorMode,
      limitInputPixels: options.maxPixels,
    });
    this.batcher = new PredictionBatcher(model, {
      maxBatchSize: options.maxBatchSize,
      batchWaitMs: options.batchWaitMs,
      preprocess: preprocessingFunction(config.preprocessing),
    });
  }

  /**
   * Decodes `bytes` to the model's input size, as `loadImg` does a file. An image over
   * `maxPixels` is refused from its header (413) before any pixel is decoded; a broken one is a
   * 400 naming the reason.
   */
  async decode(bytes: Uint8Array, label: string): Promise<Img> {
    try {
      return finishImage(
        await decodeImageBytes(bytes, label, this.load.limitInputPixels),
        this.load,
      );
    } catch (error) {
      const cause = (error as Error)?.cause;
      if (
        cause instanceof PixelLimitError ||
        /pixel limit/i.test(String((cause as Error)?.message))
      ) {
        const reason = String((error as XferError).details?.reason ?? (error as Error).message);
        const size = /\d+x\d+ = \d+ pixels/.exec(reason)?.[0] ?? 'larger';
        throw new HttpError(
          413,
          'IMAGE_TOO_LARGE',
          `the image (${label}) is ${size}, more than the limit of ${this.load.limitInputPixels}; send a smaller image.`,
        );
      }
      if (isXferError(error) && error.code === 'CORRUPT_FILE') {
        const reason = String(error.details.reason ?? error.message);
        throw new HttpError(
          400,
          'CORRUPT_IMAGE',
          `cannot decode the image (${label}): ${reason}. Send a JPEG, PNG, WebP, GIF, TIFF, AVIF, BMP or PNM file.`,
        );
      }
      throw error;
    }
  }
}
