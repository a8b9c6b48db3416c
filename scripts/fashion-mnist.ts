/**
 * Reads Debian's `dataset-fashion-mnist` (gzipped IDX files), for the scripts that build the
 * offline demo's data and pretrain its backbone.
 *
 * IDX format (LeCun's MNIST page): a big-endian header of 2 zero bytes, a type byte (0x08 =
 * unsigned byte), a byte giving the number of dimensions, then one big-endian uint32 per
 * dimension; the data follows in row-major order.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Where `apt-get install dataset-fashion-mnist` puts the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Fashion-MNIST's ten labels, in label order (the dataset's README). */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** One IDX array: its dimensions and its unsigned bytes in row-major order. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const UNSIGNED_BYTE = 0x08;

/** Parses an (already gunzipped) IDX buffer of unsigned bytes. */
export function parseIdx(buffer: Uint8Array): IdxArray {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (buffer.byteLength < 4 || view.getUint16(0) !== 0) {
    throw new Error('not an IDX file: the first two bytes must be zero');
  }
  const type = view.getUint8(2);
  if (type !== UNSIGNED_BYTE) {
    throw new Error(`IDX data type 0x${type.toString(16)} is not unsigned byte (0x08)`);
  }
  const rank = view.getUint8(3);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const offset = 4 + 4 * rank;
  const size = dims.reduce((a, b) => a * b, 1);
  if (buffer.byteLength !== offset + size) {
    throw new Error(
      `IDX size mismatch: header says ${size} bytes, file has ${buffer.byteLength - offset}`,
    );
  }
  return { dims, data: buffer.subarray(offset) };
}

/** One split of Fashion-MNIST: `count` 28x28 images (uint8, row-major) and their labels. */
export interface FashionMnistSplit {
  count: number;
  height: number;
  width: number;
  images: Uint8Array;
  labels: Uint8Array;
}

/** Loads the `train` (60,000 images) or `t10k` (10,000 images) split. */
export function loadFashionMnist(
  split: 'train' | 't10k',
  dir = FASHION_MNIST_DIR,
): FashionMnistSplit {
  const read = (name: string) => parseIdx(gunzipSync(readFileSync(path.join(dir, name))));
  const images = read(`${split}-images-idx3-ubyte.gz`);
  const labels = read(`${split}-labels-idx1-ubyte.gz`);
  const [count, height, width] = images.dims as [number, number, number];
  if (images.dims.length !== 3 || labels.dims.length !== 1 || labels.dims[0] !== count) {
    throw new Error(`unexpected IDX shapes: images ${images.dims}, labels ${labels.dims}`);
  }
  return { count, height, width, images: images.data, labels: labels.data };
}

/** Indices of the images whose label is `label`, in file order. */
export function indicesOf(split: FashionMnistSplit, label: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < split.count; i++) if (split.labels[i] === label) out.push(i);
  return out;
}

/** The pixels of image `index` (a view, not a copy). */
export function imageAt(split: FashionMnistSplit, index: number): Uint8Array {
  const size = split.height * split.width;
  return split.images.subarray(index * size, (index + 1) * size);
}

/** Folder names for the ten labels, in label order: short, lowercase, no slash. */
export const FASHION_MNIST_FOLDERS = [
  't_shirt',
  'trouser',
  'pullover',
  'dress',
  'coat',
  'sandal',
  'shirt',
  'sneaker',
  'bag',
  'ankle_boot',
] as const;

/** The folder name of a label ('t_shirt' for 'T-shirt/top'). */
export function folderOf(label: number): string {
  const name = FASHION_MNIST_FOLDERS[label];
  if (name === undefined) throw new Error(`Fashion-MNIST has no label ${label}`);
  return name;
}

/** The label of a folder name from {@link FASHION_MNIST_FOLDERS}. */
export function labelOfFolder(folder: string): number {
  const label = (FASHION_MNIST_FOLDERS as readonly string[]).indexOf(folder);
  if (label < 0) {
    const known = FASHION_MNIST_FOLDERS.join(', ');
    throw new Error(`'${folder}' is not a Fashion-MNIST class folder; known: ${known}`);
  }
  return label;
}
