/**
 * Weight files, model files and the download cache: Keras `.h5` weights (`loadWeights`,
 * `saveWeights`), tfjs model folders (`saveModel`, `loadModel`), and Keras's `get_file` cache.
 */
export { cacheDir, type HashAlgorithm } from './cache.js';
export { type GetFileOptions, getFile } from './download.js';
export { type LoadWeightsOptions, loadWeights, saveWeights } from './load.js';
export { loadModel, saveModel } from './tfjs-format.js';
