/**
 * Per-sample keys for `BatchSource.sampleKeys`: a file is known by its absolute path, size and
 * modification time (one `stat`, no read), joined with a fingerprint of everything that turns its
 * bytes into the x row (load settings, the generator's standardization). Equal keys mean equal rows,
 * so a consumer may skip decoding a sample it has seen; any change to the file or the settings
 * gives a new key.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { ImageDataGenerator } from './generator.js';

/**
 * Keys of `files` under `fingerprint`, or null when one of them cannot be stat'ed (deleted or
 * moved since the scan): the caller then loads the batch, which reports the file its own way.
 */
export async function fileSampleKeys(
  files: readonly string[],
  fingerprint: string,
): Promise<string[] | null> {
  try {
    const stats = await Promise.all(files.map((file) => fsp.stat(file)));
    return stats.map(
      (stat, k) => `${path.resolve(files[k]!)}\0${stat.size}\0${stat.mtimeMs}\0${fingerprint}`,
    );
  } catch {
    return null;
  }
}

/**
 * Changes whenever decoding gives a file other pixels than before, so that features cached on
 * disk by an older xfer are not served for it. 2: embedded ICC profiles ignored, as PIL does.
 */
const DECODING_VERSION = 2;

/**
 * A short digest of a settings object (stable key order given by the caller's literal) and of
 * the decoding version.
 */
export function settingsFingerprint(settings: unknown): string {
  return createHash('sha256')
    .update(`${DECODING_VERSION}\0${JSON.stringify(settings)}`)
    .digest('base64url')
    .slice(0, 22);
}

interface Memo {
  mean: Float32Array | null;
  std: Float32Array | null;
  principalComponents: Float32Array | null;
  shape: string;
  value: string | null;
}

const memos = new WeakMap<ImageDataGenerator, Memo>();

/** A fixed pseudo-random image with values in [0, 255], the probe of `standardizationFingerprint`. */
function probeImage(size: number): Float32Array {
  const probe = new Float32Array(size);
  let state = 0x2545f491;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    probe[i] = state >>> 24;
  }
  return probe;
}

function standardizedProbe(
  generator: ImageDataGenerator,
  shape: readonly [number, number, number],
): Buffer {
  const out = generator.standardizePixels(probeImage(shape[0] * shape[1] * shape[2]), 1, shape);
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * What `generator.standardizePixels` does to images of `shape`, as a digest, or null when it is
 * not reproducible. A preprocessingFunction is a closure whose source says little about what it
 * computes, so the digest is of its effect: the standardized output of a fixed probe image (which
 * also covers rescale, the sample- and feature-wise statistics and ZCA). Run twice: a function
 * that draws random numbers (augmentation in disguise) gives two outputs, and then no keys. The
 * result is remembered until `fit` replaces the generator's statistics.
 */
export function standardizationFingerprint(
  generator: ImageDataGenerator,
  shape: readonly [number, number, number],
): string | null {
  const memo = memos.get(generator);
  const shapeKey = shape.join('x');
  if (
    memo &&
    memo.mean === generator.mean &&
    memo.std === generator.std &&
    memo.principalComponents === generator.principalComponents &&
    memo.shape === shapeKey
  ) {
    return memo.value;
  }
  const first = standardizedProbe(generator, shape);
  const second = standardizedProbe(generator, shape);
  const value = first.equals(second)
    ? createHash('sha256')
        .update(`${generator.dtype}\0${shapeKey}\0`)
        .update(first)
        .digest('base64url')
        .slice(0, 22)
    : null;
  memos.set(generator, {
    mean: generator.mean,
    std: generator.std,
    principalComponents: generator.principalComponents,
    shape: shapeKey,
    value,
  });
  return value;
}
