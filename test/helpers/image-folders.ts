/**
 * Writes a small labelled image folder in the seed's layout (split/class/file) for tests: each
 * class has its own pattern (class 0 bright on the left, class 1 bright on the right, ...) plus
 * noise, so a classifier can learn it and labels can be checked.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { Random } from '../../src/util/random.js';

export interface ImageFolderOptions {
  /** Images per class in each split. Default { train: 8, validation: 4, test: 4 }. */
  splits?: Record<string, number>;
  classes?: string[];
  /** Square size in pixels. Default 48. */
  size?: number;
  seed?: number;
  format?: 'png' | 'jpeg';
}

export async function makeTempDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), `xfer-test-${prefix}-`));
}

export async function patternImage(
  classIndex: number,
  numClasses: number,
  size: number,
  random: Random,
): Promise<Buffer> {
  const pixels = Buffer.alloc(size * size * 3);
  const band = Math.floor(size / numClasses);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const inBand = Math.floor(x / band) === classIndex;
      const base = inBand ? 200 : 40;
      for (let c = 0; c < 3; c++) {
        pixels[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, base + random.randint(-30, 30)));
      }
    }
  }
  return Buffer.from(pixels);
}

export async function makeImageFolder(
  root: string,
  options: ImageFolderOptions = {},
): Promise<string> {
  const splits = options.splits ?? { train: 8, validation: 4, test: 4 };
  const classes = options.classes ?? ['cats', 'dogs'];
  const size = options.size ?? 48;
  const format = options.format ?? 'png';
  const random = new Random(options.seed ?? 1);
  for (const [split, count] of Object.entries(splits)) {
    for (const [index, name] of classes.entries()) {
      const dir = path.join(root, split, name);
      await fsp.mkdir(dir, { recursive: true });
      for (let i = 0; i < count; i++) {
        const raw = await patternImage(index, classes.length, size, random);
        const image = sharp(raw, { raw: { width: size, height: size, channels: 3 } });
        const file = path.join(
          dir,
          `${name.replace(/s$/, '')}.${i}.${format === 'png' ? 'png' : 'jpg'}`,
        );
        await (format === 'png' ? image.png() : image.jpeg({ quality: 90 })).toFile(file);
      }
    }
  }
  return root;
}
