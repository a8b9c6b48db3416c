export { BACKEND_NAMES, type BackendName, backendName, initBackend } from './backend.js';
export { setBatchNormInferenceMode } from './batchnorm.js';
export { countParams, type ModelSummaryOptions, type ParamCounts, summary } from './summary.js';
