/** Image loading, Keras's ImageDataGenerator and flowFromDirectory. */

export type { FillMode } from './affine.js';
export {
  ImageDataGenerator,
  type ImageDataGeneratorOptions,
  type ShiftRange,
  type TransformParams,
} from './generator.js';
export {
  arrayToImg,
  type Img,
  imgToArray,
  type LoadImgOptions,
  loadImg,
  saveImg,
} from './image.js';
export { type ClassMode, DirectoryIterator, type FlowFromDirectoryOptions } from './iterator.js';
export type { SkippedFile } from './scan.js';
export type { Batch, BatchSource } from './source.js';
