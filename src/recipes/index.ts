export { applicationBackbone, type BackboneSource } from './backbones.js';
export {
  type Classifier,
  loadClassifier,
  type Prediction,
  SEED_AUGMENTATION,
  type TrainClassifierOptions,
  type TrainClassifierResult,
  trainClassifier,
} from './classifier.js';
export { DEMO_BACKBONE, type DemoOptions, type DemoResult, runDemo } from './demo.js';
export { exportKerasH5, exportTfjs, type TfjsExportMetadata } from './export.js';
export { type Preprocessing, preprocessingFunction } from './preprocessing.js';
export { RUN_FILES, type RunConfig, readRunFolder } from './run-folder.js';
export {
  type EvaluateRunOptions,
  type EvaluateRunResult,
  evaluateRun,
} from './run-folder-evaluate.js';
export {
  expandImageArgs,
  type FilePrediction,
  type FileResult,
  type PredictFilesOptions,
  predictFiles,
} from './run-folder-predict.js';
