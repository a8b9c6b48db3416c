export { type ArrayBatchesOptions, arrayBatches } from './array-batches.js';
export { Callback, type CallbackParams, type Logs } from './callback.js';
export { type CompileOptions, compile, type LossOrMetricFn } from './compile.js';
export { CSVLogger, type CSVLoggerOptions } from './csv-logger.js';
export { EarlyStopping, type EarlyStoppingOptions } from './early-stopping.js';
export { type EvaluateOptions, evaluate } from './evaluate.js';
export { type FineTuneOptions, type FineTuneResult, findBackbone, fineTune } from './fine-tune.js';
export {
  blockOf,
  flatLayers,
  freezeBackbone,
  type UnfreezeOptions,
  type UnfreezeResult,
  type UnfreezeTarget,
  unfreezeFrom,
} from './fine-tune-layers.js';
export {
  type GroupLearningRatesOptions,
  GroupOptimizer,
  type GroupOptimizerName,
  groupLearningRates,
} from './fine-tune-optimizer.js';
export { type FitOptions, fit } from './fit.js';
export { History } from './history.js';
export { ModelCheckpoint, type ModelCheckpointOptions } from './model-checkpoint.js';
export { MonitorCallback, type MonitorMode, type MonitorOptions } from './monitor-callback.js';
export { Adam, getLearningRate, RMSprop, SGD, setLearningRate } from './optimizers.js';
export { type PredictOptions, predict } from './predict.js';
export {
  type ImagePrediction,
  type PredictImageOptions,
  type PreprocessFn,
  predictImage,
} from './predict-image.js';
export {
  ProgbarLogger,
  type ProgbarLoggerOptions,
  type ProgressPhase,
  StepProgress,
  type StepProgressOptions,
} from './progbar-logger.js';
export { ReduceLROnPlateau, type ReduceLROnPlateauOptions } from './reduce-lr-on-plateau.js';
export {
  nonFiniteWeight,
  TerminateOnNaN,
  type TerminateOnNaNOptions,
  type WeightCheck,
} from './terminate-on-nan.js';
