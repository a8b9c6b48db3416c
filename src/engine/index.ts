export { BACKEND_NAMES, type BackendName, backendName, initBackend } from './backend.js';
export { setBatchNormInferenceMode } from './batchnorm.js';
export {
  benchmarkForward,
  type ForwardBenchmark,
  type ForwardBenchmarkOptions,
} from './onnx/benchmark.js';
export {
  type ExportOnnxOptions,
  exportOnnx,
  type OnnxExport,
  OnnxExportError,
} from './onnx/export.js';
export { OrtModel, type OrtModelOptions, runOnnx } from './ort.js';
export { countParams, type ModelSummaryOptions, type ParamCounts, summary } from './summary.js';
export { setWasmThreads, WASM_THREADS_ENV, wasmThreadCount } from './threads.js';
