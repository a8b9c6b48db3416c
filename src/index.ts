/**
 * xfer: transfer learning for images in TypeScript. The one public surface: everything a user
 * imports comes from here, with Keras's names in camelCase.
 */

export * from './applications/index.js';
export * from './data/index.js';
export * from './engine/index.js';
export * as tf from './engine/tf.js';
export * from './errors.js';
export * from './recipes/index.js';
export * from './report/index.js';
export * from './serve/index.js';
export * from './training/index.js';
export { setQuiet } from './util/log.js';
export * from './weights/index.js';
