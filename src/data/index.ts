/** Image loading, Keras's ImageDataGenerator, flowFromDirectory and imageDatasetFromDirectory. */

export type { FillMode } from './affine.js';
export { ArrayIterator } from './array-iterator.js';
export {
  ImageDataset,
  type ImageDatasetOptions,
  imageDatasetFromDirectory,
  type LabelMode,
} from './dataset.js';
export * from './datasets/index.js';
export {
  type DataSubset,
  type FlowOptions,
  type GeneratorFitOptions,
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
export * from './layers/index.js';
export { closeImagePools } from './pool.js';
export type { SkippedFile } from './scan.js';
export type { Batch, BatchSource } from './source.js';
