/**
 * Weight files, model files and the download cache: Keras `.h5` weights, Keras 3 `.weights.h5` and
 * `.keras` archives, PyTorch `.safetensors` (torchvision and timm layouts), `hf:` Hub sources
 * (`loadWeights`, `saveWeights`), tfjs model folders (`saveModel`, `loadModel`), and Keras's
 * `get_file` cache.
 */
export { cacheDir, type HashAlgorithm } from './cache.js';
export { type GetFileOptions, getFile } from './download.js';
export { type LoadWeightsOptions, loadWeights, saveWeights } from './load.js';
export { readSafetensors, type SafetensorsEntry, type SafetensorsFile } from './safetensors.js';
export { loadModel, saveModel } from './tfjs-format.js';
