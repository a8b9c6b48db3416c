/**
 * Writes the offline demo's images: two Fashion-MNIST classes as 28x28 grayscale PNGs in the seed's
 * folder layout, `assets/demo/data/{train,validation,test}/{class}/*.png`, plus the dataset's
 * licence. Reads Debian's `dataset-fashion-mnist` (`apt-get install dataset-fashion-mnist`).
 *
 * Which images: train and validation take the first images of each class, in file order, from
 * Fashion-MNIST's training split (train first, then validation); test takes the first images of
 * each class from its test split (`t10k`), which no model here ever trains on. The file name says
 * where each image came from (`train-01234.png` is image 1234 of the training split). Rerunning
 * writes the same bytes (sharp's PNG encoder at fixed settings, no metadata).
 *
 * Usage: node --import tsx scripts/make-demo-data.ts [--out DIR] [--classes pullover,t_shirt]
 *        [--train 100] [--validation 50] [--test 100] [--source DIR]
 */
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { DEMO_CLASSES, DEMO_DATA_DIR } from '../src/demo/backbone.js';
import {
  FASHION_MNIST_DIR,
  type FashionMnistSplit,
  imageAt,
  indicesOf,
  labelOfFolder,
  loadFashionMnist,
} from './fashion-mnist.js';

/** Images per class in each split of the shipped demo. */
const DEMO_SPLIT_SIZES = { train: 100, validation: 50, test: 100 } as const;

/** A deterministic grayscale PNG of one 28x28 image. */
function encodePng(pixels: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(pixels, { raw: { width, height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 9, adaptiveFiltering: false, palette: false })
    .toBuffer();
}

async function writeImages(
  outDir: string,
  split: FashionMnistSplit,
  splitName: string,
  indices: number[],
): Promise<Buffer[]> {
  await fsp.mkdir(outDir, { recursive: true });
  const written: Buffer[] = [];
  for (const index of indices) {
    const png = await encodePng(imageAt(split, index), split.width, split.height);
    await fsp.writeFile(
      path.join(outDir, `${splitName}-${String(index).padStart(5, '0')}.png`),
      png,
    );
    written.push(png);
  }
  return written;
}

const LICENSE_HEADER = `The images under this folder are a small sample of Fashion-MNIST
(https://github.com/zalandoresearch/fashion-mnist), read from Debian's
dataset-fashion-mnist package and re-encoded as PNG by scripts/make-demo-data.ts.
Fashion-MNIST is distributed under the MIT licence; Debian's copyright file follows.

`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: DEMO_DATA_DIR },
      classes: { type: 'string', default: DEMO_CLASSES.join(',') },
      train: { type: 'string', default: String(DEMO_SPLIT_SIZES.train) },
      validation: { type: 'string', default: String(DEMO_SPLIT_SIZES.validation) },
      test: { type: 'string', default: String(DEMO_SPLIT_SIZES.test) },
      source: { type: 'string', default: FASHION_MNIST_DIR },
    },
  });
  const folders = values.classes.split(',');
  const sizes = {
    train: Number(values.train),
    validation: Number(values.validation),
    test: Number(values.test),
  };
  const trainSplit = loadFashionMnist('train', values.source);
  const testSplit = loadFashionMnist('t10k', values.source);
  await fsp.rm(values.out, { recursive: true, force: true });
  const digest = createHash('sha256');
  for (const folder of folders) {
    const label = labelOfFolder(folder);
    const fromTrain = indicesOf(trainSplit, label);
    const fromTest = indicesOf(testSplit, label);
    const plan: [string, FashionMnistSplit, string, number[]][] = [
      ['train', trainSplit, 'train', fromTrain.slice(0, sizes.train)],
      [
        'validation',
        trainSplit,
        'train',
        fromTrain.slice(sizes.train, sizes.train + sizes.validation),
      ],
      ['test', testSplit, 't10k', fromTest.slice(0, sizes.test)],
    ];
    for (const [dir, split, splitName, indices] of plan) {
      const pngs = await writeImages(path.join(values.out, dir, folder), split, splitName, indices);
      for (const png of pngs) digest.update(png);
      console.log(`${dir}/${folder}: ${indices.length} images (Fashion-MNIST label ${label})`);
    }
  }
  const copyright = readFileSync('/usr/share/doc/dataset-fashion-mnist/copyright', 'utf8');
  await fsp.writeFile(path.join(values.out, 'LICENSE'), LICENSE_HEADER + copyright);
  console.log(`sha256 of all PNG bytes: ${digest.digest('hex')}`);
}

await main();
